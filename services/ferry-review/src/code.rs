//! Refusing job code that cannot be reviewed honestly.
//!
//! Code is shown to the owner escaped ([`crate::escape::block`]), but the interpreter runs the raw bytes.
//! A bidirectional control makes the code that runs differ from the code a person reads in any editor
//! or web view that honours it (Trojan Source, CVE-2021-42574), and a control character has no business
//! in source code. So intake and `ferry submit` refuse both, before anyone reviews anything:
//!
//! - every control character (C0, DEL, C1) except newline, tab and the carriage return of a CRLF;
//! - every bidirectional control (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
//!
//! Invisible characters (zero-width joiners, variation selectors) are not refused: they occur in honest
//! strings (emoji sequences), and the review shows each of them escaped.

use crate::escape::{self, Class};

/// Why job code was refused: the first offending character, where it is, and how many there are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "job code has a {what} {escaped} at line {line}, column {column}{more}; \
     remove it (write it as an escape sequence in a string if the program needs it)",
    what = class.describe(),
    more = if *count > 1 { format!(" ({count} such characters in all)") } else { String::new() }
)]
pub struct CodeRefusal {
    /// 1-based line number (lines end at `\n`).
    pub line: usize,
    /// 1-based column, counted in characters (not bytes) from the start of the line.
    pub column: usize,
    /// The character, escaped as the review shows it (e.g. `\x1b`, `\u{202e}`).
    pub escaped: String,
    /// The character itself.
    pub character: char,
    /// [`Class::Control`] or [`Class::Bidi`].
    pub class: Class,
    /// How many refused characters the code holds, this one included.
    pub count: usize,
}

/// Accepts `code` or says where the first character that may not appear in job code is.
pub fn check(code: &str) -> Result<(), CodeRefusal> {
    let mut first: Option<CodeRefusal> = None;
    let mut count = 0;
    let (mut line, mut column) = (1, 0);
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        let refused = match c {
            '\n' => {
                line += 1;
                column = 0;
                None
            }
            '\t' => None,
            '\r' if chars.peek() == Some(&'\n') => None,
            _ => match escape::class(c) {
                Some(class @ (Class::Control | Class::Bidi)) => Some(class),
                _ => None,
            },
        };
        if let Some(class) = refused {
            count += 1;
            if first.is_none() {
                first = Some(CodeRefusal {
                    line,
                    column,
                    escaped: escape::escape_char(c),
                    character: c,
                    class,
                    count: 0,
                });
            }
        }
    }
    match first {
        None => Ok(()),
        Some(mut refusal) => {
            refusal.count = count;
            Err(refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_code_passes_with_lf_crlf_tabs_and_unicode() {
        assert_eq!(check("print('hi')\n"), Ok(()));
        assert_eq!(check("def f():\r\n\treturn 'é😀'\r\n"), Ok(()));
        // Invisible characters are shown escaped in review, not refused.
        assert_eq!(check("family = '👨\u{200d}👩'\n"), Ok(()));
        assert_eq!(check(""), Ok(()));
    }

    #[test]
    fn trojan_source_bidi_override_is_refused_with_line_and_column() {
        let code =
            "access = 'user'\nif access != 'none\u{202e} \u{2066}# admin\u{2069} \u{2066}':\n";
        let e = check(code).unwrap_err();
        assert_eq!((e.line, e.column), (2, 19));
        assert_eq!(e.escaped, "\\u{202e}");
        assert_eq!(e.class, Class::Bidi);
        assert_eq!(e.count, 4);
        assert_eq!(
            e.to_string(),
            "job code has a bidirectional control \\u{202e} at line 2, column 19 (4 such characters \
             in all); remove it (write it as an escape sequence in a string if the program needs it)"
        );
    }

    #[test]
    fn escape_sequences_and_lone_cr_are_refused() {
        let e = check("x = 1\nprint('\x1b[2K')").unwrap_err();
        assert_eq!((e.line, e.column, e.escaped.as_str()), (2, 8, "\\x1b"));
        assert_eq!(e.class, Class::Control);
        assert_eq!(e.count, 1);
        let e = check("a = 1\rb = 2\n").unwrap_err();
        assert_eq!((e.line, e.column, e.escaped.as_str()), (1, 6, "\\x0d"));
        let e = check("ok\u{0}").unwrap_err();
        assert_eq!(e.escaped, "\\x00");
        let e = check("c1\u{9b}").unwrap_err();
        assert_eq!(e.escaped, "\\u{009b}");
        let e = check("\u{200f}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = check("é😀\u{7f}").unwrap_err();
        assert_eq!(e.column, 3);
    }
}
