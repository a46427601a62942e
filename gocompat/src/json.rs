//! The syntax errors of Go's `encoding/json`, which kube-apiserver quotes when a request body or a
//! patch is not JSON (`error decoding patch: unexpected end of JSON input`, `invalid character
//! '}' after object key`). serde_json's messages say the same things in other words; a client
//! that matches upstream's text, and a user comparing two servers, see Go's.
//!
//! [`syntax_error`] runs the byte-at-a-time state machine `encoding/json` validates input with
//! (its `checkValid`), so the first offending byte and the context it is reported in are the ones
//! Go reports.

/// Go's message for `input` when it is not valid JSON, `None` when it is.
///
/// ```
/// use gocompat::json::syntax_error;
/// assert_eq!(syntax_error(b"{\"a\":"), Some("unexpected end of JSON input".into()));
/// assert_eq!(syntax_error(b"{\"a\" 1}"), Some("invalid character '1' after object key".into()));
/// assert_eq!(syntax_error(b"[1, 2]"), None);
/// ```
pub fn syntax_error(input: &[u8]) -> Option<String> {
    let mut scanner = Scanner::default();
    for &byte in input {
        if let Err(message) = scanner.step(byte) {
            return Some(message);
        }
    }
    // Go's `eof`: the end of input is taken as a space. That completes a number, is an error
    // inside a literal or after a decimal point (reported as one: "invalid character ' ' in
    // literal true"), and otherwise leaves the value cut short.
    if scanner.done {
        return None;
    }
    match scanner.step(b' ') {
        Err(message) => Some(message),
        Ok(()) if scanner.done => None,
        Ok(()) => Some("unexpected end of JSON input".into()),
    }
}

/// What the scanner is inside of, innermost last (Go's `parseState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Where in a value the next byte falls (Go's `step` functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEscape,
    /// Inside `\u`, with this many hex digits read.
    InStringEscapeU(u8),
    Negative,
    /// A number's integer part, which began with 1–9.
    Integer,
    /// A number that is `0` or `-0` so far.
    Zero,
    Dot,
    Fraction,
    Exponent,
    ExponentSign,
    ExponentDigits,
    /// Inside `true`, `false` or `null`, this many bytes in.
    Literal(&'static str, usize),
}

#[derive(Debug, Default)]
struct Scanner {
    state: State,
    stack: Vec<Container>,
    /// The top-level value is complete (only spaces may follow).
    done: bool,
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// `invalid character 'x' <context>`, with the byte quoted as Go's `quoteChar` does.
fn invalid(byte: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(byte))
}

/// Go's `quoteChar`: the byte taken as a rune (so 0x80–0xff are Latin-1) and quoted as
/// `strconv.Quote` would, between single quotes.
fn quote_char(byte: u8) -> String {
    match byte {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        _ => format!("'{}'", go_quote_rune_body(char::from(byte))),
    }
}

/// The inside of `strconv.Quote` of one rune below U+0100.
fn go_quote_rune_body(c: char) -> String {
    match c {
        '\u{7}' => r"\a".into(),
        '\u{8}' => r"\b".into(),
        '\u{c}' => r"\f".into(),
        '\n' => r"\n".into(),
        '\r' => r"\r".into(),
        '\t' => r"\t".into(),
        '\u{b}' => r"\v".into(),
        '\\' => r"\\".into(),
        c if (c as u32) < 0x20 || c == '\u{7f}' => format!(r"\x{:02x}", c as u32),
        // Not printable for Go's `unicode.IsPrint` in Latin-1: the C1 controls, the no-break
        // space and the soft hyphen.
        c if ('\u{80}'..='\u{a0}').contains(&c) || c == '\u{ad}' => {
            format!(r"\u{:04x}", c as u32)
        }
        c => c.to_string(),
    }
}

impl Scanner {
    fn step(&mut self, byte: u8) -> Result<(), String> {
        match self.state {
            State::BeginValueOrEmpty => {
                if is_space(byte) {
                    return Ok(());
                }
                if byte == b']' {
                    return self.end_value(byte);
                }
                self.begin_value(byte)
            }
            State::BeginValue => self.begin_value(byte),
            State::BeginStringOrEmpty => {
                if is_space(byte) {
                    return Ok(());
                }
                if byte == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Container::ObjectValue;
                    }
                    return self.end_value(byte);
                }
                self.begin_string(byte)
            }
            State::BeginString => self.begin_string(byte),
            State::EndValue => self.end_value(byte),
            State::EndTop => {
                if is_space(byte) {
                    Ok(())
                } else {
                    Err(invalid(byte, "after top-level value"))
                }
            }
            State::InString => {
                match byte {
                    b'"' => self.state = State::EndValue,
                    b'\\' => self.state = State::InStringEscape,
                    b if b < 0x20 => return Err(invalid(b, "in string literal")),
                    _ => {}
                }
                Ok(())
            }
            State::InStringEscape => match byte {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.state = State::InString;
                    Ok(())
                }
                b'u' => {
                    self.state = State::InStringEscapeU(0);
                    Ok(())
                }
                _ => Err(invalid(byte, "in string escape code")),
            },
            State::InStringEscapeU(read) => {
                if !byte.is_ascii_hexdigit() {
                    return Err(invalid(byte, r"in \u hexadecimal character escape"));
                }
                self.state = if read == 3 {
                    State::InString
                } else {
                    State::InStringEscapeU(read + 1)
                };
                Ok(())
            }
            State::Negative => match byte {
                b'0' => {
                    self.state = State::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.state = State::Integer;
                    Ok(())
                }
                _ => Err(invalid(byte, "in numeric literal")),
            },
            State::Integer if byte.is_ascii_digit() => Ok(()),
            State::Integer | State::Zero => match byte {
                b'.' => {
                    self.state = State::Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.state = State::Exponent;
                    Ok(())
                }
                _ => self.end_value(byte),
            },
            State::Dot => {
                if byte.is_ascii_digit() {
                    self.state = State::Fraction;
                    Ok(())
                } else {
                    Err(invalid(byte, "after decimal point in numeric literal"))
                }
            }
            State::Fraction => match byte {
                b'0'..=b'9' => Ok(()),
                b'e' | b'E' => {
                    self.state = State::Exponent;
                    Ok(())
                }
                _ => self.end_value(byte),
            },
            State::Exponent if matches!(byte, b'+' | b'-') => {
                self.state = State::ExponentSign;
                Ok(())
            }
            State::Exponent | State::ExponentSign => {
                if byte.is_ascii_digit() {
                    self.state = State::ExponentDigits;
                    Ok(())
                } else {
                    Err(invalid(byte, "in exponent of numeric literal"))
                }
            }
            State::ExponentDigits if byte.is_ascii_digit() => Ok(()),
            State::ExponentDigits => self.end_value(byte),
            State::Literal(word, read) => {
                let expected = word.as_bytes()[read];
                if byte != expected {
                    return Err(invalid(
                        byte,
                        &format!("in literal {word} (expecting {})", quote_char(expected)),
                    ));
                }
                self.state = if read + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, read + 1)
                };
                Ok(())
            }
        }
    }

    fn begin_value(&mut self, byte: u8) -> Result<(), String> {
        self.state = match byte {
            b if is_space(b) => return Ok(()),
            b'{' => {
                self.stack.push(Container::ObjectKey);
                State::BeginStringOrEmpty
            }
            b'[' => {
                self.stack.push(Container::ArrayValue);
                State::BeginValueOrEmpty
            }
            b'"' => State::InString,
            b'-' => State::Negative,
            b'0' => State::Zero,
            b'1'..=b'9' => State::Integer,
            b't' => State::Literal("true", 1),
            b'f' => State::Literal("false", 1),
            b'n' => State::Literal("null", 1),
            _ => return Err(invalid(byte, "looking for beginning of value")),
        };
        Ok(())
    }

    fn begin_string(&mut self, byte: u8) -> Result<(), String> {
        match byte {
            b if is_space(b) => Ok(()),
            b'"' => {
                self.state = State::InString;
                Ok(())
            }
            _ => Err(invalid(byte, "looking for beginning of object key string")),
        }
    }

    /// Go's `stateEndValue`: what may follow a complete value depends on its container.
    fn end_value(&mut self, byte: u8) -> Result<(), String> {
        let Some(&container) = self.stack.last() else {
            self.state = State::EndTop;
            self.done = true;
            return self.step(byte);
        };
        if is_space(byte) {
            self.state = State::EndValue;
            return Ok(());
        }
        match (container, byte) {
            (Container::ObjectKey, b':') => {
                *self.stack.last_mut().expect("checked above") = Container::ObjectValue;
                self.state = State::BeginValue;
            }
            (Container::ObjectKey, _) => return Err(invalid(byte, "after object key")),
            (Container::ObjectValue, b',') => {
                *self.stack.last_mut().expect("checked above") = Container::ObjectKey;
                self.state = State::BeginString;
            }
            (Container::ObjectValue, b'}') | (Container::ArrayValue, b']') => self.pop(),
            (Container::ObjectValue, _) => {
                return Err(invalid(byte, "after object key:value pair"));
            }
            (Container::ArrayValue, b',') => self.state = State::BeginValue,
            (Container::ArrayValue, _) => return Err(invalid(byte, "after array element")),
        }
        Ok(())
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.state = State::EndTop;
            self.done = true;
        } else {
            self.state = State::EndValue;
        }
    }
}

/// The kind of JSON value `value` is, in the words of Go's `UnmarshalTypeError`
/// (`json: cannot unmarshal array into ...`).
pub fn value_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> Option<String> {
        syntax_error(input.as_bytes())
    }

    #[test]
    fn valid_documents_pass() {
        for input in [
            "{}",
            " {\"a\": [1, -0.5e+3, true, false, null, \"x\\u00e9\\n\"]} ",
            "[]",
            "0",
            "-12",
            "1.5",
            "\"s\"",
            "[[], {}, [{}]]",
        ] {
            assert_eq!(err(input), None, "{input}");
        }
    }

    #[test]
    fn truncated_input_is_an_unexpected_end() {
        for input in ["", "   ", "{", "{\"a\"", "{\"a\":", "[1,", "\"abc"] {
            assert_eq!(
                err(input).as_deref(),
                Some("unexpected end of JSON input"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_byte_and_its_context() {
        let cases = [
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            (
                "{\"a\":}",
                "invalid character '}' looking for beginning of value",
            ),
            ("{} x", "invalid character 'x' after top-level value"),
            (
                "{\"a\":tru}",
                "invalid character '}' in literal true (expecting 'e')",
            ),
            (
                "nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            ("-", "invalid character ' ' in numeric literal"),
            (
                "nulL",
                "invalid character 'L' in literal null (expecting 'l')",
            ),
            ("01", "invalid character '1' after top-level value"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            (
                "1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            ("-x", "invalid character 'x' in numeric literal"),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12x4\"",
                "invalid character 'x' in \\u hexadecimal character escape",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            (
                "'a'",
                "invalid character '\\'' looking for beginning of value",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input).as_deref(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn bytes_are_quoted_as_go_quotes_a_latin1_rune() {
        assert_eq!(
            syntax_error(&[0x81]).unwrap(),
            r"invalid character '\u0081' looking for beginning of value"
        );
        assert_eq!(
            syntax_error(&[0xe9]).unwrap(),
            "invalid character 'é' looking for beginning of value"
        );
        assert_eq!(
            syntax_error(&[0x01]).unwrap(),
            r"invalid character '\x01' looking for beginning of value"
        );
    }
}
