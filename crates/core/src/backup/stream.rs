//! The backup's payload as a stream of records, sealed segment by segment ([`magpie_proto::backup`]): a record is
//! `u32be(length) ‖ JSON`. At most one segment of plaintext is in memory either way.

use std::io::{BufRead, BufReader, Read, Write};

use magpie_proto::backup::{BackupHeader, BackupKey};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{damaged, Record};
use crate::error::{Error, Result};

/// The largest record a reader accepts: writers keep a batch of messages near 4 MiB (a message is at most 32 KiB of
/// text), and what a hostile record costs while it is parsed stays bounded.
pub(super) const MAX_RECORD_BYTES: usize = 8 << 20;

/// Seals what is written into segments and writes them to `out`.
pub(super) struct SealedWriter<W: Write> {
    out: W,
    header: BackupHeader,
    key: BackupKey,
    buffer: Zeroizing<Vec<u8>>,
    /// A record's JSON while it is written (room for the largest: it never grows, so never leaves a copy).
    json: Zeroizing<Vec<u8>>,
    index: u64,
    written: u64,
}

impl<W: Write> SealedWriter<W> {
    /// Writes the header to `out`, then seals what follows under `key`.
    pub(super) fn new(mut out: W, header: BackupHeader, key: BackupKey) -> Result<Self> {
        out.write_all(&header.encode()).map_err(write_error)?;
        Ok(Self {
            out,
            header,
            key,
            buffer: Zeroizing::new(Vec::with_capacity(header.segment_bytes as usize)),
            json: Zeroizing::new(Vec::with_capacity(MAX_RECORD_BYTES + 1)),
            index: 0,
            written: 0,
        })
    }

    pub(super) fn record(&mut self, record: &Record) -> Result<()> {
        // Into one buffer that never moves (a growing one would leave copies of the text, unwiped, behind).
        let mut json = std::mem::take(&mut self.json);
        json.clear();
        let encoded = serde_json::to_writer(&mut *json, record).map_err(|_| Error::Crypto("encoding failed"));
        let written = encoded.and_then(|()| self.frame(&json));
        self.json = json;
        written
    }

    fn frame(&mut self, json: &[u8]) -> Result<()> {
        let len = u32::try_from(json.len())
            .ok()
            .filter(|&len| len as usize <= MAX_RECORD_BYTES)
            .ok_or_else(|| Error::BackupIo {
                action: "write",
                reason: "a batch of messages grew larger than a backup record may be".into(),
            })?;
        self.write(&len.to_be_bytes())?;
        self.write(json)
    }

    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let segment = self.header.segment_bytes as usize;
        while !data.is_empty() {
            // A full buffer goes out only once more follows: the last segment is sealed by `finish`.
            if self.buffer.len() == segment {
                self.seal(false)?;
            }
            let take = (segment - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<()> {
        let sealed = self.header.seal_segment(&self.key, self.index, last, &self.buffer)?;
        self.out.write_all(&sealed).map_err(write_error)?;
        self.written += sealed.len() as u64;
        self.index += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Seals the last segment and hands `out` back (to be synced), with the sealed bytes written.
    pub(super) fn finish(mut self) -> Result<(W, u64)> {
        self.seal(true)?;
        self.out.flush().map_err(write_error)?;
        Ok((self.out, self.written))
    }
}

/// Opens a sealed payload segment by segment and hands out its records.
pub(super) struct SealedReader<R: Read> {
    input: BufReader<R>,
    header: BackupHeader,
    key: BackupKey,
    plain: Zeroizing<Vec<u8>>,
    at: usize,
    index: u64,
    done: bool,
    /// Sealed bytes read so far (for progress).
    pub(super) read: u64,
}

impl<R: Read> SealedReader<R> {
    pub(super) fn new(input: BufReader<R>, header: BackupHeader, key: BackupKey) -> Self {
        Self {
            input,
            header,
            key,
            plain: Zeroizing::new(Vec::new()),
            at: 0,
            index: 0,
            done: false,
            read: 0,
        }
    }

    /// The next record; a file that ends before its end record, or holds anything after it, is damaged.
    pub(super) fn record<T: DeserializeOwned>(&mut self) -> Result<T> {
        let mut len = [0u8; 4];
        self.fill(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(damaged("a record longer than any backup writes"));
        }
        let mut json = Zeroizing::new(vec![0u8; len]);
        self.fill(&mut json)?;
        serde_json::from_slice(&json).map_err(|_| damaged("a record that does not parse"))
    }

    /// Whether every byte of the payload was read (after the end record).
    pub(super) fn at_end(&mut self) -> Result<bool> {
        if self.at < self.plain.len() {
            return Ok(false);
        }
        Ok(self.done || !self.next_segment()?)
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if self.at == self.plain.len() && !self.next_segment()? {
                return Err(damaged("the file ends early: it was cut short"));
            }
            let take = (self.plain.len() - self.at).min(out.len() - filled);
            out[filled..filled + take].copy_from_slice(&self.plain[self.at..self.at + take]);
            self.at += take;
            filled += take;
        }
        Ok(())
    }

    /// Reads and opens the next segment; `false` after the last.
    fn next_segment(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let full = BackupHeader::sealed_len(self.header.segment_bytes as usize);
        let mut sealed = Vec::with_capacity(full);
        (&mut self.input)
            .take(full as u64)
            .read_to_end(&mut sealed)
            .map_err(read_error)?;
        if sealed.is_empty() {
            return Err(damaged("the file ends early: it was cut short"));
        }
        let last = sealed.len() < full || self.input.fill_buf().map_err(read_error)?.is_empty();
        self.read += sealed.len() as u64;
        self.plain = self
            .header
            .open_segment(&self.key, self.index, last, sealed)
            .map_err(|_| damaged("a part of it was changed or cut"))?;
        self.at = 0;
        self.index += 1;
        self.done = last;
        Ok(true)
    }
}

fn write_error(source: std::io::Error) -> Error {
    Error::BackupIo {
        action: "write",
        reason: source.to_string(),
    }
}

fn read_error(source: std::io::Error) -> Error {
    Error::BackupIo {
        action: "read",
        reason: source.to_string(),
    }
}
