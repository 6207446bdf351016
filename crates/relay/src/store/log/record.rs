//! The mailbox log's records: `payload length (u32 LE) ‖ CRC-32 of the payload (u32 LE) ‖ payload`.
//!
//! A payload starts with its tag. `STORED`: seq (u64), id (16 bytes), received_at (u64), kind (u8), then the
//! sender and recipient (u16 length + UTF-8) and the base64 body (u32 length + bytes). `ACKED`: the time (u64),
//! a count (u32) and that many 16-byte ids. Integers are little-endian. A torn or flipped record fails its
//! length or CRC check, and the log ends there.

use uuid::Uuid;

use super::super::{kind_from_tag, kind_tag, StoreError, StoreResult, StoredEnvelope};

/// Bytes before a payload.
pub(super) const HEADER: usize = 8;

const STORED: u8 = 1;
const ACKED: u8 = 2;

/// A decoded payload.
#[derive(Debug)]
pub(super) enum Record {
    Stored(StoredEnvelope),
    Acked { at: u64, ids: Vec<Uuid> },
}

/// What [`next`] finds at the start of `bytes`.
#[derive(Debug)]
pub(super) enum Scan<'a> {
    /// A whole record whose CRC matches: its payload and its length with the header.
    Whole { payload: &'a [u8], len: usize },
    /// Nothing left.
    End,
    /// A record cut short or failing its CRC: where a crash stopped a write.
    Torn,
}

/// Appends a `STORED` record to `buf`; returns its length. On error `buf` is left as it was.
pub(super) fn append_stored(buf: &mut Vec<u8>, e: &StoredEnvelope) -> StoreResult<u32> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.push(STORED);
    buf.extend_from_slice(&e.seq.to_le_bytes());
    buf.extend_from_slice(e.id.as_bytes());
    buf.extend_from_slice(&e.received_at.to_le_bytes());
    buf.push(kind_tag(e.kind));
    let written = put_short(buf, &e.from)
        .and_then(|()| put_short(buf, &e.to))
        .and_then(|()| put_long(buf, e.body_b64.as_bytes()));
    if let Err(err) = written {
        buf.truncate(start);
        return Err(err);
    }
    Ok(seal(buf, start))
}

/// Appends an `ACKED` record to `buf`; returns its length.
pub(super) fn append_acked(buf: &mut Vec<u8>, at: u64, ids: &[Uuid]) -> u32 {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.push(ACKED);
    buf.extend_from_slice(&at.to_le_bytes());
    // An ack lists at most the API's 1,000 ids.
    buf.extend_from_slice(&u32::try_from(ids.len()).unwrap_or(u32::MAX).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(id.as_bytes());
    }
    seal(buf, start)
}

/// Fills in the header of the record that starts at `start` and ends at the end of `buf`.
fn seal(buf: &mut [u8], start: usize) -> u32 {
    let payload_len = buf.len() - start - HEADER;
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    // Payloads are bounded by the API's envelope limit, far below 4 GiB.
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    len.saturating_add(HEADER as u32)
}

fn put_short(buf: &mut Vec<u8>, s: &str) -> StoreResult<()> {
    let len = u16::try_from(s.len()).map_err(|_| StoreError::Backend("username longer than 65535 bytes".into()))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_long(buf: &mut Vec<u8>, bytes: &[u8]) -> StoreResult<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| StoreError::Backend("envelope body over 4 GiB".into()))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Reads the record at the start of `bytes`.
pub(super) fn next(bytes: &[u8]) -> Scan<'_> {
    if bytes.is_empty() {
        return Scan::End;
    }
    let Some((len, crc)) = bytes.get(..HEADER).map(|h| (le_u32(&h[..4]), le_u32(&h[4..]))) else {
        return Scan::Torn;
    };
    let Some(payload) = usize::try_from(len)
        .ok()
        .and_then(|len| bytes.get(HEADER..HEADER.checked_add(len)?))
    else {
        return Scan::Torn;
    };
    // An all-zero header is no record (a length of 0 never is one): treat it as the end of what was written.
    if len == 0 || crc32fast::hash(payload) != crc {
        return Scan::Torn;
    }
    Scan::Whole {
        payload,
        len: HEADER + payload.len(),
    }
}

/// Decodes one whole record (header included), as [`next`] found it or as read back from its location.
pub(super) fn decode_whole(bytes: &[u8]) -> StoreResult<Record> {
    match next(bytes) {
        Scan::Whole { payload, len } if len == bytes.len() => decode(payload),
        _ => Err(StoreError::Corrupt("mailbox log record fails its check".into())),
    }
}

/// Decodes a payload.
pub(super) fn decode(payload: &[u8]) -> StoreResult<Record> {
    let mut r = Reader(payload);
    let record = match r.u8()? {
        STORED => Record::Stored(StoredEnvelope {
            seq: r.u64()?,
            id: Uuid::from_bytes(r.array()?),
            received_at: r.u64()?,
            kind: kind_from_tag(r.u8()?)?,
            from: r.string(2)?,
            to: r.string(2)?,
            body_b64: r.string(4)?,
        }),
        ACKED => {
            let at = r.u64()?;
            let count = r.u32()?;
            let ids = (0..count)
                .map(|_| r.array().map(Uuid::from_bytes))
                .collect::<StoreResult<_>>()?;
            Record::Acked { at, ids }
        }
        other => return Err(StoreError::Corrupt(format!("unknown mailbox log record {other}"))),
    };
    if r.0.is_empty() {
        Ok(record)
    } else {
        Err(StoreError::Corrupt("mailbox log record has trailing bytes".into()))
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> StoreResult<&[u8]> {
        if self.0.len() < n {
            return Err(StoreError::Corrupt("mailbox log record cut short".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> StoreResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> StoreResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> StoreResult<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> StoreResult<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn string(&mut self, width: usize) -> StoreResult<String> {
        let len = match width {
            2 => usize::from(u16::from_le_bytes(self.array()?)),
            _ => usize::try_from(self.u32()?).map_err(|_| StoreError::Corrupt("length over usize".into()))?,
        };
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_proto::EnvelopeKind;

    fn envelope() -> StoredEnvelope {
        StoredEnvelope {
            seq: 42,
            id: Uuid::new_v4(),
            from: "alice".into(),
            to: "bob".into(),
            kind: EnvelopeKind::KeyTransfer,
            body_b64: "AQID".into(),
            received_at: 7,
        }
    }

    #[test]
    fn records_read_back_as_written_and_a_flipped_or_cut_one_is_torn() {
        let e = envelope();
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        let mut buf = Vec::new();
        let first = append_stored(&mut buf, &e).unwrap() as usize;
        let second = append_acked(&mut buf, 9, &ids) as usize;
        assert_eq!(buf.len(), first + second);
        match decode_whole(&buf[..first]).unwrap() {
            Record::Stored(back) => assert_eq!(back, e),
            other => panic!("{other:?}"),
        }
        match decode_whole(&buf[first..]).unwrap() {
            Record::Acked { at, ids: back } => assert_eq!((at, back), (9, ids.to_vec())),
            other => panic!("{other:?}"),
        }
        assert!(matches!(next(&buf[..first - 1]), Scan::Torn));
        let mut flipped = buf.clone();
        flipped[first / 2] ^= 1;
        assert!(matches!(next(&flipped), Scan::Torn));
        assert!(matches!(next(&[0; 64]), Scan::Torn));
        assert!(matches!(next(&[]), Scan::End));
    }

    proptest::proptest! {
        /// Whatever a damaged disk holds, reading it is an answer, never a panic.
        #[test]
        fn any_bytes_scan_and_decode_without_panicking(bytes in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = next(&bytes);
            let _ = decode(&bytes);
            let _ = decode_whole(&bytes);
        }

        #[test]
        fn any_envelope_reads_back_as_written(
            seq in 0u64..u64::MAX,
            from in "[a-z0-9_]{1,32}",
            to in "[a-z0-9_]{1,32}",
            body in "[A-Za-z0-9+/=]{0,400}",
            kind in 0usize..6,
        ) {
            let kinds = [
                EnvelopeKind::ChatRequest,
                EnvelopeKind::ChatAccept,
                EnvelopeKind::ChatDecline,
                EnvelopeKind::KeyTransfer,
                EnvelopeKind::KeyConfirm,
                EnvelopeKind::Message,
            ];
            let e = StoredEnvelope { seq, from, to, body_b64: body, kind: kinds[kind], ..envelope() };
            let mut buf = Vec::new();
            let len = append_stored(&mut buf, &e).unwrap() as usize;
            proptest::prop_assert_eq!(len, buf.len());
            match decode_whole(&buf).unwrap() {
                Record::Stored(back) => proptest::prop_assert_eq!(back, e),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn a_name_too_long_to_encode_leaves_the_buffer_as_it_was() {
        let mut buf = vec![1, 2, 3];
        let e = StoredEnvelope {
            to: "x".repeat(70_000),
            ..envelope()
        };
        assert!(append_stored(&mut buf, &e).is_err());
        assert_eq!(buf, [1, 2, 3]);
    }
}
