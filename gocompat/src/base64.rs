//! Go's `base64.StdEncoding.DecodeString` as `encoding/json` runs it for a `[]byte` field: which
//! input byte its `CorruptInputError` names, so that a bad Secret value is refused with
//! kube-apiserver's text (`illegal base64 data at input byte N`).

/// The offset Go's standard (padded, non-strict) decoder reports for `input`, or `None` when it
/// decodes. Carriage returns and newlines are skipped, as Go skips them.
pub fn std_decode_error(input: &str) -> Option<usize> {
    let src = input.as_bytes();
    let is_symbol = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let is_newline = |b: u8| b == b'\n' || b == b'\r';
    let mut si = 0;
    // One quantum of up to four symbols per pass, as Go's decodeQuantum.
    loop {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                // The input ends: cleanly between quanta, or inside one (padding was required).
                return if j == 0 { None } else { Some(si - j) };
            }
            let b = src[si];
            si += 1;
            if is_symbol(b) {
                j += 1;
                continue;
            }
            if is_newline(b) {
                continue;
            }
            if b != b'=' || j < 2 {
                // A byte outside the alphabet, or padding too early.
                return Some(si - 1);
            }
            if j == 2 {
                // "==" is expected; the first '=' is read.
                while si < src.len() && is_newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Some(src.len());
                }
                if src[si] != b'=' {
                    return Some(si - 1);
                }
                si += 1;
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            // Anything after the padding is trailing garbage.
            return (si < src.len()).then_some(si);
        }
    }
}

/// The bytes `input` decodes to, written back as Go writes a `[]byte` (padded standard base64):
/// newlines go, and the unused bits of the last symbol are cleared. `None` when it does not
/// decode ([`std_decode_error`] says where).
pub fn std_canonical(input: &str) -> Option<String> {
    use base64::Engine;
    std_decode_error(input).is_none().then_some(())?;
    let symbols: String = input
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r'))
        .collect();
    let go_std = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    );
    let bytes = go_std.decode(symbols).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Offsets from Go 1.26's base64.StdEncoding.DecodeString on the same inputs.
    #[test]
    fn offsets_are_go_s() {
        for (input, want) in [
            ("", None),
            ("dg==", None),
            ("aGVsbG8=", None),
            ("aGVsbG8h", None),
            ("aGVs\nbG8=", None),
            ("v", Some(0)),
            ("dg", Some(0)),
            ("aGVsbG8", Some(4)),
            ("dg=", Some(3)),
            ("d===", Some(1)),
            ("=", Some(0)),
            ("dg=x", Some(2)),
            ("dg==x", Some(4)),
            ("a!bc", Some(1)),
            ("aGVsbG8=aGVs", Some(8)),
            ("not base64", Some(3)),
        ] {
            assert_eq!(std_decode_error(input), want, "{input:?}");
        }
    }

    // Go's json.Marshal of what json.Unmarshal decoded, on the same inputs.
    #[test]
    fn canonical_forms_are_go_s() {
        for (input, want) in [
            ("dg==", Some("dg==")),
            ("dg==\n", Some("dg==")),
            ("aGVs\r\nbG8=", Some("aGVsbG8=")),
            ("dh==", Some("dg==")),
            ("", Some("")),
            ("dg=", None),
        ] {
            assert_eq!(std_canonical(input).as_deref(), want, "{input:?}");
        }
    }
}
