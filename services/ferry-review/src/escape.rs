//! The one way Ferry shows untrusted text to a person: job titles, names, code, stdout, output names and
//! contents all go through this module before they reach a terminal, a table or a log line.
//!
//! A researcher controls every byte of what the owner reviews. Printed raw, `ESC [2K` erases a line,
//! `ESC [1A` moves up over rows already printed, a lone carriage return overwrites a row, a right-to-left
//! override reorders what follows (Trojan Source, CVE-2021-42574), and a zero-width space makes
//! `summary\u{200b}.txt` look like `summary.txt`. So each character in one of the [`Class`]es is shown as
//! an escape instead:
//!
//! - `\xNN` (two lower-case hex digits) for the C0 controls and DEL (U+0000–U+001F, U+007F), whose code
//!   point and UTF-8 byte are the same number;
//! - `\u{XXXX}` (at least four lower-case hex digits) for every other escaped character, C1 controls
//!   included (`\u{0085}`, `\u{009b}`): so that in the bytes variants `\xNN` with NN ≥ 80 always means
//!   one raw byte that is not UTF-8, never a character;
//! - in the bytes variants ([`line_bytes`], [`block_bytes`]) each byte that is not part of valid UTF-8 as
//!   `\xNN`.
//!
//! Two modes:
//!
//! - [`line()`]: a single-line field (a title, a name, a table cell). Newline, tab and carriage return are
//!   escaped like any control (`\x0a`, `\x09`, `\x0d`), and a backslash is shown as `\\`, so the output
//!   is one line and unambiguous: every backslash in it starts an escape, and the input can be read back
//!   exactly. Fields are short and rarely hold a backslash (output names never do), so doubling costs
//!   nothing.
//! - [`block`]: a block of text (code, stdout, an output's contents). Newline and tab are kept, and so is
//!   the carriage return of a CRLF pair (it returns to column 0 just before the line feed, so it can
//!   overwrite nothing; keeping it keeps the text truthful). A lone carriage return is escaped. A
//!   backslash is **not** doubled: code and program output are full of backslashes (`"\n"`, regular
//!   expressions, Windows paths) and doubling every one would make code unreadable. The price is that
//!   the six characters `\x1b[2K` written by the job and a real ESC followed by `[2K` both show as
//!   `\x1b[2K`; both are harmless once shown, and in code they mean the same thing to Python and Rust,
//!   whose escape syntax this is. A reviewer who needs to tell them apart counts the real ones with
//!   [`count_escaped`] (the preview prints that count) or reads the hex preview.
//!
//! Whatever the mode and input, the output never contains a character of any [`Class`], and holds no
//! control character other than newline, tab and the carriage return of a CRLF (block mode only).
//!
//! Variation selectors (U+FE00–U+FE0F, U+E0100–U+E01EF) are escaped too: they are invisible, they have
//! been used to hide whole payloads in source code, and the only cost is that an emoji's presentation
//! selector shows as `\u{fe0f}`. The same goes for the zero-width joiner inside emoji sequences.
//!
//! Not escaped: ordinary letters of any script (homoglyphs such as Cyrillic `а` are visible characters;
//! output names are compared after NFKC by `ferry_core::names` instead), combining marks, and unassigned
//! code points (this module carries no table of assigned characters).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Why a character is never shown raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// C0 controls, DEL and C1 controls (general category Cc), ESC and CR included.
    Control,
    /// Bidirectional formatting: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069.
    Bidi,
    /// Invisible or format characters: every other Cf (zero-width space and joiners U+200B–U+200D, word
    /// joiner and invisible operators U+2060–U+2064, U+FEFF, soft hyphen U+00AD, Unicode tags
    /// U+E0000–U+E007F, Arabic and other format marks), and the default-ignorable characters that are
    /// not Cf: combining grapheme joiner U+034F, Hangul fillers, Khmer inherent vowels, Mongolian free
    /// variation selectors, variation selectors.
    Invisible,
    /// Spaces other than U+0020 (general category Zs: no-break space, en and em spaces, ideographic
    /// space...) and the braille blank U+2800: they look like a space, or like nothing, and are not one.
    Space,
    /// Line and paragraph separators U+2028 and U+2029, which some terminals and editors break lines at.
    LineBreak,
    /// Private-use characters (U+E000–U+F8FF, planes 15 and 16): their glyph is whatever a font says.
    PrivateUse,
    /// Noncharacters (U+FDD0–U+FDEF and the last two code points of every plane).
    Noncharacter,
}

impl Class {
    /// Stable lower-case description, e.g. "control character".
    pub fn describe(self) -> &'static str {
        match self {
            Class::Control => "control character",
            Class::Bidi => "bidirectional control",
            Class::Invisible => "invisible character",
            Class::Space => "unusual space",
            Class::LineBreak => "line separator",
            Class::PrivateUse => "private-use character",
            Class::Noncharacter => "noncharacter",
        }
    }
}

/// The [`Class`] of `c`, or `None` for a character that may be shown as it is (printable ASCII, the
/// space, newline and tab in block mode aside).
pub fn class(c: char) -> Option<Class> {
    let u = c as u32;
    if u < 0x20 || (0x7f..=0x9f).contains(&u) {
        return Some(Class::Control);
    }
    if u < 0x7f {
        return None;
    }
    Some(match u {
        0x061c | 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069 => Class::Bidi,
        // Cf (Unicode 15), less the bidi controls above.
        0x00ad
        | 0x0600..=0x0605
        | 0x06dd
        | 0x070f
        | 0x0890..=0x0891
        | 0x08e2
        | 0x180e
        | 0x200b..=0x200d
        | 0x2060..=0x2064
        | 0x206a..=0x206f
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        // Tags (E0001, E0020–E007F) and the rest of the default-ignorable block E0000–E0FFF, which
        // holds the variation selectors supplement E0100–E01EF.
        | 0xe0000..=0xe0fff
        // Default-ignorable, not Cf.
        | 0x034f
        | 0x115f
        | 0x1160
        | 0x17b4
        | 0x17b5
        | 0x180b..=0x180d
        | 0x180f
        | 0x3164
        | 0xfe00..=0xfe0f
        | 0xffa0 => Class::Invisible,
        0x00a0 | 0x1680 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000 | 0x2800 => Class::Space,
        0x2028 | 0x2029 => Class::LineBreak,
        0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd => Class::PrivateUse,
        0xfdd0..=0xfdef => Class::Noncharacter,
        _ if u & 0xfffe == 0xfffe => Class::Noncharacter,
        _ => return None,
    })
}

/// Whether `c` is in one of the [`Class`]es (newline and tab are: they are controls).
pub fn is_dangerous(c: char) -> bool {
    class(c).is_some()
}

/// How text is laid out: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One line: newline, tab and CR escaped, backslash doubled.
    Line,
    /// A block: newline, tab and the CR of a CRLF kept, backslash kept.
    Block,
}

/// `\xNN` or `\u{XXXX}` for one character, whatever its class.
pub fn escape_char(c: char) -> String {
    let mut s = String::with_capacity(10);
    push_escape(&mut s, c);
    s
}

fn push_escape(out: &mut String, c: char) {
    let u = c as u32;
    if u < 0x20 || u == 0x7f {
        let _ = write!(out, "\\x{u:02x}");
    } else {
        let _ = write!(out, "\\u{{{u:04x}}}");
    }
}

/// What to do with the character at this point of `s` (`next` is the one after it).
#[inline]
fn needs_escape(c: char, next: Option<char>, mode: Mode) -> bool {
    match (c, mode) {
        ('\\', Mode::Line) => true,
        ('\n' | '\t', Mode::Block) => false,
        ('\r', Mode::Block) => next != Some('\n'),
        _ => is_dangerous(c),
    }
}

/// Escapes `s` for `mode`; borrowed when nothing needed escaping.
pub fn escape(s: &str, mode: Mode) -> Cow<'_, str> {
    let Some(first) = first_escape(s, mode) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    push_escaped(&mut out, &s[first..], mode);
    Cow::Owned(out)
}

/// Byte offset of the first character of `s` that `mode` escapes.
fn first_escape(s: &str, mode: Mode) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Fast path: printable ASCII.
        if (0x20..0x7f).contains(&b) && !(b == b'\\' && mode == Mode::Line) {
            i += 1;
            continue;
        }
        let c = s[i..].chars().next().expect("i is on a char boundary");
        let next = s[i + c.len_utf8()..].chars().next();
        if needs_escape(c, next, mode) {
            return Some(i);
        }
        i += c.len_utf8();
    }
    None
}

fn push_escaped(out: &mut String, s: &str, mode: Mode) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if needs_escape(c, chars.peek().copied(), mode) {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                push_escape(out, c);
            }
        } else {
            out.push(c);
        }
    }
}

/// Escapes a single-line field (title, name, table cell).
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, Mode::Line)
}

/// Escapes a block of text (code, stdout, a text output).
pub fn block(s: &str) -> Cow<'_, str> {
    escape(s, Mode::Block)
}

/// Escapes bytes that may not be UTF-8: valid UTF-8 as in [`escape`], each other byte as `\xNN`.
/// Borrowed when the bytes are valid UTF-8 and nothing needed escaping.
pub fn escape_bytes(b: &[u8], mode: Mode) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return escape(s, mode);
    }
    let mut out = String::with_capacity(b.len() + 16);
    for chunk in b.utf8_chunks() {
        let valid = chunk.valid();
        push_escaped(&mut out, valid, mode);
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    // A CR that ended one valid chunk and an LF that began the next are not a CRLF: an invalid byte
    // stood between them, and the CR was escaped, as it should be.
    Cow::Owned(out)
}

/// [`escape_bytes`] in [`Mode::Line`].
pub fn line_bytes(b: &[u8]) -> Cow<'_, str> {
    escape_bytes(b, Mode::Line)
}

/// [`escape_bytes`] in [`Mode::Block`].
pub fn block_bytes(b: &[u8]) -> Cow<'_, str> {
    escape_bytes(b, Mode::Block)
}

/// How many characters and invalid bytes `mode` shows as escapes in `b` (a doubled backslash in line
/// mode is not counted: it stands for itself). Zero means the escaped text is the input, character for
/// character.
pub fn count_escaped(b: &[u8], mode: Mode) -> usize {
    let mut n = 0;
    for chunk in b.utf8_chunks() {
        let mut chars = chunk.valid().chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' && needs_escape(c, chars.peek().copied(), mode) {
                n += 1;
            }
        }
        n += chunk.invalid().len();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads line-mode output back; `None` if it is not a well-formed escape of anything.
    fn unescape_line(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next()? {
                '\\' => out.push(b'\\'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).ok()?);
                }
                'u' => {
                    if chars.next()? != '{' {
                        return None;
                    }
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// The property every output must have, whatever the input.
    fn assert_safe(out: &str, mode: Mode) {
        let mut chars = out.chars().peekable();
        while let Some(c) = chars.next() {
            let allowed = match (c, mode) {
                ('\n' | '\t', Mode::Block) => true,
                ('\r', Mode::Block) => chars.peek() == Some(&'\n'),
                _ => false,
            };
            assert!(
                allowed || !is_dangerous(c),
                "{mode:?} output {out:?} holds {c:?}"
            );
        }
        if mode == Mode::Line {
            assert!(!out.contains('\n') && !out.contains('\r'));
        }
    }

    /// A small deterministic generator, so the property tests need no crate and always run the same.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn every_code_point_is_shown_safely_in_both_modes() {
        for u in 0..=0x10ffff_u32 {
            let Some(c) = char::from_u32(u) else { continue };
            let s = format!("a{c}b");
            for mode in [Mode::Line, Mode::Block] {
                let out = escape(&s, mode);
                assert_safe(&out, mode);
            }
            let out = line(&s);
            assert_eq!(unescape_line(&out).as_deref(), Some(s.as_bytes()), "{u:x}");
        }
    }

    #[test]
    fn random_strings_and_bytes_are_shown_safely_and_line_mode_reads_back() {
        let alphabet: Vec<char> = "ab\\x{}\n\r\t \u{1b}\u{7f}\u{85}\u{9b}\u{a0}\u{ad}\u{200b}\u{200d}\u{202e}\u{2066}\u{2028}\u{feff}\u{fe0f}\u{e0041}\u{e000}\u{fffe}é€😀"
            .chars()
            .collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            for mode in [Mode::Line, Mode::Block] {
                assert_safe(&escape(&s, mode), mode);
            }
            assert_eq!(unescape_line(&line(&s)).as_deref(), Some(s.as_bytes()));
            let mut bytes = s.into_bytes();
            for _ in 0..(rng.next() % 3) {
                let at = (rng.next() as usize) % (bytes.len() + 1);
                bytes.insert(at, 0x80 | (rng.next() as u8 & 0x7f));
            }
            for mode in [Mode::Line, Mode::Block] {
                assert_safe(&escape_bytes(&bytes, mode), mode);
            }
            assert_eq!(unescape_line(&line_bytes(&bytes)), Some(bytes));
        }
    }

    #[test]
    fn terminal_attacks_from_issue_8_are_shown_as_escapes() {
        assert_eq!(line("ok\x1b[2K\rfine"), "ok\\x1b[2K\\x0dfine");
        assert_eq!(block("row\n\x1b[1A\x1b[2Kx"), "row\n\\x1b[1A\\x1b[2Kx");
        assert_eq!(
            line("title\r4f2c  approved  alice"),
            "title\\x0d4f2c  approved  alice"
        );
        assert_eq!(line("summary\u{200b}.txt"), "summary\\u{200b}.txt");
        assert_eq!(
            block("if ok:\u{202e} } \u{2066}"),
            "if ok:\\u{202e} } \\u{2066}"
        );
        assert_eq!(line("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(line("c1\u{9b}2J"), "c1\\u{009b}2J");
        assert_eq!(line("nb\u{a0}sp"), "nb\\u{00a0}sp");
        assert_eq!(line("soft\u{ad}hyphen"), "soft\\u{00ad}hyphen");
    }

    #[test]
    fn line_mode_escapes_layout_and_backslash_block_mode_keeps_them() {
        assert_eq!(line("a\tb\nc\\d"), "a\\x09b\\x0ac\\\\d");
        assert_eq!(block("a\tb\nc\\d"), "a\tb\nc\\d");
        assert_eq!(block("dos\r\nline\r\n"), "dos\r\nline\r\n");
        assert_eq!(block("lone\rcr\r"), "lone\\x0dcr\\x0d");
        assert_eq!(line("dos\r\n"), "dos\\x0d\\x0a");
    }

    #[test]
    fn nothing_to_escape_borrows() {
        assert!(matches!(line("plain title é 😀"), Cow::Borrowed(_)));
        assert!(matches!(block("code\n\tx = '\\n'\r\n"), Cow::Borrowed(_)));
        assert!(matches!(block_bytes(b"stdout\n"), Cow::Borrowed(_)));
        assert!(matches!(line("a\u{200b}"), Cow::Owned(_)));
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_as_hex_and_c1_controls_are_not_confused_with_them() {
        assert_eq!(block_bytes(b"caf\xe9\n\xff"), "caf\\xe9\n\\xff");
        // U+0085 (valid UTF-8 C2 85) against the lone byte 85.
        assert_eq!(line_bytes("\u{85}".as_bytes()), "\\u{0085}");
        assert_eq!(line_bytes(b"\x85"), "\\x85");
        // A CR, an invalid byte, an LF: not a CRLF.
        assert_eq!(block_bytes(b"a\r\xff\nb"), "a\\x0d\\xff\nb");
    }

    #[test]
    fn escaped_characters_are_counted() {
        assert_eq!(count_escaped(b"plain\r\n", Mode::Block), 0);
        assert_eq!(count_escaped(b"a\x1b[2K\rb\xff", Mode::Block), 3);
        assert_eq!(count_escaped(b"a\\b\n", Mode::Line), 1);
        assert_eq!(
            count_escaped("x\u{202e}y".as_bytes(), Mode::Line),
            1,
            "one bidi control"
        );
    }

    #[test]
    fn classes_are_named() {
        assert_eq!(class('\u{1b}'), Some(Class::Control));
        assert_eq!(class('\u{202e}'), Some(Class::Bidi));
        assert_eq!(class('\u{61c}'), Some(Class::Bidi));
        assert_eq!(class('\u{200d}'), Some(Class::Invisible));
        assert_eq!(class('\u{fe0f}'), Some(Class::Invisible));
        assert_eq!(class('\u{3000}'), Some(Class::Space));
        assert_eq!(class('\u{2029}'), Some(Class::LineBreak));
        assert_eq!(class('\u{f8ff}'), Some(Class::PrivateUse));
        assert_eq!(class('\u{1fffe}'), Some(Class::Noncharacter));
        assert_eq!(class('a'), None);
        assert_eq!(class(' '), None);
        assert_eq!(class('é'), None);
        assert_eq!(class('а'), None, "Cyrillic a is a visible letter");
        assert_eq!(Class::Bidi.describe(), "bidirectional control");
    }
}
