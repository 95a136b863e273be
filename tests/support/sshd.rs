//! A throwaway OpenSSH server for tests and benchmarks.
//!
//! Each [`Sshd`] runs its own `/usr/sbin/sshd -D -e` on 127.0.0.1 on a free port, with host key,
//! client key, authorized_keys, config and pid file in a private temporary directory; it logs in
//! as the user running the tests. Dropping it kills the server. When sshd is not installed the
//! tests fail with the package to install, unless `PROVISION_SKIP_SSH=1`.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long the server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running sshd; killed when dropped.
pub struct Sshd {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The user to log in as (the one running the tests).
    pub user: String,
    /// The client's private key (its public half is authorized).
    pub client_key: PathBuf,
    /// The server's public host key file (`type base64 comment`).
    pub host_key_pub: PathBuf,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
    extra_config: String,
}

/// Whether the SSH tests are to be skipped (`PROVISION_SKIP_SSH=1`).
pub fn skipped() -> bool {
    std::env::var("PROVISION_SKIP_SSH").is_ok_and(|v| v == "1")
}

/// Runs ssh-keygen to make an unencrypted ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    keygen_with(path, "");
}

/// Makes an ed25519 key pair at `path` protected by `passphrase` (empty: none).
pub fn keygen_with(path: &Path, passphrase: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "provision-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh-keygen (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("running id -un");
    assert!(out.status.success(), "id -un failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().unwrap().port()
}

impl Sshd {
    /// Starts a server, or returns None when the SSH tests are skipped.
    pub fn start() -> Option<Sshd> {
        Sshd::start_with("")
    }

    /// Starts a server with extra sshd_config lines (e.g. `SetEnv PATH=...`).
    pub fn start_with(extra_config: &str) -> Option<Sshd> {
        if skipped() {
            eprintln!("PROVISION_SKIP_SSH=1: skipping a test that needs sshd");
            return None;
        }
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the SSH tests need an OpenSSH server; install it with \
             `apt-get install openssh-server` (or set PROVISION_SKIP_SSH=1 to skip them)"
        );
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        fs::copy(
            client_key.with_extension("pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("writing authorized_keys");
        prepare_privsep_dir();
        let user = current_user();
        // The port is free when probed but could be taken before sshd binds it: retry then.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(dir.path(), &host_key, port, extra_config) {
                Ok((child, log)) => {
                    return Some(Sshd {
                        port,
                        user,
                        client_key,
                        host_key_pub: host_key.with_extension("pub"),
                        child,
                        log,
                        dir,
                        extra_config: extra_config.to_string(),
                    });
                }
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("sshd did not start:\n{log}"),
            }
        }
        panic!("sshd could not bind a free port in 5 attempts:\n{last_log}")
    }

    /// Stops the server and starts it again on the same port with a new host key: a container
    /// destroyed and created anew at the same address.
    pub fn restart_with_new_host_key(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let host_key = self.dir.path().join("host_ed25519");
        fs::remove_file(&host_key).expect("removing the old host key");
        fs::remove_file(host_key.with_extension("pub")).expect("removing the old host key");
        keygen(&host_key);
        let _ = fs::remove_file(self.dir.path().join(format!("sshd.{}.pid", self.port)));
        let (child, log) = spawn(self.dir.path(), &host_key, self.port, &self.extra_config)
            .unwrap_or_else(|log| panic!("sshd did not start again:\n{log}"));
        self.child = child;
        self.log = log;
    }

    /// The private temporary directory (for per-test files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        let text = fs::read_to_string(&self.host_key_pub).unwrap();
        let mut f = text.split_whitespace();
        let (ty, key) = (f.next().unwrap(), f.next().unwrap());
        format!("[127.0.0.1]:{} {ty} {key}\n", self.port)
    }

    /// The server's host key fingerprint as `ssh-keygen -l` shows it (`SHA256:...`).
    pub fn host_key_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&self.host_key_pub)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// What sshd has logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sshd running as root insists on its privilege separation directory.
fn prepare_privsep_dir() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if is_root && !Path::new("/run/sshd").exists() {
        use std::os::unix::fs::DirBuilderExt;
        let _ = fs::DirBuilder::new().mode(0o755).create("/run/sshd");
    }
}

/// Starts sshd on `port` and waits (bounded) until it has written its pid file and greets on
/// the port. Err: its log.
fn spawn(
    dir: &Path,
    host_key: &Path,
    port: u16,
    extra_config: &str,
) -> Result<(Child, PathBuf), String> {
    let config = dir.join(format!("sshd_config.{port}"));
    let pid_file = dir.join(format!("sshd.{port}.pid"));
    let log = dir.join(format!("sshd.{port}.log"));
    let d = dir.display();
    fs::write(
        &config,
        format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             PrintMotd no\n\
             MaxStartups 100:30:200\n\
             MaxSessions 100\n\
             MaxAuthTries 20\n\
             Subsystem sftp internal-sftp\n\
             LogLevel INFO\n\
             {extra_config}\n",
            host_key = host_key.display(),
            pid = pid_file.display()
        ),
    )
    .expect("writing sshd_config");
    let log_file = fs::File::create(&log).expect("creating the sshd log");
    let mut child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("polling sshd") {
            let text = fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("sshd exited with {status}; its log:\n{text}"));
        }
        // sshd writes its pid file once it listens: a greeting without it could come from
        // another server that took the port first.
        let ours = fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == child.id().to_string());
        if ours && greets(addr) {
            return Ok((child, log));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "sshd did not write its pid file {} and greet with an SSH banner on {addr} \
                 within {START_TIMEOUT:?}; its log:\n{text}",
                pid_file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when something on `addr` answers with an SSH banner.
fn greets(addr: SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0-")
}
