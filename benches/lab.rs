//! Measurements 1, 2 and 4 on the LXC lab node (lab/): the real binary against the seed recipe
//! done by hand, parallel batches against one-after-another runs, and node commands per
//! container, all from the lab's invocation log.
//!
//! Every measured process runs in a directory of its own, and the lab logs the working
//! directory of every `pct`/`pvesh`/`pvesm`/`pveam` call, so each logged call is attributed to
//! exactly the run that made it, even while others use the lab (their calls are counted as
//! background). Containers are named `bench-PID-…` and destroyed after each variant (and, at
//! the start, leftovers of interrupted runs whose process is gone); nothing else on the lab is
//! touched, not even the containers of another bench running at the same time.
//!
//! The lab's commands are Python programs; the log's `duration_ms` covers each one's whole
//! process life (from its start in /proc), so wall time − Σ logged durations is what the tool (or
//! the script) spends outside node commands, up to the cost of starting a process. That residue
//! is calibrated here (`pct list`, timed from outside and against its logged duration) and
//! reported separately. The tool also logs how long it waited for each node command
//! (provision::cmd at debug), which gives its own time directly: wall − that wait. The tool's
//! own CPU time is read from /proc/PID/stat of the exited (not yet reaped) process: its threads
//! only, not the commands it ran.
//!
//! Environment: the lab's (`eval "$(lab/labctl env)"`, PROVISION_LAB=1), `BENCH_SHORT=1`
//! (one round; batches of 2 without Docker; full mode measures batches of 1, 2, 4 with and
//! without Docker), `BENCH_REPEAT` (default 3), `PROVISION_SKIP_LAB=1`
//! (skip, say so, exit 0).

mod common;

use common::{Summary, goal, json_line, r4, summary};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `lab/labctl env` exported.
struct Lab {
    log: PathBuf,
    state: PathBuf,
    template: String,
    storage: String,
    /// Per-run working directories and files.
    work: tempfile::TempDir,
    /// Names of this run's containers start with it: `bench-PID-` (others may run benches on
    /// the same lab at the same time; each cleans up only its own containers).
    prefix: String,
    bin: PathBuf,
    seed: PathBuf,
    /// Counter for unique working directories.
    runs: std::sync::atomic::AtomicUsize,
}

/// One logged node command.
#[derive(Clone, Debug)]
struct Inv {
    argv: Vec<String>,
    exit: i64,
    ms: f64,
    ts: f64,
    cwd: String,
}

/// The runs of one batch size.
#[derive(Default)]
struct Batch {
    /// `provision apply FILE`, fresh.
    apply: Vec<Run>,
    /// Its no-op re-run.
    noop: Vec<Run>,
    /// Wall of the N single runs one after another.
    seq_wall: Vec<f64>,
    /// Their node seconds per container.
    seq_node: Vec<f64>,
    /// Wall of the seed recipe N times at once (full mode, N > 1).
    par_wall: Vec<f64>,
    /// Its node seconds per container.
    par_node: Vec<f64>,
    /// Seed recipes that failed among them.
    par_failed: usize,
}

/// One measured process.
struct Run {
    wall: f64,
    /// User + system CPU of the process itself (its threads), seconds.
    own_cpu: Option<f64>,
    status: i32,
    stdout: String,
    stderr: String,
    /// Its node commands.
    invs: Vec<Inv>,
    /// Node commands of others during the run.
    foreign: usize,
}

/// Seconds the tool itself spent waiting for node commands, start-up included, summed from its
/// `node command done in X ms` debug lines (provision::cmd=debug); None when it logged none.
fn waited_s(stderr: &str) -> Option<f64> {
    let ms: Vec<f64> = stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("node command done in ")? + "node command done in ".len()..];
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .collect();
    (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / 1000.0)
}

impl Run {
    fn node_s(&self) -> f64 {
        self.invs.iter().map(|i| i.ms).sum::<f64>() / 1000.0
    }

    fn check(&self, what: &str) {
        assert_eq!(
            self.status, 0,
            "{what} failed (exit {}):\n{}\n{}",
            self.status, self.stdout, self.stderr
        );
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Lab {
    fn from_env() -> Option<Lab> {
        if std::env::var("PROVISION_SKIP_LAB").is_ok_and(|v| v == "1") {
            println!("## 1, 2, 4. Real lab\n\nskipped: PROVISION_SKIP_LAB=1\n");
            return None;
        }
        if std::env::var("PROVISION_LAB").as_deref() != Ok("1") {
            eprintln!(
                "bench lab: the LXC lab is not up (PROVISION_LAB is not 1). Bring it up first: \
                 eval \"$(lab/labctl up)\" (as root), or set PROVISION_SKIP_LAB=1 to skip the lab \
                 measurements"
            );
            std::process::exit(1);
        }
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set although PROVISION_LAB=1"))
        };
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Some(Lab {
            log: PathBuf::from(var("PROVISION_LAB_LOG")),
            state: PathBuf::from(var("PROVISION_LAB_STATE")),
            template: var("PROVISION_LAB_TEMPLATE"),
            storage: std::env::var("PROVISION_LAB_STORAGE").unwrap_or_else(|_| "labct".into()),
            work: tempfile::Builder::new()
                .prefix("provision-bench-")
                .tempdir()
                .expect("a temporary directory"),
            bin: PathBuf::from(env!("CARGO_BIN_EXE_provision")),
            seed: root.join("benches/seed-recipe.sh"),
            runs: std::sync::atomic::AtomicUsize::new(0),
            prefix: format!("bench-{}-", std::process::id()),
        })
    }

    /// A new, empty working directory (its canonical path is what the lab logs as cwd).
    fn dir(&self, name: &str) -> PathBuf {
        let k = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = self.work.path().join(format!("{k:03}-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    /// The lab profile of tests/lab.rs: extends docker, the lab's template and storage, 1 GiB
    /// memory, a 4 GiB root disk, the node's Debian 12 fuse-overlayfs.
    fn profile(&self, name: &str, extra: &str) -> PathBuf {
        let p = self.work.path().join(format!("{name}.toml"));
        let text = format!(
            "extends = \"docker\"\ntemplate = \"{}\"\nmemory = 1024\n{extra}\n\
             [docker.fuse_overlayfs]\nsource = \"node\"\npath = \"/usr/bin/fuse-overlayfs\"\n\n\
             [rootfs]\nstorage = \"{}\"\nsize = 4\n",
            self.template, self.storage
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    fn log_since(&self, mark: u64) -> Vec<Inv> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let tail = &text[(mark as usize).min(text.len())..];
        String::from_utf8_lossy(tail)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Inv {
                argv: v["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                exit: v["exit"].as_i64().unwrap_or(-1),
                ms: v["duration_ms"].as_f64().unwrap_or(0.0),
                ts: v["ts"].as_f64().unwrap_or(0.0),
                cwd: v["cwd"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    }

    /// Runs `cmd` in `cwd`, timing it and collecting its node commands from the log.
    fn measure(&self, cwd: &Path, mut cmd: Command) -> Run {
        let mark = self.log_len();
        cmd.current_dir(cwd)
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t_unix = now_unix();
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("starting the measured command");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let so = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let se = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let own_cpu = wait_exited(child.id())
            .then(|| own_cpu(child.id()))
            .flatten();
        let status = child.wait().expect("waiting for the measured command");
        let wall = t0.elapsed().as_secs_f64();
        let t_end = now_unix();
        let stdout = so.join().unwrap_or_default();
        let stderr = se.join().unwrap_or_default();
        let here = cwd.display().to_string();
        let all = self.log_since(mark);
        let foreign = all
            .iter()
            .filter(|i| i.cwd != here && i.ts >= t_unix && i.ts <= t_end)
            .count();
        Run {
            wall,
            own_cpu,
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
            invs: all.into_iter().filter(|i| i.cwd == here).collect(),
            foreign,
        }
    }

    fn provision(&self, tag: &str, args: &[&str]) -> Run {
        let mut c = Command::new(&self.bin);
        c.args(args).env("RUST_LOG", "warn,provision::cmd=debug");
        self.measure(&self.dir(tag), c)
    }

    fn seed_recipe(&self, name: &str) -> Run {
        self.seed_recipe_as(name, None)
    }

    /// The seed recipe with a fixed CTID (`CTID=N`), as users run several at once.
    fn seed_recipe_as(&self, name: &str, ctid: Option<u64>) -> Run {
        let mut c = Command::new("sh");
        c.arg(&self.seed).arg(name);
        if let Some(id) = ctid {
            c.env("CTID", id.to_string());
        }
        self.measure(&self.dir(&format!("seed-{name}")), c)
    }

    /// `n` VMIDs that no guest uses, from the node's next free one up.
    fn free_ids(&self, n: usize) -> Vec<u64> {
        let used: Vec<u64> = self.guests().into_iter().map(|(id, _)| id).collect();
        let out = Command::new("pvesh")
            .args(["get", "/cluster/nextid"])
            .current_dir(self.work.path())
            .output()
            .expect("pvesh runs");
        let first: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_matches('"')
            .parse()
            .unwrap_or(100);
        (first..).filter(|i| !used.contains(i)).take(n).collect()
    }

    /// The seed recipe `n` times at once (`&` and `wait`, distinct CTIDs given by hand: with
    /// `pvesh get /cluster/nextid` each, parallel copies would pick the same ID). Wall of the
    /// whole, the runs, and how many failed.
    fn seed_parallel(&self, n: usize, tag: &str) -> (f64, Vec<Run>, usize) {
        let ids = self.free_ids(n);
        let t0 = Instant::now();
        let runs: Vec<Run> = std::thread::scope(|s| {
            let hs: Vec<_> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let name = format!("{}p{tag}-{}", self.prefix, i + 1);
                    s.spawn(move || self.seed_recipe_as(&name, Some(*id)))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("seed thread"))
                .collect()
        });
        let failed = runs.iter().filter(|r| r.status != 0).count();
        (t0.elapsed().as_secs_f64(), runs, failed)
    }

    /// This run's guests (named `bench-PID-…`): (vmid, name).
    fn bench_guests(&self) -> Vec<(u64, String)> {
        self.guests()
            .into_iter()
            .filter(|(_, n)| n.starts_with(&self.prefix))
            .collect()
    }

    /// Guests of earlier bench runs whose process is gone (`bench-PID-…` with no PID): left
    /// by an interrupted run. Those of a bench running now are not touched.
    fn stale_guests(&self) -> Vec<(u64, String)> {
        self.guests()
            .into_iter()
            .filter(|(_, n)| {
                n.strip_prefix("bench-")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(pid, _)| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            })
            .collect()
    }

    /// Every guest of the node: (vmid, name).
    fn guests(&self) -> Vec<(u64, String)> {
        let out = Command::new("pvesh")
            .args([
                "get",
                "/cluster/resources",
                "--type",
                "vm",
                "--output-format",
                "json",
            ])
            .current_dir(self.work.path())
            .output()
            .expect("pvesh runs");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|g| {
                        (
                            g["vmid"].as_u64().unwrap_or(0),
                            g["name"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Destroys this run's containers (see [`Lab::destroy`]).
    /// Destroys the bench's containers and checks that none is left (a container left running
    /// would load every later measurement).
    fn cleanup(&self) {
        self.destroy(self.bench_guests());
        let left = self.bench_guests();
        assert!(
            left.is_empty(),
            "containers of this bench are still there after destroying them: {left:?}"
        );
    }

    /// Destroys `guests` and gives their DHCP leases back, then waits (at most 120 s) until the
    /// lab has freed their disks and syncs, so that the next measurement does not share the
    /// disk with an `rm -rf` or with writeback.
    fn destroy(&self, guests: Vec<(u64, String)>) {
        let macs: Vec<String> = guests
            .iter()
            .filter_map(|(id, _)| self.mac_of(*id))
            .collect();
        for (vmid, _) in guests {
            let id = vmid.to_string();
            for args in [vec!["stop", &id], vec!["destroy", &id, "--purge"]] {
                let _ = Command::new("pct")
                    .args(args)
                    .current_dir(self.work.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        self.release_leases(&macs);
        let trash = self
            .state
            .join("storage")
            .join(&self.storage)
            .join(".trash");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120)
            && std::fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_some())
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        // Dirty pages of the destroyed containers are written now, not during the next run.
        let _ = Command::new("sync").status();
    }

    /// The MAC address of container `vmid`'s eth0 (lower case), from `pct config`.
    fn mac_of(&self, vmid: u64) -> Option<String> {
        let out = Command::new("pct")
            .args(["config", &vmid.to_string()])
            .current_dir(self.work.path())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let net0 = text.lines().find_map(|l| l.strip_prefix("net0: "))?;
        net0.split(',')
            .find_map(|kv| kv.strip_prefix("hwaddr="))
            .map(str::to_ascii_lowercase)
    }

    /// Gives the DHCP leases of destroyed containers back to the lab's dnsmasq (a DHCPRELEASE,
    /// as dnsmasq's `dhcp_release` sends it). The lab's pool has 100 addresses leased for an
    /// hour and `pct destroy` keeps the lease: a full run creates ~70 containers, which would
    /// leave the lab without addresses for everyone else.
    fn release_leases(&self, macs: &[String]) {
        let leases = std::fs::read_to_string(self.state.join("dnsmasq.leases")).unwrap_or_default();
        let bridge = std::env::var("PROVISION_LAB_BRIDGE").unwrap_or_else(|_| "vmbr0".into());
        let Some(server) = std::env::var("PROVISION_LAB_GATEWAY")
            .ok()
            .and_then(|g| g.parse::<std::net::Ipv4Addr>().ok())
        else {
            return;
        };
        for line in leases.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(mac), Some(ip), Some(clid)) = (f.get(1), f.get(2), f.get(4)) else {
                continue;
            };
            if !macs.iter().any(|m| m == mac) {
                continue;
            }
            let (Some(mac), Ok(ip)) = (hex_bytes(mac), ip.parse::<std::net::Ipv4Addr>()) else {
                continue;
            };
            if let Err(e) = send_release(&bridge, server, ip, &mac, hex_bytes(clid).as_deref()) {
                eprintln!("bench lab: could not release the lease of {ip}: {e}");
            }
        }
    }

    /// Start-up of one lab command that its logged duration does not contain, seconds: `pct
    /// list` timed from outside minus its logged duration, median of `k`.
    fn launch_cost(&self, k: usize) -> Summary {
        let xs: Vec<f64> = (0..k)
            .map(|_| {
                let r = self.measure(&self.dir("calibrate"), {
                    let mut c = Command::new("pct");
                    c.arg("list");
                    c
                });
                r.check("pct list");
                r.wall - r.node_s()
            })
            .collect();
        summary(&xs)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// `aa:bb:…` as bytes (None for `*` or anything else that is not hex).
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// Sends dnsmasq on `bridge` a DHCPRELEASE for `ip` held by `mac` (and its client id).
fn send_release(
    bridge: &str,
    server: std::net::Ipv4Addr,
    ip: std::net::Ipv4Addr,
    mac: &[u8],
    clid: Option<&[u8]>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut p = vec![1u8, 1, 6, 0]; // BOOTREQUEST, ethernet, hlen 6, hops 0
    p.extend_from_slice(&std::process::id().to_be_bytes()); // xid
    p.extend_from_slice(&[0; 4]); // secs, flags
    p.extend_from_slice(&ip.octets()); // ciaddr
    p.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    let mut ch = [0u8; 16];
    let n = mac.len().min(16);
    ch[..n].copy_from_slice(&mac[..n]);
    p.extend_from_slice(&ch);
    p.extend_from_slice(&[0; 192]); // sname, file
    p.extend_from_slice(&[99, 130, 83, 99, 53, 1, 7, 54, 4]); // cookie, RELEASE, server id
    p.extend_from_slice(&server.octets());
    if let Some(c) = clid.filter(|c| c.len() < 256) {
        p.extend_from_slice(&[61, c.len() as u8]);
        p.extend_from_slice(c);
    }
    p.push(255);
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let name = std::ffi::CString::new(bridge).map_err(std::io::Error::other)?;
    // SAFETY: a valid socket and a NUL-terminated interface name of the given length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.as_bytes_with_nul().len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    sock.send_to(&p, (server, 67))?;
    Ok(())
}

/// Blocks until process `pid` has exited, without reaping it (its /proc entry stays).
fn wait_exited(pid: u32) -> bool {
    // SAFETY: waitid with WNOWAIT only reads the child's state into a zeroed siginfo_t.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        ) == 0
    }
}

/// utime + stime of an exited, unreaped process (its own threads, not its children), seconds.
fn own_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// The kind of a node command, to compare where the time goes.
fn kind(argv: &[String]) -> &'static str {
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    let text = argv.join(" ");
    match a.as_slice() {
        ["pvesh", "get", p, ..] if p.ends_with("/pending") => "pvesh get …/pending",
        ["pvesh", "get", "/cluster/nextid", ..] => "pvesh get /cluster/nextid",
        ["pvesh", "get", "/cluster/resources", ..] => "pvesh get /cluster/resources",
        ["pvesh", "get", "/cluster/status", ..] => "pvesh get /cluster/status",
        ["pvesh", "get", p, ..] if p.starts_with("/nodes/") && p.ends_with("/storage") => {
            "pvesh get /nodes/…/storage"
        }
        ["pvesh", ..] => "pvesh get (other)",
        ["pvesm", ..] => "pvesm status",
        ["pveam", ..] => "pveam list/available",
        ["pct", "create", ..] => "pct create",
        ["pct", "start", ..] => "pct start",
        ["pct", "push", ..] => "pct push",
        ["pct", "exec", ..] if text.contains("apt-get install") => "pct exec: apt-get install",
        ["pct", "exec", ..] if text.contains("os_id=") || text.contains("ip -4 route") => {
            "pct exec: wait for network (+ facts)"
        }
        ["pct", "exec", ..] if text.contains("restart docker") => "pct exec: restart docker",
        ["pct", "exec", ..] if text.contains("docker run") => "pct exec: docker run (verify)",
        ["pct", "exec", ..] => "pct exec: other (mkdir, mv, daemon.json)",
        ["pct", ..] => "pct (other)",
        _ => "other",
    }
}

/// Node seconds by kind.
fn by_kind(invs: &[Inv]) -> BTreeMap<&'static str, (usize, f64)> {
    let mut m = BTreeMap::new();
    for i in invs {
        let e = m.entry(kind(&i.argv)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += i.ms / 1000.0;
    }
    m
}

/// The containers of a JSON run report: (hostname, outcome).
fn outcomes(r: &Run) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}\n{}", r.stdout, r.stderr));
    v["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["hostname"].as_str().unwrap_or("").to_string(),
                        c["outcome"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn expect_outcome(r: &Run, want: &str, what: &str) {
    let o = outcomes(r);
    assert!(
        !o.is_empty() && o.iter().all(|(_, x)| x == want),
        "{what}: expected every container {want}, got {o:?}\n{}",
        r.stderr
    );
}

fn s_of(xs: impl IntoIterator<Item = f64>) -> Summary {
    summary(&xs.into_iter().collect::<Vec<_>>())
}

fn main() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let short = common::short();
    let repeat = common::repeat(3);
    lab.destroy(lab.stale_guests());
    let launch = lab.launch_cost(if short { 3 } else { 10 });
    let profile = lab.profile("lab-docker", "");
    let p = profile.to_str().unwrap();

    // ---- 1 + 4: one container, the tool against the seed recipe; the tool's no-op re-run.
    let (mut tools, mut noops, mut seeds) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeat {
        let tool_name = format!("{}t{r}", lab.prefix);
        let seed_name = format!("{}s{r}", lab.prefix);
        let tool = |lab: &Lab| {
            let run = lab.provision(
                "tool",
                &[&tool_name, "--profile", p, "--yes", "--output", "json"],
            );
            run.check("provision (fresh)");
            expect_outcome(&run, "created", "provision (fresh)");
            run
        };
        let seed = |lab: &Lab| {
            let run = lab.seed_recipe(&seed_name);
            run.check("the seed recipe");
            run
        };
        // Each side alone on the node (the other's container destroyed first), and the order
        // alternated, so that neither always runs on a warmer disk cache.
        let tool_and_noop = |lab: &Lab| {
            let t = tool(lab);
            let n = lab.provision(
                "noop",
                &[&tool_name, "--profile", p, "--yes", "--output", "json"],
            );
            n.check("provision (no-op re-run)");
            expect_outcome(&n, "unchanged", "provision (no-op re-run)");
            lab.cleanup();
            (t, n)
        };
        let seed_alone = |lab: &Lab| {
            let s = seed(lab);
            lab.cleanup();
            s
        };
        let ((t, n), s) = if r % 2 == 0 {
            let tn = tool_and_noop(&lab);
            (tn, seed_alone(&lab))
        } else {
            let s = seed_alone(&lab);
            (tool_and_noop(&lab), s)
        };
        tools.push(t);
        seeds.push(s);
        noops.push(n);
    }

    // ---- 2 + 4: batches, `provision apply FILE` against the same containers one by one: with
    // Docker (apt-get install dominates), and in full mode also without (create, start,
    // network: what parallel creates change).
    let bare = lab.profile("lab-nodocker", "[docker]\ninstall = \"none\"");
    let mut sets = Vec::new();
    if short {
        sets.push(BatchSet {
            what: "docker.install = \"none\" (short mode: create, start, network only)".into(),
            runs: batches(&lab, short, repeat, &[2], &bare, "n", false),
        });
    } else {
        sets.push(BatchSet {
            what: "the lab profile of measurement 1 (with Docker)".into(),
            runs: batches(&lab, short, repeat, &[1, 2, 4], &profile, "d", true),
        });
        sets.push(BatchSet {
            what: "the same profile with docker.install = \"none\" (create, start, network: \
                   no apt-get, so the mirror does not dominate)"
                .into(),
            runs: batches(&lab, short, repeat, &[1, 2, 4], &bare, "n", false),
        });
    }

    report(&lab, short, repeat, launch, &tools, &seeds, &noops, &sets);
}

/// One table of measurement 2: what was provisioned, and the runs by N.
struct BatchSet {
    what: String,
    runs: BTreeMap<usize, Batch>,
}

/// Measurement 2 for one profile: for each N, `provision apply` of N containers against N single
/// runs one after another (and, with `control`, the seed recipe N times at once), `repeat` times
/// in alternating order, each variant on an empty node. `tag` keeps the names of sets apart.
fn batches(
    lab: &Lab,
    short: bool,
    repeat: usize,
    batch_ns: &[usize],
    batch_profile: &Path,
    tag: &str,
    control: bool,
) -> BTreeMap<usize, Batch> {
    let bp = batch_profile.to_str().unwrap();
    let want_fresh = "created";
    let mut batches: BTreeMap<usize, Batch> = BTreeMap::new();
    for r in 0..repeat {
        for &n in batch_ns {
            let seq = |lab: &Lab| {
                let dir = lab.dir(&format!("seq{tag}{n}"));
                let t0 = Instant::now();
                let runs: Vec<Run> = (1..=n)
                    .map(|i| {
                        let mut c = Command::new(&lab.bin);
                        c.args([
                            &format!("{}q{tag}{n}r{r}-{i}", lab.prefix),
                            "--profile",
                            bp,
                            "--yes",
                            "--output",
                            "json",
                        ]);
                        let run = lab.measure(&dir, c);
                        run.check("provision (sequential)");
                        expect_outcome(&run, want_fresh, "provision (sequential)");
                        run
                    })
                    .collect();
                (t0.elapsed().as_secs_f64(), runs)
            };
            let apply = |lab: &Lab| {
                let file = lab.work.path().join(format!("batch-{tag}{n}-{r}.toml"));
                std::fs::write(
                    &file,
                    format!(
                        "[defaults]\nprofile = \"{bp}\"\n\n[[container]]\nname = \"{}a{tag}{n}r{r}-{{n}}\"\ncount = {n}\n",
                        lab.prefix
                    ),
                )
                .unwrap();
                let f = file.to_str().unwrap().to_string();
                let jobs = n.to_string();
                let args = ["apply", &f, "--jobs", &jobs, "--yes", "--output", "json"];
                let fresh = lab.provision(&format!("apply{tag}{n}"), &args);
                fresh.check("provision apply (fresh)");
                expect_outcome(&fresh, want_fresh, "provision apply (fresh)");
                let noop = lab.provision(&format!("apply{tag}{n}-noop"), &args);
                noop.check("provision apply (no-op re-run)");
                expect_outcome(&noop, "unchanged", "provision apply (no-op re-run)");
                (fresh, noop)
            };
            // The control: what users do today for N, the recipe N times at once.
            let par = |lab: &Lab| {
                (control && !short && n > 1).then(|| lab.seed_parallel(n, &format!("{n}r{r}")))
            };
            // Each variant starts on an empty node: at most N Docker containers of this bench
            // exist at once (they share uid 100000's kernel keyring quota, maxkeys 200 /
            // maxbytes 20000 here: a dozen Docker containers at once exhaust it and `docker
            // run` fails with "unable to join session keyring: disk quota exceeded").
            let clean = |lab: &Lab| lab.cleanup();
            let ((seq_wall, seq_runs), (fresh, noop), par) = if r % 2 == 0 {
                let s = seq(lab);
                clean(lab);
                let a = apply(lab);
                clean(lab);
                (s, a, par(lab))
            } else {
                let p = par(lab);
                clean(lab);
                let a = apply(lab);
                clean(lab);
                (seq(lab), a, p)
            };
            let e = batches.entry(n).or_default();
            if let Some((wall, runs, failed)) = par {
                e.par_wall.push(wall);
                e.par_node
                    .push(runs.iter().map(Run::node_s).sum::<f64>() / n as f64);
                e.par_failed += failed;
            }
            e.apply.push(fresh);
            e.seq_wall.push(seq_wall);
            e.seq_node
                .push(seq_runs.iter().map(Run::node_s).sum::<f64>() / n as f64);
            e.noop.push(noop);
            lab.cleanup();
        }
    }

    batches
}

#[allow(clippy::too_many_arguments)]
fn report(
    lab: &Lab,
    short: bool,
    repeat: usize,
    launch: Summary,
    tools: &[Run],
    seeds: &[Run],
    noops: &[Run],
    sets: &[BatchSet],
) {
    // Measurement 4 and the goals read the first set (with Docker in full mode).
    let batches = &sets[0].runs;
    let l = launch.median;
    let wall = |rs: &[Run]| s_of(rs.iter().map(|r| r.wall));
    let node = |rs: &[Run]| s_of(rs.iter().map(Run::node_s));
    let count = |rs: &[Run]| s_of(rs.iter().map(|r| r.invs.len() as f64));
    let raw = |rs: &[Run]| s_of(rs.iter().map(|r| r.wall - r.node_s()));
    let raw_pct = |rs: &[Run]| s_of(rs.iter().map(|r| 100.0 * (r.wall - r.node_s()) / r.wall));
    let own = |rs: &[Run]| {
        s_of(
            rs.iter()
                .map(|r| r.wall - r.node_s() - r.invs.len() as f64 * l),
        )
    };
    let own_pct = |rs: &[Run]| {
        s_of(
            rs.iter()
                .map(|r| 100.0 * (r.wall - r.node_s() - r.invs.len() as f64 * l) / r.wall),
        )
    };
    let foreign: usize = tools
        .iter()
        .chain(seeds)
        .chain(noops)
        .map(|r| r.foreign)
        .sum::<usize>()
        + sets
            .iter()
            .flat_map(|set| set.runs.values())
            .flat_map(|b| b.apply.iter().chain(&b.noop))
            .map(|r| r.foreign)
            .sum::<usize>();

    println!("## 1. Real lab, one container: `provision` against the seed recipe by hand\n");
    println!(
        "`provision bench-tR --profile lab-docker.toml --yes --output json` (extends docker; the \
         lab's template; storage {}; 1 GiB; 4 GiB disk; fuse-overlayfs from the node's \
         /usr/bin/fuse-overlayfs) against `benches/seed-recipe.sh bench-sR` on the same lab node, \
         {repeat} round(s), order alternating. Times in seconds: median (min–max).\n",
        lab.storage
    );
    println!("| | provision | seed recipe (shell) |");
    println!("|---|---:|---:|");
    println!(
        "| wall time | {} | {} |",
        wall(tools).show(2),
        wall(seeds).show(2)
    );
    println!(
        "| node commands (logged by the lab) | {} | {} |",
        count(tools).show(0),
        count(seeds).show(0)
    );
    println!(
        "| time in node commands (Σ logged durations) | {} | {} |",
        node(tools).show(2),
        node(seeds).show(2)
    );
    println!(
        "| wall − node time (the brief's overhead) | {} = {} % | {} = {} % |",
        raw(tools).show(2),
        raw_pct(tools).show(1),
        raw(seeds).show(2),
        raw_pct(seeds).show(1)
    );
    println!(
        "| of it: what a process costs outside its logged life (calls × {:.0} ms) | {:.2} | {:.2} |",
        l * 1000.0,
        count(tools).median * l,
        count(seeds).median * l
    );
    println!(
        "| left: the tool's / the script's own time | {} = {} % | {} = {} % |",
        own(tools).show(2),
        own_pct(tools).show(1),
        own(seeds).show(2),
        own_pct(seeds).show(1)
    );
    // Measured, not estimated: the tool's own clock around each node command.
    let waited = s_of(tools.iter().filter_map(|r| waited_s(&r.stderr)));
    let own_measured = s_of(
        tools
            .iter()
            .filter_map(|r| waited_s(&r.stderr).map(|w| r.wall - w)),
    );
    let own_measured_pct = s_of(
        tools
            .iter()
            .filter_map(|r| waited_s(&r.stderr).map(|w| 100.0 * (r.wall - w) / r.wall)),
    );
    if waited.n > 0 {
        println!(
            "| time the tool waited for node commands, by its own clock (start-up included) | {} | – |",
            waited.show(2)
        );
        println!(
            "| **the tool's own time, measured (wall − that wait)** | **{} = {} %** | – |",
            own_measured.show(2),
            own_measured_pct.show(1)
        );
    }
    let no_apt = |rs: &[Run]| {
        s_of(rs.iter().map(|r| {
            r.wall
                - r.invs
                    .iter()
                    .filter(|i| kind(&i.argv) == "pct exec: apt-get install")
                    .map(|i| i.ms / 1000.0)
                    .sum::<f64>()
        }))
    };
    println!(
        "| wall without the `apt-get install` call (mirror speed varies) | {} | {} |",
        no_apt(tools).show(2),
        no_apt(seeds).show(2)
    );
    let cpu = s_of(tools.iter().filter_map(|r| r.own_cpu));
    println!(
        "| CPU time of the provision process itself | {} | |",
        cpu.show(3)
    );
    let ratio = wall(tools).median / wall(seeds).median;
    let ratios = s_of(tools.iter().zip(seeds).map(|(t, s)| t.wall / s.wall));
    println!(
        "| **wall, provision / seed recipe** (rounds' ratios) | **{}x** | |\n",
        ratios.show(2)
    );
    println!(
        "Outside one lab command's logged duration (`pct list` timed from outside, {} calls): {} ms \
         (fork/exec and exit around the process life the lab logs; the log's clock-tick \
         resolution is 10 ms).\n",
        launch.n,
        Summary {
            n: launch.n,
            min: launch.min * 1000.0,
            p10: launch.p10 * 1000.0,
            median: launch.median * 1000.0,
            p90: launch.p90 * 1000.0,
            max: launch.max * 1000.0
        }
        .show(0)
    );
    println!("Where the node time goes (seconds, median over rounds; calls in brackets):\n");
    println!("| node command | provision | seed recipe |");
    println!("|---|---:|---:|");
    let mut kinds: Vec<&str> = tools
        .iter()
        .chain(seeds)
        .flat_map(|r| by_kind(&r.invs).into_keys())
        .collect();
    kinds.sort();
    kinds.dedup();
    let cell = |rs: &[Run], k: &str| {
        let per: Vec<(usize, f64)> = rs
            .iter()
            .map(|r| by_kind(&r.invs).get(k).copied().unwrap_or((0, 0.0)))
            .collect();
        let c = s_of(per.iter().map(|x| x.0 as f64)).median;
        if c == 0.0 {
            "–".to_string()
        } else {
            format!("{} [{c:.0}]", s_of(per.iter().map(|x| x.1)).show(2))
        }
    };
    for k in &kinds {
        println!("| {k} | {} | {} |", cell(tools, k), cell(seeds, k));
    }
    println!();

    println!("## 2. Real lab, batches: `provision apply FILE` against one-after-another runs\n");
    let mut batch_json = Vec::new();
    for set in sets {
        println!(
            "N containers of {}: `provision apply FILE --jobs N` (a counted entry) against N \
             single `provision NAME --profile ...` runs one after another; {repeat} round(s), \
             order alternating, each variant on an empty node. Seconds, median (min–max); the \
             speed-up is the median (min–max) of the rounds' ratios.\n",
            set.what
        );
        println!(
            "| N | one after another | apply --jobs N | speed-up | seed recipe ×N at once (control) | node time per container: sequential / apply / seed ×N |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        for (n, b) in &set.runs {
            let a = wall(&b.apply);
            let s = s_of(b.seq_wall.iter().copied());
            let node_apply = node(&b.apply).median / *n as f64;
            let node_seq = s_of(b.seq_node.iter().copied()).median;
            let speed = s_of(b.seq_wall.iter().zip(&b.apply).map(|(q, a)| q / a.wall));
            let p = s_of(b.par_wall.iter().copied());
            let (par, par_node) = if b.par_wall.is_empty() {
                ("–".to_string(), "–".to_string())
            } else {
                let failed = if b.par_failed > 0 {
                    format!(", {} failed", b.par_failed)
                } else {
                    String::new()
                };
                (
                    format!("{}{failed}", p.show(2)),
                    format!("{:.2}", s_of(b.par_node.iter().copied()).median),
                )
            };
            println!(
                "| {n} | {} | {} | {}x | {par} | {node_seq:.2} / {node_apply:.2} / {par_node} |",
                s.show(2),
                a.show(2),
                speed.show(2)
            );
            batch_json.push(serde_json::json!({
                "set": set.what, "n": n, "sequential_s": s.json(), "apply_s": a.json(),
                "speedup": speed.json(),
                "apply_node_s_per_container": r4(node_apply),
                "sequential_node_s_per_container": r4(node_seq),
                "seed_parallel_s": p.json(), "seed_parallel_failed": b.par_failed,
            }));
        }
        println!();
    }
    println!(
        "The control runs `benches/seed-recipe.sh` N times at once (`CTID=` given, distinct: \
         with `pvesh get /cluster/nextid` each, copies started together pick the same ID). The \
         lab node has {} CPU(s); parallel creates and `apt-get install`s share them (and the \
         mirror's bandwidth), so node time per container is not comparable across N: compare \
         within a row.\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("## 4. Node commands per container (lab invocation log)\n");
    println!(
        "| run | node commands | of which once per run (node facts) | per container, beyond those |"
    );
    println!("|---|---:|---:|---:|");
    // The node facts read once per run, before any container: the leading node-wide queries
    // (guest list, cluster status, storages; not a container's config, not a VMID).
    let per_run = |r: &Run| {
        r.invs
            .iter()
            .take_while(|i| {
                let a: Vec<&str> = i.argv.iter().map(String::as_str).collect();
                match a.as_slice() {
                    ["pvesm", ..] | ["cat", "/sys/module/zfs/version"] => true,
                    ["pvesh", "get", p, ..] => !p.contains("/lxc/") && *p != "/cluster/nextid",
                    _ => false,
                }
            })
            .count()
    };
    // Returns (all commands, of which per run, per container beyond the per-run ones).
    let row = |what: &str, rs: &[Run], n: usize| {
        let c = count(rs).median;
        let fixed = s_of(rs.iter().map(|r| per_run(r) as f64)).median;
        let each = (c - fixed) / n as f64;
        println!("| {what} | {c:.0} | {fixed:.0} | {each:.2} |");
        (c, fixed, each)
    };
    row("provision NAME, fresh", tools, 1);
    let noop_single = row("provision NAME, no-op re-run", noops, 1);
    row("seed recipe (for comparison)", seeds, 1);
    let mut noop_batch = None;
    let mut noop_totals = Vec::new();
    for (n, b) in batches {
        row(&format!("apply, {n} container(s), fresh"), &b.apply, *n);
        let x = row(
            &format!("apply, {n} container(s), no-op re-run"),
            &b.noop,
            *n,
        );
        noop_totals.push((*n, x.0));
        noop_batch = Some((*n, x));
    }
    // Per container without guessing which commands are per run: the slope of the no-op
    // re-run's total between the smallest and the largest batch.
    let slope = match (noop_totals.first(), noop_totals.last()) {
        (Some(&(n0, c0)), Some(&(n1, c1))) if n1 > n0 => {
            let k = (c1 - c0) / (n1 - n0) as f64;
            println!(
                "\nNo-op re-run, node commands per additional container (slope between the \
                 apply no-op runs of {n0} and {n1} containers: ({c1:.0} − {c0:.0}) / {}): \
                 **{k:.2}**.",
                n1 - n0
            );
            Some((n0, n1, k))
        }
        _ => None,
    };
    if let Some(n0) = noops.first() {
        println!("\nThe no-op re-run's node commands, in order:\n");
        for i in &n0.invs {
            println!("- `{}` ({:.0} ms, exit {})", kind(&i.argv), i.ms, i.exit);
        }
    }
    println!(
        "\nBackground: {foreign} node command(s) of other users of the lab ran during the \
         measured runs.\n"
    );

    let own_p = own_pct(tools).median;
    let raw_p = raw_pct(tools).median;
    // The definition: wall − the node's own commands as the lab logs them (each
    // command's whole process life); the tool's own clock and the calibrated residue beside it.
    let by_clock = if own_measured_pct.n > 0 {
        format!(
            "; {:.1} % by the tool's own clock ({:.2} s)",
            own_measured_pct.median, own_measured.median
        )
    } else {
        String::new()
    };
    let (shown, met) = (
        format!(
            "{raw_p:.1} % = wall − logged node time ({:.2} s of {:.2} s){by_clock}; {own_p:.1} % after the residue of starting processes",
            raw(tools).median,
            wall(tools).median
        ),
        raw_p < 2.0,
    );
    goal(
        "tool overhead, one provision on the lab",
        "< 2 %",
        &shown,
        Some(met),
    );
    goal(
        "no-op re-run, node commands per container (single run)",
        "<= 3",
        &format!(
            "{:.0} per container + {:.0} node facts once per run ({:.0} in all)",
            noop_single.2, noop_single.1, noop_single.0
        ),
        Some(noop_single.2 <= 3.0),
    );
    if let (Some((n, x)), false) = (noop_batch, short) {
        let (shown, met) = match slope {
            Some((n0, n1, k)) => (
                format!(
                    "{k:.2} per additional container (slope {n0} → {n1} containers); {:.0} in all for {n}, {:.2} per container with the per-run reads",
                    x.0,
                    x.0 / n as f64
                ),
                k <= 3.0,
            ),
            None => (
                format!(
                    "{:.2} per container + {:.0} once per run ({:.0} in all, {:.2} per container)",
                    x.2,
                    x.1,
                    x.0,
                    x.0 / n as f64
                ),
                x.2 <= 3.0,
            ),
        };
        goal(
            &format!("no-op re-run, node commands per container (apply, {n} containers)"),
            "<= 3",
            &shown,
            Some(met),
        );
    }
    let js = |rs: &[Run]| {
        serde_json::json!({
            "wall_s": wall(rs).json(), "node_s": node(rs).json(), "calls": count(rs).json(),
            "own_s": own(rs).json(), "own_pct": own_pct(rs).json(), "raw_pct": raw_pct(rs).json(),
            "waited_s": s_of(rs.iter().filter_map(|r| waited_s(&r.stderr))).json(),
            "own_measured_s": s_of(rs.iter().filter_map(|r| waited_s(&r.stderr).map(|w| r.wall - w))).json(),
        })
    };
    json_line(&serde_json::json!({
        "bench": "lab",
        "short": short,
        "repeat": repeat,
        "launch_ms": r4(l * 1000.0),
        "tool": js(tools),
        "seed": js(seeds),
        "noop": js(noops),
        "tool_cpu_s": cpu.json(),
        "tool_over_seed": r4(ratio),
        "batches": batch_json,
        "foreign_calls": foreign,
    }));
}
