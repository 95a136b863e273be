//! Known failures of Docker in unprivileged LXC (src/known_issues.rs, docs/known-issues.md):
//! recorded failure outputs as data (tests/fixtures/known-issues/ID.txt: what dockerd, runc or
//! containerd printed when the issue bit, from the sources in the doc) must each be recognised
//! as their issue; the doctor side is tested with recorded node facts in
//! tests/fixtures/doctor/cases (known:* checks); and a failed verification on the fake node
//! carries the diagnosis into the report.

use crate::support::fake::{FakeCt, fake_node};
use provision::apply::{self, Ctx};
use provision::facts;
use provision::known_issues::{self, Doctor, ISSUES};
use provision::profile::{self, Layer};
use provision::progress::Line;
use provision::report::Outcome;
use provision::request::{Options, Request};
use provision::transport::Transport;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/known-issues")
}

#[test]
fn every_recorded_failure_is_recognised_as_its_issue() {
    let mut seen = Vec::new();
    let mut dir: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    for path in dir {
        let id = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        // As the report has it: the step's error message, and the command's last lines.
        let d =
            known_issues::diagnose("step \"verify docker\": command failed (status 69)", &lines)
                .unwrap_or_else(|| panic!("{id}: not recognised:\n{text}"));
        assert_eq!(d.id, id, "{id}: recognised as {}", d.id);
        assert!(!d.cause.is_empty() && !d.fix.is_empty());
        assert_eq!(d.see, format!("docs/known-issues.md#{id}"));
        seen.push(id);
    }
    for i in ISSUES {
        if !i.symptoms.is_empty() {
            assert!(
                seen.iter().any(|s| s == i.id),
                "{}: no recorded failure in tests/fixtures/known-issues",
                i.id
            );
        }
    }
}

#[test]
fn every_issue_is_written_up_with_sources_and_its_doctor_side() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/known-issues.md"))
            .unwrap();
    let sections: Vec<&str> = doc.split("\n## ").skip(1).collect();
    assert!(sections.len() >= 8, "{} sections", sections.len());
    for i in ISSUES {
        let s = sections
            .iter()
            .find(|s| s.contains(&format!("<a id=\"{}\"></a>", i.id)))
            .unwrap_or_else(|| panic!("{}: no section in docs/known-issues.md", i.id));
        assert!(s.contains("https://"), "{}: no source", i.id);
        for part in [
            "**Cause**",
            "**Affects**",
            "**Detect**",
            "**Fix**",
            "**Sources**",
        ] {
            assert!(s.contains(part), "{}: no {part}", i.id);
        }
        if let Doctor::Builtin(check) = i.doctor {
            assert!(
                s.contains(&format!("`{check}`")),
                "{}: doc does not name the doctor check {check}",
                i.id
            );
        }
    }
}

#[test]
fn a_failed_verification_reports_the_known_issue_with_cause_and_fix() {
    let node = fake_node();
    node.with(|s| {
        // A container made by provision whose /dev/fuse cannot be opened (fuse feature off at
        // start, or the node's device unusable).
        let mut ct = FakeCt {
            running: true,
            fuse_usable: false,
            os: ("ubuntu".into(), "24.04".into()),
            ..FakeCt::default()
        };
        ct.config.insert("hostname".into(), "web1".into());
        ct.config.insert("unprivileged".into(), "1".into());
        ct.config.insert("tags".into(), "provision".into());
        s.cts.insert(120, ct);
    });
    let p = profile::load("docker", &Layer::default()).unwrap();
    let files = apply::read_profile_files(&p).unwrap();
    let req = Request {
        hostname: "web1".into(),
        vmid: None,
        profile: p,
    };
    let t: Arc<dyn Transport> = node.clone();
    let ctx = Ctx::new(t.clone(), Options::default());
    let nf = facts::gather_node(t.as_ref()).unwrap();
    let r = apply::converge(&ctx, &req, &nf, None, &files, &Line::silent("web1"));
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().unwrap();
    assert_eq!(f.step, "verify docker", "{}", r.text());
    let k = f.known_issue.as_ref().expect("diagnosis");
    assert_eq!(k.id, "fuse-unavailable");
    let text = r.text();
    assert!(text.contains("known issue fuse-unavailable"), "{text}");
    assert!(text.contains("fix: set features.fuse = true"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["failure"]["known_issue"]["id"], "fuse-unavailable");
}
