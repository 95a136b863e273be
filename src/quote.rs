//! The one quoting function: argv -> a string that a POSIX shell parses back into the same argv.
//!
//! Used wherever a shell string cannot be avoided: a command sent over SSH (the remote side
//! always runs it through the user's login shell) and `sh -c` scripts inside a container. Every
//! word is wrapped in single quotes, with embedded single quotes written as `'\''`; inside single
//! quotes a POSIX shell gives no character a special meaning, so `$()`, backticks, `;`, globs
//! and newlines arrive unchanged. NUL cannot be carried by any argv and is refused.

use anyhow::{Result, bail};

/// Quotes one word for a POSIX shell. Words made only of safe characters stay bare.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if safe {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes a whole argv into one command line. Refuses NUL bytes, which no argv can carry.
pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> Result<String> {
    let mut words = Vec::with_capacity(argv.len());
    for (i, w) in argv.iter().enumerate() {
        let w = w.as_ref();
        if w.contains('\0') {
            bail!("argument {i} contains a NUL byte, which cannot be passed to a command");
        }
        words.push(quote(w));
    }
    Ok(words.join(" "))
}

/// Converts OS arguments to UTF-8, refusing clearly what is not (a remote shell string and the
/// PVE tools work on text).
pub fn utf8_arg(arg: &std::ffi::OsStr) -> Result<&str> {
    match arg.to_str() {
        Some(s) => Ok(s),
        None => bail!(
            "argument {:?} is not valid UTF-8; provision only passes UTF-8 text to remote commands",
            arg
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// Parses `line` with the real /bin/sh and returns the argv it sees.
    fn sh_parse(line: &str) -> Vec<String> {
        let script = format!("for a in {line}; do printf '%s\\0' \"$a\"; done");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "sh failed on {line:?}");
        out.stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, rest)| rest.to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn hostile_words_survive_a_real_shell() {
        let argv = [
            "a b",
            "it's",
            "$(touch /tmp/pwned)",
            "`id`",
            "x;rm -rf /",
            "line1\nline2",
            "*",
            "",
            "\\",
            "'",
            "\"",
            "$HOME",
            "--flag=va'l ue",
            "ünïcødé",
        ];
        let line = quote_argv(&argv).unwrap();
        assert_eq!(sh_parse(&line), argv);
    }

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(quote("pct"), "pct");
        assert_eq!(
            quote("--features=nesting=1,fuse=1"),
            "--features=nesting=1,fuse=1"
        );
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn nul_is_refused_with_its_position() {
        let err = quote_argv(&["ok", "bad\0"]).unwrap_err().to_string();
        assert!(err.contains("argument 1") && err.contains("NUL"), "{err}");
    }

    #[test]
    fn non_utf8_is_refused_clearly() {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"ab\xffcd");
        let err = utf8_arg(bad).unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
        /// Fuzz: any argv without NUL parses back to itself through a real shell.
        #[test]
        fn quoted_argv_parses_back(argv in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)) {
            let line = quote_argv(&argv).unwrap();
            prop_assert_eq!(sh_parse(&line), argv);
        }
    }
}
