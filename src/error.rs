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

/// True for characters that must not reach a terminal as they are: control characters (escape
/// sequences, carriage returns that overwrite a line) and bidirectional overrides, which can make
/// text read differently from what it is.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe_char`] written as an escape (`\u{1b}`).
pub fn escape_unsafe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_default());
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
}
