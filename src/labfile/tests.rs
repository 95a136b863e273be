//! Unit tests of lab file parsing and checking.

use super::*;

fn lab(text: &str) -> Result<LabFile, InputErrors> {
    parse("lab.toml", text, Path::new("."), &Layer::default())
}

fn errs(text: &str) -> Vec<String> {
    lab(text)
        .expect_err("the file should be refused")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn counted_entries_expand_from_one_with_vmid_base() {
    let l = lab(
        "[defaults]\nprofile = \"docker\"\nmemory = 1024\n\n[[container]]\nname = \"runner-{n}\"\ncount = 3\nvmid_base = 300\n\n[[container]]\nname = \"db\"\nvmid = 250\nmemory = 4096\n",
    )
    .unwrap();
    let names: Vec<(&str, Option<u32>)> = l
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.vmid()))
        .collect();
    assert_eq!(
        names,
        [
            ("runner-1", Some(300)),
            ("runner-2", Some(301)),
            ("runner-3", Some(302)),
            ("db", Some(250))
        ]
    );
    assert_eq!(l.entries[0].request.profile.memory, 1024);
    assert_eq!(l.entries[3].request.profile.memory, 4096);
    assert_eq!(l.entries[1].pattern.as_deref(), Some("runner-{n}"));
    assert_eq!(l.entries[1].n, Some(2));
    assert_eq!(l.entries[3].request.hostname, "db");
}

#[test]
fn layers_stack_profile_then_defaults_then_entry() {
    let l = lab(
        "[defaults]\nprofile = \"docker-auto\"\ncores = 4\n[defaults.network]\nbridge = \"vmbr1\"\n\n[[container]]\nname = \"a\"\n[container.network]\nip = \"10.0.0.5/24\"\ngateway = \"10.0.0.1\"\n\n[[container]]\nname = \"b\"\nprofile = \"docker\"\n",
    )
    .unwrap();
    let a = &l.entries[0].request.profile;
    assert_eq!(a.cores, 4);
    assert_eq!(a.network.bridge, "vmbr1");
    assert_eq!(a.network.ip, "10.0.0.5/24");
    assert_eq!(a.docker.storage_driver, profile::Driver::Auto);
    let b = &l.entries[1].request.profile;
    assert_eq!(b.docker.storage_driver, profile::Driver::FuseOverlayfs);
    assert_eq!(b.network.ip, "dhcp");
    assert_eq!(b.network.bridge, "vmbr1");
}

#[test]
fn every_problem_is_reported_together_with_line_and_field() {
    let e = errs(concat!(
        "[defaults]\n",                    // 1
        "profile = \"docker\"\n",          // 2
        "\n",                              // 3
        "[[container]]\n",                 // 4
        "name = \"web\"\n",                // 5
        "memory = 8\n",                    // 6
        "\n",                              // 7
        "[[container]]\n",                 // 8
        "name = \"web\"\n",                // 9
        "\n",                              // 10
        "[[container]]\n",                 // 11
        "name = \"runner\"\n",             // 12
        "count = 2\n",                     // 13
        "\n",                              // 14
        "[[container]]\n",                 // 15
        "name = \"x-{n}\"\n",              // 16
        "\n",                              // 17
        "[[container]]\n",                 // 18
        "name = \"y\"\n",                  // 19
        "profile = \"no-such-profile\"\n", // 20
        "vmid = 99\n",                     // 21
        "\n",                              // 22
        "[[container]]\n",                 // 23
        "name = \"bad_name\"\n",           // 24
    ));
    let all = e.join("\n");
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:6:1: container[0].memory: 8 is out of range")),
        "{all}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:9:1: container[1].name:")
                && s.contains("also container[0]")),
        "{all}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:13:1: container[2].count:") && s.contains("{n}")),
        "{all}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:16:1: container[3].name:") && s.contains("count")),
        "{all}"
    );
    assert!(
        e.iter().any(|s| s.starts_with(
            "lab.toml:20:1: container[4].profile: no profile named \"no-such-profile\""
        )),
        "{all}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:21:1: container[4].vmid: VMID 99 is out of range")),
        "{all}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("lab.toml:24:1: container[5].name:")
                && s.contains("not a valid hostname")),
        "{all}"
    );
    assert_eq!(e.len(), 7, "{all}");
}

#[test]
fn unknown_keys_and_wrong_types_are_located() {
    let e = errs("[[container]]\nname = \"a\"\nprofile = \"docker\"\nmemroy = 512\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lab.toml:4:1: container[0].memroy: unknown field"),
        "{e:?}"
    );
    // A broken layer does not hide the entry's other problems.
    let e = errs("[[container]]\nname = \"a_b\"\nprofile = \"docker\"\nmemroy = 512\n");
    assert_eq!(e.len(), 2, "{e:?}");
    let e = errs("[[container]]\nname = \"a\"\nprofile = \"docker\"\ncount = \"two\"\n");
    assert!(
        e[0].starts_with("lab.toml:4:9: container[0].count:"),
        "{e:?}"
    );
    let e = errs(
        "[[container]]\nname = \"a\"\nprofile = \"docker\"\n[container.network]\nipp = \"dhcp\"\n",
    );
    assert!(
        e[0].starts_with("lab.toml:5:1: container[0].network.ipp: unknown field"),
        "{e:?}"
    );
    let e = errs("[default]\nprofile = \"docker\"\n[[container]]\nname = \"a\"\n");
    assert!(
        e[0].starts_with("lab.toml:1:2: default: unknown key"),
        "{e:?}"
    );
    let e = errs("[[container]]\nname = \"a\"\nprofile = \"docker\"\nhostname = \"b\"\n");
    assert!(
        e[0].starts_with("lab.toml:4:1: container[0].hostname:"),
        "{e:?}"
    );
    let e = errs("container = 3\n");
    assert!(e[0].contains("[[container]]"), "{e:?}");
    let e = errs("[[container]\n");
    assert!(e[0].starts_with("lab.toml:1:"), "{e:?}");
}

#[test]
fn duplicate_vmids_after_expansion_and_vmid_rules() {
    let e = errs(
        "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"r-{n}\"\ncount = 3\nvmid_base = 300\n[[container]]\nname = \"db\"\nvmid = 302\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lab.toml:9:1: container[1].vmid:")
            && e[0].contains("VMID 302 is also container[0] (n = 3)"),
        "{e:?}"
    );
    let e = errs(
        "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"r-{n}\"\ncount = 2\nvmid = 300\n[[container]]\nname = \"s\"\nvmid_base = 400\n[[container]]\nname = \"t-{n}\"\ncount = 3\nvmid_base = 999999998\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].contains("container[0].vmid:") && e[0].contains("vmid_base"),
        "{e:?}"
    );
    assert!(e[1].contains("container[1].vmid_base:"), "{e:?}");
    assert!(
        e[2].contains("container[2].vmid_base:") && e[2].contains("out of range"),
        "{e:?}"
    );
}

#[test]
fn names_differing_in_case_are_duplicates() {
    let e = errs(
        "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"Web\"\n[[container]]\nname = \"web\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn a_pattern_that_makes_a_bad_hostname_names_the_counter() {
    let e = errs("[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"-{n}\"\ncount = 2\n");
    assert!(
        e[0].contains("for n = 1") && e[0].contains("container[0].name"),
        "{e:?}"
    );
    let e =
        errs("[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"a{n}{x}\"\ncount = 2\n");
    assert!(e[0].contains("not a valid hostname"), "{e:?}");
}

#[test]
fn missing_profile_and_bad_defaults_point_into_the_file() {
    let e = errs("[[container]]\nname = \"a\"\n");
    assert!(
        e[0].starts_with("lab.toml:1:1: container[0]: no profile"),
        "{e:?}"
    );
    let e = errs(
        "[defaults]\nprofile = \"nope\"\nswap = -1\n[[container]]\nname = \"a\"\n[[container]]\nname = \"b\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("lab.toml:2:1: defaults.profile: no profile named \"nope\""),
        "{e:?}"
    );
    assert!(e[1].starts_with("lab.toml:3:1: defaults.swap:"), "{e:?}");
    let e = errs("[defaults]\nprofile = \"docker\"\n");
    assert!(e[0].contains("no [[container]] entries"), "{e:?}");
    // An unused default profile is checked too.
    let e =
        errs("[defaults]\nprofile = \"nope\"\n[[container]]\nname = \"a\"\nprofile = \"docker\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("lab.toml:2:1: defaults.profile:"), "{e:?}");
}

#[test]
fn cross_field_rules_from_resolve_point_at_the_layer_that_set_them() {
    let e = errs(
        "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"a\"\n[container.network]\nip = \"dhcp\"\ngateway = \"10.0.0.1\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lab.toml:7:1: container[0].network.gateway:"),
        "{e:?}"
    );
}

#[test]
fn node_and_host_are_checked() {
    let e = errs(
        "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"a\"\nnode = \"pve_1\"\nhost = \"root@\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("container[0].node:"), "{e:?}");
    assert!(e[1].contains("container[0].host:"), "{e:?}");
    let l = lab("[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"a\"\nnode = \"pve2\"\nhost = \"root@pve2:2222\"\n").unwrap();
    assert_eq!(l.entries[0].host.as_deref(), Some("root@pve2:2222"));
    assert_eq!(l.entries[0].node.as_deref(), Some("pve2"));
}

#[test]
fn only_selects_by_name_or_pattern_and_refuses_unknown_names() {
    let l = lab("[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"r-{n}\"\ncount = 3\n[[container]]\nname = \"db\"\n").unwrap();
    let s: Vec<&str> = l
        .select(&["db".into(), "R-2".into()])
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(s, ["r-2", "db"]);
    assert_eq!(l.select(&["r-{n}".into()]).unwrap().len(), 3);
    assert_eq!(l.select(&[]).unwrap().len(), 4);
    let e = l.select(&["nope".into(), "r-9".into()]).unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert!(
        e.to_string()
            .starts_with("command line: --only: \"nope\" is not a container of lab.toml"),
        "{e}"
    );
}

#[test]
fn profile_paths_are_relative_to_the_lab_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/ci.toml"),
        "extends = \"docker\"\nmemory = 3072\n",
    )
    .unwrap();
    let path = dir.path().join("lab.toml");
    std::fs::write(
        &path,
        "[[container]]\nname = \"a\"\nprofile = \"profiles/ci.toml\"\n",
    )
    .unwrap();
    let l = load(&path, &Layer::default()).unwrap();
    assert_eq!(l.entries[0].request.profile.memory, 3072);
    // An error inside the profile file is reported in that file.
    std::fs::write(
        dir.path().join("profiles/ci.toml"),
        "extends = \"docker\"\nmemory = 1\n",
    )
    .unwrap();
    let e = load(&path, &Layer::default()).unwrap_err().to_string();
    assert!(e.contains("ci.toml:2:1: memory:"), "{e}");
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ci-lab.toml"));
    let l = load(path, &Layer::default()).unwrap_or_else(|e| panic!("{e}"));
    let runners = l
        .entries
        .iter()
        .filter(|e| e.name.starts_with("runner-"))
        .count();
    assert_eq!(runners, 8);
    assert_eq!(l.entries.len(), 11);
}
