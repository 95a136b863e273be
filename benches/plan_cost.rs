//! Measurement 6: what planning costs. `provision apply FILE --dry-run` of a lab file with one
//! counted entry of 1000 containers:
//!
//! - the binary on a machine without pct (PATH=/usr/bin:/bin: planned for an empty node): wall
//!   time and peak memory (ru_maxrss from wait4), text and JSON plans;
//! - the library against the in-memory fake node ([`batch::dry_all`], as the dry run calls it):
//!   planning when a node answers, without the node's latency;
//! - when the lab is up (PROVISION_LAB=1): the binary's dry run on the lab node for a few
//!   containers, to show the node commands a dry run makes per container.
//!
//! Environment: `BENCH_SHORT=1` (one run each, 3 containers on the lab), `BENCH_REPEAT`
//! (default 10), the lab's variables.

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
use provision::labfile::{self, Entry};
use provision::profile::Layer;
use provision::request::Options;
use provision::transport::Transport;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const N: usize = 1000;

/// A profile like the lab's (measurement 1); the template and storage need not exist for a
/// dry run without pct.
fn write_profile(dir: &Path) -> PathBuf {
    let template = std::env::var("PROVISION_LAB_TEMPLATE")
        .unwrap_or_else(|_| "local:vztmpl/debian-12-standard_12.15-1_amd64.tar.zst".into());
    let storage = std::env::var("PROVISION_LAB_STORAGE").unwrap_or_else(|_| "labct".into());
    let p = dir.join("lab-docker.toml");
    std::fs::write(
        &p,
        format!(
            "extends = \"docker\"\ntemplate = \"{template}\"\nmemory = 1024\n\n\
             [docker.fuse_overlayfs]\nsource = \"node\"\npath = \"/usr/bin/fuse-overlayfs\"\n\n\
             [rootfs]\nstorage = \"{storage}\"\nsize = 4\n"
        ),
    )
    .unwrap();
    p
}

fn write_lab(dir: &Path, profile: &Path, n: usize) -> PathBuf {
    let f = dir.join(format!("plan-{n}.toml"));
    std::fs::write(
        &f,
        format!(
            "[defaults]\nprofile = \"{}\"\n\n[[container]]\nname = \"bench-plan-{{n}}\"\ncount = {n}\n",
            profile.display()
        ),
    )
    .unwrap();
    f
}

/// One run of the binary: wall seconds, peak RSS in KiB, bytes of output, exit status.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_binary(args: &[&str], path_env: &str, cwd: &Path, out: &Path) -> (f64, i64, u64, i32) {
    let file = std::fs::File::create(out).unwrap();
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("PATH", path_env)
        .env("CI", "1")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting provision");
    let mut status = 0;
    // SAFETY: wait4 fills a zeroed rusage for our own child.
    let rss = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru);
        assert!(pid > 0, "wait4 failed");
        ru.ru_maxrss
    };
    let wall = t0.elapsed().as_secs_f64();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    (wall, rss, bytes, code)
}

/// Planning through the library against the fake node: seconds for `n` containers.
fn run_fake(n: usize) -> f64 {
    let fake = Arc::new(FakeNode::new());
    fake.with(|s| {
        for t in FAKE_INDEX {
            s.templates.insert(format!("local:vztmpl/{t}"));
        }
    });
    let text = format!(
        "[defaults]\nprofile = \"docker\"\n\n[[container]]\nname = \"bench-plan-{{n}}\"\ncount = {n}\n"
    );
    let t0 = Instant::now();
    let lab = labfile::parse("plan.toml", &text, Path::new("."), &Layer::default())
        .unwrap_or_else(|e| panic!("refused:\n{e}"));
    let entries: Vec<&Entry> = lab.entries.iter().collect();
    let node: Arc<dyn Transport> = fake.clone();
    let targets = Targets::open(&entries, &|_| Ok(node.clone()), &|t| {
        Ctx::new(t, Options::default())
    });
    let jobs = plain_jobs(&targets, &entries);
    let plans = batch::dry_all(&targets, &jobs, 4, &AtomicBool::new(false));
    let texts: usize = plans
        .iter()
        .map(|p| provision::apply::plan_text(p.as_ref().expect("planned"), false).len())
        .sum();
    let s = t0.elapsed().as_secs_f64();
    assert!(texts > 0);
    s
}

fn main() {
    let short = common::short();
    let repeat = common::repeat(10);
    let dir = tempfile::Builder::new()
        .prefix("provision-bench-plan-")
        .tempdir()
        .unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let profile = write_profile(&cwd);
    let big = write_lab(&cwd, &profile, N);
    let one = write_lab(&cwd, &profile, 1);
    let out = cwd.join("plan.out");
    let nopct = "/usr/bin:/bin";

    println!("## 6. Planning cost: `provision apply FILE --dry-run`, {N} containers\n");
    println!(
        "A lab file with one counted entry (`count = {N}`) of the lab profile; {repeat} run(s) \
         each, wall in ms and peak RSS (wait4 ru_maxrss) in MiB, median (min–max).\n"
    );
    println!("| run | wall ms | peak RSS MiB | output |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    let mut big_text_ms = None;
    let cases: [(&str, &Path, &[&str]); 3] = [
        (
            "1 container, text plan, no pct (PATH=/usr/bin:/bin)",
            &one,
            &[],
        ),
        (
            "1000 containers, text plan, no pct (PATH=/usr/bin:/bin)",
            &big,
            &[],
        ),
        (
            "1000 containers, JSON plan, no pct (PATH=/usr/bin:/bin)",
            &big,
            &["--output", "json"],
        ),
    ];
    for (i, (what, file, extra)) in cases.iter().enumerate() {
        let f = file.to_str().unwrap();
        let mut args = vec!["apply", f, "--dry-run"];
        args.extend_from_slice(extra);
        let (mut walls, mut rss, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..repeat {
            let (w, r, b, code) = run_binary(&args, nopct, &cwd, &out);
            assert_eq!(
                code,
                0,
                "the dry run failed: {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
            walls.push(w * 1000.0);
            rss.push(r as f64 / 1024.0);
            bytes = b;
        }
        let (w, r) = (summary(&walls), summary(&rss));
        println!(
            "| {what} | {} | {} | {:.0} kB |",
            w.show(1),
            r.show(1),
            bytes as f64 / 1e3
        );
        if i == 1 {
            big_text_ms = Some(w.median);
        }
        rows.push(serde_json::json!({"case": what, "wall_ms": w.json(), "rss_mib": r.json(), "bytes": bytes}));
    }

    // The library against the fake node.
    let fake_ms: Vec<f64> = (0..repeat).map(|_| run_fake(N) * 1000.0).collect();
    let fake = summary(&fake_ms);
    println!(
        "| {N} containers through the library against the fake node (parse + node facts + \
         `batch::dry_all` + text), in-process | {} | | |",
        fake.show(1)
    );

    // On the lab: node commands of a dry run, per container.
    let mut lab_json = serde_json::Value::Null;
    if std::env::var("PROVISION_LAB").as_deref() == Ok("1") {
        let log = PathBuf::from(std::env::var("PROVISION_LAB_LOG").unwrap_or_default());
        let path = std::env::var("PATH").unwrap_or_default();
        let sizes: &[usize] = if short { &[1, 3] } else { &[1, 10, 100] };
        let mut pts = Vec::new();
        for &n in sizes {
            let file = write_lab(&cwd, &profile, n);
            let mark = std::fs::metadata(&log).map_or(0, |m| m.len());
            let (w, _, _, code) = run_binary(
                &["apply", file.to_str().unwrap(), "--dry-run"],
                &path,
                &cwd,
                &out,
            );
            assert_eq!(code, 0, "the dry run on the lab failed");
            let text = std::fs::read(&log).unwrap_or_default();
            let here = format!("\"cwd\":{}", serde_json::json!(cwd.display().to_string()));
            let calls = String::from_utf8_lossy(&text[(mark as usize).min(text.len())..])
                .lines()
                .filter(|l| l.contains(&here))
                .count();
            pts.push((n, w, calls));
        }
        let (n0, w0, c0) = pts[0];
        let (n1, w1, c1) = pts[pts.len() - 1];
        let per_ct_calls = (c1 as f64 - c0 as f64) / (n1 as f64 - n0 as f64);
        let per_ct_s = (w1 - w0) / (n1 - n0) as f64;
        println!(
            "| on the lab node: {n0} / {n1} container(s), text plan | {:.0} / {:.0} | | {c0} / {c1} node commands |",
            w0 * 1000.0,
            w1 * 1000.0
        );
        if per_ct_calls < 0.05 {
            println!(
                "\nOn a node, a dry run's node commands do not grow with the number of containers \
                 ({c0} for {n0}, {c1} for {n1}: the node facts and one `nextid`, read once per \
                 run); its wall grows by {:.2} ms per container (the plans themselves).\n",
                per_ct_s * 1000.0
            );
        } else {
            println!(
                "\nOn a node, a dry run makes {per_ct_calls:.1} node command(s) per container \
                 ({:.0} ms each container here): {N} containers would take about {:.0} s on the lab.\n",
                per_ct_s * 1000.0,
                w0 + (N - n0) as f64 * per_ct_s
            );
        }
        lab_json = serde_json::json!({"points": pts.iter().map(|(n, w, c)| serde_json::json!({"n": n, "wall_s": r4(*w), "calls": c})).collect::<Vec<_>>(),
            "calls_per_container": r4(per_ct_calls), "s_per_container": r4(per_ct_s)});
    } else {
        println!("\n(the lab is not up: the dry run on a node was not measured)\n");
    }
    let ms = big_text_ms.unwrap_or(f64::NAN);
    goal(
        "plan of 1000 containers (`apply --dry-run`, no pct)",
        "< 200 ms",
        &format!("{ms:.0} ms"),
        Some(ms < 200.0),
    );
    json_line(&serde_json::json!({
        "bench": "plan_cost", "repeat": repeat, "binary": rows,
        "fake_ms": fake.json(), "lab": lab_json,
    }));
}
