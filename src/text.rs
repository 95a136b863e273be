//! Text for a terminal: untrusted text made safe, widths measured as the terminal shows them,
//! explanations wrapped at word boundaries (a word is never cut), durations in few characters.
//!
//! Used by the live view ([`crate::view`]) and the batch summary ([`crate::summary`]).

use std::time::Duration;

/// Untrusted text (container names from input, errors and output from a node) made safe to
/// print: control characters and bidirectional overrides escaped ([`crate::error::escape_unsafe`],
/// the project's one escaping function), so that it cannot drive the terminal.
pub fn clean(s: &str) -> String {
    crate::error::escape_unsafe(s).into_owned()
}

/// Columns `s` takes on a terminal (wide characters count two).
pub fn width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// `s` padded with spaces to `w` columns (left-aligned); longer text is left as it is.
pub fn pad(s: &str, w: usize) -> String {
    let n = width(s);
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// `s` padded on the left to `w` columns (right-aligned).
pub fn pad_left(s: &str, w: usize) -> String {
    let n = width(s);
    if n >= w {
        s.to_string()
    } else {
        format!("{}{s}", " ".repeat(w - n))
    }
}

/// Wraps `text` into lines of at most `w` columns at spaces. A word wider than `w` gets a line
/// of its own and stays whole: it is never cut. Line breaks in `text` are kept; runs of spaces
/// collapse. An empty text gives no lines.
pub fn wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut cur = String::new();
        let mut cur_w = 0;
        for word in para.split(' ').filter(|x| !x.is_empty()) {
            let ww = width(word);
            if cur.is_empty() {
                cur.push_str(word);
                cur_w = ww;
            } else if cur_w + 1 + ww <= w {
                cur.push(' ');
                cur.push_str(word);
                cur_w += 1 + ww;
            } else {
                out.push(std::mem::take(&mut cur));
                cur.push_str(word);
                cur_w = ww;
            }
        }
        if !cur.is_empty() || (para.is_empty() && !text.is_empty()) {
            out.push(cur);
        }
    }
    out
}

/// [`wrap`] with a prefix on the first line and another on the following ones (a hanging
/// indent); `w` is the whole width, prefixes included.
pub fn wrap_prefixed(text: &str, w: usize, first: &str, rest: &str) -> Vec<String> {
    let pw = width(first).max(width(rest));
    wrap(text, w.saturating_sub(pw).max(20))
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("{}{l}", if i == 0 { first } else { rest }))
        .collect()
}

/// `text` in at most `w` columns: whole words, then `…` when something was left out. When not
/// even the first word fits, `…` alone (a word is never cut).
pub fn shorten(text: &str, w: usize) -> String {
    if width(text) <= w {
        return text.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for word in text.split(' ').filter(|x| !x.is_empty()) {
        let need = if out.is_empty() { 0 } else { 1 } + width(word);
        // Room must stay for the ellipsis.
        if used + need + 1 > w {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        used += need;
    }
    out.push('…');
    out
}

/// A duration in whole seconds: `42s`, `3m05s`, `1h02m`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

/// A duration with tenths under a minute: `4.2s`, `3m05s`.
pub fn secs_tenths(d: Duration) -> String {
    if d.as_secs() < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        secs(d)
    }
}

/// True when colour may be written to stderr (`stderr = true`) or stdout: the stream is a
/// terminal, `TERM` is set and not `dumb`, and `NO_COLOR` is not set (no-color.org).
pub fn colour(stderr: bool) -> bool {
    use std::io::IsTerminal;
    let tty = if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    colour_allowed(
        tty,
        std::env::var_os("TERM").as_deref(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// [`colour`]'s rule, pure.
pub fn colour_allowed(
    tty: bool,
    term: Option<&std::ffi::OsStr>,
    no_color: Option<&std::ffi::OsStr>,
) -> bool {
    tty && term.is_some_and(|t| !t.is_empty() && t != "dumb")
        && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// The width of the terminal on stdout (`stderr = false`) or stderr, or 80 when that is not a
/// terminal.
pub fn terminal_width(stderr: bool) -> usize {
    terminal_size(stderr).map_or(80, |(w, _)| w)
}

/// (columns, rows) of the terminal on stdout or stderr, when it is one.
pub fn terminal_size(stderr: bool) -> Option<(usize, usize)> {
    let term = if stderr {
        console::Term::stderr()
    } else {
        console::Term::stdout()
    };
    term.size_checked()
        .map(|(rows, cols)| (cols as usize, rows as usize))
        .filter(|(c, r)| *c > 0 && *r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_never_cuts_a_word() {
        let t = "the template index is empty: `pveam update` runs first; debian-12-standard_12.7-1_amd64.tar.zst is the newest";
        let lines = wrap(t, 30);
        for l in &lines {
            assert!(
                width(l) <= 30 || !l.contains(' '),
                "line too wide and not one word: {l:?}"
            );
        }
        // Every word survives whole, in order.
        let words: Vec<&str> = t.split(' ').collect();
        let back: Vec<String> = lines
            .iter()
            .flat_map(|l| l.split(' ').map(String::from))
            .collect();
        assert_eq!(words, back);
        // The long word has a line of its own.
        assert!(lines.contains(&"debian-12-standard_12.7-1_amd64.tar.zst".to_string()));
        assert_eq!(wrap("", 10), Vec::<String>::new());
        assert_eq!(wrap("a b", 10), vec!["a b"]);
        assert_eq!(wrap("one\ntwo three", 5), vec!["one", "two", "three"]);
    }

    #[test]
    fn wrap_counts_columns_not_bytes() {
        // "é" is two bytes, one column: five of them fit in five columns.
        assert_eq!(wrap("ééééé ééééé", 11), vec!["ééééé ééééé"]);
        assert_eq!(wrap("ééééé ééééé", 10), vec!["ééééé", "ééééé"]);
    }

    #[test]
    fn wrap_prefixed_hangs_the_indent() {
        let l = wrap_prefixed("aaaa bbbb cccc dddd eeee ffff", 30, "  x ", "    ");
        assert_eq!(l, vec!["  x aaaa bbbb cccc dddd eeee", "    ffff"]);
    }

    #[test]
    fn shorten_keeps_whole_words_and_marks_the_cut() {
        assert_eq!(shorten("install docker", 20), "install docker");
        assert_eq!(shorten("wait for init and network", 14), "wait for init…");
        assert_eq!(shorten("wait for init and network", 13), "wait for…");
        assert_eq!(shorten("supercalifragilistic", 5), "…");
        assert_eq!(shorten("abc", 0), "");
        assert!(width(&shorten("wait for init and network", 14)) <= 14);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(secs(Duration::from_millis(42_900)), "42s");
        assert_eq!(secs(Duration::from_secs(185)), "3m05s");
        assert_eq!(secs(Duration::from_secs(3720)), "1h02m");
        assert_eq!(secs_tenths(Duration::from_millis(4_250)), "4.2s");
        assert_eq!(secs_tenths(Duration::from_secs(65)), "1m05s");
    }

    #[test]
    fn colour_only_on_a_terminal_that_takes_it() {
        use std::ffi::OsStr;
        let xterm = Some(OsStr::new("xterm-256color"));
        assert!(colour_allowed(true, xterm, None));
        assert!(!colour_allowed(false, xterm, None));
        assert!(!colour_allowed(true, Some(OsStr::new("dumb")), None));
        assert!(!colour_allowed(true, None, None));
        assert!(!colour_allowed(true, xterm, Some(OsStr::new("1"))));
        assert!(colour_allowed(true, xterm, Some(OsStr::new(""))));
    }

    #[test]
    fn clean_escapes_control_characters() {
        assert_eq!(clean("a\x1b[2Jb\rc"), "a\\u{1b}[2Jb\\rc");
        assert_eq!(clean("plain"), "plain");
    }
}
