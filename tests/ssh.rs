//! The SSH transport against a real OpenSSH server (see `support::sshd`).
//!
//! Every test starts its own sshd and uses its own known_hosts file; no test sleeps for a fixed
//! time: waits are bounded and end as soon as the awaited thing happens.

use crate::support::sshd::{self, Sshd};
use provision::cmd::Cmd;
use provision::profile::Access;
use provision::transport::Transport;
use provision::transport::local::Local;
use provision::transport::ssh::{Ssh, SshOptions, SshTarget};
use provision::transport::ssh_ct::{CtAccess, SshContainer, forget_container_key};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget {
        user: sshd.user.clone(),
        host: "127.0.0.1".into(),
        port: sshd.port,
    }
}

/// Options with the test's own key and known_hosts file (empty), no agent.
fn options(sshd: &Sshd, known_hosts: &Path) -> SshOptions {
    SshOptions {
        identities: vec![sshd.client_key.clone()],
        known_hosts: vec![known_hosts.to_path_buf()],
        use_agent: false,
        ..SshOptions::default()
    }
}

/// Options that trust the server's host key.
fn trusting(sshd: &Sshd) -> SshOptions {
    let kh = sshd.dir().join("known_hosts.trusted");
    fs::write(&kh, sshd.known_hosts_line()).unwrap();
    options(sshd, &kh)
}

fn connect(sshd: &Sshd) -> Ssh {
    Ssh::connect(target(sshd), &trusting(sshd))
        .unwrap_or_else(|e| panic!("{e:#}\nsshd log:\n{}", sshd.logs()))
}

fn err_text(r: anyhow::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn commands_report_exit_codes_and_keep_stdout_and_stderr_apart() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    assert_eq!(
        ssh.label(),
        format!("ssh:{}@127.0.0.1:{}", sshd.user, sshd.port)
    );
    let out = ssh
        .run(
            &Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            None,
        )
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    let ok = ssh.run(&Cmd::new("true"), None).unwrap();
    assert!(ok.success() && ok.stdout.is_empty() && ok.stderr.is_empty());
    let missing = ssh
        .run(&Cmd::new("no-such-program-provision"), None)
        .unwrap();
    assert_eq!(missing.status, 127, "{missing:?}");
}

#[test]
fn stdin_reaches_the_command_and_big_output_on_both_streams_does_not_deadlock() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    let out = ssh.run(&Cmd::new("cat"), Some(b"hello\nworld")).unwrap();
    assert_eq!(out.stdout_text(), "hello\nworld");
    // 3 MB on stderr before the command even reads its 2 MB of stdin, echoed to stdout.
    let input: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let cmd = Cmd::new("sh").args(["-c", "head -c 3000000 /dev/zero >&2; cat"]);
    let out = ssh.run(&cmd, Some(&input)).unwrap();
    assert!(out.success());
    assert_eq!(out.stderr.len(), 3_000_000);
    assert!(out.stdout == input, "stdout differs from stdin");
    // A command that does not read its stdin still finishes.
    let out = ssh.run(&Cmd::new("true"), Some(&input)).unwrap();
    assert!(out.success());
}

#[test]
fn hostile_arguments_arrive_unchanged() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    let hostile = [
        "plain",
        "with space",
        "it's",
        "\"double\"",
        "$(touch /tmp/provision-pwned)",
        "`id`",
        "a;rm -rf /nonexistent",
        "line1\nline2",
        "tab\there",
        "",
        "*",
        "$HOME",
        "\\",
        "'",
        "-n",
        "--",
        "|&><",
        "ünïcødé ✓",
    ];
    let out = ssh
        .run(&Cmd::new("printf").arg("%s\\0").args(hostile), None)
        .unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    let mut got: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    assert_eq!(got.pop().as_deref(), Some(""), "output ends with NUL");
    assert_eq!(got, hostile);
}

#[test]
fn many_threads_share_one_session() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    std::thread::scope(|s| {
        for t in 0..4 {
            let ssh = &ssh;
            s.spawn(move || {
                for i in 0..15 {
                    let word = format!("t{t}-{i}");
                    let out = ssh.run(&Cmd::new("echo").arg(&word), None).unwrap();
                    assert_eq!(out.stdout_text(), format!("{word}\n"));
                }
            });
        }
    });
}

/// Deterministic bytes that do not compress or repeat.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_20_mb_put_arrives_intact_with_its_mode_and_private_parents() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    let data = noise(20 * 1024 * 1024);
    let dest = sshd.dir().join("up/nested/file.bin");
    let dest_s = dest.to_str().unwrap();
    ssh.put(&data, dest_s, 0o640).unwrap();

    let out = ssh.run(&Cmd::new("sha256sum").arg(dest_s), None).unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    let remote = out.stdout_text();
    assert_eq!(
        remote.split_whitespace().next().unwrap(),
        hex::encode(Sha256::digest(&data))
    );
    assert_eq!(mode_of(&dest), 0o640);
    assert_eq!(mode_of(dest.parent().unwrap()), 0o700);
    assert_eq!(mode_of(&sshd.dir().join("up")), 0o700);

    // Replacing an existing file works and leaves no temporary file behind.
    ssh.put(b"small", dest_s, 0o600).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"small");
    assert_eq!(mode_of(&dest), 0o600);
    let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["file.bin"]);
}

#[test]
fn a_failed_put_leaves_nothing_at_the_destination() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    // The parent is a file: the upload cannot start.
    let blocker = sshd.dir().join("blocker");
    fs::write(&blocker, "x").unwrap();
    let dest = blocker.join("file");
    let err = err_text(ssh.put(b"data", dest.to_str().unwrap(), 0o600));
    assert!(err.contains("not a directory"), "{err}");
    // The destination is a directory: the final rename refuses, the temp file goes away.
    let dir_dest = sshd.dir().join("taken");
    fs::create_dir(&dir_dest).unwrap();
    let err = err_text(ssh.put(b"data", dir_dest.to_str().unwrap(), 0o600));
    assert!(err.contains("mv"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(sshd.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".provision-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unknown_host_key_is_refused_with_its_fingerprint() {
    let Some(sshd) = Sshd::start() else { return };
    let kh = sshd.dir().join("empty_known_hosts");
    let err = err_text(Ssh::connect(target(&sshd), &options(&sshd, &kh)));
    assert!(err.contains(&sshd.host_key_fingerprint()), "{err}");
    assert!(err.contains("ED25519"), "{err}");
    assert!(err.contains("not known"), "{err}");
    assert!(err.contains("--accept-new-host-key"), "{err}");
    assert!(err.contains("ssh-keyscan"), "{err}");
    assert!(
        !kh.exists(),
        "nothing is recorded without --accept-new-host-key"
    );
}

#[test]
fn a_key_known_for_port_22_does_not_vouch_for_another_port() {
    let Some(sshd) = Sshd::start() else { return };
    let kh = sshd.dir().join("port22_known_hosts");
    // The right key, but recorded for 127.0.0.1 (port 22), not [127.0.0.1]:PORT.
    let line = sshd.known_hosts_line();
    let plain = line.replacen(&format!("[127.0.0.1]:{}", sshd.port), "127.0.0.1", 1);
    fs::write(&kh, plain).unwrap();
    let err = err_text(Ssh::connect(target(&sshd), &options(&sshd, &kh)));
    assert!(err.contains("not known"), "{err}");
}

#[test]
fn hashed_known_hosts_entries_are_recognised() {
    let Some(sshd) = Sshd::start() else { return };
    let kh = sshd.dir().join("hashed_known_hosts");
    fs::write(&kh, format!("# comment\n\n{}", sshd.known_hosts_line())).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(fs::read_to_string(&kh).unwrap().contains("|1|"));
    Ssh::connect(target(&sshd), &options(&sshd, &kh)).unwrap();
}

#[test]
fn accept_new_host_key_records_it_and_the_next_connect_passes() {
    let Some(sshd) = Sshd::start() else { return };
    let kh = sshd.dir().join("home/.ssh/known_hosts");
    let mut opts = options(&sshd, &kh);
    opts.accept_new_host_key = true;
    let ssh = Ssh::connect(target(&sshd), &opts).unwrap();
    assert!(ssh.run(&Cmd::new("true"), None).unwrap().success());
    let recorded = fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded, sshd.known_hosts_line());
    assert_eq!(mode_of(&kh), 0o600);
    assert_eq!(mode_of(kh.parent().unwrap()), 0o700);

    opts.accept_new_host_key = false;
    Ssh::connect(target(&sshd), &opts).unwrap();
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        recorded,
        "nothing added twice"
    );
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    let other = sshd.dir().join("other_host_key");
    sshd::keygen(&other);
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key = other_pub.split_whitespace().nth(1).unwrap();
    let kh = sshd.dir().join("changed_known_hosts");
    let before = format!("[127.0.0.1]:{} ssh-ed25519 {other_key}\n", sshd.port);
    fs::write(&kh, &before).unwrap();
    let other_fp = {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(other.with_extension("pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };

    let mut opts = options(&sshd, &kh);
    opts.accept_new_host_key = true;
    let err = err_text(Ssh::connect(target(&sshd), &opts));
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
    assert!(
        err.contains(&sshd.host_key_fingerprint()),
        "new fingerprint: {err}"
    );
    assert!(err.contains(&other_fp), "old fingerprint: {err}");
    assert!(
        err.contains(&format!("{}:1", kh.display())),
        "offending line: {err}"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        before,
        "known_hosts untouched"
    );
}

#[test]
fn a_wrong_user_key_fails_with_a_clear_authentication_error() {
    let Some(sshd) = Sshd::start() else { return };
    let wrong = sshd.dir().join("wrong_key");
    sshd::keygen(&wrong);
    let mut opts = trusting(&sshd);
    opts.identities = vec![wrong.clone(), sshd.dir().join("no_such_key")];
    let err = err_text(Ssh::connect(target(&sshd), &opts));
    let expected = format!(
        "authentication failed for {}@127.0.0.1:{} (tried: key {}, key {} (no such file))",
        sshd.user,
        sshd.port,
        wrong.display(),
        sshd.dir().join("no_such_key").display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("publickey"), "the server's methods: {err}");
}

#[test]
fn an_encrypted_key_is_used_with_the_passphrase_from_the_named_variable() {
    let Some(sshd) = Sshd::start() else { return };
    // The passphrase comes from an environment variable the process already has (PATH), so
    // that this test need not set one (set_var races with other threads).
    let Ok(passphrase) = std::env::var("PATH") else {
        return;
    };
    let key = sshd.dir().join("encrypted_key");
    sshd::keygen_with(&key, &passphrase);
    fs::write(
        sshd.dir().join("authorized_keys"),
        fs::read(key.with_extension("pub")).unwrap(),
    )
    .unwrap();
    let mut opts = trusting(&sshd);
    opts.identities = vec![key.clone()];

    opts.passphrase_env = Some("PROVISION_TEST_SURELY_UNSET_VARIABLE".into());
    let err = err_text(Ssh::connect(target(&sshd), &opts));
    assert!(err.contains("encrypted"), "{err}");
    assert!(
        err.contains("PROVISION_TEST_SURELY_UNSET_VARIABLE is not set"),
        "{err}"
    );
    assert!(!err.contains(&passphrase));

    opts.passphrase_env = Some("PATH".into());
    let ssh = Ssh::connect(target(&sshd), &opts).unwrap();
    assert!(ssh.run(&Cmd::new("true"), None).unwrap().success());
}

#[test]
fn connection_refused_names_the_host_port_and_step() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = SshTarget::parse(&format!("root@127.0.0.1:{port}")).unwrap();
    let err = err_text(Ssh::connect(t, &SshOptions::default()));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("TCP connect"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn a_server_that_never_answers_times_out_naming_the_host_port_and_step() {
    // The kernel accepts the connection; nobody ever speaks SSH on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let opts = SshOptions {
        connect_timeout: Duration::from_secs(1),
        ..SshOptions::default()
    };
    let started = Instant::now();
    let t = SshTarget::parse(&format!("root@127.0.0.1:{port}")).unwrap();
    let err = err_text(Ssh::connect(t, &opts));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up in time"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("handshake"), "{err}");
    assert!(err.contains("no answer within 1 s"), "{err}");
}

#[test]
fn a_command_timeout_names_the_host_and_the_masked_command() {
    let Some(sshd) = Sshd::start() else { return };
    let mut opts = trusting(&sshd);
    opts.command_timeout = Some(Duration::from_secs(3));
    let ssh = Ssh::connect(target(&sshd), &opts).unwrap();
    let marker = format!("provision-timeout-{}", sshd.port);
    let cmd = Cmd::new("sh")
        .args(["-c", "sleep 20; : \"$1\"", &marker])
        .secret("hunter2");
    let started = Instant::now();
    let err = err_text(ssh.run(&cmd, None));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up in time"
    );
    assert!(err.contains(&ssh.label()), "{err}");
    assert!(err.contains("did not finish within 3 s"), "{err}");
    assert!(err.contains("sleep 20"), "{err}");
    assert!(err.contains("***") && !err.contains("hunter2"), "{err}");
    // The session is still usable.
    let out = ssh.run(&Cmd::new("echo").arg("still here"), None).unwrap();
    assert_eq!(out.stdout_text(), "still here\n");
}

#[test]
fn a_dropped_connection_is_an_error_naming_the_host_and_the_step() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    // The command's parent is the server process of this connection: kill it.
    let err = err_text(ssh.run(&Cmd::new("sh").args(["-c", "kill -9 $PPID; sleep 5"]), None));
    assert!(err.contains(&ssh.label()), "{err}");
    assert!(
        err.contains("connection lost while running `sh -c"),
        "{err}"
    );
    let err = err_text(ssh.run(&Cmd::new("true"), None));
    assert!(
        err.contains(&ssh.label()) && err.contains("`true`"),
        "{err}"
    );
}

#[test]
fn a_held_lock_makes_the_second_taker_wait_give_up_and_later_succeed() {
    let Some(sshd) = Sshd::start() else { return };
    let first = connect(&sshd);
    let second = connect(&sshd);
    let name = format!("provision-test-{}-{}", std::process::id(), sshd.port);

    let held = first.lock(&name, Duration::from_secs(10)).unwrap();
    // The holder's session keeps working while its lock channel stays open.
    let out = first.run(&Cmd::new("echo").arg("busy"), None).unwrap();
    assert_eq!(out.stdout_text(), "busy\n");

    let started = Instant::now();
    let err = err_text(second.lock(&name, Duration::from_millis(500)));
    assert!(started.elapsed() >= Duration::from_millis(400), "it waited");
    assert!(err.contains("another provision run holds it"), "{err}");
    assert!(
        err.contains(&second.label()) && err.contains(&name),
        "{err}"
    );
    // Same session, second guard: also excluded.
    let err = err_text(first.lock(&name, Duration::from_millis(100)));
    assert!(err.contains("another provision run holds it"), "{err}");

    drop(held);
    let again = second.lock(&name, Duration::from_secs(20)).unwrap();
    drop(again);
    let lock_file = PathBuf::from(format!("/run/lock/provision/{name}.lock"));
    let _ = fs::remove_file(lock_file);
}

#[test]
fn lock_names_cannot_leave_the_lock_directory() {
    let Some(sshd) = Sshd::start() else { return };
    let ssh = connect(&sshd);
    for bad in ["../etc/passwd", "a/b", "", ".hidden", "x y"] {
        let err = err_text(ssh.lock(bad, Duration::from_millis(10)));
        assert!(err.contains("invalid lock name"), "{bad:?}: {err}");
    }
}

/// A container reached over SSH at 127.0.0.1:PORT (the test's sshd), as provision opens it.
fn container(sshd: &Sshd, known_hosts: &Path, created: bool) -> SshContainer {
    let access = Access {
        method: provision::profile::AccessMethod::Ssh,
        address: Some("127.0.0.1".into()),
        port: sshd.port,
        identity: Some(sshd.client_key.display().to_string()),
    };
    SshContainer::new(
        Arc::new(Local),
        "pve1",
        100,
        CtAccess {
            access: &access,
            static_ip: None,
            known_hosts: known_hosts.to_path_buf(),
            created,
        },
        &options(sshd, known_hosts),
    )
}

#[test]
fn a_container_created_anew_at_the_same_address_is_reached_but_a_changed_key_otherwise_is_refused()
{
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    // Containers are reached as root; the test's sshd logs in as the user running the tests.
    assert_eq!(
        sshd.user, "root",
        "this test needs root (as CI and ./run-tests run): provision logs into containers as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts_containers");
    let echo = Cmd::new("echo").arg("hello");
    // First contact with a container this run created: its key is recorded.
    let first = container(&sshd, &kh, true);
    assert_eq!(err_free(first.run(&echo, None)), "hello\n");
    let recorded = fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    drop(first);

    // The container is destroyed and another is created at the same address: new host key.
    sshd.restart_with_new_host_key();

    // A run that did not create it refuses the changed key, as for any host.
    let err = err_text(container(&sshd, &kh, false).run(&echo, None));
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );

    // The run that created it forgets the stale key and records the new one.
    let fresh = container(&sshd, &kh, true);
    assert_eq!(err_free(fresh.run(&echo, None)), "hello\n");
    let now = fs::read_to_string(&kh).unwrap();
    assert_eq!(now.lines().count(), 1, "{now}");
    assert_ne!(now, recorded);
    assert!(
        now.contains(sshd.known_hosts_line().split_whitespace().nth(2).unwrap()),
        "{now}"
    );
}

/// `provision destroy` forgets the key recorded for a container's fixed address.
#[test]
fn forgetting_a_containers_key_keeps_the_other_entries() {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts_containers");
    fs::write(
        &kh,
        "10.0.0.5 ssh-ed25519 AAAAold\n[10.0.0.5]:2222 ssh-ed25519 AAAAport\n10.0.0.50 ssh-ed25519 AAAAother\n",
    )
    .unwrap();
    assert_eq!(forget_container_key(&kh, "10.0.0.5", 22).unwrap(), 1);
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        "[10.0.0.5]:2222 ssh-ed25519 AAAAport\n10.0.0.50 ssh-ed25519 AAAAother\n"
    );
    assert_eq!(forget_container_key(&kh, "10.0.0.5", 2222).unwrap(), 1);
    assert_eq!(forget_container_key(&kh, "10.0.0.5", 2222).unwrap(), 0);
    assert_eq!(mode_of(&kh) & 0o777, 0o600);
    let missing = dir.path().join("none");
    assert_eq!(forget_container_key(&missing, "10.0.0.5", 22).unwrap(), 0);
}

fn err_free(r: anyhow::Result<provision::cmd::Output>) -> String {
    match r {
        Ok(o) => o.stdout_text(),
        Err(e) => panic!("{e:#}"),
    }
}
