//! Measurement 5, second half: benches/ssh_latency.rs on a server whose login shell is a stock
//! one.
//!
//! sshd runs every command through the user's login shell, and bash started by sshd reads
//! `~/.bashrc`. On this machine root's `~/.bashrc` runs `pyenv init` (~150 ms), which both ways
//! pay per command and which hides what the transport costs. Here the throwaway sshd of the
//! tests gets `SetEnv HOME=DIR`, DIR holding Debian's stock `/etc/skel/.bashrc` and `.profile`
//! (what root has on a fresh PVE node), so the shell starts in ~2 ms; nothing of the machine's
//! is changed. Same method as ssh_latency.rs: `true` BENCH_N times (default 200) each way,
//! interleaved, after 3 warm-up rounds.

#[path = "../tests/support/sshd.rs"]
mod sshd;

mod common;

use common::{goal, json_line, r4, summary};
use provision::cmd::Cmd;
use provision::transport::Transport;
use provision::transport::ssh::{Ssh, SshOptions, SshTarget};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(200);
    let home = tempfile::tempdir().expect("a temporary directory");
    for f in [".bashrc", ".profile"] {
        let src = std::path::Path::new("/etc/skel").join(f);
        if src.exists() {
            std::fs::copy(&src, home.path().join(f)).expect("copying /etc/skel");
        }
    }
    let Some(server) = sshd::Sshd::start_with(&format!("SetEnv HOME={}", home.path().display()))
    else {
        println!("(PROVISION_SKIP_SSH=1: the stock-shell SSH measurement was skipped)\n");
        return;
    };
    let known_hosts = server.dir().join("known_hosts");
    std::fs::write(&known_hosts, server.known_hosts_line()).unwrap();
    let ssh = Ssh::connect(
        SshTarget {
            user: server.user.clone(),
            host: "127.0.0.1".into(),
            port: server.port,
        },
        &SshOptions {
            identities: vec![server.client_key.clone()],
            known_hosts: vec![known_hosts.clone()],
            use_agent: false,
            ..SshOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", server.logs()));
    let cmd = Cmd::new("true");
    let spawn = || {
        let out = common::ssh_client(&server.client_key, server.port, &known_hosts, &server.user)
            .output()
            .expect("running ssh");
        assert!(
            out.status.success(),
            "ssh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let shell = || {
        let st = Command::new("/bin/bash")
            .args(["-c", "true"])
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("SSH_CLIENT", "127.0.0.1 50000 22")
            .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
            .stdin(Stdio::null())
            .status()
            .expect("running bash");
        assert!(st.success());
    };
    let ms = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (mut s, mut c, mut f) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 3 {
        let a = ms(&|| assert!(ssh.run(&cmd, None).unwrap().success()));
        let b = ms(&spawn);
        let d = ms(&shell);
        if i >= 3 {
            s.push(a);
            c.push(b);
            f.push(d);
        }
    }
    let (s, c, f) = (summary(&s), summary(&c), summary(&f));
    let ratio = c.median / s.median;
    println!(
        "The same on a server whose login shell reads Debian's stock `~/.bashrc` \
         (benches/ssh_stock_shell.rs: sshd `SetEnv HOME=` a copy of /etc/skel), n = {n} each, \
         interleaved; ms:\n"
    );
    println!("| method | p10 | median | p90 |");
    println!("|---|---:|---:|---:|");
    for (what, x) in [
        ("reused Ssh session (libssh2)", s),
        ("`ssh` client spawned per command", c),
        ("floor: the stock login shell alone (local)", f),
    ] {
        println!("| {what} | {:.3} | {:.3} | {:.3} |", x.p10, x.median, x.p90);
    }
    println!("| ratio spawn / session (median) | | {ratio:.1}x | |\n");
    goal(
        "SSH reuse vs spawn per command, server with a stock login shell",
        ">= 10x",
        &format!("{ratio:.1}x"),
        Some(ratio >= 10.0),
    );
    json_line(&serde_json::json!({
        "bench": "ssh_stock_shell", "n": n,
        "session_ms": s.json(), "spawn_ms": c.json(), "shell_floor_ms": f.json(),
        "ratio_median": r4(ratio),
    }));
}
