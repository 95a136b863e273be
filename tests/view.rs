//! What a person sees during and after a batch: the live view and the summary, rendered at a
//! fixed width with the time given, compared with snapshots (tests/snapshots/, `insta`).
//!
//! A snapshot that differs fails the test (plain `cargo test`, no `cargo insta` needed: insta
//! writes a `.snap.new` beside it to compare, and in CI (`CI` set) it writes nothing). After a
//! deliberate change, review the `.snap.new` files and rename them over the `.snap` files (or
//! run once with `INSTA_UPDATE=always` and read the diff).
//!
//! The scenarios: all created, a mix with one failure, an interrupted run; each as the live view
//! mid-run and at the end, and as the summary table. Then the same views from real runs against
//! the fake node (their times set to fixed values), which prove that the applier feeds the view
//! (VMID, step k/n, outcome) and the report (node, addresses).

use crate::support::fake::fake_node;
use provision::apply::Ctx;
use provision::batch::{self, Targets};
use provision::labfile::{self, Entry};
use provision::profile::Layer;
use provision::progress::{Mode, Progress};
use provision::report::{ContainerReport, Failure, Outcome, RunReport, StepReport};
use provision::request::Options;
use provision::summary;
use provision::transport::Transport;
use provision::view::{End, ViewState, render};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Snapshots are rendered at this width (a common terminal) and a screen's height.
const W: usize = 100;
const H: usize = 30;

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("runner-{i}")).collect()
}

/// Container `i` is at step `k` of `n` (`what`), begun at `start`.
fn running(v: &mut ViewState, i: usize, vmid: u32, start: f64, k: usize, n: usize, what: &str) {
    let r = &mut v.rows[i];
    r.vmid = Some(vmid);
    r.started = Some(s(start));
    r.k = k;
    r.n = n;
    r.step = what.into();
}

/// Container `i` ended at `end` with `outcome` (`failed: STEP` for a failure).
fn ended(
    v: &mut ViewState,
    i: usize,
    vmid: Option<u32>,
    start: f64,
    end: f64,
    (k, n): (usize, usize),
    outcome: &str,
) {
    {
        let r = &mut v.rows[i];
        r.vmid = vmid;
        r.started = Some(s(start));
        r.k = k;
        r.n = n;
    }
    v.finish(i, !outcome.starts_with("failed"), outcome, s(end));
}

fn view(v: &ViewState, now: f64) -> String {
    render(v, W, H, s(now)).join("\n")
}

const STEPS: [(&str, &str, u64); 7] = [
    ("create", "no container runner-N on the node", 9_400),
    ("start", "the container is stopped", 2_100),
    (
        "install docker",
        "dockerd is not installed (distribution packages: docker.io)",
        41_800,
    ),
    ("write daemon.json", "storage-driver must be overlay2", 300),
    ("restart docker", "daemon.json changed", 1_900),
    (
        "build probe image",
        "no local image provision-probe:1 to verify with",
        3_200,
    ),
    ("verify docker", "prove Docker runs a container", 1_600),
];

/// The report of a created container, as the applier writes it.
fn created(name: &str, vmid: u32, ip: &str, ms: u64) -> ContainerReport {
    let mut c = ContainerReport::new(name);
    c.vmid = Some(vmid);
    c.outcome = Outcome::Created;
    c.node = Some("pve1".into());
    c.addresses = vec![ip.into()];
    c.driver = Some("overlay2".into());
    c.driver_reason = "root disk on dir storage labct (not ZFS)".into();
    c.verified = true;
    c.duration_ms = ms;
    for (n, why, ms) in STEPS {
        c.steps.push(StepReport {
            name: n.into(),
            why: why.replace("runner-N", name),
            status: provision::report::StepStatus::Done,
            duration_ms: ms,
            detail: if n == "verify docker" {
                "docker run provision-probe:1 printed ok (storage driver overlay2)".into()
            } else {
                String::new()
            },
        });
    }
    c
}

/// A container that failed at `install docker` with the package manager's last lines.
fn failed_at_install(name: &str, vmid: u32, ms: u64) -> ContainerReport {
    let mut c = created(name, vmid, "10.0.3.13", ms);
    c.outcome = Outcome::Failed;
    c.verified = false;
    c.steps.truncate(3);
    c.steps[2].status = provision::report::StepStatus::Failed;
    c.failure = Some(Failure {
        step: "install docker".into(),
        message: "step \"install docker\": pct exec 302 -- sh -c <script> exited with 100: E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?".into(),
        tail: vec![
            "Err:12 http://mirror.example/debian bookworm/main amd64 docker.io amd64 20.10.24+dfsg1-1+b3".into(),
            "  Could not connect to mirror.example:80 (192.0.2.10), connection timed out".into(),
            "E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?".into(),
        ],
        left: format!("container {vmid} was created by this run and is half-made; the next run continues it"),
        usage: false,
        interrupted: false,
        known_issue: None,
    });
    c
}

fn ip(i: usize) -> String {
    format!("10.0.3.{}", 10 + i)
}

// ---------------------------------------------------------------------------------------------
// All created.

fn all_created_state() -> ViewState {
    let mut v = ViewState::new(&names(8), 4);
    ended(&mut v, 0, Some(300), 0.1, 61.0, (7, 7), "created");
    ended(&mut v, 1, Some(301), 0.1, 64.5, (7, 7), "created");
    running(&mut v, 2, 302, 0.1, 6, 7, "build probe image");
    running(&mut v, 3, 303, 0.2, 5, 7, "restart docker");
    running(&mut v, 4, 304, 61.0, 3, 7, "install docker");
    running(&mut v, 5, 305, 64.5, 2, 7, "start");
    v
}

#[test]
fn live_view_all_created_mid_run() {
    let v = all_created_state();
    let text = view(&v, 70.0);
    assert!(text.contains("ETA"), "a container has finished: {text}");
    insta::assert_snapshot!("live_all_created_mid_run", text);
}

#[test]
fn live_view_before_any_container_finished_has_no_estimate_but_a_bar() {
    let mut v = ViewState::new(&names(3), 3);
    running(&mut v, 0, 100, 0.0, 3, 7, "install docker");
    running(&mut v, 1, 101, 0.0, 2, 7, "start");
    running(&mut v, 2, 102, 0.0, 1, 7, "create");
    let text = view(&v, 12.0);
    assert!(!text.contains("ETA"), "{text}");
    // The bar is not blank: the finished steps of running containers count.
    let total = text.lines().last().unwrap();
    assert!(total.contains("[==="), "{total}");
    insta::assert_snapshot!("live_first_steps", text);
}

#[test]
fn live_view_all_created_at_the_end() {
    let mut v = ViewState::new(&names(8), 4);
    let ends = [61.0, 64.5, 70.2, 71.0, 128.4, 131.9, 133.0, 140.6];
    for (i, e) in ends.iter().enumerate() {
        let start = if i < 4 { 0.1 } else { ends[i - 4] };
        ended(
            &mut v,
            i,
            Some(300 + i as u32),
            start,
            *e,
            (7, 7),
            "created",
        );
    }
    v.close(s(140.7));
    let text = view(&v, 140.7);
    assert!(!text.contains("ETA"), "{text}");
    insta::assert_snapshot!("live_all_created_end", text);
}

fn all_created_report() -> RunReport {
    let ms = [
        60_900, 64_400, 70_100, 70_800, 67_400, 67_400, 62_500, 68_700,
    ];
    RunReport {
        containers: (0..8)
            .map(|i| {
                created(
                    &format!("runner-{}", i + 1),
                    300 + i as u32,
                    &ip(i + 1),
                    ms[i],
                )
            })
            .collect(),
        notes: vec![],
    }
}

#[test]
fn summary_all_created() {
    let text = summary::table(&all_created_report(), W);
    assert!(text.lines().count() <= 12, "one screen: {text}");
    insta::assert_snapshot!("summary_all_created", text);
}

#[test]
fn verbose_summary_lists_every_step_and_wraps_at_word_boundaries() {
    let mut r = all_created_report();
    r.containers.truncate(2);
    r.containers[0].notes.push(
        "hint: storage_driver = \"auto\" would pick overlay2 here (root disk on dir storage labct); overlay2 is much faster than fuse-overlayfs".into(),
    );
    let text = summary::render(&r, true, 72);
    for l in text.lines() {
        assert!(
            provision::text::width(l) <= 72,
            "line wider than 72 columns: {l:?}"
        );
    }
    insta::assert_snapshot!("summary_verbose_72", text);
}

// ---------------------------------------------------------------------------------------------
// A mix with one failure.

fn mix_state() -> ViewState {
    let mut v = ViewState::new(&names(8), 4);
    ended(&mut v, 0, Some(300), 0.1, 61.0, (7, 7), "created");
    ended(&mut v, 1, Some(301), 0.1, 3.2, (1, 1), "unchanged");
    ended(
        &mut v,
        2,
        Some(302),
        0.1,
        44.0,
        (3, 7),
        "failed: install docker",
    );
    ended(&mut v, 3, Some(303), 0.2, 8.3, (2, 2), "changed");
    running(&mut v, 4, 304, 3.2, 6, 7, "build probe image");
    running(&mut v, 5, 305, 8.3, 4, 7, "write daemon.json");
    running(&mut v, 6, 306, 44.0, 3, 7, "install docker");
    running(&mut v, 7, 307, 61.0, 0, 7, "wait for init and network");
    v
}

#[test]
fn live_view_mix_with_one_failure() {
    let v = mix_state();
    let text = view(&v, 66.0);
    assert!(text.contains("failed at install docker"), "{text}");
    insta::assert_snapshot!("live_mix_one_failure", text);
}

fn mix_report() -> RunReport {
    let mut cs: Vec<ContainerReport> = (0..8)
        .map(|i| {
            created(
                &format!("runner-{}", i + 1),
                300 + i as u32,
                &ip(i + 1),
                61_000 + 900 * i as u64,
            )
        })
        .collect();
    cs[1].outcome = Outcome::Unchanged;
    cs[1].steps.retain(|s| s.name == "verify docker");
    cs[1].duration_ms = 3_100;
    cs[2] = failed_at_install("runner-3", 302, 43_900);
    cs[2].addresses.clear();
    cs[3].outcome = Outcome::Changed;
    cs[3].duration_ms = 8_200;
    cs[3].pending = vec!["features".into()];
    cs[3].notes.push("pending until the container restarts: features (run again with --restart to restart it now)".into());
    cs[3].addresses.push("fd00:3::14".into());
    RunReport {
        containers: cs,
        notes: vec![],
    }
}

#[test]
fn summary_mix_with_one_failure() {
    let r = mix_report();
    let text = summary::table(&r, W);
    assert!(
        text.contains("runner-3 (VMID 302) failed at step \"install docker\""),
        "{text}"
    );
    assert!(
        text.contains("  | E: Unable to fetch some archives"),
        "{text}"
    );
    // Only the failed container's steps appear: no step list for the others.
    assert!(!text.contains("build probe image"), "{text}");
    insta::assert_snapshot!("summary_mix_one_failure", text);
}

#[test]
fn summary_fits_a_narrow_terminal_without_cutting_words() {
    let text = summary::table(&mix_report(), 60);
    for l in text.lines() {
        if provision::text::width(l) > 60 {
            // Only the table's rows may be wider (a table is not wrapped), never prose.
            assert!(
                l.starts_with("runner-") || l.starts_with("NAME"),
                "prose wider than 60: {l:?}"
            );
        }
    }
    let words = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
    let msg = mix_report().containers[2]
        .failure
        .as_ref()
        .unwrap()
        .message
        .clone();
    let joined = words(&text).join(" ");
    assert!(
        joined.contains(&words(&msg).join(" ")),
        "the error survives whole: {text}"
    );
    insta::assert_snapshot!("summary_mix_one_failure_60", text);
}

// ---------------------------------------------------------------------------------------------
// An interrupted run.

#[test]
fn live_view_interrupted() {
    let mut v = ViewState::new(&names(6), 2);
    ended(&mut v, 0, Some(300), 0.1, 61.0, (7, 7), "created");
    ended(
        &mut v,
        1,
        Some(301),
        0.1,
        20.5,
        (3, 7),
        "failed: install docker",
    );
    v.close(s(20.6));
    let text = view(&v, 20.6);
    let not_started = text
        .lines()
        .filter(|l| l.starts_with("- ") && l.ends_with("not started"))
        .count();
    assert_eq!(not_started, 4, "{text}");
    assert!(text.contains("1 ok, 1 failed, 4 not started"), "{text}");
    insta::assert_snapshot!("live_interrupted", text);
}

#[test]
fn summary_interrupted() {
    let mut first = created("runner-1", 300, "10.0.3.11", 60_900);
    first.duration_ms = 60_900;
    let mut second = failed_at_install("runner-2", 301, 20_400);
    second.addresses.clear();
    if let Some(f) = &mut second.failure {
        f.message =
            "interrupted (SIGINT/SIGTERM) before step \"install docker\"; run again to continue"
                .into();
        f.tail.clear();
        f.left =
            "container 301 was created by this run and is half-made; the next run continues it"
                .into();
    }
    let mut cs = vec![first, second];
    for i in 3..=6 {
        let mut c = ContainerReport::new(&format!("runner-{i}"));
        c.outcome = Outcome::Skipped;
        c.notes
            .push("not started (interrupted): not created".into());
        cs.push(c);
    }
    let r = RunReport {
        containers: cs,
        notes: vec![
            "interrupted (SIGINT/SIGTERM): 4 container(s) were not started; run again to continue"
                .into(),
        ],
    };
    let text = summary::table(&r, W);
    assert!(
        text.contains("note (runner-3, runner-4, runner-5 (+1 more))"),
        "{text}"
    );
    insta::assert_snapshot!("summary_interrupted", text);
}

// ---------------------------------------------------------------------------------------------
// Many containers, hostile text.

#[test]
fn live_view_of_many_containers_fits_the_screen() {
    let mut v = ViewState::new(&names(40), 4);
    for i in 0..20 {
        ended(
            &mut v,
            i,
            Some(300 + i as u32),
            i as f64,
            i as f64 + 30.0,
            (7, 7),
            "created",
        );
    }
    ended(&mut v, 20, Some(320), 20.0, 40.0, (2, 7), "failed: start");
    for i in 21..24 {
        running(&mut v, i, 300 + i as u32, 40.0, 3, 7, "install docker");
    }
    let lines = render(&v, W, 12, s(60.0));
    assert!(lines.len() <= 12, "{lines:#?}");
    let text = lines.join("\n");
    // Running and failed containers are always shown; the rest are counted.
    for n in ["runner-21", "runner-22", "runner-23", "runner-24"] {
        assert!(text.contains(&format!("{n} ")), "{n} missing: {text}");
    }
    insta::assert_snapshot!("live_many", text);
}

#[test]
fn names_errors_and_output_from_outside_cannot_drive_the_terminal() {
    let mut v = ViewState::new(&["evil\x1b[2J".to_string()], 1);
    ended(
        &mut v,
        0,
        Some(100),
        0.0,
        1.0,
        (1, 1),
        "failed: start\x1b]0;x\x07",
    );
    let mut c = failed_at_install("evil\x1b[2J", 100, 1000);
    if let Some(f) = &mut c.failure {
        f.message.push_str("\r\x1b[31mred");
        f.tail.push("\x1b[1A\x1b[2Kover".into());
    }
    c.addresses = vec!["10.0.0.1\x1b[2J".into()];
    c.node = Some("pve\x07".into());
    let r = RunReport {
        containers: vec![c],
        notes: vec!["note\x1b[0m".into()],
    };
    for text in [view(&v, 1.0), summary::table(&r, W), summary::full(&r, W)] {
        assert!(
            !text.chars().any(|ch| ch.is_control() && ch != '\n'),
            "a control character reached the output: {text:?}"
        );
        assert!(text.contains("\\u{1b}"), "{text}");
    }
}

#[test]
fn the_estimate_spreads_the_work_left_over_the_workers() {
    // 4 workers, 8 containers; two finished in 60 s each, two running for 10 s, four waiting.
    let mut v = ViewState::new(&names(8), 4);
    ended(&mut v, 0, Some(1), 0.0, 60.0, (7, 7), "created");
    ended(&mut v, 1, Some(2), 0.0, 60.0, (7, 7), "created");
    running(&mut v, 2, 3, 60.0, 1, 7, "create");
    running(&mut v, 3, 4, 60.0, 1, 7, "create");
    // Running ones need 50 s more; two idle workers take two waiting ones (60 s), the last two
    // go to the workers free at 50 s: 110 s.
    assert_eq!(v.eta(s(70.0)), Some(s(110.0)));
    // A container slower than the mean still counts a second.
    assert_eq!(
        {
            let mut w = ViewState::new(&names(2), 2);
            ended(&mut w, 0, Some(1), 0.0, 10.0, (1, 1), "created");
            running(&mut w, 1, 2, 0.0, 1, 7, "create");
            w.eta(s(30.0))
        },
        Some(s(1.0))
    );
    assert_eq!(ViewState::new(&names(2), 2).eta(s(5.0)), None);
    let _ = End {
        ok: true,
        outcome: String::new(),
        at: Duration::ZERO,
    };
}

// ---------------------------------------------------------------------------------------------
// Real runs against the fake node.

fn fake_run(text: &str, fail: Option<&str>, jobs: usize) -> (RunReport, ViewState) {
    let node = fake_node();
    if let Some(f) = fail {
        node.with(|s| s.fail_matching.push(f.into()));
    }
    // The template is on the node already: with two workers, which one would download it (one
    // step more) is up to the scheduler, and the snapshots must not be.
    node.with(|s| {
        s.templates
            .insert("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst".into())
    });
    let lab = labfile::parse("lab.toml", text, Path::new("."), &Layer::default())
        .unwrap_or_else(|e| panic!("lab file refused:\n{e}"));
    let entries: Vec<&Entry> = lab.entries.iter().collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let make_ctx = |t: Arc<dyn Transport>| {
        let mut c = Ctx::new(t, Options::default());
        c.cancel = cancel.clone();
        c
    };
    let t: Arc<dyn Transport> = node.clone();
    let targets = Targets::open(&entries, &|_| Ok(t.clone()), &make_ctx);
    let jobs_v = crate::support::jobs::plain_jobs(&targets, &entries);
    let mut progress = Progress::new(Mode::Record);
    progress.set_jobs(jobs);
    progress.prepare(&entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>());
    let mut r = batch::converge_all(&targets, &jobs_v, jobs, &cancel, &progress);
    progress.finish();
    let mut v = progress.view().expect("recorded");
    // Fixed times, so that the snapshots do not depend on the machine.
    for (i, row) in v.rows.iter_mut().enumerate() {
        row.started = Some(s(i as f64));
        if let Some(e) = &mut row.end {
            e.at = s(i as f64 + 30.0);
        }
    }
    for c in &mut r.containers {
        c.duration_ms = 30_000;
        for st in &mut c.steps {
            st.duration_ms = 1_000;
        }
    }
    (r, v)
}

const FAKE_LAB: &str = r#"[defaults]
profile = "docker"

[[container]]
name = "runner-{n}"
count = 3
vmid_base = 300

[[container]]
name = "db"
vmid = 320
[container.network]
ip = "10.20.0.21/24"
gateway = "10.20.0.1"
"#;

#[test]
fn a_fake_run_feeds_the_view_vmid_steps_and_outcome_and_the_report_node_and_address() {
    let (r, v) = fake_run(FAKE_LAB, Some("--hostname runner-2 "), 2);
    assert_eq!(r.exit_code(), 1);
    for (row, c) in v.rows.iter().zip(&r.containers) {
        assert_eq!(row.vmid, c.vmid, "{row:?}");
        let end = row.end.as_ref().expect("ended");
        if c.outcome == Outcome::Created {
            // The count planned before the run is the count that ran.
            assert_eq!((row.k, row.n), (c.steps.len(), c.steps.len()), "{row:?}");
            assert_eq!(end.outcome, "created");
        }
    }
    assert_eq!(v.rows[1].end.as_ref().unwrap().outcome, "failed at create");
    let db = &r.containers[3];
    assert_eq!(
        db.addresses,
        vec!["10.20.0.21"],
        "Docker's bridge is left out"
    );
    assert!(db.node.is_some());
    insta::assert_snapshot!("fake_run_live_end", render(&v, W, H, s(40.0)).join("\n"));
    insta::assert_snapshot!("fake_run_summary", summary::table(&r, W));
}

#[test]
fn a_fake_rerun_shows_unchanged_with_its_one_step() {
    let node_text = FAKE_LAB;
    let node = fake_node();
    let lab = labfile::parse("lab.toml", node_text, Path::new("."), &Layer::default()).unwrap();
    let entries: Vec<&Entry> = lab.entries.iter().collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let make_ctx = |t: Arc<dyn Transport>| Ctx::new(t, Options::default());
    let t: Arc<dyn Transport> = node.clone();
    let run = |p: &Progress| {
        let targets = Targets::open(&entries, &|_| Ok(t.clone()), &make_ctx);
        let jobs_v = crate::support::jobs::plain_jobs(&targets, &entries);
        batch::converge_all(&targets, &jobs_v, 2, &cancel, p)
    };
    assert_eq!(run(&Progress::new(Mode::Silent)).exit_code(), 0);
    let mut p = Progress::new(Mode::Record);
    p.prepare(&entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>());
    let r = run(&p);
    p.finish();
    let v = p.view().unwrap();
    for (row, c) in v.rows.iter().zip(&r.containers) {
        assert_eq!(c.outcome, Outcome::Unchanged);
        assert_eq!(row.end.as_ref().unwrap().outcome, "unchanged");
        assert_eq!(
            (row.k, row.n),
            (c.steps.len(), c.steps.len()),
            "{row:?} {:?}",
            c.steps
        );
        assert!(row.vmid.is_some());
    }
}
