//! `provision doctor`: recorded node outputs -> OK / WARN / FAIL per check, the JSON shape, the
//! exit code, and the real binary on this machine (which is no Proxmox VE node).
//!
//! Each case in tests/fixtures/doctor/cases/*.toml names a recorded output of the doctor's facts
//! script (tests/fixtures/doctor/nodes/*.facts), a profile (with overrides) and the expected
//! level of each check; every check a case does not list must be OK.

use anyhow::Result;
use provision::cli::DoctorArgs;
use provision::cmd::{Cmd, Output};
use provision::commands;
use provision::doctor::{self, Level, Report};
use provision::profile::{self, Layer};
use provision::request::Request;
use provision::transport::{LockGuard, Transport};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    facts: String,
    profile: String,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    overrides: Layer,
    exit_code: u8,
    /// Check id -> "ok" | "warn" | "fail"; unlisted checks must be "ok".
    expect: BTreeMap<String, String>,
    /// Check id -> a substring of its detail or fix.
    #[serde(default)]
    details: BTreeMap<String, String>,
}

fn requests(profile_name: &str, overrides: &Layer, hostnames: &[String]) -> Vec<Request> {
    let p = profile::load(profile_name, overrides).expect("profile loads");
    if hostnames.is_empty() {
        return vec![Request {
            hostname: String::new(),
            vmid: None,
            profile: p,
        }];
    }
    hostnames
        .iter()
        .map(|h| Request {
            hostname: h.clone(),
            vmid: None,
            profile: p.clone(),
        })
        .collect()
}

fn read_facts(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("nodes").join(name)).expect("facts fixture")
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Ok => "ok",
        Level::Warn => "warn",
        Level::Fail => "fail",
    }
}

/// A node that answers the doctor's facts script with a recorded output, and counts calls.
struct Recorded {
    text: String,
    calls: Mutex<Vec<Vec<String>>>,
}

impl Transport for Recorded {
    fn label(&self) -> String {
        "recorded".into()
    }
    fn run(&self, cmd: &Cmd, _stdin: Option<&[u8]>) -> Result<Output> {
        let argv = cmd.argv_real();
        self.calls.lock().unwrap().push(argv.clone());
        if argv.len() > 2 && argv[0] == "sh" && argv[2] == doctor::FACTS_SCRIPT {
            Ok(Output::ok(self.text.clone().into_bytes()))
        } else {
            Ok(Output::fail(
                127,
                format!("recorded node: unknown {argv:?}\n"),
            ))
        }
    }
    fn put(&self, _bytes: &[u8], dest: &str, _mode: u32) -> Result<()> {
        anyhow::bail!("the doctor never writes files (asked to write {dest})")
    }
    fn lock(&self, _name: &str, _wait: Duration) -> Result<LockGuard> {
        anyhow::bail!("the doctor never takes locks")
    }
}

#[test]
fn recorded_nodes_give_the_expected_checks() {
    let mut dir: Vec<PathBuf> = std::fs::read_dir(fixtures().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    dir.sort();
    assert!(dir.len() >= 10, "cases: {dir:?}");
    let mut failures = Vec::new();
    for path in &dir {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let case: Case = toml::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let reqs = requests(&case.profile, &case.overrides, &case.hostnames);
        let facts = doctor::parse_facts(&read_facts(&case.facts));
        let checks = doctor::evaluate(&facts, &reqs);
        let report = Report::new("recorded", checks.clone());
        let mut problems = Vec::new();
        for c in &checks {
            let want = case.expect.get(&c.id).map_or("ok", String::as_str);
            if level_word(c.level) != want {
                problems.push(format!(
                    "{}: {} but expected {want} ({})",
                    c.id,
                    level_word(c.level),
                    c.detail
                ));
            }
            if c.level != Level::Ok && c.fix.is_none() && !c.detail.starts_with("not checked") {
                problems.push(format!("{}: a {:?} without a fix", c.id, c.level));
            }
        }
        for id in case.expect.keys().chain(case.details.keys()) {
            if !checks.iter().any(|c| &c.id == id) {
                problems.push(format!("no check {id}"));
            }
        }
        for (id, sub) in &case.details {
            if let Some(c) = checks.iter().find(|c| &c.id == id) {
                let text = format!("{} {}", c.detail, c.fix.as_deref().unwrap_or(""));
                if !text.contains(sub.as_str()) {
                    problems.push(format!("{id}: {text:?} lacks {sub:?}"));
                }
            }
        }
        if report.exit_code() != case.exit_code {
            problems.push(format!(
                "exit code {} but expected {}",
                report.exit_code(),
                case.exit_code
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name} ({}):\n  {}\n{}",
                case.description,
                problems.join("\n  "),
                report.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn doctor_reads_the_node_with_one_read_only_command_through_the_transport() {
    let node = Recorded {
        text: read_facts("pve8-healthy.facts"),
        calls: Mutex::new(Vec::new()),
    };
    let o = Layer {
        template_storage: Some("nas".into()),
        ..Layer::default()
    };
    let reqs = requests("docker", &o, &["a".into(), "b".into()]);
    let report = doctor::run(&node, &reqs).unwrap();
    let calls = node.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let argv = &calls[0];
    assert_eq!(&argv[..2], ["sh", "-c"]);
    // The script is told which template storage to list and which node binary to hash, once.
    assert_eq!(
        &argv[3..],
        [
            "provision-doctor",
            "file=/usr/local/bin/fuse-overlayfs",
            "tmpl=nas"
        ]
    );
    assert_eq!(report.node, "recorded");
    // The recorded node has no storage `nas`: a FAIL naming the ones that allow templates.
    let c = report
        .checks
        .iter()
        .find(|c| c.id == "template-storage:nas")
        .unwrap();
    assert_eq!(c.level, Level::Fail);
    assert!(c.detail.contains("storages that do: local"), "{}", c.detail);
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn json_report_has_a_stable_shape() {
    let facts = doctor::parse_facts(&read_facts("pve8-no-dev-fuse.facts"));
    let reqs = requests("docker", &Layer::default(), &[]);
    let report = Report::new("ssh:root@pve1", doctor::evaluate(&facts, &reqs));
    let v: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(v["node"], "ssh:root@pve1");
    assert_eq!(v["ok"], false);
    let s = &v["summary"];
    let n = |k: &str| s[k].as_u64().unwrap() as usize;
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(n("ok") + n("warn") + n("fail"), checks.len());
    assert_eq!(n("fail"), 1);
    for c in checks {
        let o = c.as_object().unwrap();
        for k in o.keys() {
            assert!(
                ["id", "level", "title", "detail", "fix"].contains(&k.as_str()),
                "unexpected key {k}"
            );
        }
        assert!(["ok", "warn", "fail"].contains(&c["level"].as_str().unwrap()));
        assert!(!c["id"].as_str().unwrap().is_empty());
        assert!(!c["title"].as_str().unwrap().is_empty());
    }
    let fuse = checks.iter().find(|c| c["id"] == "dev-fuse").unwrap();
    assert_eq!(fuse["level"], "fail");
    assert!(fuse["fix"].as_str().unwrap().contains("modprobe fuse"));
}

#[test]
fn warnings_alone_exit_zero_and_a_failure_exits_one() {
    let facts = doctor::parse_facts(&read_facts("pve8-low-maxkeys.facts"));
    let reqs = requests("docker", &Layer::default(), &[]);
    let report = Report::new("n", doctor::evaluate(&facts, &reqs));
    assert!(report.summary.warn > 0 && report.summary.fail == 0);
    assert_eq!(report.exit_code(), 0);
    assert!(report.text().contains("WARN  kernel key quota"));
    let facts = doctor::parse_facts(&read_facts("pve8-keys-exhausted.facts"));
    let report = Report::new("n", doctor::evaluate(&facts, &reqs));
    assert_eq!(report.exit_code(), 1);
    assert!(report.text().contains("fix: raise the quota"));
}

#[test]
fn unknown_and_garbled_lines_are_ignored() {
    let text = "uid=0\nnot a fact\nkernel=6.8.0-1-pve\nkey_users_100000=garbage\ndev_fuse=oops\nct=x 1 y\n";
    let f = doctor::parse_facts(text);
    assert_eq!(f.uid, Some(0));
    assert_eq!(f.kernel, "6.8.0-1-pve");
    assert!(f.key_usage.is_none());
    assert!(f.dev_fuse.is_none());
    assert!(f.cts.is_empty());
}

#[test]
fn the_facts_script_runs_here_and_parses() {
    // The real script on this machine (no PVE): it must finish and report the basics.
    let out = std::process::Command::new("sh")
        .args(["-c", doctor::FACTS_SCRIPT, "provision-doctor", "tmpl=local"])
        .arg("file=/nonexistent/fuse-overlayfs")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = doctor::parse_facts(&String::from_utf8_lossy(&out.stdout));
    assert!(f.uid.is_some());
    assert!(!f.kernel.is_empty());
    assert!(doctor::kernel_version(&f.kernel).is_some(), "{}", f.kernel);
    assert!(f.missing_files.contains("/nonexistent/fuse-overlayfs"));
}

fn pve_here() -> bool {
    std::process::Command::new("sh")
        .args(["-c", "command -v pct"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_binary_reports_fails_on_a_machine_without_pve_and_exits_1() {
    let out = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .args(["doctor", "--profile", "docker"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "doctor crashed:\n{stdout}\n{stderr}"
    );
    if pve_here() {
        assert!(matches!(out.status.code(), Some(0 | 1)), "{stdout}{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAIL  Proxmox VE tools") && stdout.contains("not found: pct"),
        "{stdout}"
    );
    let out = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .args(["doctor", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    let v = &v["nodes"][0];
    assert_eq!(v["ok"], false);
    let tools = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pve-tools")
        .unwrap();
    assert_eq!(tools["level"], "fail");
}

#[test]
fn an_unknown_profile_is_a_usage_error() {
    let out = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .args(["doctor", "--profile", "no-such-profile"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn lab_args(file: PathBuf) -> DoctorArgs {
    DoctorArgs {
        file: Some(file),
        profile: "docker".into(),
    }
}

#[test]
fn a_lab_file_is_checked_as_a_whole_per_node() {
    let groups = commands::doctor::requests(&lab_args(fixtures().join("lab.toml"))).unwrap();
    assert_eq!(groups.len(), 1);
    let reqs = &groups[&None];
    let names: Vec<&str> = reqs.iter().map(|r| r.hostname.as_str()).collect();
    assert_eq!(names, ["runner-1", "runner-2", "runner-3", "web1"]);
    // On the ZFS 2.1 node, where web1 and db1 exist already.
    let facts = doctor::parse_facts(&read_facts("pve8-zfs21.facts"));
    let checks = doctor::evaluate(&facts, reqs);
    let get = |id: &str| checks.iter().find(|c| c.id == id).unwrap();
    // web1 exists: three new root disks, and 2 existing + 3 new share the key quota.
    assert!(
        get("storage:local-zfs")
            .detail
            .contains("3 new root disk(s) of 48 GiB"),
        "{:?}",
        get("storage:local-zfs")
    );
    assert!(
        get("keyring")
            .detail
            .contains("5 unprivileged container(s)"),
        "{:?}",
        get("keyring")
    );
    let d = get("driver:docker-auto@local-zfs");
    assert_eq!(d.level, Level::Ok);
    assert!(
        d.detail.starts_with("fuse-overlayfs, auto:"),
        "{}",
        d.detail
    );
    assert_eq!(get("fuse-overlayfs:package").level, Level::Ok);
    // One check per storage, template and driver, however many containers.
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn lab_entries_on_other_hosts_are_checked_on_their_node() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lab.toml");
    std::fs::write(
        &path,
        "[defaults]\nprofile = \"docker\"\n\n[[container]]\nname = \"a\"\n\n[[container]]\nname = \"b\"\nhost = \"root@pve2\"\n\n[[container]]\nname = \"c\"\nhost = \"root@pve2\"\n",
    )
    .unwrap();
    let groups = commands::doctor::requests(&lab_args(path)).unwrap();
    let count = |h: Option<&str>| groups[&h.map(String::from)].len();
    assert_eq!(groups.len(), 2);
    assert_eq!(count(None), 1);
    assert_eq!(count(Some("root@pve2")), 2);
}

#[test]
fn a_bad_lab_file_is_a_usage_error_before_any_node_is_contacted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lab.toml");
    std::fs::write(
        &path,
        "[[container]]\nname = \"bad_name\"\nhost = \"root@192.0.2.1\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .arg("doctor")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("lab.toml"));
}

#[test]
fn lab_node_answers_the_doctor_like_a_pve_node() {
    use crate::lab::{lab, provision};
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nprofile = \"docker-auto\"\ntemplate = \"{}\"\n\n[defaults.rootfs]\nstorage = \"{}\"\nsize = 4\n\n[[container]]\nname = \"doc-{{n}}\"\ncount = 2\n",
            lab.template, lab.storage
        ),
    )
    .unwrap();
    let out = provision(&["doctor", file.to_str().unwrap(), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let checks = v["nodes"][0]["checks"].as_array().unwrap().clone();
    let level = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}: {checks:#?}"))["level"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for id in [
        "root",
        "pve-tools",
        "subuid",
        "subgid",
        &format!("storage:{}", lab.storage),
        "template-storage:local",
        &format!("template:local:{}", lab.template),
        &format!("driver:docker-auto@{}", lab.storage),
    ] {
        assert_eq!(level(id), "ok", "{id}: {checks:#?}");
    }
    // The lab answers pveversion -v as the release it was brought up as; the check names it.
    assert_eq!(level("pve-version"), "ok");
    let pv = checks.iter().find(|c| c["id"] == "pve-version").unwrap();
    assert!(pv["detail"].as_str().unwrap().starts_with("PVE "), "{pv}");
    let d = checks
        .iter()
        .find(|c| c["id"] == format!("driver:docker-auto@{}", lab.storage))
        .unwrap();
    assert!(
        d["detail"].as_str().unwrap().starts_with("overlay2, auto:"),
        "{d}"
    );
}
