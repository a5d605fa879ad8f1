//! Log-safe text: peer-supplied strings (node names, tags, addresses,
//! error texts) are printed through [`Escaped`] so a name holding a newline
//! cannot forge a log line and an ESC cannot drive the reader's terminal.

use std::fmt::{self, Display, Write};

/// Displays the wrapped value with every control character escaped:
/// `\n`, `\r`, `\t`, `\\` and `\"` as in Rust string literals, other
/// characters below U+0100 as `\xHH`, and the Unicode controls and
/// line/bidirectional-override formatting characters as `\u{HHHH}`.
/// Printable text, non-ASCII letters included, passes unchanged.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

/// Wraps `value` for a log call: `tracing::info!(node = %esc(&name), ...)`.
pub fn esc<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

/// True for characters that may change how a terminal or log reader shows
/// the surrounding text (those [`Escaped`] escapes).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '"')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A `fmt::Write` that escapes what passes through it.
struct EscapingWriter<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
}

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.out.write_str(&s[start..i])?;
            match c {
                '\n' => self.out.write_str("\\n")?,
                '\r' => self.out.write_str("\\r")?,
                '\t' => self.out.write_str("\\t")?,
                '\\' => self.out.write_str("\\\\")?,
                '"' => self.out.write_str("\\\"")?,
                c if (c as u32) < 0x100 => write!(self.out, "\\x{:02x}", c as u32)?,
                c => write!(self.out, "\\u{{{:04x}}}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
        self.out.write_str(&s[start..])
    }
}

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter { out: f }, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let forged = "evil\n2026-01-01T00:00:00Z  INFO member joined node=admin\x1b[2J\r\t";
        let shown = esc(forged).to_string();
        assert_eq!(
            shown,
            "evil\\n2026-01-01T00:00:00Z  INFO member joined node=admin\\x1b[2J\\r\\t"
        );
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn quotes_backslashes_c1_and_bidi_controls_are_escaped() {
        assert_eq!(esc("a\"b\\c").to_string(), "a\\\"b\\\\c");
        assert_eq!(esc("x\u{9b}31m").to_string(), "x\\x9b31m");
        assert_eq!(esc("\u{202e}txt.exe").to_string(), "\\u{202e}txt.exe");
        assert_eq!(esc("l\u{2028}l").to_string(), "l\\u{2028}l");
        assert_eq!(esc("\0").to_string(), "\\x00");
    }

    #[test]
    fn printable_text_passes_unchanged() {
        for s in ["node-1", "10.0.0.1:7946", "Zürich ノード", ""] {
            assert_eq!(esc(s).to_string(), s);
        }
        let addr: std::net::SocketAddr = "[::1]:7946".parse().unwrap();
        assert_eq!(esc(addr).to_string(), "[::1]:7946");
    }
}
