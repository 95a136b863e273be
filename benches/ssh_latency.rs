//! Per-command latency: one reused `Ssh` session vs. spawning the `ssh` client per command.
//!
//! Starts the test harness's throwaway sshd on 127.0.0.1 and runs `true` BENCH_N times (default
//! 200; BENCH_N=5 for a quick check) each way. Prints a markdown table and one JSON line.
//! The server starts the user's login shell for every command either way; that cost is timed
//! locally as the "floor" so that the transport's own share can be read off.
//! `PROVISION_SKIP_SSH=1` skips it.

mod common;

#[path = "../tests/support/sshd.rs"]
mod sshd;

use provision::cmd::Cmd;
use provision::transport::Transport;
use provision::transport::ssh::{Ssh, SshOptions, SshTarget};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Stats {
    p10: f64,
    median: f64,
    p90: f64,
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort();
    let at = |p: f64| {
        let i = (p * (samples.len() - 1) as f64).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    Stats {
        p10: at(0.10),
        median: at(0.50),
        p90: at(0.90),
    }
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(200);
    let Some(server) = sshd::Sshd::start() else {
        return;
    };
    let known_hosts = server.dir().join("known_hosts");
    std::fs::write(&known_hosts, server.known_hosts_line()).unwrap();
    let target = SshTarget {
        user: server.user.clone(),
        host: "127.0.0.1".into(),
        port: server.port,
    };
    let opts = SshOptions {
        identities: vec![server.client_key.clone()],
        known_hosts: vec![known_hosts.clone()],
        use_agent: false,
        ..SshOptions::default()
    };

    let started = Instant::now();
    let ssh = Ssh::connect(target, &opts).unwrap_or_else(|e| panic!("{e:#}\n{}", server.logs()));
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let cmd = Cmd::new("true");
    let client = || common::ssh_client(&server.client_key, server.port, &known_hosts, &server.user);
    // What the server does per command anyway: start the login shell, which (bash started by
    // sshd) reads ~/.bashrc. Timed locally, started the way sshd starts it.
    let (home, shell) = account(&server.user);
    let login_shell = || {
        let mut c = Command::new(&shell);
        c.args(["-c", "true"])
            .env_clear()
            .env("HOME", &home)
            .env("USER", &server.user)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/games")
            .env("SSH_CLIENT", "127.0.0.1 50000 22")
            .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
            .current_dir(&home)
            .stdin(Stdio::null());
        c
    };
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };

    // Interleaved, so that all three see the same background load; the first rounds warm up.
    let (mut session, mut spawned, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 3 {
        let s = time(&mut || assert!(ssh.run(&cmd, None).unwrap().success()));
        let c = time(&mut || {
            let out = client().output().expect("running ssh");
            assert!(
                out.status.success(),
                "ssh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        let f = time(&mut || assert!(login_shell().status().unwrap().success()));
        if i >= 3 {
            session.push(s);
            spawned.push(c);
            floor.push(f);
        }
    }

    // Paired differences (same round) estimate what each way adds to the server's own work.
    let over = |xs: &[Duration], fs: &[Duration]| {
        let mut d: Vec<f64> = xs
            .iter()
            .zip(fs)
            .map(|(x, f)| (x.as_secs_f64() - f.as_secs_f64()) * 1000.0)
            .collect();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    };
    let session_over = over(&session, &floor);
    let spawn_over = over(&spawned, &floor);
    let s = stats(&mut session);
    let c = stats(&mut spawned);
    let f = stats(&mut floor);
    let ratio = c.median / s.median;
    println!(
        "\nssh latency of `true` on 127.0.0.1, n = {n} each, interleaved (connect once: \
         {connect_ms:.1} ms)\n"
    );
    println!("| method | p10 ms | median ms | p90 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| reused Ssh session (libssh2) | {:.3} | {:.3} | {:.3} |",
        s.p10, s.median, s.p90
    );
    println!(
        "| `ssh` client spawned per command | {:.3} | {:.3} | {:.3} |",
        c.p10, c.median, c.p90
    );
    println!(
        "| floor: the login shell alone (`{shell} -c true`, local) | {:.3} | {:.3} | {:.3} |",
        f.p10, f.median, f.p90
    );
    println!("| ratio spawn / session (median) | | {ratio:.2}x | |");
    println!(
        "| above the floor (median of paired differences): session / spawn | | {session_over:.1} \
         / {spawn_over:.1} | |\n"
    );
    let json = serde_json::json!({
        "bench": "ssh_latency",
        "n": n,
        "connect_ms": round3(connect_ms),
        "session_ms": {"p10": round3(s.p10), "median": round3(s.median), "p90": round3(s.p90)},
        "spawn_ms": {"p10": round3(c.p10), "median": round3(c.median), "p90": round3(c.p90)},
        "shell_floor_ms": {"p10": round3(f.p10), "median": round3(f.median), "p90": round3(f.p90)},
        "ratio_median": round3(ratio),
        "above_floor_ms": {"session": round3(session_over), "spawn": round3(spawn_over)},
    });
    println!("{json}");
}

/// Home directory and login shell of `user`.
fn account(user: &str) -> (String, String) {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .expect("running getent");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let fields: Vec<&str> = line.split(':').collect();
    match fields.as_slice() {
        [.., home, shell] if !shell.is_empty() => (home.to_string(), shell.to_string()),
        _ => ("/".to_string(), "/bin/sh".to_string()),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
