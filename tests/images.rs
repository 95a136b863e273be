//! Images (issue 15), the pure part: what the content hash covers, which names are ours, and
//! that a container from an image plans no install. The flow itself runs on the lab
//! (tests/lab_images.rs).

use provision::facts::InsideFacts;
use provision::plan::{self, SourceFacts, Step};
use provision::profile::{self, Driver, ImageMode, Layer};
use provision::request::{Options, Request};

const BASE: &str = "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst";

fn docker() -> profile::Profile {
    profile::load("docker-auto", &Layer::default()).unwrap()
}

fn spec(p: &profile::Profile) -> plan::ImageSpec {
    plan::image_spec(p, BASE, Driver::Overlay2, None)
}

#[test]
fn the_hash_covers_the_image_level_part_only() {
    let p = docker();
    let s = spec(&p);
    assert!(plan::image_of(&s.volid) == Some(s.name.as_str()), "{s:?}");
    assert!(s.name.starts_with("provision-docker-") && s.name.ends_with("_amd64.tar.zst"));
    // Per-container fields do not change the image.
    let mut q = p.clone();
    q.hostname = Some("other".into());
    q.memory = 4096;
    q.cores = 7;
    q.tags = vec!["x".into()];
    q.network.ip = "10.0.0.5/24".into();
    q.commands = vec![vec!["true".into()]];
    q.ssh_public_keys = vec!["ssh-ed25519 AAAA x".into()];
    q.rootfs.size = 64.0;
    assert_eq!(spec(&q), s);
    // Image-level fields do.
    let mut q = p.clone();
    q.docker.install = profile::DockerInstall::DockerCe;
    assert_ne!(spec(&q).hash, s.hash, "install method");
    let mut q = p.clone();
    q.docker.verify_image = "busybox:1".into();
    assert_ne!(spec(&q).hash, s.hash, "probe needs busybox or not");
    assert_ne!(
        plan::image_spec(&p, BASE, Driver::Vfs, None).hash,
        s.hash,
        "driver (and with it daemon.json)"
    );
    assert_ne!(
        plan::image_spec(
            &p,
            "local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst",
            Driver::Overlay2,
            None
        )
        .hash,
        s.hash,
        "base template"
    );
    let f1 = plan::image_spec(&p, BASE, Driver::FuseOverlayfs, Some("aa"));
    let f2 = plan::image_spec(&p, BASE, Driver::FuseOverlayfs, Some("bb"));
    assert_ne!(f1.hash, f2.hash, "the fuse-overlayfs binary pushed");
    // Same storage for the image as for the base template.
    let mut q = p.clone();
    q.template_storage = "nfs-tpl".into();
    assert!(
        spec(&q)
            .volid
            .starts_with("nfs-tpl:vztmpl/provision-docker-")
    );
}

#[test]
fn only_names_provision_gives_are_its_images() {
    for ours in [
        "local:vztmpl/provision-docker-0123456789ab_amd64.tar.zst",
        "provision-docker-0123456789ab_amd64.tar.zst",
    ] {
        assert_eq!(
            plan::image_of(ours),
            Some("provision-docker-0123456789ab_amd64.tar.zst")
        );
    }
    for not_ours in [
        "local:vztmpl/provision-docker-custom_amd64.tar.zst",
        "local:vztmpl/provision-docker-0123456789AB_amd64.tar.zst",
        "local:vztmpl/provision-docker-0123456789abc_amd64.tar.zst",
        "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst",
        "local:vztmpl/xprovision-docker-0123456789ab_amd64.tar.zst",
        "local:vztmpl/provision-docker-0123456789ab_amd64.tar.gz",
    ] {
        assert_eq!(plan::image_of(not_ours), None, "{not_ours}");
    }
}

fn inside(p: &profile::Profile, facts: &InsideFacts) -> anyhow::Result<plan::InsidePlan> {
    plan::plan_inside(&plan::InsideInput {
        profile: p,
        driver: Some(Driver::Overlay2),
        facts,
        sources: &SourceFacts::default(),
        files: &Vec::new(),
        password: Some("s3cret-pw"),
        opts: &Options::default(),
    })
}

#[test]
fn a_container_from_an_image_only_verifies_docker_and_never_installs() {
    let req = Request {
        hostname: "web1".into(),
        vmid: None,
        profile: docker(),
    };
    let s = spec(&req.profile);
    let from = plan::from_image(&req, &s);
    assert_eq!(from.profile.template, s.volid);
    let facts = plan::image_inside_facts(&from.profile, Driver::Overlay2, &SourceFacts::default());
    let ip = inside(&from.profile, &facts).unwrap();
    let names: Vec<String> = ip.steps.iter().map(Step::name).collect();
    assert_eq!(names, ["set root password", "verify docker"], "{ip:#?}");
    let docker = ip.already.iter().find(|a| a.step == "docker").unwrap();
    assert_eq!(docker.why, format!("installed (from image {})", s.name));
    plan::check_no_install(&from.profile, &ip).unwrap();
    // Should the container lack something the profile needs, the run stops rather than apt.
    let ip = inside(&from.profile, &InsideFacts::fresh()).unwrap();
    let e = plan::check_no_install(&from.profile, &ip).unwrap_err();
    assert!(e.to_string().contains(&s.name), "{e}");
    assert!(e.to_string().contains("installs nothing"), "{e}");
    // Without an image, installing is the normal way.
    plan::check_no_install(&req.profile, &ip).unwrap();
}

#[test]
fn the_build_container_has_only_the_image_level_part() {
    let mut p = docker();
    p.commands = vec![vec!["touch".into(), "/x".into()]];
    p.ssh_public_keys = vec!["ssh-ed25519 AAAA x".into()];
    p.image = ImageMode::Auto;
    p.vmid = Some(4242);
    let req = Request {
        hostname: "web1".into(),
        vmid: Some(4242),
        profile: p,
    };
    let s = spec(&req.profile);
    let b = plan::build_request(&req, &s);
    assert_eq!(b.hostname, format!("provision-build-{}", &s.hash[..12]));
    assert_eq!(b.vmid, None);
    assert_eq!(b.profile.template, BASE);
    assert_eq!(b.profile.image, ImageMode::None);
    assert!(b.profile.commands.is_empty() && b.profile.ssh_public_keys.is_empty());
    assert!(b.profile.files.is_empty() && b.profile.root_password.is_none());
    assert_eq!(b.profile.tags, [plan::BUILD_TAG]);
}

#[test]
fn image_is_checked_in_profiles_and_lab_file_entries() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "extends = \"docker\"\nimage = \"always\"\n").unwrap();
    let e = profile::load(bad.to_str().unwrap(), &Layer::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml") && e.contains("image"), "{e}");
    assert!(e.contains("auto") && e.contains("none"), "{e}");
    let lab = dir.path().join("lab.toml");
    std::fs::write(
        &lab,
        "[defaults]\nprofile = \"docker\"\n\n[[container]]\nname = \"a\"\nimage = \"auto\"\n\n[[container]]\nname = \"b\"\n",
    )
    .unwrap();
    let l = provision::labfile::load(&lab, &Layer::default()).unwrap();
    assert_eq!(l.entries[0].request.profile.image, ImageMode::Auto);
    assert_eq!(
        l.entries[1].request.profile.image,
        ImageMode::None,
        "the default"
    );
}
