//! Storage driver and fuse-overlayfs source: plan cases as data, and the binary checks for real.
//!
//! Each tests/fixtures/plan_cases/*.toml is one case: node facts for the fake node (ZFS version,
//! storages, node files), a profile with overrides, optionally an existing container made by a
//! first real run on the fake, and the expected driver, reason, notes and step names (or the
//! error that refuses the plan). The dry plan ([`apply::dry_plan`]) is what is compared.
//!
//! Below the cases: a broken fuse-overlayfs binary is stopped at the push, before Docker is
//! pointed at it; and the in-container push check and the node download script are run for
//! real with `sh` on this machine against real, broken and foreign binaries.

use crate::support::converge::converge_on;
use crate::support::fake::{FakeNode, fake_node};
use provision::apply::{self, Ctx};
use provision::facts;
use provision::plan;
use provision::profile::{self, DockerLayer, FuseOverlayfsLayer, Layer};
use provision::progress::Line;
use provision::report::Outcome;
use provision::request::{Options, Request};
use provision::transport::Transport;
use serde::Deserialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan_cases")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    profile: String,
    #[serde(default)]
    node: NodeSpec,
    #[serde(default)]
    overrides: Layer,
    existing: Option<Existing>,
    #[serde(default)]
    options: OptionsSpec,
    expect: Expect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    zfs_version: Option<String>,
    /// The node's pve-container (its release decides keep-env, accepted guests...); unset:
    /// the fake's PVE 9.1.
    pve_container: Option<String>,
    storages: Option<Vec<StorageSpec>>,
    #[serde(default)]
    files: Vec<NodeFileSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    content: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFileSpec {
    path: String,
    content: String,
}

/// A container made by a first real run on the fake, with this profile.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Existing {
    profile: String,
    #[serde(default)]
    overrides: Layer,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionsSpec {
    #[serde(default)]
    allow_storage_switch: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The plan (or the profile) is refused with an error containing this.
    error: Option<String>,
    driver: Option<String>,
    /// A substring of the driver reason.
    reason: Option<String>,
    /// Substrings that some note contains.
    #[serde(default)]
    notes: Vec<String>,
    /// Substrings that no note contains.
    #[serde(default)]
    no_notes: Vec<String>,
    /// The `--features` value of `pct create`.
    features: Option<String>,
    /// Step names, in order.
    steps: Option<Vec<String>>,
}

fn load_profile(name: &str, overrides: &Layer) -> Result<profile::Profile, String> {
    let name = if name.ends_with(".toml") {
        fixtures().join(name).to_string_lossy().into_owned()
    } else {
        name.to_string()
    };
    profile::load(&name, overrides).map_err(|e| e.to_string())
}

fn request(p: profile::Profile) -> Request {
    Request {
        hostname: "web1".into(),
        vmid: None,
        profile: p,
    }
}

fn node_for(spec: &NodeSpec) -> Arc<FakeNode> {
    let node = fake_node();
    node.with(|s| {
        s.zfs_version = spec.zfs_version.clone();
        if let Some(c) = &spec.pve_container {
            s.pveversion = Some(crate::support::fake::versions_with_container(c));
        }
        if let Some(st) = &spec.storages {
            s.storages = st
                .iter()
                .map(|x| (x.name.clone(), x.kind.clone(), x.content.clone()))
                .collect();
        }
        for f in &spec.files {
            s.node_files
                .insert(f.path.clone(), f.content.clone().into_bytes());
        }
    });
    node
}

/// Runs one case; returns what differs from its expectation.
fn run_case(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let node = node_for(&case.node);
    let t: Arc<dyn Transport> = node.clone();
    if let Some(ex) = &case.existing {
        let p = load_profile(&ex.profile, &ex.overrides).expect("existing profile loads");
        let ctx = Ctx::new(t.clone(), Options::default());
        let nf = facts::gather_node(t.as_ref()).unwrap();
        let r = apply::converge(&ctx, &request(p), &nf, None, &vec![], &Line::silent("web1"));
        assert!(!r.outcome.failed(), "the existing container: {}", r.text());
    }
    let before = node.changing_calls().len();
    let res = load_profile(&case.profile, &case.overrides).and_then(|p| {
        let opts = Options {
            allow_storage_switch: case.options.allow_storage_switch,
            ..Options::default()
        };
        let ctx = Ctx::new(t.clone(), opts);
        let nf = facts::gather_node(t.as_ref()).map_err(|e| format!("{e:#}"))?;
        apply::dry_plan(&ctx, &request(p), &nf, None, &vec![]).map_err(|e| format!("{e:#}"))
    });
    if node.changing_calls().len() != before {
        problems.push(format!(
            "planning changed something: {:?}",
            &node.changing_calls()[before..]
        ));
    }
    let e = &case.expect;
    let view = match (res, &e.error) {
        (Err(err), Some(want)) => {
            if !err.contains(want.as_str()) {
                problems.push(format!("error {err:?} lacks {want:?}"));
            }
            return problems;
        }
        (Err(err), None) => {
            problems.push(format!("refused: {err}"));
            return problems;
        }
        (Ok(v), Some(want)) => {
            problems.push(format!(
                "expected the error {want:?}, got a plan:\n{}",
                apply::plan_text(&v, false)
            ));
            return problems;
        }
        (Ok(v), None) => v,
    };
    if let Some(d) = &e.driver
        && view.driver.as_deref() != Some(d.as_str())
    {
        problems.push(format!("driver {:?}, expected {d}", view.driver));
    }
    if let Some(r) = &e.reason
        && !view.driver_reason.contains(r.as_str())
    {
        problems.push(format!("reason {:?} lacks {r:?}", view.driver_reason));
    }
    for n in &e.notes {
        if !view.notes.iter().any(|x| x.contains(n.as_str())) {
            problems.push(format!("no note contains {n:?}: {:?}", view.notes));
        }
    }
    for n in &e.no_notes {
        if let Some(x) = view.notes.iter().find(|x| x.contains(n.as_str())) {
            problems.push(format!("a note contains {n:?}: {x}"));
        }
    }
    if let Some(want) = &e.features {
        let have = view
            .steps
            .iter()
            .find(|s| s.name == "create")
            .and_then(|s| s.commands.first())
            .and_then(|argv| {
                let i = argv.iter().position(|a| a == "--features")?;
                argv.get(i + 1).cloned()
            });
        if have.as_deref() != Some(want.as_str()) {
            problems.push(format!("create --features {have:?}, expected {want}"));
        }
    }
    if let Some(want) = &e.steps {
        let have: Vec<&str> = view.steps.iter().map(|s| s.name.as_str()).collect();
        if have != *want {
            problems.push(format!("steps {have:?}\n   expected {want:?}"));
        }
    }
    if !problems.is_empty() {
        problems.push(apply::plan_text(&view, false));
    }
    problems
}

#[test]
fn storage_driver_and_fuse_source_plan_cases() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 15, "{paths:?}");
    let mut failures = Vec::new();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let case: Case = toml::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let problems = run_case(&case);
        if !problems.is_empty() {
            failures.push(format!(
                "{name} ({}):\n  {}",
                case.description,
                problems.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Broken and tampered binaries through the applier (fake node).

fn docker_with_fuse(f: FuseOverlayfsLayer) -> Request {
    let o = Layer {
        docker: Some(DockerLayer {
            fuse_overlayfs: Some(f),
            ..DockerLayer::default()
        }),
        ..Layer::default()
    };
    request(load_profile("docker", &o).unwrap())
}

fn converge(node: &Arc<FakeNode>, req: &Request) -> provision::report::ContainerReport {
    converge_on(node.clone(), req, Options::default())
}

#[test]
fn a_node_file_that_is_not_an_elf_binary_is_refused_on_the_node_before_anything_is_pushed() {
    // A shell script (or a key, or /etc/shadow) with the right sha pinned: the checksum would
    // pass; the node-side check refuses it before it leaves the node. The in-container check
    // (push-check-fuse-overlayfs.sh: architecture, shared libraries) stays as the second line.
    let script = b"#!/bin/sh\necho 'fuse-overlayfs: version 1.13'\n".to_vec();
    let node = fake_node();
    node.with(|s| {
        s.node_files
            .insert("/root/fuse-overlayfs".into(), script.clone())
    });
    let req = docker_with_fuse(FuseOverlayfsLayer {
        source: Some("node".into()),
        path: Some("/root/fuse-overlayfs".into()),
        sha256: Some(plan::sha256_hex(&script)),
        ..FuseOverlayfsLayer::default()
    });
    let r = converge(&node, &req);
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().unwrap();
    assert!(f.message.contains("not an ELF executable"), "{}", f.message);
    let calls = node.calls();
    assert!(
        !calls.iter().any(|c| c.changing),
        "nothing may change: {:?}",
        node.changing_calls()
    );
    node.with(|s| assert!(s.cts.is_empty(), "no container is made"));
}

#[test]
fn tampered_url_cache_is_refused_before_any_change() {
    let sha = plan::sha256_hex(b"\x7fELF the real one");
    let node = fake_node();
    node.with(|s| {
        s.node_files
            .insert(plan::fuse_cache_path(&sha), b"\x7fELF swapped".to_vec())
    });
    let req = docker_with_fuse(FuseOverlayfsLayer {
        source: Some("url".into()),
        url: Some("https://example.invalid/fuse-overlayfs".into()),
        sha256: Some(sha.clone()),
        ..FuseOverlayfsLayer::default()
    });
    let r = converge(&node, &req);
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.unwrap();
    assert!(
        f.message.contains("changed after the download"),
        "{}",
        f.message
    );
    assert_eq!(node.changing_calls(), Vec::<String>::new());
}

#[test]
fn url_source_downloads_with_the_fetch_script_into_the_sha_named_cache() {
    let sha = "ab".repeat(32);
    let step = plan::Step::FetchFuseOverlayfs {
        url: "https://example.invalid/f".into(),
        sha256: sha.clone(),
    };
    let acts = step.actions(0);
    let [plan::Action::Node(c)] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(
        c.argv(),
        [
            "sh",
            "-c",
            plan::FETCH_SCRIPT,
            "provision",
            "https://example.invalid/f",
            &format!("/var/cache/provision/fuse-overlayfs-{sha}"),
            &sha
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The scripts for real, with sh on this machine.

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs PUSH_CHECK_SCRIPT as `pct exec` would: `sh -c PRELUDE+SCRIPT provision NEW DEST SHA`.
fn push_check(dir: &Path, bytes: &[u8], pin: bool) -> (i32, String) {
    let new = dir.join("fuse-overlayfs.provision-new");
    let dest = dir.join("fuse-overlayfs");
    let _ = std::fs::remove_file(&dest);
    std::fs::write(&new, bytes).unwrap();
    let sha = if pin {
        plan::sha256_hex(bytes)
    } else {
        String::new()
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{}{}", plan::SH_PRELUDE, plan::PUSH_CHECK_SCRIPT))
        .arg("provision")
        .arg(&new)
        .arg(&dest)
        .arg(&sha)
        .output()
        .unwrap();
    // Whatever happened, the staged file is gone: moved into place or removed.
    assert!(!new.exists(), "the staged file was left behind");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn real_elf() -> Vec<u8> {
    std::fs::read("/bin/true").expect("/bin/true")
}

#[test]
fn push_check_accepts_a_runnable_binary_and_refuses_scripts_garbage_and_bad_checksums() {
    if !is_root() {
        eprintln!("skipped: the push check chowns to root, as it does inside a container");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A real ELF for this machine that answers --version (GNU true does).
    let (code, err) = push_check(dir, &real_elf(), true);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("fuse-overlayfs").exists());
    // A script with its sha pinned: the checksum is right, but it is not a binary.
    let (code, err) = push_check(dir, b"#!/bin/sh\necho fuse-overlayfs 1.13\n", true);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("not an ELF executable"), "{err}");
    assert!(!dir.join("fuse-overlayfs").exists());
    // Garbage bytes.
    let (code, err) = push_check(dir, &[0u8, 1, 2, 3, 250, 251, 252], false);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("not an ELF executable"), "{err}");
    // A checksum that does not match what arrived.
    let out = {
        let new = dir.join("x.provision-new");
        std::fs::write(&new, real_elf()).unwrap();
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}{}", plan::SH_PRELUDE, plan::PUSH_CHECK_SCRIPT))
            .args(["provision"])
            .arg(&new)
            .arg(dir.join("x"))
            .arg("0".repeat(64))
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
    assert!(!dir.join("x").exists() && !dir.join("x.provision-new").exists());
}

#[test]
fn push_check_names_a_wrong_architecture() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut elf = real_elf();
    // e_machine (bytes 18-19): make it a machine this one is not.
    let here = [elf[18], elf[19]];
    let (other, name) = if here == [0x3e, 0x00] {
        ([0xb7, 0x00], "aarch64")
    } else {
        ([0x3e, 0x00], "x86_64")
    };
    elf[18..20].copy_from_slice(&other);
    let (code, err) = push_check(tmp.path(), &elf, true);
    assert_eq!(code, 66, "{err}");
    assert!(
        err.contains(&format!(
            "wrong architecture: the binary is built for {name}"
        )),
        "{err}"
    );
}

#[test]
fn push_check_names_a_missing_shared_library() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // /bin/true with its libc soname renamed: the loader cannot find "libq.so.6", as a
    // fuse-overlayfs built elsewhere cannot find its libfuse3.so.N.
    let mut elf = real_elf();
    let needle = b"libc.so.6";
    let Some(at) = elf.windows(needle.len()).position(|w| w == needle) else {
        eprintln!("skipped: /bin/true is not linked against libc.so.6 here");
        return;
    };
    elf[at..at + needle.len()].copy_from_slice(b"libq.so.6");
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = push_check(tmp.path(), &elf, true);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("missing shared library libq.so.6"), "{err}");
}

/// Serves `body` for `/ok`, 404 for anything else, on 127.0.0.1; returns the base URL.
fn serve(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let ok = req.starts_with(b"GET /ok ");
            let (status, b): (&str, &[u8]) = if ok {
                ("200 OK", &body)
            } else {
                ("404 Not Found", b"no\n")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            );
            let _ = s.write_all(b);
        }
    });
    format!("http://{addr}")
}

fn fetch(url: &str, dest: &Path, sha: &str) -> (i32, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(plan::FETCH_SCRIPT)
        .arg("provision")
        .arg(url)
        .arg(dest)
        .arg(sha)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fetch_script_keeps_only_a_verified_download_in_an_owner_only_cache() {
    use std::os::unix::fs::PermissionsExt;
    let have_curl = std::process::Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_curl {
        eprintln!("skipped: no curl here");
        return;
    }
    let body = b"\x7fELF pretend fuse-overlayfs".to_vec();
    let sha = plan::sha256_hex(&body);
    let base = serve(body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dest = cache.join(format!("fuse-overlayfs-{sha}"));
    // A wrong checksum: refused, nothing kept.
    let (code, err) = fetch(&format!("{base}/ok"), &dest, &"0".repeat(64));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(entries(&cache), Vec::<String>::new());
    // A failed download (404): nothing kept.
    let (code, err) = fetch(&format!("{base}/missing"), &dest, &sha);
    assert_ne!(code, 0, "{err}");
    assert_eq!(entries(&cache), Vec::<String>::new());
    // The right file: kept under its sha, 0755 in a 0700 directory.
    let (code, err) = fetch(&format!("{base}/ok"), &dest, &sha);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(entries(&cache), [format!("fuse-overlayfs-{sha}")]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(mode(&cache), 0o700);
}

// ---------------------------------------------------------------------------------------------
// On the LXC lab node: broken binaries pushed into a real unprivileged container.

/// The host's fuse-overlayfs with `from` replaced by `to` (same length) somewhere in it.
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut b = bytes.to_vec();
    let at = b
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(from)));
    b[at..at + to.len()].copy_from_slice(to);
    b
}

#[test]
fn lab_broken_fuse_overlayfs_binaries_never_reach_docker_in_a_real_container() {
    use crate::lab::{Cleanup, lab, provision};
    let Some(lab) = lab() else { return };
    let name = "fusecheck1";
    let _cleanup = Cleanup(lab.clone(), vec![name.into()]);
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read("/usr/bin/fuse-overlayfs").expect("the lab host has fuse-overlayfs");
    let mut wrong_arch = real.clone();
    wrong_arch[18..20].copy_from_slice(&[0xb7, 0x00]);
    // (case, binary, what the failure says, the step that catches it): a file that is not an
    // ELF binary is refused on the node before anything changes; an ELF binary that cannot run
    // in the container is refused inside, after the push, before it replaces anything.
    let cases: [(&str, Vec<u8>, &str, &str); 3] = [
        (
            "script",
            b"#!/bin/sh\necho 'fuse-overlayfs: version 1.13'\n".to_vec(),
            "not an ELF executable",
            "facts",
        ),
        (
            "arch",
            wrong_arch,
            "wrong architecture: the binary is built for aarch64, this container is x86_64",
            "push fuse-overlayfs",
        ),
        (
            "lib",
            patched(&real, b"libfuse3.so.3", b"libfuse3.so.9"),
            "missing shared library libfuse3.so.9",
            "push fuse-overlayfs",
        ),
    ];
    for (what, bytes, want, step) in cases {
        let bin = dir.path().join(format!("fuse-overlayfs-{what}"));
        std::fs::write(&bin, &bytes).unwrap();
        let extra = format!(
            "[docker.fuse_overlayfs]\nsource = \"node\"\npath = \"{}\"\nsha256 = \"{}\"",
            bin.display(),
            plan::sha256_hex(&bytes)
        );
        let prof = lab.profile(dir.path(), what, "docker", &extra);
        let out = provision(&[
            name,
            "--profile",
            prof.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
        assert_eq!(out.status.code(), Some(1), "{what}: {r:#}");
        let f = &r["containers"][0]["failure"];
        assert_eq!(f["step"], step, "{what}: {r:#}");
        let text = format!("{} {}", f["message"], f["tail"]);
        assert!(text.contains(want), "{what}: {text}");
        // Nothing reached Docker: no binary in place, no daemon.json (and for a file refused on
        // the node, nothing at all changed).
        let Some(vmid) = lab.vmid_of(name) else {
            assert_eq!(f["left"], "nothing was changed", "{what}: {r:#}");
            continue;
        };
        let left = lab.attach(
            vmid,
            &[
                "sh",
                "-c",
                "ls /usr/local/bin/fuse-overlayfs* /etc/docker/daemon.json 2>/dev/null; true",
            ],
        );
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "{what}");
    }
    // The real binary then goes through, and Docker runs on it.
    let extra = "[docker.fuse_overlayfs]\nsource = \"node\"\npath = \"/usr/bin/fuse-overlayfs\"";
    let prof = lab.profile(dir.path(), "real", "docker", extra);
    let out = provision(&[
        name,
        "--profile",
        prof.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["containers"][0]["verified"], true);
    assert_eq!(r["containers"][0]["driver"], "fuse-overlayfs");
}
