//! Files on disk, one segment in memory at a time: sealing a file the user picked into the profile (the blob that
//! is uploaded, and kept so that an upload resumes with the same bytes whatever happens to the original), checking
//! a blob as it downloads, and opening a kept blob to a place the user chose. The profile only ever holds blobs:
//! their keys are in the (sealed) history, so no file is in the clear there.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use magpie_proto::file::{open_segment, seal_segment, FileDescriptor, FileLayout, SEALED_SEGMENT_BYTES};
use magpie_proto::FileKey;
use openssl::sha::Sha256;

use crate::error::{Error, Result};

/// A media type for a file's name, from its extension (`application/octet-stream` when unknown): what the
/// receiving side shows and opens it as.
pub fn media_type_of(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "md" | "log" => "text/plain",
        "csv" => "text/csv",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        _ => "application/octet-stream",
    }
}

/// A file sealed into a blob.
#[derive(Debug)]
pub struct Sealed {
    /// Its fresh key.
    pub key: FileKey,
    /// SHA-256 of the blob.
    pub sha256: [u8; 32],
    /// The plaintext's length.
    pub size: u64,
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::FileRead {
        path: path.to_owned(),
        source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::FileWrite {
        path: path.to_owned(),
        source,
    }
}

/// The size of the regular file at `path` (not a folder, not a device).
pub fn file_size(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    if !meta.is_file() {
        return Err(Error::FileRead {
            path: path.to_owned(),
            source: std::io::Error::other("it is not a file"),
        });
    }
    Ok(meta.len())
}

/// `dest` with `.part` added: where a file is written before it is renamed into place.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Writes `dest` through a `.part` file that is synced and renamed into place, so `dest` is whole or absent.
fn write_atomically(dest: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let part = part_path(dest);
    let result = (|| {
        let mut file = File::create(&part).map_err(write_err(&part))?;
        fill(&mut file)?;
        file.sync_all().map_err(write_err(&part))?;
        std::fs::rename(&part, dest).map_err(write_err(dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Seals the file at `source` (of `size` bytes, as measured before) into the blob `dest` with a fresh key.
pub fn seal_into(source: &Path, size: u64, dest: &Path) -> Result<Sealed> {
    let layout = FileLayout::new(size);
    let key = FileKey::generate()?;
    let mut input = File::open(source).map_err(read_err(source))?;
    let mut hasher = Sha256::new();
    let mut plain = zeroize::Zeroizing::new(Vec::new());
    write_atomically(dest, |out| {
        for index in 0..layout.segments() {
            plain.resize(layout.plain_len(index), 0);
            input.read_exact(&mut plain).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::FileChanged(source.to_owned()),
                _ => Error::FileRead {
                    path: source.to_owned(),
                    source: e,
                },
            })?;
            let sealed = seal_segment(&key, &layout, index, &plain)?;
            hasher.update(&sealed);
            out.write_all(&sealed).map_err(write_err(dest))?;
        }
        // A file that grew since it was measured is not the file the user chose.
        if input.read(&mut [0u8; 1]).map_err(read_err(source))? != 0 {
            return Err(Error::FileChanged(source.to_owned()));
        }
        Ok(())
    })?;
    Ok(Sealed {
        key,
        sha256: hasher.finish(),
        size,
    })
}

/// Checks a blob as its bytes arrive: every segment must open, and the whole must have the digest the file
/// message names. Nothing it opens is kept.
pub struct BlobCheck {
    descriptor: FileDescriptor,
    layout: FileLayout,
    hasher: Sha256,
    index: u64,
    pending: Vec<u8>,
}

impl std::fmt::Debug for BlobCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheck")
            .field("segment", &self.index)
            .finish_non_exhaustive()
    }
}

impl BlobCheck {
    /// A check of the blob `descriptor` names, from its start.
    pub fn new(descriptor: FileDescriptor) -> Self {
        Self {
            layout: FileLayout::new(descriptor.size),
            descriptor,
            hasher: Sha256::new(),
            index: 0,
            pending: Vec::with_capacity(SEALED_SEGMENT_BYTES),
        }
    }

    /// Takes the next bytes of the blob.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            if self.index > self.layout.last_index() {
                return Err(tampered("it is longer than its message says"));
            }
            let want = self.layout.sealed_segment_len(self.index) - self.pending.len();
            let take = want.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if take == want {
                let segment = std::mem::replace(&mut self.pending, Vec::with_capacity(SEALED_SEGMENT_BYTES));
                open_segment(&self.descriptor.key, &self.layout, self.index, segment)
                    .map_err(|_| tampered(&format!("segment {} does not open", self.index)))?;
                self.index += 1;
            }
        }
        Ok(())
    }

    /// Ends the check: every segment came, and the digest is the one named.
    pub fn finish(self) -> Result<()> {
        if self.index != self.layout.segments() || !self.pending.is_empty() {
            return Err(tampered("it is shorter than its message says"));
        }
        if self.hasher.finish() != self.descriptor.sha256 {
            return Err(tampered("its SHA-256 is not the one its message names"));
        }
        Ok(())
    }
}

fn tampered(what: &str) -> Error {
    Error::FileTampered(what.to_owned())
}

/// Feeds the blob file at `path` through `check` (a download resuming after a restart re-reads what it has).
pub fn check_file(check: &mut BlobCheck, path: &Path) -> Result<u64> {
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut buf = vec![0u8; SEALED_SEGMENT_BYTES];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(read_err(path))?;
        if n == 0 {
            return Ok(total);
        }
        check.feed(&buf[..n])?;
        total += n as u64;
    }
}

/// Opens the kept blob at `blob` to `dest` (written whole or not at all): every segment is checked again, so a
/// blob changed on disk since its download is refused too.
pub fn open_to(blob: &Path, descriptor: &FileDescriptor, dest: &Path) -> Result<()> {
    let layout = FileLayout::new(descriptor.size);
    let mut input = File::open(blob).map_err(read_err(blob))?;
    let mut hasher = Sha256::new();
    write_atomically(dest, |out| {
        for index in 0..layout.segments() {
            let mut sealed = vec![0u8; layout.sealed_segment_len(index)];
            input
                .read_exact(&mut sealed)
                .map_err(|_| tampered("the kept copy is shorter than its message says"))?;
            hasher.update(&sealed);
            let plain = open_segment(&descriptor.key, &layout, index, sealed)
                .map_err(|_| tampered(&format!("segment {index} of the kept copy does not open")))?;
            out.write_all(&plain).map_err(write_err(dest))?;
        }
        if hasher.finish() != descriptor.sha256 {
            return Err(tampered("the kept copy's SHA-256 is not the one its message names"));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use uuid::Uuid;

    fn descriptor(sealed: Sealed) -> FileDescriptor {
        FileDescriptor {
            blob: Uuid::new_v4(),
            key: sealed.key,
            sha256: sealed.sha256,
            size: sealed.size,
            name: "x.bin".into(),
            media_type: "application/octet-stream".into(),
            thumbnail: None,
        }
    }

    fn sealed_file(dir: &Path, bytes: &[u8]) -> (FileDescriptor, PathBuf) {
        let source = dir.join("source");
        std::fs::write(&source, bytes).unwrap();
        let blob = dir.join("blob");
        let sealed = seal_into(&source, bytes.len() as u64, &blob).unwrap();
        (descriptor(sealed), blob)
    }

    #[test]
    fn a_file_seals_checks_in_any_pieces_and_opens_back() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 65_536, 65_537, 200_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let (descriptor, blob) = sealed_file(dir.path(), &bytes);
            let stored = std::fs::read(&blob).unwrap();
            assert_eq!(stored.len() as u64, FileLayout::new(len as u64).sealed_len());
            let mut check = BlobCheck::new(descriptor.clone());
            for piece in stored.chunks(7_777) {
                check.feed(piece).unwrap();
            }
            check.finish().unwrap();
            let out = dir.path().join("out");
            open_to(&blob, &descriptor, &out).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), bytes, "{len} bytes");
        }
    }

    #[test]
    fn a_changed_truncated_or_swapped_blob_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 150_000];
        let (descriptor, blob) = sealed_file(dir.path(), &bytes);
        let good = std::fs::read(&blob).unwrap();
        let check = |bytes: &[u8]| {
            let mut check = BlobCheck::new(descriptor.clone());
            check.feed(bytes).and_then(|()| check.finish())
        };
        let mut flipped = good.clone();
        flipped[70_000] ^= 1;
        assert!(matches!(check(&flipped), Err(Error::FileTampered(_))));
        let cut = &good[..SEALED_SEGMENT_BYTES * 2];
        assert!(
            matches!(check(cut), Err(Error::FileTampered(_))),
            "cut at a segment boundary"
        );
        let mut swapped = good[SEALED_SEGMENT_BYTES..SEALED_SEGMENT_BYTES * 2].to_vec();
        swapped.extend_from_slice(&good[..SEALED_SEGMENT_BYTES]);
        swapped.extend_from_slice(&good[SEALED_SEGMENT_BYTES * 2..]);
        assert!(matches!(check(&swapped), Err(Error::FileTampered(_))));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(check(&longer), Err(Error::FileTampered(_))));
        // Another file's blob under this message's key and digest.
        let (_, other) = sealed_file(dir.path(), &bytes);
        assert!(matches!(
            check(&std::fs::read(&other).unwrap()),
            Err(Error::FileTampered(_))
        ));

        std::fs::write(&blob, &flipped).unwrap();
        let out = dir.path().join("saved.bin");
        assert!(matches!(open_to(&blob, &descriptor, &out), Err(Error::FileTampered(_))));
        assert!(!out.exists() && !part_path(&out).exists(), "no partial file is left");
    }

    #[test]
    fn a_file_that_changes_while_sealed_or_is_missing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, vec![1u8; 1000]).unwrap();
        let blob = dir.path().join("blob");
        assert!(matches!(seal_into(&source, 2000, &blob), Err(Error::FileChanged(_))));
        assert!(matches!(seal_into(&source, 500, &blob), Err(Error::FileChanged(_))));
        assert!(!blob.exists() && !part_path(&blob).exists());
        let missing = dir.path().join("missing");
        assert!(matches!(file_size(&missing), Err(Error::FileRead { .. })));
        assert!(matches!(file_size(dir.path()), Err(Error::FileRead { .. })));
    }
}
