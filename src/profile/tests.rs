//! Unit tests of profile parsing, layering, checks and resolution.

use super::*;

fn layer(text: &str) -> Result<(Layer, Index), InputErrors> {
    parse_layer("t.toml", text)
}

#[test]
fn every_shipped_profile_parses_and_resolves() {
    for (name, text) in EMBEDDED {
        let (l, i) = layer(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut layers = vec![(l.clone(), i)];
        if let Some(parent) = &l.extends {
            let (_, ptext) = EMBEDDED.iter().find(|(n, _)| n == parent).unwrap();
            layers.insert(0, layer(ptext).unwrap());
        }
        resolve(name, &layers, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The files in profiles/ are the embedded ones, and there are no others.
    let mut on_disk: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".toml")
                    .to_string()
            })
            .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}

#[test]
fn docker_profile_follows_the_seed_recipe() {
    let (l, i) = layer(EMBEDDED[0].1).unwrap();
    let p = resolve("docker", &[(l, i)], None).unwrap();
    assert!(p.unprivileged);
    assert_eq!(
        p.features,
        Features {
            nesting: true,
            keyctl: true,
            fuse: true,
            mknod: true
        }
    );
    assert_eq!(p.docker.storage_driver, Driver::FuseOverlayfs);
    assert!(p.template.starts_with("ubuntu-"));
}

#[test]
fn unknown_key_names_line_and_field() {
    let e = layer("template = \"debian-12\"\nmemroy = 512\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2:1: memroy:"), "{e}");
    assert!(e.contains("unknown field") && e.contains("memory"), "{e}");
}

#[test]
fn nested_unknown_key_and_wrong_type() {
    let e = layer("[network]\nbridge = \"vmbr0\"\nipp = \"dhcp\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:3:1: network.ipp:"), "{e}");
    let e = layer("memory = \"lots\"\n").unwrap_err().to_string();
    assert!(e.starts_with("t.toml:1:") && e.contains("memory"), "{e}");
}

#[test]
fn bad_values_name_their_rule() {
    let e =
        layer("hostname = \"bad_name!\"\nvmid = 99\nmemory = 8\n[network]\nip = \"10.0.0.1\"\n")
            .unwrap_err();
    let s = e.to_string();
    assert_eq!(e.0.len(), 4, "{s}");
    assert!(
        s.contains("t.toml:1:1: hostname: \"bad_name!\" is not a valid hostname"),
        "{s}"
    );
    assert!(
        s.contains("t.toml:2:1: vmid: VMID 99 is out of range"),
        "{s}"
    );
    assert!(s.contains("t.toml:3:1: memory: 8 is out of range"), "{s}");
    assert!(s.contains("t.toml:5:1: network.ip:"), "{s}");
}

#[test]
fn later_layers_win_field_by_field() {
    let base = layer(
        "template = \"debian-12\"\nmemory = 1024\n[network]\nbridge = \"vmbr1\"\nip = \"dhcp\"\n",
    )
    .unwrap();
    let top =
        layer("memory = 2048\n[network]\nip = \"10.1.2.3/24\"\ngateway = \"10.1.2.1\"\n").unwrap();
    let p = resolve("t", &[base, top], None).unwrap();
    assert_eq!(p.memory, 2048);
    assert_eq!(p.network.bridge, "vmbr1");
    assert_eq!(p.network.ip, "10.1.2.3/24");
    assert_eq!(p.template, "debian-12");
}

#[test]
fn fuse_false_with_fuse_overlayfs_is_refused_and_missing_fuse_is_added() {
    let l = layer("template = \"debian-12\"\n[features]\nfuse = false\n[docker]\ninstall = \"distro\"\nstorage_driver = \"fuse-overlayfs\"\n").unwrap();
    let e = resolve("t", &[l], None).unwrap_err().to_string();
    assert!(e.contains("t.toml:3:1: features.fuse"), "{e}");
    let l = layer("template = \"debian-12\"\n[docker]\ninstall = \"distro\"\nstorage_driver = \"fuse-overlayfs\"\n").unwrap();
    let p = resolve("t", &[l], None).unwrap();
    assert!(p.features.fuse);
    assert!(p.warnings.iter().any(|w| w.contains("features.fuse")));
}

#[test]
fn property_string_injection_is_refused() {
    let e =
        layer("[rootfs]\nstorage = \"local,size=1\"\n[network]\nbridge = \"vmbr0,firewall=0\"\n")
            .unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    let e = layer("tags = [\"a;b\"]\n").unwrap_err().to_string();
    assert!(e.contains("tags[0]"), "{e}");
}

#[test]
fn empty_and_non_utf8_files_are_refused() {
    assert!(
        layer("# nothing\n\n")
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    let e = text_from_bytes("x.toml", b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
    assert_eq!((e.line, e.col), (2, 6));
    assert!(text_from_bytes("x.toml", vec![b'#'; MAX_FILE_BYTES + 1]).is_err());
}

#[test]
fn resolved_profile_renders_as_toml_that_parses_back() {
    let (l, i) = layer(EMBEDDED[0].1).unwrap();
    let p = resolve("docker", &[(l, i)], None).unwrap();
    let text = p.to_toml();
    let back: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(back["memory"].as_integer(), Some(p.memory as i64));
}
