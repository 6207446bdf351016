//! The mailbox log's decoding on arbitrary bytes, for `fuzz/fuzz_targets/log_record.rs`: a record's payload, a
//! whole record, and a segment replayed into a fresh index as opening a store replays each segment file
//! (`recover.rs`), without the files and sled around it.

use super::record::{self, Record, Scan, HEADER};
use super::Inner;
use crate::store::{StoreError, StoreResult};

/// Reads `bytes` as a payload, as one whole record, and as a segment: as it is, and with every record's CRC put
/// right so that fuzzed payloads reach the decoder. `Err` names a broken invariant: an error other than
/// [`StoreError::Corrupt`], a record that does not encode back to the bytes it came from, or a replay that stops
/// elsewhere than the scan does or indexes a location that holds no envelope.
pub fn log_bytes(bytes: &[u8]) -> Result<(), String> {
    if let Some(decoded) = typed(record::decode(bytes))? {
        if encode(&decoded)?.get(HEADER..) != Some(bytes) {
            return Err(format!("payload {decoded:?} encodes to other bytes"));
        }
    }
    if let Some(decoded) = typed(record::decode_whole(bytes))? {
        if encode(&decoded)? != bytes {
            return Err(format!("record {decoded:?} encodes to other bytes"));
        }
    }
    replay(bytes)?;
    replay(&with_crcs(bytes))
}

/// A decoding's value, `None` for a [`StoreError::Corrupt`] (what damaged bytes must give), `Err` for any other.
fn typed<T>(result: StoreResult<T>) -> Result<Option<T>, String> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Corrupt(_)) => Ok(None),
        Err(other) => Err(format!("damaged bytes gave {other:?}, not Corrupt")),
    }
}

fn encode(decoded: &Record) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    match decoded {
        Record::Stored(e) => {
            record::append_stored(&mut buf, e).map_err(|e| format!("a decoded envelope does not encode: {e}"))?;
        }
        Record::Acked { at, ids } => {
            record::append_acked(&mut buf, *at, ids);
        }
    }
    Ok(buf)
}

/// `bytes` with the CRC of each record that fits put right, up to the first that does not.
fn with_crcs(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0usize;
    while let Some(len) = out
        .get(at..at + 4)
        .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]))
    {
        let start = at + HEADER;
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= out.len())
        else {
            break;
        };
        let crc = crc32fast::hash(&out[start..end]);
        out[at + 4..start].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    out
}

/// Replays `segment` into a fresh index; checks where it stopped and that each indexed location holds a whole
/// envelope record (what a fetch reads back).
fn replay(segment: &[u8]) -> Result<(), String> {
    let mut index = Inner::default();
    let Some(valid) = typed(index.replay(1, segment))? else {
        return Ok(());
    };
    let mut scanned = 0;
    while let Some(Scan::Whole { len, .. }) = segment.get(scanned..).map(record::next) {
        scanned += len;
    }
    if valid != scanned {
        return Err(format!(
            "replay kept {valid} bytes, the scan finds {scanned} in whole records"
        ));
    }
    for (to, mailbox) in &index.mailboxes {
        for (seq, loc) in mailbox {
            let held = usize::try_from(loc.offset)
                .ok()
                .and_then(|from| segment.get(from..from.checked_add(loc.len as usize)?));
            match held.map(record::decode_whole) {
                Some(Ok(Record::Stored(_))) => {}
                other => return Err(format!("{to}'s envelope {seq} at {loc:?} reads back as {other:?}")),
            }
        }
    }
    Ok(())
}
