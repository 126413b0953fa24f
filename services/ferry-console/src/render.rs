//! Untrusted text and bytes as HTML: escaped for HTML by the templates (maud escapes every interpolated value),
//! and with every character [`ferry_review::escape`] escapes for a terminal shown the same way here, as its
//! escape (`\u{202e}`, `\x1b`) in a marked span naming its class. So what the page shows of a line is, letter for
//! letter, what `ferry review show` prints of it ([`escape::block`]); the tests hold the two to that.

use maud::{html, Markup};

use ferry_review::escape;
use ferry_review::preview;

/// One piece of a shown line: text as it is, or a character (or byte) shown as its escape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Ordinary text.
    Text(String),
    /// An escaped character: the escape, and why.
    Escaped(String, &'static str),
}

/// The pieces of one line of text (no `\n` in it), escaped as [`escape::block`] escapes: tab kept, every
/// character of an [`escape::Class`] (a lone carriage return included) as its escape.
pub fn pieces(line: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    for c in line.chars() {
        match escape::class(c) {
            Some(class) if c != '\t' => {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Escaped(escape::escape_char(c), class.describe()));
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

/// [`pieces`] of a line of bytes: each byte that is not part of valid UTF-8 as `\xNN`.
pub fn byte_pieces(line: &[u8]) -> Vec<Piece> {
    let mut out = Vec::new();
    for chunk in line.utf8_chunks() {
        out.extend(pieces(chunk.valid()));
        for b in chunk.invalid() {
            out.push(Piece::Escaped(
                format!("\\x{b:02x}"),
                "byte that is not UTF-8",
            ));
        }
    }
    out
}

/// Pieces as HTML.
pub fn show(pieces: &[Piece]) -> Markup {
    html! {
        @for p in pieces {
            @match p {
                Piece::Text(t) => (t),
                Piece::Escaped(e, why) => span.esc title=(why) { (e) },
            }
        }
    }
}

/// A single-line field (a title, a name): [`pieces`] of it, its newlines shown as `\x0a` like every control.
pub fn field(s: &str) -> Markup {
    let mut shown = Vec::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            shown.push(Piece::Escaped("\\x0a".into(), "control character"));
        }
        shown.extend(pieces(line));
    }
    show(&shown)
}

/// A block of text (a description, a comment): each line as [`pieces`], the lines kept.
pub fn block(s: &str) -> Markup {
    html! {
        @for (i, line) in lines(s.as_bytes()).enumerate() {
            @if i > 0 { "\n" }
            (show(&byte_pieces(line)))
        }
    }
}

/// Lines of `data` without their `\n`, and without the `\r` of a CRLF (which [`escape::block`] keeps: it
/// overwrites nothing).
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take(if empty { 0 } else { usize::MAX })
}

/// What a highlighted token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// Anything else.
    Plain,
    /// A keyword.
    Keyword,
    /// A string literal.
    Str,
    /// A comment.
    Comment,
    /// A number.
    Number,
}

impl Token {
    fn class(self) -> &'static str {
        match self {
            Token::Plain => "",
            Token::Keyword => "kw",
            Token::Str => "st",
            Token::Comment => "cm",
            Token::Number => "nu",
        }
    }
}

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "function", "library",
];

/// Splits code into tokens for highlighting (Python's comments, strings, keywords and numbers; `#` comments
/// serve R and shell too). Only looks: the text of the tokens, joined, is the code.
pub fn highlight(code: &str) -> Vec<(Token, &str)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut plain_start = 0;
    fn push<'a>(
        out: &mut Vec<(Token, &'a str)>,
        kind: Token,
        from: usize,
        to: usize,
        code: &'a str,
    ) {
        if from < to {
            out.push((kind, &code[from..to]));
        }
    }
    while i < bytes.len() {
        let b = bytes[i];
        let (kind, end) = if b == b'#' {
            let end = memchr_nl(bytes, i);
            (Token::Comment, end)
        } else if b == b'"' || b == b'\'' {
            let triple = bytes[i..].starts_with(&[b, b, b]);
            let end = if triple {
                let close = [b, b, b];
                code[i + 3..]
                    .find(std::str::from_utf8(&close).unwrap_or("\"\"\""))
                    .map_or(bytes.len(), |at| i + 3 + at + 3)
            } else {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b && bytes[j] != b'\n' {
                    j += if bytes[j] == b'\\' && j + 1 < bytes.len() && bytes[j + 1] != b'\n' {
                        2
                    } else {
                        1
                    };
                }
                if j < bytes.len() && bytes[j] == b {
                    j + 1
                } else {
                    j.max(i + 1)
                }
            };
            (Token::Str, end)
        } else if b.is_ascii_digit() && (i == 0 || !is_word(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'.' || bytes[j] == b'_')
            {
                j += 1;
            }
            (Token::Number, j)
        } else if is_word(b) && (i == 0 || !is_word(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len() && is_word(bytes[j]) {
                j += 1;
            }
            if KEYWORDS.contains(&&code[i..j]) {
                (Token::Keyword, j)
            } else {
                i = j;
                continue;
            }
        } else {
            i += 1;
            continue;
        };
        // Every token boundary above falls on an ASCII byte or the end, so on a character boundary.
        let end = end.min(bytes.len());
        push(&mut out, Token::Plain, plain_start, i, code);
        push(&mut out, kind, i, end, code);
        i = end;
        plain_start = end;
    }
    push(&mut out, Token::Plain, plain_start, bytes.len(), code);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn memchr_nl(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |at| from + at)
}

/// Code as numbered, highlighted lines: one table row a line, every line's characters shown as [`pieces`].
pub fn code(code: &str) -> Markup {
    // Highlighted tokens split at newlines into lines of (kind, text).
    let mut rows: Vec<Vec<(Token, &str)>> = vec![Vec::new()];
    for (kind, text) in highlight(code) {
        for (n, part) in text.split('\n').enumerate() {
            if n > 0 {
                rows.push(Vec::new());
            }
            let part = part.strip_suffix('\r').unwrap_or(part);
            if !part.is_empty() {
                rows.last_mut().expect("a row").push((kind, part));
            }
        }
    }
    if code.ends_with('\n') {
        rows.pop();
    }
    html! {
        table.code {
            @for (n, row) in rows.iter().enumerate() {
                tr {
                    td.ln { (n + 1) }
                    td.src {
                        @for (kind, text) in row {
                            @if *kind == Token::Plain {
                                (show(&pieces(text)))
                            } @else {
                                span class=(kind.class()) { (show(&pieces(text))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The most lines of a text output shown on the page; the rest is in the download.
pub const MAX_TEXT_LINES: usize = 2000;
/// The most rows of a CSV shown as a table.
pub const MAX_CSV_ROWS: usize = 1000;
/// The most bytes of binary data shown as hex.
pub const MAX_HEX_BYTES: usize = 4096;

/// Text as numbered lines (at most [`MAX_TEXT_LINES`]).
pub fn text(data: &[u8]) -> Markup {
    let total = preview::count_lines(data);
    html! {
        table.code {
            @for (n, line) in lines(data).take(MAX_TEXT_LINES).enumerate() {
                tr { td.ln { (n + 1) } td.src { (show(&byte_pieces(line))) } }
            }
        }
        @if total > MAX_TEXT_LINES as u64 {
            p.note { "Lines " (MAX_TEXT_LINES + 1) " to " (total) " are not shown here: download the exact bytes." }
        }
    }
}

/// A CSV text as a table: the header row, then at most [`MAX_CSV_ROWS`] rows; every cell shown as [`pieces`].
pub fn csv(data: &[u8], shape: &preview::CsvShape) -> Markup {
    let rows: Vec<&[u8]> = lines(data).filter(|l| !l.is_empty()).collect();
    html! {
        p.note { (shape.columns) " columns, " (shape.rows) " rows after the header" }
        table.csv {
            @for (n, row) in rows.iter().take(MAX_CSV_ROWS + 1).enumerate() {
                tr {
                    @for cell in preview::split_fields(row, shape.delimiter) {
                        @if n == 0 { th { (show(&byte_pieces(&cell))) } } @else { td { (show(&byte_pieces(&cell))) } }
                    }
                }
            }
        }
        @if rows.len() > MAX_CSV_ROWS + 1 {
            p.note { "Rows " (MAX_CSV_ROWS + 1) " to " (rows.len() - 1) " are not shown here: download the exact bytes." }
        }
    }
}

/// Binary data as a hex dump (at most [`MAX_HEX_BYTES`]): offset, 16 bytes in hex, and those of them that are
/// printable ASCII.
pub fn hex(data: &[u8]) -> Markup {
    let shown = &data[..data.len().min(MAX_HEX_BYTES)];
    let mut dump = String::new();
    for (row, chunk) in shown.chunks(16).enumerate() {
        dump.push_str(&format!("{:08x}  ", row * 16));
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => dump.push_str(&format!("{b:02x} ")),
                None => dump.push_str("   "),
            }
        }
        dump.push(' ');
        dump.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        dump.push('\n');
    }
    html! {
        pre.hex { (dump) }
        @if shown.len() < data.len() {
            p.note { "Bytes " (shown.len()) " to " (data.len()) " are not shown here: download the exact bytes." }
        }
    }
}

/// The image type of `data` by its first bytes, when it is one the console shows: PNG, JPEG or GIF (never SVG,
/// which is a document that can hold script).
pub fn image_type(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// Unix seconds as the CLI's audit trail shows them (RFC 3339, UTC).
pub fn when(at: i64) -> String {
    ferry_core::time::rfc3339(at)
}

/// How long ago `at` was, roughly ("3 min", "2 h", "5 d").
pub fn age(at: i64, now: i64) -> String {
    let secs = (now - at).max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_text(p: &[Piece]) -> String {
        p.iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Escaped(e, _) => e.as_str(),
            })
            .collect()
    }

    #[test]
    fn a_line_shows_what_the_cli_shows() {
        for line in [
            "plain",
            "rtl \u{202e}gnp.exe",
            "esc \u{1b}[2K erase",
            "zero\u{200b}width",
            "lone \r return",
            "tab\there",
            "nbsp\u{a0}space \u{2028} sep \u{fe0f}",
            "back\\slash \\x1b",
            "<script>alert(1)</script>",
        ] {
            assert_eq!(as_text(&pieces(line)), escape::block(line), "{line:?}");
        }
        assert_eq!(
            as_text(&byte_pieces(b"ok \xff\xfe \xe2\x80\xae")),
            escape::block_bytes(b"ok \xff\xfe \xe2\x80\xae")
        );
    }

    #[test]
    fn escapes_are_marked_and_html_is_inert() {
        let html = show(&pieces("a\u{202e}<img src=x onerror=alert(1)>")).into_string();
        assert_eq!(
            html,
            "a<span class=\"esc\" title=\"bidirectional control\">\\u{202e}</span>&lt;img src=x \
             onerror=alert(1)&gt;"
        );
        let f = field("two\nlines").into_string();
        assert!(f.contains("\\x0a") && !f.contains('\n'), "{f}");
    }

    #[test]
    fn highlighting_keeps_every_byte_of_the_code() {
        let code = "def f(x):  # a \u{e9} comment\n    return 'it''s' + \"\"\"multi\nline\"\"\" + 42\n\u{1f600} = 1\n";
        let tokens = highlight(code);
        assert_eq!(tokens.iter().map(|(_, t)| *t).collect::<String>(), code);
        assert!(tokens.contains(&(Token::Keyword, "def")));
        assert!(tokens.contains(&(Token::Keyword, "return")));
        assert!(tokens.contains(&(Token::Comment, "# a \u{e9} comment")));
        assert!(tokens.contains(&(Token::Str, "\"\"\"multi\nline\"\"\"")));
        assert!(tokens.contains(&(Token::Number, "42")));
        let html = super::code(code).into_string();
        assert_eq!(html.matches("<tr>").count(), 4, "{html}");
    }

    #[test]
    fn only_raster_images_are_images() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(b"GIF89a.."), Some("image/gif"));
        assert_eq!(image_type(b"<svg onload=alert(1)>"), None);
        assert_eq!(image_type(b"<html>"), None);
    }

    #[test]
    fn hex_shows_only_printable_ascii() {
        let html = hex(b"<b>\x00\x1b[2K").into_string();
        assert!(html.contains("3c 62 3e 00 1b"), "{html}");
        assert!(html.contains("&lt;b&gt;..[2K"), "{html}");
    }
}
