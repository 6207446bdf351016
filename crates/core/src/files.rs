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

/// Writes `dest` through a new temporary file beside it (a name of its own, so nothing already there is touched)
/// renamed into place, so `dest` is whole or absent; with `sync`, the file is on disk before it is renamed.
fn write_atomically(dest: &Path, sync: bool, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut part = tempfile::Builder::new()
        .prefix(".magpie-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(write_err(dest))?;
    fill(part.as_file_mut())?;
    if sync {
        part.as_file().sync_all().map_err(write_err(dest))?;
    }
    part.persist(dest).map_err(|e| write_err(dest)(e.error))?;
    Ok(())
}

/// Segments on their way from one thread to another: how far one may run ahead.
const SEGMENTS_IN_FLIGHT: usize = 16;

/// Seals the file at `source` (of `size` bytes, as measured before) into the blob `dest` with a fresh key, on two
/// threads: one reads and seals, the other hashes and writes (SHA-256 costs as much as the rest together). `dest`
/// is not synced here: the upload syncs it before the file is announced ([`sync_file`]), while the first parts go.
pub fn seal_into(source: &Path, size: u64, dest: &Path) -> Result<Sealed> {
    let layout = FileLayout::new(size);
    let key = FileKey::generate()?;
    let mut input = File::open(source).map_err(read_err(source))?;
    let mut sha256 = [0u8; 32];
    write_atomically(dest, false, |out| {
        let (segments, sealed_ones) = std::sync::mpsc::sync_channel::<Vec<u8>>(SEGMENTS_IN_FLIGHT);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<[u8; 32]> {
                let mut hasher = Sha256::new();
                for sealed in sealed_ones {
                    hasher.update(&sealed);
                    out.write_all(&sealed).map_err(write_err(dest))?;
                }
                Ok(hasher.finish())
            });
            let sealed = (|| {
                let mut plain = zeroize::Zeroizing::new(Vec::new());
                for index in 0..layout.segments() {
                    plain.resize(layout.plain_len(index), 0);
                    input.read_exact(&mut plain).map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => Error::FileChanged(source.to_owned()),
                        _ => Error::FileRead {
                            path: source.to_owned(),
                            source: e,
                        },
                    })?;
                    // A closed channel: the writer failed, and says why below.
                    if segments.send(seal_segment(&key, &layout, index, &plain)?).is_err() {
                        return Ok(());
                    }
                }
                // A file that grew since it was measured is not the file the user chose.
                if input.read(&mut [0u8; 1]).map_err(read_err(source))? != 0 {
                    return Err(Error::FileChanged(source.to_owned()));
                }
                Ok(())
            })();
            drop(segments);
            let written = writer.join().map_err(|_| Error::Crypto("the writing thread failed"))?;
            sealed?;
            sha256 = written?;
            Ok(())
        })
    })?;
    Ok(Sealed { key, sha256, size })
}

/// `len` bytes of the file at `path` from byte `at`: one part of an upload.
pub fn read_part(path: &Path, at: u64, len: usize) -> Result<Vec<u8>> {
    use std::io::Seek as _;
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut part = vec![0u8; len];
    file.seek(std::io::SeekFrom::Start(at))
        .and_then(|_| file.read_exact(&mut part))
        .map_err(read_err(path))?;
    Ok(part)
}

/// SHA-256 of the file at `path`.
pub fn sha256_of(path: &Path) -> Result<[u8; 32]> {
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; SEALED_SEGMENT_BYTES];
    loop {
        let n = file.read(&mut buf).map_err(read_err(path))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Puts the file at `path` on disk.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(write_err(path))
}

/// Opens a blob's segments as they come, in whatever pieces: each must open with the file's key at its index.
struct SegmentCheck {
    descriptor: FileDescriptor,
    layout: FileLayout,
    index: u64,
    pending: Vec<u8>,
}

impl SegmentCheck {
    fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
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

    fn finish(&self) -> Result<()> {
        if self.index != self.layout.segments() || !self.pending.is_empty() {
            return Err(tampered("it is shorter than its message says"));
        }
        Ok(())
    }
}

/// Checks a blob as its bytes arrive: every segment must open, and the whole must have the digest the file
/// message names. Nothing it opens is kept.
pub struct BlobCheck {
    hasher: Sha256,
    segments: SegmentCheck,
}

impl std::fmt::Debug for BlobCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheck")
            .field("segment", &self.segments.index)
            .finish_non_exhaustive()
    }
}

impl BlobCheck {
    /// A check of the blob `descriptor` names, from its start.
    pub fn new(descriptor: FileDescriptor) -> Self {
        Self {
            hasher: Sha256::new(),
            segments: SegmentCheck {
                layout: FileLayout::new(descriptor.size),
                descriptor,
                index: 0,
                pending: Vec::with_capacity(SEALED_SEGMENT_BYTES),
            },
        }
    }

    /// Takes the next bytes of the blob.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.segments.feed(bytes)
    }

    /// Ends the check: every segment came, and the digest is the one named.
    pub fn finish(self) -> Result<()> {
        self.segments.finish()?;
        if self.hasher.finish() != self.segments.descriptor.sha256 {
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

/// Checks and writes a blob's bytes as they arrive, so that a download's network reads and its checks run at
/// once: one thread hashes and writes, another opens the segments. Send the bytes with [`BlobWriter::send`]; then
/// [`BlobWriter::finish`] says how many were written (synced, whether or not the blob is whole) and gives the
/// check back.
pub struct BlobWriter {
    to_writer: tokio::sync::mpsc::Sender<bytes::Bytes>,
    to_checker: tokio::sync::mpsc::Sender<bytes::Bytes>,
    writer: tokio::task::JoinHandle<Result<(Sha256, u64)>>,
    checker: tokio::task::JoinHandle<Result<SegmentCheck>>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SegmentCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCheck")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// Writes on at byte `held` of `part` (cutting off anything after it), fed through `check`.
    pub fn start(part: PathBuf, held: u64, check: BlobCheck) -> Self {
        let BlobCheck {
            mut hasher,
            mut segments,
        } = check;
        let (to_writer, mut for_writer) = tokio::sync::mpsc::channel::<bytes::Bytes>(SEGMENTS_IN_FLIGHT);
        let (to_checker, mut for_checker) = tokio::sync::mpsc::channel::<bytes::Bytes>(SEGMENTS_IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&part)
                .map_err(write_err(&part))?;
            out.set_len(held).map_err(write_err(&part))?;
            std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(held)).map_err(write_err(&part))?;
            let mut written = held;
            let fed = (|| {
                while let Some(piece) = for_writer.blocking_recv() {
                    hasher.update(&piece);
                    out.write_all(&piece).map_err(write_err(&part))?;
                    written += piece.len() as u64;
                }
                Ok(())
            })();
            // What arrived is kept for the next try, whatever ended this one.
            out.sync_all().map_err(write_err(&part))?;
            fed.map(|()| (hasher, written))
        });
        let checker = tokio::task::spawn_blocking(move || {
            while let Some(piece) = for_checker.blocking_recv() {
                segments.feed(&piece)?;
            }
            Ok(segments)
        });
        Self {
            to_writer,
            to_checker,
            writer,
            checker,
        }
    }

    /// Passes the next bytes on; `false` once either thread has stopped (a failed check or write, which
    /// [`BlobWriter::finish`] reports).
    pub async fn send(&self, piece: bytes::Bytes) -> bool {
        self.to_checker.send(piece.clone()).await.is_ok() && self.to_writer.send(piece).await.is_ok()
    }

    /// Waits for both threads: the check so far and the bytes written. A failed check is reported before a failed
    /// write, and the bytes written before it are synced all the same.
    pub async fn finish(self) -> Result<(BlobCheck, u64)> {
        drop((self.to_writer, self.to_checker));
        let ended = |_| Error::Crypto("a download task failed");
        let segments = self.checker.await.map_err(ended)?;
        let written = self.writer.await.map_err(ended)?;
        let segments = segments?;
        let (hasher, written) = written?;
        Ok((BlobCheck { hasher, segments }, written))
    }
}

/// Opens the kept blob at `blob` to `dest` (written whole or not at all): every segment is checked again, so a
/// blob changed on disk since its download is refused too.
pub fn open_to(blob: &Path, descriptor: &FileDescriptor, dest: &Path) -> Result<()> {
    write_atomically(dest, true, |out| {
        open_into(blob, descriptor, &mut |plain| {
            out.write_all(plain).map_err(write_err(dest))
        })
    })
}

/// Opens the kept blob at `blob` into memory, if its file is at most `most` bytes (an image to show).
pub fn open_to_memory(blob: &Path, descriptor: &FileDescriptor, most: u64) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    if descriptor.size > most {
        return Err(Error::FileRead {
            path: blob.to_owned(),
            source: std::io::Error::other(format!("it is larger than the {most} bytes shown")),
        });
    }
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0)));
    open_into(blob, descriptor, &mut |piece| {
        plain.extend_from_slice(piece);
        Ok(())
    })?;
    Ok(plain)
}

/// Opens every segment of the kept blob at `blob` in order into `out`, checking each and then the digest; what
/// `out` took before a failed check is the caller's to throw away.
fn open_into(blob: &Path, descriptor: &FileDescriptor, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let layout = FileLayout::new(descriptor.size);
    let mut input = File::open(blob).map_err(read_err(blob))?;
    let mut hasher = Sha256::new();
    for index in 0..layout.segments() {
        let mut sealed = vec![0u8; layout.sealed_segment_len(index)];
        input
            .read_exact(&mut sealed)
            .map_err(|_| tampered("the kept copy is shorter than its message says"))?;
        hasher.update(&sealed);
        let plain = open_segment(&descriptor.key, &layout, index, sealed)
            .map_err(|_| tampered(&format!("segment {index} of the kept copy does not open")))?;
        out(&plain)?;
    }
    if hasher.finish() != descriptor.sha256 {
        return Err(tampered("the kept copy's SHA-256 is not the one its message names"));
    }
    Ok(())
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
        assert!(!out.exists(), "no partial file is left");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".part")), "{left:?}");
    }

    #[test]
    fn a_file_that_changes_while_sealed_or_is_missing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, vec![1u8; 1000]).unwrap();
        let blob = dir.path().join("blob");
        assert!(matches!(seal_into(&source, 2000, &blob), Err(Error::FileChanged(_))));
        assert!(matches!(seal_into(&source, 500, &blob), Err(Error::FileChanged(_))));
        assert!(!blob.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["source"], "no partial copy is left");
        let missing = dir.path().join("missing");
        assert!(matches!(file_size(&missing), Err(Error::FileRead { .. })));
        assert!(matches!(file_size(dir.path()), Err(Error::FileRead { .. })));
    }
}
