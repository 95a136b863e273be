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
