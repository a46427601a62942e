//! The on-disk framing of log and snapshot records: `len u32 LE | crc32 u32 LE | payload`, and the
//! binary encoding of a [`LogRecord`] inside a payload.

use bytes::Bytes;

use crate::store::{CollectionKey, LogRecord};

/// Bytes before each payload: its length and its CRC-32.
pub const FRAME_HEADER_LEN: usize = 8;

/// Largest payload a frame may declare; anything bigger is a corrupt length field, not a record
/// (request bodies are capped at 3 MiB, so real objects stay far below this).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_RESOURCE_VERSION: u8 = 3;

/// The CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) lookup table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 as zlib and Ethernet compute it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

/// What a log or snapshot holds: a change, or (in snapshots) the resourceVersion the state is at.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A committed change.
    Change(LogRecord),
    /// The store's resourceVersion; needed because the newest change may have been a deletion,
    /// which leaves no object carrying that resourceVersion.
    ResourceVersion(u64),
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

/// Appends one framed change to `out`.
pub fn encode_change(record: &LogRecord, out: &mut Vec<u8>) {
    framed(out, |out| match record {
        LogRecord::Put { collection, json } => {
            out.push(TAG_PUT);
            put_str(out, collection.group.as_bytes());
            put_str(out, collection.plural.as_bytes());
            put_str(out, json);
        }
        LogRecord::Delete {
            collection,
            namespace,
            name,
            resource_version,
        } => {
            out.push(TAG_DELETE);
            put_str(out, collection.group.as_bytes());
            put_str(out, collection.plural.as_bytes());
            put_str(out, namespace.as_bytes());
            put_str(out, name.as_bytes());
            out.extend_from_slice(&resource_version.to_le_bytes());
        }
    });
}

/// Appends one framed resourceVersion marker to `out`.
pub fn encode_resource_version(rv: u64, out: &mut Vec<u8>) {
    framed(out, |out| {
        out.push(TAG_RESOURCE_VERSION);
        out.extend_from_slice(&rv.to_le_bytes());
    });
}

fn framed(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    payload(out);
    let payload_len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    let crc = crc32(&out[start + FRAME_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The file ends inside the frame (a torn write).
    #[error("the file ends inside a record")]
    Truncated,
    /// The length field is impossible.
    #[error("record length {0} is larger than the limit")]
    BadLength(u32),
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The checksum matched but the payload does not decode (a bug or a foreign file).
    #[error("undecodable record: {0}")]
    Undecodable(&'static str),
}

/// Reads the frame at the start of `buf`: the entry and the bytes it used.
pub fn decode_frame(buf: &[u8]) -> Result<(Entry, usize), FrameError> {
    let header = buf.get(..FRAME_HEADER_LEN).ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len as usize > MAX_PAYLOAD_LEN {
        return Err(FrameError::BadLength(len));
    }
    let end = FRAME_HEADER_LEN + len as usize;
    let payload = buf
        .get(FRAME_HEADER_LEN..end)
        .ok_or(FrameError::Truncated)?;
    if crc32(payload) != crc {
        return Err(FrameError::Checksum);
    }
    Ok((decode_payload(payload)?, end))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or(FrameError::Undecodable("short field"))?;
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.bytes(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn field(&mut self) -> Result<&'a [u8], FrameError> {
        let b = self.bytes(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.bytes(n)
    }

    fn string(&mut self) -> Result<String, FrameError> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| FrameError::Undecodable("not UTF-8"))
    }
}

fn decode_payload(payload: &[u8]) -> Result<Entry, FrameError> {
    let mut r = Reader { buf: payload };
    let entry = match r.u8()? {
        TAG_PUT => {
            let group = r.string()?;
            let plural = r.string()?;
            let json = Bytes::copy_from_slice(r.field()?);
            Entry::Change(LogRecord::Put {
                collection: CollectionKey { group, plural },
                json,
            })
        }
        TAG_DELETE => {
            let group = r.string()?;
            let plural = r.string()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let resource_version = r.u64()?;
            Entry::Change(LogRecord::Delete {
                collection: CollectionKey { group, plural },
                namespace,
                name,
                resource_version,
            })
        }
        TAG_RESOURCE_VERSION => Entry::ResourceVersion(r.u64()?),
        _ => return Err(FrameError::Undecodable("unknown record tag")),
    };
    if !r.buf.is_empty() {
        return Err(FrameError::Undecodable("trailing bytes"));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let put = LogRecord::Put {
            collection: CollectionKey::new("apps", "deployments"),
            json: Bytes::from_static(br#"{"metadata":{"name":"a"}}"#),
        };
        let del = LogRecord::Delete {
            collection: CollectionKey::new("", "pods"),
            namespace: "default".into(),
            name: "p".into(),
            resource_version: 42,
        };
        let mut buf = Vec::new();
        encode_change(&put, &mut buf);
        let first = buf.len();
        encode_change(&del, &mut buf);
        encode_resource_version(7, &mut buf);

        let (e, used) = decode_frame(&buf).unwrap();
        assert_eq!(used, first);
        assert!(
            matches!(e, Entry::Change(LogRecord::Put { ref collection, ref json })
            if collection.group == "apps" && json.as_ref() == br#"{"metadata":{"name":"a"}}"#)
        );
        let (e, used2) = decode_frame(&buf[used..]).unwrap();
        assert!(
            matches!(e, Entry::Change(LogRecord::Delete { resource_version: 42, ref name, .. }) if name == "p")
        );
        let (e, _) = decode_frame(&buf[used + used2..]).unwrap();
        assert!(matches!(e, Entry::ResourceVersion(7)));

        assert_eq!(
            decode_frame(&buf[..first - 1]).unwrap_err(),
            FrameError::Truncated
        );
        assert_eq!(decode_frame(&buf[..3]).unwrap_err(), FrameError::Truncated);
        let mut flipped = buf.clone();
        flipped[first - 2] ^= 0x01;
        assert_eq!(decode_frame(&flipped).unwrap_err(), FrameError::Checksum);
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_frame(&huge).unwrap_err(),
            FrameError::BadLength(u32::MAX)
        );
    }
}
