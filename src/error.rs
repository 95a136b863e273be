//! Input errors: what the user wrote is wrong, nothing was changed (exit code 2).
//!
//! Every input error names where the bad value is (file, line, column, field) and the rule it
//! broke. `main` recognises this type in an error chain and exits with 2.

use std::fmt;

/// One bad value, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file (or `command line`).
    pub file: String,
    /// 1-based line; 0 when the place has no line (a command-line option, a whole file).
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub col: usize,
    /// The field, as a dotted path (`network.ip`, `files[1].dest`), or the option.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// True for characters that must not reach a terminal as they are: control characters (C0, DEL
/// and C1: escape sequences, carriage returns that overwrite a line, the 8-bit CSI), Unicode
/// format characters that are invisible or reorder text (bidirectional marks, embeddings,
/// overrides and isolates, zero-width spaces and joiners, the byte-order mark, invisible
/// operators, tag characters, interlinear annotations), line and paragraph separators, and
/// the blank Hangul fillers. Such a character can make text read differently from what it is
/// (`U+200F` in a key, `U+202E` in a name) or drive the terminal (title, clear, OSC 52).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{0600}'..='\u{0605}' | '\u{06dd}'
            | '\u{070f}' | '\u{0890}'..='\u{0891}' | '\u{08e2}' | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{feff}'
            | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}')
}

/// `s` with every [`is_unsafe_char`] written as an escape (`\u{1b}`).
///
/// The project's one escaping function: everything printed goes through it, either directly
/// (one-line fields, [`crate::text::clean`]) or at the stream edge ([`for_stream`], used by
/// [`crate::write_stdout`] and [`crate::write_stderr`]; [`json_safe`] for JSON documents).
pub fn escape_unsafe(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, is_unsafe_char)
}

/// Text for an output stream: like [`escape_unsafe`], but line breaks and tabs stay (they are
/// the layout of a multi-line text, and cannot drive a terminal).
pub fn for_stream(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, |c| is_unsafe_char(c) && c != '\n' && c != '\t')
}

fn escape_where(s: &str, bad: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(&bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A JSON document (as serde_json writes it) with every [`is_unsafe_char`] inside its strings
/// written as a JSON `\uXXXX` escape: the same document for a parser, nothing raw for a
/// terminal. serde_json escapes C0 controls itself but passes C1 controls, bidirectional and
/// zero-width characters through; outside strings its output is ASCII.
pub fn json_safe(doc: &str) -> std::borrow::Cow<'_, str> {
    if !doc.chars().any(|c| is_unsafe_char(c) && c != '\n') {
        return std::borrow::Cow::Borrowed(doc);
    }
    let mut out = String::with_capacity(doc.len() + 16);
    for c in doc.chars() {
        if is_unsafe_char(c) && c != '\n' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl fmt::Display for InputError {
    /// File names, keys and messages come from hostile input (a key may be any string): control
    /// characters are shown escaped, so that an error message cannot drive the terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, field, message) = (
            escape_unsafe(&self.file),
            escape_unsafe(&self.field),
            escape_unsafe(&self.message),
        );
        match (self.line, self.field.is_empty()) {
            (0, true) => write!(f, "{file}: {message}"),
            (0, false) => write!(f, "{file}: {field}: {message}"),
            (_, true) => write!(f, "{file}:{}:{}: {message}", self.line, self.col),
            (_, false) => write!(f, "{file}:{}:{}: {field}: {message}", self.line, self.col),
        }
    }
}

/// One or more input errors, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}
impl std::error::Error for InputError {}

impl InputError {
    /// An error about a whole file or a place without line information.
    pub fn whole(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        InputError {
            file: file.into(),
            line: 0,
            col: 0,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// True when the error chain holds an input error (exit code 2).
pub fn is_input_error(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.is::<InputErrors>() || e.is::<InputError>())
}

/// Converts a byte offset in `text` to a 1-based (line, column); columns count characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, rest)| rest)
        .chars()
        .count()
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 8), (2, 3));
    }

    #[test]
    fn display_names_file_line_field() {
        let e = InputError {
            file: "p.toml".into(),
            line: 3,
            col: 1,
            field: "memory".into(),
            message: "too small".into(),
        };
        assert_eq!(e.to_string(), "p.toml:3:1: memory: too small");
        assert!(is_input_error(&anyhow::Error::new(InputErrors(vec![e]))));
    }

    #[test]
    fn control_characters_from_input_are_shown_escaped() {
        let e = InputError {
            file: "a\u{1b}]0;x\u{7}.toml".into(),
            line: 1,
            col: 1,
            field: "\u{1b}[2J".into(),
            message: "unknown field `\r\u{202e}x`".into(),
        };
        let s = e.to_string();
        assert!(!s.chars().any(is_unsafe_char), "{s:?}");
        assert_eq!(
            s,
            "a\\u{1b}]0;x\\u{7}.toml:1:1: \\u{1b}[2J: unknown field `\\r\\u{202e}x`"
        );
    }

    #[test]
    fn invisible_and_reordering_characters_are_unsafe() {
        for c in [
            '\u{9b}',
            '\u{85}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{61c}',
            '\u{2060}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{2066}',
            '\u{e0041}',
            '\u{ad}',
            '\u{3164}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
        }
        for c in ['a', 'é', 'ж', '日', '✔', '…', ' ', '\u{fe0f}'] {
            assert!(!is_unsafe_char(c), "{c:?}");
        }
        assert_eq!(for_stream("a\tb\nc\u{200f}d\r"), "a\tb\nc\\u{200f}d\\r");
    }

    #[test]
    fn json_stays_json_and_shows_nothing_raw() {
        let v =
            serde_json::json!({"k\u{200f}": "x\u{9b}2J\u{1b}]52;c;AAAA\u{7}\u{1f600}\u{e0041}"});
        let doc = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&doc);
        assert!(
            !safe.chars().any(|c| is_unsafe_char(c) && c != '\n'),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }
}
