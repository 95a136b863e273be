//! Measurement 3: parallel efficiency of `provision apply` against a latency model of a PVE node.
//!
//! The in-memory fake node (tests/support/fake.rs) answers every command at once; [`Slow`] wraps
//! it and sleeps, per command kind, the time a real node takes (table [`MODEL`], with where each
//! number comes from), multiplied by a time scale so that a run takes seconds. Containers are
//! converged through the library exactly as `provision apply FILE --jobs J` does
//! ([`batch::Targets::open`] then [`batch::converge_all`]); every wall time is reported scaled
//! back to node seconds.
//!
//! The ideal for N containers on J workers, given what must be serialised: choosing a VMID
//! (`pvesh get /cluster/nextid`, one worker at a time so that two never pick the same ID; a node
//! does not serialise the creates of different IDs, and the tool's workers share the node's
//! `vmid` lock, see `apply::VmidLock`): `F + max(ceil(N/J) * T, T + (N - 1) * C)`, where T is
//! one container's measured time in the same N run one after another
//! (`(wall(N, J=1) - F) / N`), F the modelled per-run facts (before any container starts) and C
//! the modelled `pvesh get /cluster/nextid` of one container. Parallel efficiency = ideal /
//! measured (1 for --jobs 1 by construction). The model node has no capacity limit: commands of
//! different containers overlap freely, so this efficiency is what the tool's scheduling loses,
//! an upper bound for a real node whose CPUs and disks are shared.
//!
//! Environment: `BENCH_SHORT=1` (N = 1, 4; J = 1, 4; one run each), `BENCH_REPEAT` (default 3),
//! `BENCH_SCALE` (default 0.01: one model second is 10 ms here), `BENCH_TRACE=1` (every modelled
//! command on stderr).

mod common;
#[path = "../tests/support/fake.rs"]
mod fake;
#[path = "../tests/support/jobs.rs"]
mod jobs;
use jobs::plain_jobs;

use common::{goal, json_line, r4, summary};
use fake::{FAKE_INDEX, FakeNode};
use provision::apply::Ctx;
use provision::batch::{self, Targets};
use provision::cmd::{Cmd, Output};
use provision::labfile::{self, Entry};
use provision::plan;
use provision::profile::Layer;
use provision::progress::{Mode, Progress};
use provision::report::Outcome;
use provision::request::Options;
use provision::transport::{LockGuard, Transport};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Start-up of a `pct`/`pvesh`/`pvesm`/`pveam` process on a PVE node: they are Perl programs that
/// load the PVE API modules at every call (public reports: 100–200 ms per `pct` call,
/// spupuz/proxmox-scripts#2; "a full Perl interpreter cold-start pulling in the Proxmox API
/// library", PegaProx/project-pegaprox#317). The lab's Python stand-ins take ~0.13 s here.
const LAUNCH: f64 = 0.2;

/// What a node command is, for its modelled latency.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    PveshGet,
    PvesmStatus,
    PveamQuery,
    PveamFetch,
    Create,
    Start,
    WaitReady,
    Install,
    RestartDocker,
    VerifyDocker,
    Exec,
    Push,
    PctOther,
    NodeLocal,
    NodeWrite,
}

/// Modelled seconds per kind, and where the number comes from.
const MODEL: &[(Kind, f64, &str)] = &[
    (
        Kind::PveshGet,
        LAUNCH + 0.05,
        "Perl start + an API read from pmxcfs (lab: 2–33 ms after start)",
    ),
    (
        Kind::PvesmStatus,
        LAUNCH + 0.1,
        "Perl start + statfs of every storage (lab: 1–2 ms after start)",
    ),
    (
        Kind::PveamQuery,
        LAUNCH + 0.05,
        "Perl start + reading the template index/list (lab: 1–2 ms after start)",
    ),
    (
        Kind::PveamFetch,
        LAUNCH + 10.0,
        "`pveam update`/`download`; not in the measured runs (template present)",
    ),
    (
        Kind::Create,
        3.0,
        "brief; lab/README.md: 3.4–6.5 s (extracting ~9.6k files); lab-notes: 0.5–8 s",
    ),
    (
        Kind::Start,
        1.0,
        "brief; lab/README.md: `pct start` 0.15 s + Perl start + PVE's hooks",
    ),
    (
        Kind::WaitReady,
        LAUNCH + 0.05,
        "`pct exec` of the facts script; +1.0 s for the first one after a start (boot: lab-notes 0.6 s to systemd, lab/README.md 0.7 s to a DHCP lease)",
    ),
    (
        Kind::Install,
        10.0,
        "brief; lab-notes: apt-get install docker.io … 6–8 s; lab log here: 17–21 s incl. apt-get update over NAT",
    ),
    (
        Kind::RestartDocker,
        1.0,
        "lab-notes: systemctl restart docker 0.5 s; lab log: 0.65 s; + Perl start",
    ),
    (
        Kind::VerifyDocker,
        1.0,
        "lab-notes: docker import + run < 1 s; lab log: 0.7 s; + Perl start",
    ),
    (
        Kind::Exec,
        LAUNCH + 0.05,
        "brief: exec 50 ms (+ Perl start); lab log: 25–70 ms after start",
    ),
    (
        Kind::Push,
        LAUNCH + 0.05,
        "as exec (lab log: 25 ms after start)",
    ),
    (
        Kind::PctOther,
        LAUNCH + 0.1,
        "pct set/status/destroy...: not in a fresh create",
    ),
    (
        Kind::NodeLocal,
        0.005,
        "sha256sum / rm / cat on the node (no Perl)",
    ),
    (Kind::NodeWrite, 0.001, "a small file written on the node"),
];

/// Extra modelled seconds of the first in-container command after `pct start` (boot, DHCP).
const BOOT: f64 = 1.0;

fn model(k: Kind) -> f64 {
    MODEL
        .iter()
        .find(|(m, _, _)| *m == k)
        .map_or(0.0, |(_, s, _)| *s)
}

fn classify(argv: &[String]) -> Kind {
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["pvesh", ..] => Kind::PveshGet,
        ["pvesm", ..] => Kind::PvesmStatus,
        ["pveam", "list" | "available", ..] => Kind::PveamQuery,
        ["pveam", ..] => Kind::PveamFetch,
        ["pct", "create", ..] => Kind::Create,
        ["pct", "start", ..] => Kind::Start,
        ["pct", "push", ..] => Kind::Push,
        ["pct", "exec", ..] => {
            let script = a.iter().find(|w| w.contains('\n')).copied().unwrap_or("");
            let body = script.strip_prefix(plan::SH_PRELUDE).unwrap_or(script);
            if script.contains("os_id=") {
                Kind::WaitReady
            } else if body == plan::INSTALL_SCRIPT {
                Kind::Install
            } else if body == plan::RESTART_SCRIPT {
                Kind::RestartDocker
            } else if body == plan::VERIFY_SCRIPT {
                Kind::VerifyDocker
            } else {
                Kind::Exec
            }
        }
        ["pct", ..] => Kind::PctOther,
        _ => Kind::NodeLocal,
    }
}

thread_local! {
    /// This thread holds the node's `vmid` lock (pick ID + create).
    static IN_VMID_LOCK: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`IN_VMID_LOCK`] when the lock guard is dropped (on the thread that took it).
struct LockFlag;

impl Drop for LockFlag {
    fn drop(&mut self) {
        IN_VMID_LOCK.with(|f| f.set(false));
    }
}

/// Modelled node seconds by phase (0: per run, before any container; 1: containers) and kind.
#[derive(Default)]
struct Record {
    by_kind: BTreeMap<(usize, Kind), (usize, f64)>,
    /// Modelled seconds run while holding the `vmid` lock.
    in_lock: f64,
    /// Of those, the necessary one: `pvesh get /cluster/nextid` (choosing the ID).
    in_lock_needed: f64,
}

/// The fake node with a PVE node's latencies.
struct Slow {
    inner: Arc<FakeNode>,
    scale: f64,
    phase: AtomicUsize,
    booting: Mutex<BTreeSet<String>>,
    rec: Mutex<Record>,
}

impl Slow {
    fn new(inner: Arc<FakeNode>, scale: f64) -> Slow {
        Slow {
            inner,
            scale,
            phase: AtomicUsize::new(0),
            booting: Mutex::new(BTreeSet::new()),
            rec: Mutex::new(Record::default()),
        }
    }

    fn wait(&self, kind: Kind, model_s: f64, argv: &[String]) {
        let phase = self.phase.load(Ordering::SeqCst);
        {
            let mut r = self.rec.lock().unwrap();
            let e = r.by_kind.entry((phase, kind)).or_default();
            e.0 += 1;
            e.1 += model_s;
            if IN_VMID_LOCK.with(Cell::get) {
                r.in_lock += model_s;
                let nextid = argv.get(2).is_some_and(|p| p == "/cluster/nextid");
                if nextid {
                    r.in_lock_needed += model_s;
                }
            }
        }
        if std::env::var_os("BENCH_TRACE").is_some() {
            let shown: Vec<&str> = argv
                .iter()
                .take(4)
                .map(|a| a.lines().next().unwrap_or(""))
                .collect();
            eprintln!(
                "model: phase {phase} {kind:?} {model_s:.3} s: {}",
                shown.join(" ")
            );
        }
        if self.scale > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(model_s * self.scale));
        }
    }
}

impl Transport for Slow {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> anyhow::Result<Output> {
        let argv = cmd.argv_real();
        let kind = classify(&argv);
        let mut s = model(kind);
        match kind {
            Kind::Start => {
                if let Some(id) = argv.get(2) {
                    self.booting.lock().unwrap().insert(id.clone());
                }
            }
            Kind::WaitReady => {
                if let Some(id) = argv.get(2)
                    && self.booting.lock().unwrap().remove(id)
                {
                    s += BOOT;
                }
            }
            _ => {}
        }
        self.wait(kind, s, &argv);
        self.inner.run(cmd, stdin)
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> anyhow::Result<()> {
        self.wait(Kind::NodeWrite, model(Kind::NodeWrite), &[]);
        self.inner.put(bytes, dest, mode)
    }

    fn lock(&self, name: &str, wait: Duration) -> anyhow::Result<LockGuard> {
        let g = self.inner.lock(name, wait)?;
        if name == "vmid" {
            IN_VMID_LOCK.with(|f| f.set(true));
            // Dropped in field order: the flag first, then the node's lock.
            return Ok(LockGuard::new((LockFlag, g)));
        }
        Ok(g)
    }
}

/// One run: N containers, J workers.
struct RunOut {
    /// Real wall time, seconds.
    wall: f64,
    rec: Record,
}

fn run(n: usize, jobs: usize, scale: f64) -> RunOut {
    let fake = Arc::new(FakeNode::new());
    // Every template of the index is already on `local`: no download in the measured runs,
    // whichever one the docker profile resolves to.
    fake.with(|s| {
        for t in FAKE_INDEX {
            s.templates.insert(format!("local:vztmpl/{t}"));
        }
    });
    let slow = Arc::new(Slow::new(fake.clone(), scale));
    let text = format!(
        "[defaults]\nprofile = \"docker\"\n\n[[container]]\nname = \"bench-m{{n}}\"\ncount = {n}\n"
    );
    let lab = labfile::parse("model.toml", &text, Path::new("."), &Layer::default())
        .unwrap_or_else(|e| panic!("the model's lab file was refused:\n{e}"));
    let entries: Vec<&Entry> = lab.entries.iter().collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let node: Arc<dyn Transport> = slow.clone();
    let t0 = Instant::now();
    let targets = Targets::open(&entries, &|_| Ok(node.clone()), &|t| {
        Ctx::new(t, Options::default())
    });
    slow.phase.store(1, Ordering::SeqCst);
    let jobs_v = plain_jobs(&targets, &entries);
    let report = batch::converge_all(
        &targets,
        &jobs_v,
        jobs,
        &cancel,
        &Progress::new(Mode::Silent),
    );
    let wall = t0.elapsed().as_secs_f64();
    let bad: Vec<String> = report
        .containers
        .iter()
        .filter(|c| c.outcome != Outcome::Created)
        .map(|c| format!("{}: {:?} {:?}", c.hostname, c.outcome, c.failure))
        .collect();
    assert!(
        bad.is_empty(),
        "the model run did not create every container:\n{}",
        bad.join("\n")
    );
    drop(targets);
    let rec = std::mem::take(&mut *slow.rec.lock().unwrap());
    RunOut { wall, rec }
}

fn main() {
    let short = common::short();
    let repeat = common::repeat(3);
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s: &f64| s > 0.0)
        .unwrap_or(if short { 0.002 } else { 0.01 });
    let (ns, js): (&[usize], &[usize]) = if short {
        (&[1, 4], &[1, 4])
    } else {
        (&[1, 8, 32], &[1, 4, 8])
    };

    // What one container costs in the model (N = 1, J = 1, no sleeping).
    let probe = run(1, 1, 0.0);
    let per_run: f64 = probe
        .rec
        .by_kind
        .iter()
        .filter(|((p, _), _)| *p == 0)
        .map(|(_, (_, s))| s)
        .sum();
    let per_ct: f64 = probe
        .rec
        .by_kind
        .iter()
        .filter(|((p, _), _)| *p == 1)
        .map(|(_, (_, s))| s)
        .sum();
    let c_needed = probe.rec.in_lock_needed;
    let c_held = probe.rec.in_lock;

    // The tool's own CPU cost per container through the fake (no sleeping at all).
    let cpu_n = if short { 4 } else { 32 };
    let cpu_runs: Vec<f64> = (0..repeat)
        .map(|_| run(cpu_n, 1, 0.0).wall / cpu_n as f64)
        .collect();
    let cpu = summary(&cpu_runs);

    // The grid, each (N, J) `repeat` times, interleaved across repetitions.
    let mut walls: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for _ in 0..repeat {
        for &n in ns {
            for &j in js {
                if j > n && j != js[0] {
                    // More workers than containers is the same run as J = N.
                    continue;
                }
                let r = run(n, j, scale);
                walls.entry((n, j)).or_default().push(r.wall / scale);
            }
        }
    }
    // One container's measured time on this model node, from the same N one after another
    // (--jobs 1), so that --jobs 1 is efficiency 1 by construction and the rest is what
    // parallelism loses.
    let t_ct = |n: usize| (summary(&walls[&(n, 1)]).median - per_run) / n as f64;
    let ideal = |n: usize, j: usize| {
        let t = t_ct(n);
        per_run + f64::max(n.div_ceil(j) as f64 * t, t + (n as f64 - 1.0) * c_needed)
    };

    println!("## 3. Latency model: `provision apply` on a modelled PVE node\n");
    println!(
        "The fake node (tests/support/fake.rs) behind a wrapper that sleeps per command kind \
         (benches/latency_model.rs), time scale {scale} (1 model second = {:.0} ms here); all \
         times below are model seconds (measured wall / scale). {repeat} run(s) per cell.\n",
        scale * 1000.0
    );
    println!("| command kind | modelled s | source |");
    println!("|---|---:|---|");
    for (k, s, src) in MODEL {
        println!("| {k:?} | {s:.3} | {src} |");
    }
    println!();
    println!("What one fresh container costs in the model (docker profile, template present):\n");
    println!("| phase | command kind | calls | modelled s |");
    println!("|---|---|---:|---:|");
    for ((p, k), (c, s)) in &probe.rec.by_kind {
        let phase = if *p == 0 {
            "per run (node facts)"
        } else {
            "per container"
        };
        println!("| {phase} | {k:?} | {c} | {s:.3} |");
    }
    println!(
        "| | **total** | {} | {:.3} (per run {per_run:.3} + per container {per_ct:.3}) |\n",
        probe.rec.by_kind.values().map(|(c, _)| c).sum::<usize>(),
        per_run + per_ct
    );
    println!(
        "Serialised per container: choosing the ID (C) = {c_needed:.3} s. A container holds its \
         share of the node's `vmid` lock for {c_held:.3} s of modelled node commands (guest-list \
         re-read, ID, create); the workers of one run share it, so their creates overlap.\n"
    );
    println!(
        "| N | --jobs | wall, model s: median (min–max) | ideal s | parallel efficiency | speed-up vs --jobs 1 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (&(n, j), xs) in &walls {
        let s = summary(xs);
        let id = ideal(n, j);
        let eff = id / s.median;
        let seq = walls.get(&(n, 1)).map(|v| summary(v).median);
        let speedup = seq.map_or("".to_string(), |q| format!("{:.2}x", q / s.median));
        println!(
            "| {n} | {j} | {} | {id:.1} | {eff:.2} | {speedup} |",
            s.show(1)
        );
        rows.push(serde_json::json!({
            "n": n, "jobs": j, "wall_model_s": s.json(), "ideal_s": r4(id), "efficiency": r4(eff),
        }));
    }
    println!(
        "\nThe tool's own CPU per container through the fake (no sleeping, N = {cpu_n}, --jobs 1): \
         {} ms; at this scale that adds {:.2} model s per container to the measured walls.\n",
        summary(&cpu_runs.iter().map(|s| s * 1000.0).collect::<Vec<_>>()).show(2),
        cpu.median / scale
    );
    let (gn, gj) = if short { (4, 4) } else { (32, 8) };
    let eff = walls
        .get(&(gn, gj))
        .map(|v| ideal(gn, gj) / summary(v).median);
    goal(
        &format!("parallel efficiency, latency model, N = {gn}, --jobs {gj}"),
        ">= 0.85",
        &eff.map_or("-".into(), |e| format!("{e:.2}")),
        eff.map(|e| e >= 0.85),
    );
    json_line(&serde_json::json!({
        "bench": "latency_model",
        "scale": scale,
        "repeat": repeat,
        "per_run_model_s": r4(per_run),
        "per_container_model_s": r4(per_ct),
        "pick_id_create_s": r4(c_needed),
        "vmid_lock_held_s": r4(c_held),
        "cpu_per_container_ms": summary(&cpu_runs.iter().map(|s| s * 1000.0).collect::<Vec<_>>()).json(),
        "grid": rows,
    }));
}
