//! Go's two ways of quoting a string that show up in upstream error text: `strconv.Quote`
//! (`%q`) and `encoding/json` (with its default HTML escaping).

mod not_printable;

use std::cmp::Ordering;
use std::fmt::Write;

use not_printable::NOT_PRINTABLE;

/// Quotes like Go's `strconv.Quote` (and so `%q` of a string).
pub fn go_quote(s: &str) -> String {
    go_quote_bytes(s.as_bytes())
}

/// Quotes bytes like Go's `strconv.Quote` of a Go string, which may hold invalid UTF-8: each
/// byte that is not part of a valid sequence is written `\xNN`, as Go decodes it as a one-byte
/// `RuneError`.
pub fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_quoted_rune(&mut out, c);
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('"');
    out
}

// `appendEscapedRune` of Go's strconv with `"` as the quote and ASCII-only off.
fn push_quoted_rune(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        c if is_go_printable(c) => out.push(c),
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
/// Rust's std has no Unicode category tables, so Go's own answer is kept as a table.
fn is_go_printable(c: char) -> bool {
    let c = c as u32;
    NOT_PRINTABLE
        .binary_search_by(|&(first, last)| {
            if last < c {
                Ordering::Less
            } else if first > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_err()
}

/// Encodes like Go's `json.Marshal` of a string (HTML-safe escaping included).
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    push_go_json_escaped(&mut out, s);
    out.push('"');
    out
}

/// Appends `s` escaped as Go's `encoding/json` escapes string contents.
pub fn push_go_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as Go 1.26's `strconv.Quote` prints it.
    #[test]
    fn quote_matches_go() {
        let cases = [
            ("123_abc", r#""123_abc""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            // The named escapes.
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            // Other C0 controls and DEL as \x; C1 controls as \u.
            ("\u{0}\u{1}\u{1b}\u{1f}\u{7f}", r#""\x00\x01\x1b\x1f\x7f""#),
            ("\u{80}\u{9f}", r#""\u0080\u009f""#),
            // Printable Unicode as is, the replacement character included.
            ("é<&> 日本 😀 \u{fffd}", "\"é<&> 日本 😀 \u{fffd}\""),
            // Non-printable runes: spaces other than ASCII's, format characters, unassigned
            // and private-use code points, noncharacters.
            (
                "\u{a0}\u{ad}\u{2028}\u{3000}",
                r#""\u00a0\u00ad\u2028\u3000""#,
            ),
            ("\u{200b}\u{feff}\u{600}", r#""\u200b\ufeff\u0600""#),
            (
                "\u{378}\u{e000}\u{fdd0}\u{ffff}",
                r#""\u0378\ue000\ufdd0\uffff""#,
            ),
            (
                "\u{e0001}\u{f0000}\u{10ffff}",
                r#""\U000e0001\U000f0000\U0010ffff""#,
            ),
            ("\u{1d173}\u{323b0}", r#""\U0001d173\U000323b0""#),
            // Printable astral runes, variation selectors included.
            ("\u{20000}\u{e0100}", "\"\u{20000}\u{e0100}\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }

    /// Go strings may hold any bytes; each one outside a valid sequence is `\xNN`.
    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(go_quote_bytes(b"a\xffb"), r#""a\xffb""#);
        // A truncated sequence, then a valid one.
        assert_eq!(go_quote_bytes(b"\xe2\x82a\xe2\x82\xac"), "\"\\xe2\\x82a€\"");
        // An encoded surrogate is three bad bytes, as Go decodes it.
        assert_eq!(go_quote_bytes(b"\xed\xa0\x80"), r#""\xed\xa0\x80""#);
        assert_eq!(go_quote_bytes("ok\n".as_bytes()), go_quote("ok\n"));
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        assert!(NOT_PRINTABLE.iter().all(|(first, last)| first <= last));
        assert!(NOT_PRINTABLE.windows(2).all(|w| w[0].1 + 1 < w[1].0));
        assert!(is_go_printable(' ') && !is_go_printable('\u{0}'));
        assert!(!is_go_printable('\u{10ffff}'));
    }

    #[test]
    fn json_matches_go() {
        assert_eq!(go_json_string("a<b>&c"), "\"a\\u003cb\\u003e\\u0026c\"");
        assert_eq!(go_json_string("x\u{1}y"), "\"x\\u0001y\"");
        assert_eq!(go_json_string("é"), "\"é\"");
    }
}
