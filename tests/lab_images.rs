//! Images on the LXC lab node (issue 15): built once per node with the lab's vzdump, containers
//! created from them, checked from outside (lxc-attach, the image file itself, the node's
//! invocation log). Gated like tests/lab.rs.

use crate::lab::{Cleanup, Lab, lab, provision};
use std::path::{Path, PathBuf};
use std::process::Command;

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A lab file of `names` (one entry each, `extra` in every entry) with `image = "auto"`.
fn lab_file(dir: &Path, file: &str, entries: &[(&str, &str)], profile_extra: &str) -> PathBuf {
    let mut text = format!(
        "[defaults]\nprofile = \"docker-auto\"\ntemplate = \"debian-12\"\nmemory = 1024\nimage = \"auto\"\n{profile_extra}\n[defaults.rootfs]\nstorage = \"labct\"\nsize = 4\n"
    );
    for (name, extra) in entries {
        text.push_str(&format!("\n[[container]]\nname = \"{name}\"\n{extra}\n"));
    }
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

/// The lab's template directory (storage `local`).
fn template_dir(lab: &Lab) -> PathBuf {
    lab.state.join("storage/local/template/cache")
}

/// Image files (ours) in the template storage now.
fn images(lab: &Lab) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(template_dir(lab))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("provision-docker-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One member of an image archive (empty when absent).
fn image_member(lab: &Lab, image: &str, member: &str) -> Option<String> {
    let o = Command::new("tar")
        .args(["--zstd", "-xOf"])
        .arg(template_dir(lab).join(image))
        .arg(member)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn image_listing(lab: &Lab, image: &str) -> String {
    let o = Command::new("tar")
        .args(["--zstd", "-tf"])
        .arg(template_dir(lab).join(image))
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a build of image `image` could have left: its build container, its dump directory, a
/// vzdump archive of its build container.
fn leftovers(lab: &Lab, image: &str) -> (Vec<String>, Vec<String>) {
    let hash = image
        .trim_start_matches("provision-docker-")
        .trim_end_matches("_amd64.tar.zst")
        .to_string();
    let build_cts: Vec<String> = Command::new("pct")
        .arg("list")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains(&format!("provision-build-{hash}")))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let partial: Vec<String> = std::fs::read_dir(template_dir(lab))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == &format!(".{hash}.build") || n.starts_with("vzdump-"))
        .collect();
    (build_cts, partial)
}

#[test]
fn two_containers_from_one_image_differ_in_identity_and_install_nothing() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let names = ["img-a", "img-b", "img-c"];
    let _cleanup = Cleanup(lab.clone(), names.iter().map(ToString::to_string).collect());
    let file = lab_file(dir.path(), "two.toml", &[("img-a", ""), ("img-b", "")], "");
    let f = file.to_str().unwrap();

    let dry = provision(&["apply", f, "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    let before = images(&lab);
    if before.is_empty() {
        assert!(text.contains("build image provision-docker-"), "{text}");
        assert!(
            text.contains("(once), then create from it — not on storage local yet"),
            "{text}"
        );
    }
    assert!(
        text.contains("no such container yet; create from image provision-docker-"),
        "{text}"
    );
    assert!(
        text.contains("= docker: installed (from image provision-docker-"),
        "{text}"
    );
    assert!(!text.contains("install docker"), "{text}");

    let mark = lab.log_mark();
    let out = provision(&["apply", f, "--jobs", "2", "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let cs = r["containers"].as_array().unwrap();
    assert!(
        cs.iter()
            .all(|c| c["outcome"] == "created" && c["verified"] == true),
        "{r:#}"
    );
    let imgs = images(&lab);
    assert!(
        imgs.len() <= before.len() + 1,
        "one image for both: {imgs:?}"
    );
    let image = cs[0]["already"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["step"] == "docker")
        .and_then(|a| a["why"].as_str())
        .and_then(|w| w.split("from image ").nth(1))
        .map(|w| w.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("no 'from image' in {r:#}"));
    assert!(imgs.contains(&image), "{image} not in {imgs:?}");
    let builds = lab
        .invocations_since(mark)
        .into_iter()
        .filter(|a| a[0] == "vzdump")
        .count();
    assert!(builds <= 1, "the image was built {builds} times");

    let vmids: Vec<u32> = cs
        .iter()
        .map(|c| c["vmid"].as_u64().unwrap() as u32)
        .collect();
    for &v in &vmids {
        lab.assert_docker_runs_the_probe(v);
        // No apt in any per-container step: not in the commands run for it, and apt's lists
        // (removed from the image) were never fetched again inside.
        // (VMIDs are reused: the build container may have had this one, so only what ran
        // after this container's own create counts.)
        let id = v.to_string();
        let all = lab.invocations_since(mark);
        let created = all
            .iter()
            .rposition(|a| {
                a.len() > 3
                    && a[..3] == ["pct", "create", id.as_str()]
                    && a[3].contains("provision-docker-")
            })
            .unwrap_or_else(|| panic!("no create of ct {v} from the image in {all:#?}"));
        let apt: Vec<&Vec<String>> = all[created..]
            .iter()
            .filter(|a| a.get(2) == Some(&id))
            .filter(|a| a.iter().any(|w| w.contains("apt-get")))
            .collect();
        assert!(apt.is_empty(), "apt ran for ct {v}: {apt:#?}");
        let lists = lab.attach_ok(
            v,
            &[
                "sh",
                "-c",
                "ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' || true",
            ],
        );
        assert_eq!(lists.trim(), "", "ct {v} fetched package lists");
        assert_eq!(
            lab.attach_ok(v, &["cat", "/etc/provision-image"]).trim(),
            image
        );
        let leak = lab.attach_ok(
            v,
            &["sh", "-c", "cat /etc/vzdump/pct.conf 2>/dev/null || true"],
        );
        assert_eq!(leak, "", "ct {v} keeps the build container's config");
    }
    // Identity: differs between the two, and nothing of the build container's is in the image.
    let ident = |v: u32| {
        (
            lab.attach_ok(v, &["cat", "/etc/machine-id"]),
            lab.attach_ok(v, &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]),
            lab.attach_ok(v, &["docker", "info", "--format", "{{.ID}}"]),
        )
    };
    let (a, b) = (ident(vmids[0]), ident(vmids[1]));
    assert!(!a.0.trim().is_empty() && !a.2.trim().is_empty());
    assert_ne!(a.0, b.0, "machine-id");
    assert_ne!(a.1, b.1, "ssh host key");
    assert_ne!(a.2, b.2, "docker engine id");
    assert_eq!(
        image_member(&lab, &image, "./etc/machine-id").as_deref(),
        Some("")
    );
    let listing = image_listing(&lab, &image);
    for absent in [
        "./etc/ssh/ssh_host_ed25519_key",
        "./var/lib/docker/engine-id",
        "./etc/docker/key.json",
        "./var/lib/docker/network/files/local-kv.db",
        "./var/lib/provision/state",
        "./root/.bash_history",
    ] {
        assert!(
            !listing.lines().any(|l| l == absent),
            "{absent} is in the image"
        );
    }
    assert!(
        !listing
            .lines()
            .any(|l| l.starts_with("./var/lib/apt/lists/") && l.ends_with("_Packages"))
    );
    // The D-Bus machine id may only be the symlink to /etc/machine-id that Debian ships.
    let v = Command::new("tar")
        .args(["--zstd", "-tvf"])
        .arg(template_dir(&lab).join(&image))
        .arg("./var/lib/dbus/machine-id")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(
        line.is_empty() || line.starts_with('l'),
        "dbus machine-id: {line}"
    );
    assert_eq!(leftovers(&lab, &image), (vec![], vec![]));

    // Unchanged profile: the image is reused, never rebuilt.
    let file = lab_file(
        dir.path(),
        "three.toml",
        &[("img-a", ""), ("img-b", ""), ("img-c", "")],
        "",
    );
    let mark = lab.log_mark();
    let out = provision(&["apply", file.to_str().unwrap(), "--yes", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", report(&out));
    assert!(!lab.invocations_since(mark).iter().any(|a| a[0] == "vzdump"));
}

#[test]
fn offline_a_container_from_an_image_comes_up_and_a_build_says_it_cannot_reach_the_mirror() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let subnet = std::env::var("PROVISION_LAB_SUBNET").unwrap_or_else(|_| "10.199.77.0/24".into());
    let prefix = subnet.rsplit_once('.').unwrap().0.to_string();
    let gw = std::env::var("PROVISION_LAB_GATEWAY").unwrap_or_else(|_| format!("{prefix}.1"));
    let ip = |n: u32| format!("[container.network]\nip = \"{prefix}.{n}/24\"\ngateway = \"{gw}\"");
    let names = ["img-off-1", "img-off-2", "img-off-3"];
    let _cleanup = Cleanup(lab.clone(), names.iter().map(ToString::to_string).collect());
    let _reopen = Reopen;
    // With the mirror open: the image exists (built now, or by another test meanwhile).
    let f1 = lab_file(dir.path(), "one.toml", &[("img-off-1", &ip(241))], "");
    let out = provision(&["apply", f1.to_str().unwrap(), "--yes", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", report(&out));
    // Offline for the addresses .240-.247 only (other tests may use the mirror meanwhile).
    let closed = Command::new(lab_dir().join("labctl"))
        .args(["mirror", "closed", &format!("{prefix}.240/29")])
        .output()
        .unwrap();
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    let f2 = lab_file(dir.path(), "two.toml", &[("img-off-2", &ip(242))], "");
    let out = provision(&["apply", f2.to_str().unwrap(), "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "offline from an image: {r:#}");
    assert_eq!(r["containers"][0]["verified"], true);
    let v = r["containers"][0]["vmid"].as_u64().unwrap() as u32;
    lab.assert_docker_runs_the_probe(v);
    let apt = lab.attach(
        v,
        &["sh", "-c", "apt-get -o Acquire::Retries=0 update 2>&1"],
    );
    assert!(
        String::from_utf8_lossy(&apt.stdout).contains("Could not connect")
            || String::from_utf8_lossy(&apt.stdout).contains("unreachable"),
        "the mirror is really closed for it: {}",
        String::from_utf8_lossy(&apt.stdout)
    );
    // A changed profile needs a new image; its build cannot reach the mirror and says so, and
    // leaves no build container and no partial template.
    let before = images(&lab);
    let f3 = lab_file(
        dir.path(),
        "three.toml",
        &[("img-off-3", &ip(243))],
        "[defaults.docker]\nstorage_driver = \"vfs\"\n",
    );
    let out = provision(&["apply", f3.to_str().unwrap(), "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let failure = r["containers"][0]["failure"].to_string();
    assert!(failure.contains("image"), "{failure}");
    assert!(
        failure.contains("Could not connect")
            || failure.contains("unreachable")
            || failure.contains("mirror"),
        "the build says it cannot reach the mirror: {failure}"
    );
    assert_eq!(images(&lab), before, "no new (partial) image");
    let image = failure
        .split("provision-docker-")
        .nth(1)
        .map(|rest| format!("provision-docker-{}", &rest[..12]))
        .unwrap_or_else(|| panic!("the failure names the image: {failure}"));
    assert_eq!(leftovers(&lab, &image), (vec![], vec![]));
    assert_eq!(lab.vmid_of("img-off-3"), None);
}

fn lab_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/lab"))
}

/// Reopens the mirror when dropped (also when a test fails).
struct Reopen;

impl Drop for Reopen {
    fn drop(&mut self) {
        let _ = Command::new(lab_dir().join("labctl"))
            .args(["mirror", "open"])
            .output();
    }
}

#[test]
fn image_build_list_and_prune_touch_only_images_provision_built() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = lab.profile(dir.path(), "img-cli", "docker-auto", "");
    let p = p.to_str().unwrap();
    let tdir = template_dir(&lab);
    // An unused image of ours (a name only this tool gives), and two templates that are not ours.
    let stale = "provision-docker-000000000000_amd64.tar.zst";
    let custom = "provision-docker-custom_amd64.tar.zst";
    for n in [stale, custom] {
        std::fs::copy(
            tdir.join(lab.template.rsplit('/').next().unwrap()),
            tdir.join(n),
        )
        .unwrap();
    }
    let _rm = RemoveFiles(vec![tdir.join(stale), tdir.join(custom)]);

    let out = provision(&["image", "build", "--profile", p, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let r = report(&out);
    let mine = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["used_by"].to_string().contains("img-cli"))
        .unwrap_or_else(|| panic!("{r:#}"))["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(images(&lab).contains(&mine), "{r:#}");
    // A second build finds it there and builds nothing.
    let mark = lab.log_mark();
    let out = provision(&["image", "build", "--profile", p, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!lab.invocations_since(mark).iter().any(|a| a[0] == "vzdump"));

    let out = provision(&["image", "list", "--profile", p, "--output", "json"]);
    let r = report(&out);
    let names: Vec<&str> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&stale) && names.contains(&mine.as_str()),
        "{r:#}"
    );
    assert!(!names.contains(&custom), "not ours: {r:#}");

    let dry = provision(&["image", "prune", "--profile", p, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    assert!(tdir.join(stale).exists(), "a dry run removes nothing");
    let out = provision(&["image", "prune", "--profile", p, "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!tdir.join(stale).exists(), "the unused image is removed");
    assert!(tdir.join(&mine).exists(), "the used image stays");
    assert!(
        tdir.join(custom).exists(),
        "a template provision did not build stays"
    );
    assert!(tdir.join(lab.template.rsplit('/').next().unwrap()).exists());
    // Without profiles or a lab file, prune refuses (it cannot tell what is in use).
    let out = provision(&["image", "prune"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Removes files when dropped.
struct RemoveFiles(Vec<PathBuf>);

impl Drop for RemoveFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn an_interrupted_image_build_leaves_no_build_container_and_no_partial_image() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["img-int".into()]);
    // An image no other test builds (fuse-overlayfs from the container's package).
    let file = lab_file(
        dir.path(),
        "int.toml",
        &[("img-int", "")],
        "[defaults.docker]\nstorage_driver = \"fuse-overlayfs\"\n[defaults.docker.fuse_overlayfs]\nsource = \"package\"\n",
    );
    let mark = lab.log_mark();
    let child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["apply", file.to_str().unwrap(), "--yes", "--output", "json"])
        .env("CI", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the build container has started (its apt install comes next).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let build = loop {
        let inv = lab.invocations_since(mark);
        let created = inv.iter().find_map(|a| {
            let h = a.iter().position(|w| w == "--hostname")?;
            (a[1] == "create" && a[h + 1].starts_with("provision-build-"))
                .then(|| (a[2].clone(), a[h + 1].clone()))
        });
        if let Some((id, host)) = &created
            && inv
                .iter()
                .any(|a| a.len() == 3 && a[1] == "start" && &a[2] == id)
        {
            break host.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `pct start` of a provision-build-* container within 300 s: {inv:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert!(r.to_string().contains("interrupted"), "{r:#}");
    let image = format!(
        "provision-docker-{}_amd64.tar.zst",
        build.trim_start_matches("provision-build-")
    );
    assert_eq!(lab.vmid_of(&build), None, "the build container is gone");
    assert_eq!(leftovers(&lab, &image), (vec![], vec![]));
    assert!(!images(&lab).contains(&image), "no (partial) image");
    assert_eq!(lab.vmid_of("img-int"), None);
}
