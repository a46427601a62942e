//! A small protobuf writer for tests: builds the bytes kubectl would send.

/// Appends tagged fields to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// A varint field.
    pub fn varint(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 0);
        self.raw_varint(v);
        self
    }

    /// A length-delimited field.
    pub fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.tag(field, 2);
        self.raw_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    /// A string field.
    pub fn string(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    /// An embedded message built by `build`.
    pub fn message(self, field: u32, build: impl FnOnce(Encoder) -> Encoder) -> Self {
        let inner = build(Encoder::new()).finish();
        self.bytes(field, &inner)
    }

    /// A map entry `key → value` of a `map<string, string>` field.
    pub fn entry(self, field: u32, key: &str, value: &str) -> Self {
        self.message(field, |e| e.string(1, key).string(2, value))
    }

    /// A fixed 32-bit field.
    pub fn fixed32(mut self, field: u32, v: u32) -> Self {
        self.tag(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A fixed 64-bit field.
    pub fn fixed64(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 1);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// The message bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes behind the `k8s\0` magic, as a whole request body.
    pub fn into_body(self) -> Vec<u8> {
        let mut out = b"k8s\0".to_vec();
        out.extend(self.buf);
        out
    }
}
