//! The protobuf wire format: tagged fields of varints, fixed 32/64-bit words and length-delimited
//! bytes. Reading never panics; truncated or overlong input is an error, as in gogo-protobuf.

use super::ProtobufError;

/// How a field's value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// A base-128 varint (wire type 0).
    Varint,
    /// Eight little-endian bytes (wire type 1).
    Fixed64,
    /// A varint length and that many bytes (wire type 2).
    Bytes,
    /// The start of a deprecated group (wire type 3).
    StartGroup,
    /// The end of a deprecated group (wire type 4).
    EndGroup,
    /// Four little-endian bytes (wire type 5).
    Fixed32,
}

impl WireType {
    fn from_bits(bits: u64) -> Option<Self> {
        Some(match bits {
            0 => Self::Varint,
            1 => Self::Fixed64,
            2 => Self::Bytes,
            3 => Self::StartGroup,
            4 => Self::EndGroup,
            5 => Self::Fixed32,
            _ => return None,
        })
    }

    /// The number the wire uses for this type.
    pub fn number(self) -> u8 {
        match self {
            Self::Varint => 0,
            Self::Fixed64 => 1,
            Self::Bytes => 2,
            Self::StartGroup => 3,
            Self::EndGroup => 4,
            Self::Fixed32 => 5,
        }
    }
}

/// One field's value as read from the wire, borrowing length-delimited bytes from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// A varint.
    Varint(u64),
    /// A fixed 64-bit word.
    Fixed64(u64),
    /// Length-delimited bytes: a string, bytes, an embedded message or a packed list.
    Bytes(&'a [u8]),
    /// A fixed 32-bit word.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type this value was read with.
    pub fn wire_type(&self) -> WireType {
        match self {
            Self::Varint(_) => WireType::Varint,
            Self::Fixed64(_) => WireType::Fixed64,
            Self::Bytes(_) => WireType::Bytes,
            Self::Fixed32(_) => WireType::Fixed32,
        }
    }
}

/// Groups nested deeper than this are refused, so skipping one cannot run away.
const MAX_GROUP_DEPTH: usize = 100;

/// Reads fields one after another from a message's bytes.
#[derive(Debug, Clone)]
pub struct FieldReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The message name for errors, as gogo-protobuf words them.
    message: &'static str,
}

impl<'a> FieldReader<'a> {
    /// A reader over one message's bytes.
    pub fn new(data: &'a [u8], message: &'static str) -> Self {
        Self {
            data,
            pos: 0,
            message,
        }
    }

    /// The next field number and value, `None` at the end; groups are skipped whole.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        loop {
            if self.pos >= self.data.len() {
                return Ok(None);
            }
            let (number, wire) = self.tag()?;
            let value = match wire {
                WireType::Varint => WireValue::Varint(self.varint()?),
                WireType::Fixed64 => WireValue::Fixed64(u64::from_le_bytes(self.array::<8>()?)),
                WireType::Fixed32 => WireValue::Fixed32(u32::from_le_bytes(self.array::<4>()?)),
                WireType::Bytes => WireValue::Bytes(self.length_delimited()?),
                WireType::StartGroup => {
                    self.skip_group()?;
                    continue;
                }
                WireType::EndGroup => {
                    return Err(ProtobufError::EndGroupWithoutStart {
                        message: self.message,
                    });
                }
            };
            return Ok(Some((number, value)));
        }
    }

    fn tag(&mut self) -> Result<(u32, WireType), ProtobufError> {
        let key = self.varint()?;
        let bits = key & 7;
        let number = key >> 3;
        let wire = WireType::from_bits(bits);
        match (u32::try_from(number), wire) {
            (Ok(n), Some(w)) if n > 0 => Ok((n, w)),
            _ => Err(ProtobufError::IllegalTag {
                message: self.message,
                number: i64::try_from(number).unwrap_or(i64::MAX),
                wire_type: bits as u8,
            }),
        }
    }

    /// A varint of at most ten bytes; a longer one overflows, as in gogo-protobuf.
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        read_varint(self.data, &mut self.pos)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let end = self
            .pos
            .checked_add(N)
            .ok_or(ProtobufError::UnexpectedEof)?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(ProtobufError::UnexpectedEof)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos = end;
        Ok(out)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], ProtobufError> {
        let len = self.varint()?;
        // gogo-protobuf reads the length as a signed int: a "negative" one is its own error.
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| i64::try_from(l).is_ok())
            .ok_or(ProtobufError::NegativeLength)?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(ProtobufError::NegativeLength)?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(ProtobufError::UnexpectedEof)?;
        self.pos = end;
        Ok(bytes)
    }

    /// Skips to the end of a group whose start tag was just read, without recursion.
    fn skip_group(&mut self) -> Result<(), ProtobufError> {
        let mut depth = 1usize;
        while depth > 0 {
            if self.pos >= self.data.len() {
                return Err(ProtobufError::UnexpectedEof);
            }
            let (_, wire) = self.tag()?;
            match wire {
                WireType::Varint => {
                    self.varint()?;
                }
                WireType::Fixed64 => {
                    self.array::<8>()?;
                }
                WireType::Fixed32 => {
                    self.array::<4>()?;
                }
                WireType::Bytes => {
                    self.length_delimited()?;
                }
                WireType::StartGroup => {
                    depth += 1;
                    if depth > MAX_GROUP_DEPTH {
                        return Err(ProtobufError::TooDeep);
                    }
                }
                WireType::EndGroup => depth -= 1,
            }
        }
        Ok(())
    }
}

/// Reads one varint at `pos`, advancing it.
pub fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        if shift >= 64 {
            return Err(ProtobufError::IntegerOverflow);
        }
        let byte = *data.get(*pos).ok_or(ProtobufError::UnexpectedEof)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(ProtobufError::IntegerOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(data: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, ProtobufError> {
        let mut r = FieldReader::new(data, "Test");
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let data = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0x80, // 2: fixed64
            0x1a, 0x03, b'a', b'b', b'c', // 3: bytes "abc"
            0x25, 0x78, 0x56, 0x34, 0x12, // 4: fixed32
        ];
        assert_eq!(
            fields(&data).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(0x8000_0000_0000_0001)),
                (3, WireValue::Bytes(b"abc")),
                (4, WireValue::Fixed32(0x1234_5678)),
            ]
        );
    }

    #[test]
    fn ten_byte_varints_hold_negative_numbers() {
        // int32 -1 as gogo-protobuf writes it: sign-extended to 64 bits.
        let data = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(
            fields(&data).unwrap(),
            vec![(1, WireValue::Varint(u64::MAX))]
        );
    }

    #[test]
    fn eleven_byte_varints_overflow() {
        let mut data = vec![0x08];
        data.extend([0xff; 10]);
        data.push(0x01);
        assert_eq!(fields(&data), Err(ProtobufError::IntegerOverflow));
    }

    #[test]
    fn truncation_is_unexpected_eof() {
        for data in [
            &[0x08, 0x96][..],
            &[0x11, 1, 2, 3][..],
            &[0x1a, 0x05, b'a'][..],
            &[0x25, 1][..],
            &[0x0b, 0x08, 0x01][..],
        ] {
            assert_eq!(fields(data), Err(ProtobufError::UnexpectedEof), "{data:?}");
        }
    }

    #[test]
    fn huge_lengths_are_negative_or_truncated() {
        let data = [
            0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(fields(&data), Err(ProtobufError::NegativeLength));
        let data = [0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(fields(&data), Err(ProtobufError::UnexpectedEof));
    }

    #[test]
    fn illegal_tags_are_refused() {
        assert_eq!(
            fields(&[0x00, 0x01]),
            Err(ProtobufError::IllegalTag {
                message: "Test",
                number: 0,
                wire_type: 0
            })
        );
        assert_eq!(
            fields(&[0x0e, 0x01]),
            Err(ProtobufError::IllegalTag {
                message: "Test",
                number: 1,
                wire_type: 6
            })
        );
        assert_eq!(
            fields(&[0x0c]),
            Err(ProtobufError::EndGroupWithoutStart { message: "Test" })
        );
    }

    #[test]
    fn groups_are_skipped_whole() {
        // 1: group { 2: varint 5, 3: group { } }, then 4: varint 7
        let data = [0x0b, 0x10, 0x05, 0x1b, 0x1c, 0x0c, 0x20, 0x07];
        assert_eq!(fields(&data).unwrap(), vec![(4, WireValue::Varint(7))]);
    }

    #[test]
    fn deep_groups_are_refused() {
        let data = vec![0x0b; MAX_GROUP_DEPTH + 2];
        assert_eq!(fields(&data), Err(ProtobufError::TooDeep));
    }
}
