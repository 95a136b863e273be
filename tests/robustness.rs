//! The real binary against a node made of scripts (tests/support/pve_path.rs): a hung command is
//! killed with its process group when its step's time bound runs out, and a second Ctrl-C
//! stops the running commands instead of orphaning them.

use crate::support::pve_path::{PvePath, alive, gone_within};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `provision HOST --profile docker-auto --storage local --yes --output json` on the fake node.
fn provision(node: &PvePath, host: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provision"));
    c.args([
        host,
        "--profile",
        "docker-auto",
        "--storage",
        "local",
        "--yes",
    ])
    .args(["--output", "json"])
    .env("PATH", node.path())
    .env("HOME", node.dir.path())
    .env("XDG_STATE_HOME", node.dir.path())
    .env("CI", "1")
    .stdin(Stdio::null());
    c
}

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a PID this test started.
    unsafe { libc::kill(pid, sig) };
}

#[test]
fn a_hung_step_is_killed_with_its_process_group_and_the_report_names_it() {
    let node = PvePath::hanging_download();
    let host = format!("hang{}", std::process::id());
    let out = provision(&node, &host)
        .args(["--step-timeout", "template=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    assert_eq!(out.status.code(), Some(1), "{r:#}\n{stderr}");
    let failure = &r["containers"][0]["failure"];
    assert_eq!(
        failure["step"], "download template ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "{r:#}"
    );
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`pveam download local ubuntu-24.04-standard_24.04-2_amd64.tar.zst` did not finish within 1 s"),
        "{message}"
    );
    // The whole process group is gone: the download and what it started.
    let (pid, child) = node.wait_for_hang(Duration::from_secs(1));
    assert!(!alive(pid), "the hung pveam ({pid}) is still running");
    assert!(
        gone_within(child, Duration::from_secs(10)),
        "the child of the hung pveam ({child}) was orphaned"
    );
}

#[test]
fn a_second_interrupt_stops_the_running_commands_and_says_what_was_cut_short() {
    let node = PvePath::hanging_download();
    let host = format!("intr{}", std::process::id());
    let mut child = provision(&node, &host)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let (pid, grandchild) = node.wait_for_hang(Duration::from_secs(60));
    let provision = child.id() as i32;
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => {
                let hit = l.contains(what);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(_) => panic!(
                "no line with {what:?} on stderr within 30 s:\n{}",
                seen.join("\n")
            ),
        }
    };
    kill(provision, libc::SIGINT);
    wait_for("interrupt: no new container is started");
    kill(provision, libc::SIGINT);
    wait_for("stopped: `pveam download local ubuntu-24.04-standard_24.04-2_amd64.tar.zst`");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        gone_within(pid, Duration::from_secs(10)),
        "the running `pveam download` ({pid}) was orphaned"
    );
    assert!(
        gone_within(grandchild, Duration::from_secs(10)),
        "the child of `pveam download` ({grandchild}) was orphaned"
    );
}

/// Runs `cmd` with stdout (or stderr) a pipe whose reading end is closed before the binary
/// writes: every write fails with EPIPE. Returns the exit code.
fn with_broken_pipe(mut cmd: Command, stdout: bool) -> Option<i32> {
    if stdout {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap().code()
}

#[test]
fn the_exit_status_tells_the_outcome_whatever_became_of_stdout_and_stderr() {
    // A run that fails (the template download fails) prints its report on stdout: exit 1,
    // also when nobody reads stdout any more (it was 0) or stdout is closed.
    let node = PvePath::failing_download();
    let out = provision(&node, "web1").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!out.stdout.is_empty(), "the report is on stdout");
    assert_eq!(with_broken_pipe(provision(&node, "web1"), true), Some(1));
    assert_eq!(with_broken_pipe(provision(&node, "web1"), false), Some(1));
    let closed = |redirect: &str, args: &str| {
        Command::new("sh")
            .args([
                "-c",
                &format!("exec \"$0\" {args} {redirect}"),
                env!("CARGO_BIN_EXE_provision"),
            ])
            .env("PATH", node.path())
            .env("HOME", node.dir.path())
            .env("CI", "1")
            .stdin(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    let run = "web1 --profile docker-auto --storage local --yes --output json";
    assert_eq!(closed(">&-", run), Some(1));
    assert_eq!(closed("2>&- >/dev/null", run), Some(1));
    assert_eq!(closed(">&- 2>&-", run), Some(1));
    // Bad input: 2, never 101 (a panic writing the error to a closed or broken stderr).
    let bad = "web1 --profile ./nope.toml";
    assert_eq!(closed("2>&-", bad), Some(2));
    assert_eq!(closed(">&- 2>&-", bad), Some(2));
    let mut c = provision(&node, "web1");
    c.args(["--memory", "1"]);
    assert_eq!(with_broken_pipe(c, false), Some(2));
    // Done: 0, with a reader that stops after one byte.
    let mut c = Command::new(env!("CARGO_BIN_EXE_provision"));
    c.args(["completions", "bash"]);
    assert_eq!(with_broken_pipe(c, true), Some(0));
}

#[test]
fn a_fifo_or_a_device_link_in_a_profile_directory_is_skipped_not_opened() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("profiles");
    std::fs::create_dir(&dir).unwrap();
    let fifo = std::ffi::CString::new(dir.join("hang.toml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.toml")).unwrap();
    std::fs::write(
        dir.join("mine.toml"),
        "description = \"mine\"\nextends = \"docker\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["profiles"])
        .current_dir(t.path())
        .env("HOME", t.path())
        .env("XDG_CONFIG_HOME", t.path().join("config"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.contains("mine") && !text.contains("hang") && !text.contains("zero"),
        "{text}"
    );
}
