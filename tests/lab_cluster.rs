//! End-to-end on the lab cluster (`lab/labctl up --nodes 3`, brought up beside the single-node
//! lab by these tests): the real binary on member pve1, the other members reached over their
//! own sshd, real unprivileged containers and Docker. Checks are made from outside: the cluster
//! state directory (what pmxcfs would show), the members' invocation logs and sshd logs,
//! `lxc-attach` into the member's LXC path.
//!
//! Gated like tests/lab.rs (`PROVISION_LAB=1`, or skipped with `PROVISION_SKIP_LAB=1`). The
//! tests of this file take one lock: one of them takes a member down.

use crate::lab::{LAB_FUSE, lab};
use crate::support::fake::is_changing;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MEMBERS: [&str; 3] = ["pve1", "pve2", "pve3"];

struct Cluster {
    /// The lab's state dir (S).
    root: PathBuf,
    /// The environment of a shell on pve1 (what `labctl up --nodes 3` exported).
    env: Vec<(String, String)>,
    template: String,
    _guard: MutexGuard<'static, ()>,
}

fn labctl(args: &[&str]) -> Output {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/labctl"))
        .args(args)
        .output()
        .expect("labctl runs");
    assert!(
        out.status.success(),
        "labctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim_matches('\'').replace("\"$PATH\"", "");
            let v = if k == "PATH" {
                format!(
                    "{}{}",
                    v.trim_matches('"'),
                    std::env::var("PATH").unwrap_or_default()
                )
            } else {
                v
            };
            (k.to_string(), v)
        })
        .collect()
}

fn cluster() -> Option<Cluster> {
    let lab = lab()?;
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = labctl(&["up", "--nodes", "3"]);
    let env = exports(&String::from_utf8_lossy(&out.stdout));
    for m in MEMBERS {
        labctl(&["node-up", m]); // a test that failed half-way may have left one down
    }
    let root = env
        .iter()
        .find(|(k, _)| k == "PROVISION_PVE_ROOT")
        .map(|(_, v)| PathBuf::from(v).parent().unwrap().to_path_buf())
        .expect("labctl up --nodes exports PROVISION_PVE_ROOT");
    Some(Cluster {
        root,
        env,
        template: lab.template,
        _guard: guard,
    })
}

impl Cluster {
    fn provision(&self, dir: &Path, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_provision"))
            .args(args)
            .current_dir(dir)
            .env("CI", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("provision runs");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &out.stderr);
        out
    }

    fn member_dir(&self, m: &str) -> PathBuf {
        self.root.join("members").join(m)
    }

    /// VMID -> node, from the cluster state (every node's `lxc/<id>.conf`).
    fn placement(&self) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        for m in MEMBERS {
            let d = self.root.join("cluster/nodes").join(m).join("lxc");
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = n.strip_suffix(".conf").and_then(|s| s.parse().ok()) {
                    assert!(out.insert(id, m.to_string()).is_none(), "VMID {id} twice");
                }
            }
        }
        out
    }

    /// The hostname in a guest's config in the cluster state.
    fn hostname(&self, node: &str, vmid: u32) -> String {
        let p = self
            .root
            .join(format!("cluster/nodes/{node}/lxc/{vmid}.conf"));
        std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("hostname: ").map(String::from))
            .unwrap_or_default()
    }

    fn log_marks(&self) -> Vec<(u64, u64)> {
        MEMBERS
            .iter()
            .map(|m| {
                let len =
                    |f: &str| std::fs::metadata(self.member_dir(m).join(f)).map_or(0, |x| x.len());
                (len("invocations.jsonl"), len("sshd.log"))
            })
            .collect()
    }

    fn since(&self, m: &str, file: &str, mark: u64) -> String {
        let t = std::fs::read(self.member_dir(m).join(file)).unwrap_or_default();
        String::from_utf8_lossy(&t[(mark as usize).min(t.len())..]).into_owned()
    }

    /// Changing node commands every member ran since the marks.
    fn changing_since(&self, marks: &[(u64, u64)]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (m, (inv, _)) in MEMBERS.iter().zip(marks) {
            for l in self.since(m, "invocations.jsonl", *inv).lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let argv: Vec<String> = v["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect();
                if is_changing(&argv) {
                    out.push(argv);
                }
            }
        }
        out
    }

    /// SSH sessions each member's sshd accepted since the marks.
    fn sessions_since(&self, marks: &[(u64, u64)]) -> Vec<usize> {
        MEMBERS
            .iter()
            .zip(marks)
            .map(|(m, (_, ssh))| {
                self.since(m, "sshd.log", *ssh)
                    .matches("Accepted publickey")
                    .count()
            })
            .collect()
    }

    fn attach(&self, node: &str, vmid: u32, args: &[&str]) -> String {
        let o = Command::new("lxc-attach")
            .arg("-P")
            .arg(self.member_dir(node).join("lxc"))
            .args(["-n", &vmid.to_string(), "--clear-env", "--"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{node}/{vmid} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A lab file in `dir`: `entries` are `[[container]]` bodies; the profile is the lab's.
    fn file(&self, dir: &Path, docker: bool, entries: &[&str]) -> String {
        let docker = if docker {
            format!("{LAB_FUSE}\n")
        } else {
            "[docker]\ninstall = \"none\"\n".to_string()
        };
        let profile = format!(
            "extends = \"docker\"\ntemplate = \"{}\"\nmemory = 1024\n{docker}[rootfs]\nstorage = \"labct\"\nsize = 2\n",
            self.template
        );
        std::fs::write(dir.join("p.toml"), profile).unwrap();
        let mut text = String::new();
        for e in entries {
            text.push_str(&format!("[[container]]\nprofile = \"./p.toml\"\n{e}\n\n"));
        }
        std::fs::write(dir.join("lab.toml"), text).unwrap();
        "lab.toml".into()
    }
}

/// Destroys, whatever happened, every guest the cluster state holds whose name starts so.
struct Sweep<'a>(&'a Cluster, &'a str);

impl Drop for Sweep<'_> {
    fn drop(&mut self) {
        for (vmid, node) in self.0.placement() {
            if self.0.hostname(&node, vmid).starts_with(self.1) {
                let id = vmid.to_string();
                let _ = Command::new("pct")
                    .args(["destroy", &id, "--force", "1", "--purge", "1"])
                    .env("PROVISION_LAB_STATE", self.0.member_dir(&node))
                    .output();
            }
        }
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn six_auto_containers_spread_over_three_members_reapply_is_a_no_op_status_and_destroy() {
    let Some(c) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _sweep = Sweep(&c, "cl6-");
    let f = c.file(
        dir.path(),
        true,
        &["name = \"cl6-{n}\"\ncount = 6\nnode = \"auto\""],
    );
    let d = dir.path();
    // the plan shows where each goes and why (same facts: the same places as the run below)
    let plan = c.provision(d, &["apply", &f, "--dry-run", "--output", "json"]);
    let doc = report(&plan);
    assert_eq!(plan.status.code(), Some(0), "{doc:#}");
    let notes = doc["notes"].to_string();
    for (n, node) in [(1, "pve1"), (2, "pve2"), (3, "pve3"), (4, "pve1")] {
        let want = format!("placement: cl6-{n} -> {node} (most free memory");
        assert!(notes.contains(&want), "{want} not in {notes}");
    }
    let marks = c.log_marks();
    let out = c.provision(
        d,
        &["apply", &f, "--jobs", "3", "--yes", "--output", "json"],
    );
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let cs = r["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 6);
    assert!(
        cs.iter()
            .all(|c| c["outcome"] == "created" && c["verified"] == true),
        "{r:#}"
    );
    // one SSH session per other member for the whole run; pve1 is the local node
    assert_eq!(c.sessions_since(&marks), [0, 1, 1]);
    let placed = c.placement();
    let mut per_node: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for ct in cs {
        let vmid = ct["vmid"].as_u64().unwrap() as u32;
        let node = placed[&vmid].clone();
        assert_eq!(ct["node"], node.as_str(), "{ct:#}");
        per_node.entry(node).or_default().push(vmid);
    }
    assert_eq!(
        per_node.values().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 2],
        "{per_node:?}"
    );
    for (node, ids) in &per_node {
        for id in ids {
            let ran = c.attach(
                node,
                *id,
                &[
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "provision-probe:1",
                    "/bin/busybox",
                    "echo",
                    "outside-check",
                ],
            );
            assert_eq!(ran.trim(), "outside-check", "{node}/{id}");
        }
    }

    let marks = c.log_marks();
    let out = c.provision(
        d,
        &["apply", &f, "--jobs", "3", "--yes", "--output", "json"],
    );
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert!(
        r["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "unchanged"),
        "{r:#}"
    );
    let changing = c.changing_since(&marks);
    assert!(changing.is_empty(), "re-apply changed: {changing:#?}");
    assert_eq!(c.placement(), placed, "placed containers stay");

    let st = c.provision(d, &["status", &f, "--output", "json"]);
    assert_eq!(st.status.code(), Some(0));
    let st = report(&st);
    let rows = st["containers"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{st:#}");
    for row in rows {
        let vmid = row["vmid"].as_u64().unwrap() as u32;
        assert_eq!(row["node"], placed[&vmid].as_str(), "{row:#}");
        assert!(
            row["ipv4"].as_array().is_some_and(|a| a
                .iter()
                .any(|x| x.as_str().is_some_and(|s| s.starts_with("10.")))),
            "{row:#}"
        );
    }

    let out = c.provision(d, &["destroy", &f, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for vmid in placed.keys() {
        assert!(!c.placement().contains_key(vmid), "{vmid} is still there");
    }
}

#[test]
fn two_applies_at_once_on_two_members_never_share_a_vmid() {
    let Some(c) = cluster() else { return };
    let key = c.root.join("sysroot/root/.ssh/id_ed25519");
    let kh = c.root.join("cluster/priv/known_hosts");
    let _sweep = Sweep(&c, "race-");
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<std::process::Child> = ["pve1", "pve2"]
        .iter()
        .zip(&dirs)
        .enumerate()
        .map(|(i, (m, d))| {
            let f = c.file(
                d.path(),
                false,
                &[&format!(
                    "name = \"race-{m}-{{n}}\"\ncount = 3\nnode = \"{m}\""
                )],
            );
            // each run on its own member, over SSH, with that member's own /run/lock
            Command::new(env!("CARGO_BIN_EXE_provision"))
                .args(["apply", &f, "--jobs", "3", "--yes", "--output", "json"])
                .arg("--host")
                .arg(format!("root@127.0.10.{}", i + 1))
                .arg("--identity")
                .arg(&key)
                .arg("--known-hosts")
                .arg(&kh)
                .current_dir(d.path())
                .env("CI", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ch in children {
        let out = ch.wait_with_output().unwrap();
        let r = report(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{r:#}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // every name exactly once in the cluster, on the member its run was on
    let placed = c.placement();
    let mut seen = Vec::new();
    for (vmid, node) in &placed {
        let h = c.hostname(node, *vmid);
        if let Some(rest) = h.strip_prefix("race-") {
            assert!(rest.starts_with(node.as_str()), "{h} on {node}");
            seen.push(h);
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 6, "{placed:?}");
    seen.dedup();
    assert_eq!(seen.len(), 6, "a name twice: {seen:?}");
}

#[test]
fn a_member_down_fails_only_its_entries_and_the_next_apply_completes_them() {
    let Some(c) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _sweep = Sweep(&c, "down-");
    let f = c.file(
        d,
        false,
        &[
            "name = \"down-a\"\nnode = \"pve1\"",
            "name = \"down-b\"\nnode = \"pve2\"",
            "name = \"down-c\"\nnode = \"pve3\"",
        ],
    );
    labctl(&["node-down", "pve3"]);
    let doc = c.provision(d, &["doctor", &f, "--output", "json"]);
    let out = c.provision(d, &["apply", &f, "--yes", "--output", "json"]);
    labctl(&["node-up", "pve3"]);
    // doctor: the cluster is quorate (2 of 3), the member the file uses is offline
    assert_eq!(doc.status.code(), Some(1));
    let doc = report(&doc);
    let cl = &doc["nodes"][0];
    let level = |id: &str| {
        cl["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["level"].clone())
    };
    assert_eq!(level("cluster:quorum"), Some("ok".into()), "{doc:#}");
    assert_eq!(level("cluster:node:pve3"), Some("fail".into()), "{doc:#}");
    assert_eq!(level("cluster:node:pve2"), Some("ok".into()), "{doc:#}");
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let by_name = |r: &serde_json::Value, n: &str| {
        r["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["hostname"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name(&r, "down-a")["outcome"], "created", "{r:#}");
    assert_eq!(by_name(&r, "down-b")["outcome"], "created", "{r:#}");
    let failed = by_name(&r, "down-c");
    assert_eq!(failed["outcome"], "failed", "{r:#}");
    let msg = failed.to_string();
    assert!(msg.contains("node pve3 is offline"), "{msg}");
    assert!(
        !c.placement().values().any(|n| n == "pve3"),
        "nothing on pve3"
    );

    let out = c.provision(d, &["apply", &f, "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(by_name(&r, "down-a")["outcome"], "unchanged", "{r:#}");
    assert_eq!(by_name(&r, "down-c")["outcome"], "created", "{r:#}");
    assert_eq!(by_name(&r, "down-c")["node"], "pve3", "{r:#}");
}

#[test]
fn a_migrated_container_is_converged_where_it_is_now() {
    let Some(c) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _sweep = Sweep(&c, "mig-");
    let f = c.file(
        d,
        false,
        &["name = \"mig-1\"\nnode = \"auto\"\nnodes = [\"pve1\"]"],
    );
    let out = c.provision(d, &["apply", &f, "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let vmid = r["containers"][0]["vmid"].as_u64().unwrap() as u32;
    assert_eq!(c.placement()[&vmid], "pve1");
    labctl(&["migrate", &vmid.to_string(), "pve2"]);
    assert_eq!(c.placement()[&vmid], "pve2");

    let marks = c.log_marks();
    let out = c.provision(d, &["apply", &f, "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let ct = &r["containers"][0];
    assert_eq!(ct["vmid"], vmid, "{r:#}");
    assert_eq!(ct["node"], "pve2", "{r:#}");
    assert_eq!(ct["outcome"], "unchanged", "{r:#}");
    let changing = c.changing_since(&marks);
    assert!(changing.is_empty(), "{changing:#?}");
    assert_eq!(c.placement()[&vmid], "pve2", "still one, on pve2");
}
