//! Fuzz: the parsers never panic on any input, what they accept carries nothing into a command,
//! and the quoting function survives a real shell with any text. Hostile node answers (guest
//! lists, nextid, pending configs, `pct config`, template indexes, storages) and in-container
//! facts go through the parsers and the in-container planner: VMIDs are checked, never
//! wrapped; nothing unsafe is printed raw (text or JSON); special files are input errors.
//!
//! Property-based (proptest) with bounded case counts so that the module stays well under 20 s
//! on two cores in a debug build. `PROVISION_FUZZ_CASES=N` runs N cases per target instead of the
//! defaults (CI uses the defaults). Each target prints its number of executions and time, and
//! writes them to `$CARGO_TARGET_TMPDIR/fuzz/TARGET.txt`.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use provision::error::{InputErrors, is_unsafe_char, line_col};
use provision::facts::{parse_property_string, split_tags};
use provision::labfile;
use provision::plan;
use provision::profile::{self, Layer, TOOL_TAG};
use provision::quote::quote_argv;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The RNG seed: `PROVISION_FUZZ_SEED` (a number, or `random`), else a fixed one so that a CI
/// failure reproduces. Printed with every target's line.
fn seed() -> RngSeed {
    match std::env::var("PROVISION_FUZZ_SEED")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        Some("random") => RngSeed::Random,
        Some(v) => RngSeed::Fixed(v.parse().unwrap_or(DEFAULT_SEED)),
        None => RngSeed::Fixed(DEFAULT_SEED),
    }
}

/// The seed CI runs with.
const DEFAULT_SEED: u64 = 0x7072_6f76_6973_696f;

/// Cases for one target: `PROVISION_FUZZ_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROVISION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on values of `strategy`, counting executions (shrinking included); prints and
/// records the count and the time. Panics with proptest's minimal failing input on failure.
fn fuzz<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(default_cases),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        rng_seed: seed(),
        ..Config::default()
    };
    let n = config.cases;
    let seed_shown = match config.rng_seed {
        RngSeed::Fixed(s) => s.to_string(),
        RngSeed::Random => "random".into(),
    };
    let executions = AtomicU64::new(0);
    let t0 = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |v| {
        executions.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    let line = format!(
        "fuzz {name}: {} executions ({n} cases, seed {seed_shown}) in {} ms",
        executions.load(Ordering::Relaxed),
        t0.elapsed().as_millis()
    );
    eprintln!("{line}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}.txt")), format!("{line}\n"));
    }
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Every error names its place and prints as one line without control characters (a hostile key
/// or file name must not drive the terminal).
fn errors_are_clean(e: &InputErrors) -> Result<(), TestCaseError> {
    prop_assert!(!e.0.is_empty(), "an error without any message");
    for one in &e.0 {
        let s = one.to_string();
        prop_assert!(
            !s.chars().any(is_unsafe_char),
            "error shows raw control text: {s:?}"
        );
        prop_assert!(!s.is_empty());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes.

/// Bytes that make TOML: structure, quotes, escapes, digits, a few keys' letters, newlines,
/// invalid UTF-8 and NUL.
fn tomlish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> =
        b"[]{}=\"'\\\n\r\t #.,-_+:0123456789abcdefmnorstuxyz\xff\xc3\xa9\x00".to_vec();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec(proptest::sample::select(alphabet), 0..400),
    ]
}

#[test]
fn profile_parser_never_panics_on_arbitrary_bytes() {
    fuzz(
        "profile_bytes",
        3_000,
        (tomlish_bytes(), any::<usize>()),
        |(bytes, offset)| {
            let text = match profile::text_from_bytes("f.toml", bytes.clone()) {
                Ok(t) => t,
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.col >= 1, "{e}");
                    return Ok(());
                }
            };
            // Positions are computed for any offset, even one inside a character.
            let (l, c) = line_col(&text, offset % (text.len() + 2));
            prop_assert!(l >= 1 && c >= 1);
            match profile::parse_layer("f.toml", &text) {
                Ok((layer, _)) => {
                    let _ = profile::resolve("f", &[(layer, profile::Index::default())], None);
                }
                Err(e) => errors_are_clean(&e)?,
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Near-valid profiles with hostile values.

/// What hostile strings carry: property-string injection, shell metacharacters, control
/// characters, options, path tricks, unicode tricks.
const TAILS: &[&str] = &[
    ",size=1",
    ",firewall=0",
    ",gw=1.2.3.4",
    ",mount=nfs",
    ";reboot",
    "$(reboot)",
    "`id`",
    " --unprivileged 0",
    "\n--unprivileged 0",
    "\r",
    "\u{1b}[2J",
    "\u{202e}",
    "\t",
    "\0",
    "/../../etc/shadow",
    "|sh",
    "&&id",
    "'\"",
    "\\",
    " ",
    "é",
    "\u{2028}",
];

/// Good values for a field; the same with something appended or prepended; or any text.
fn hostile_string(good: &'static [&'static str]) -> BoxedStrategy<String> {
    let good = proptest::sample::select(good.to_vec());
    let tail = proptest::sample::select(TAILS.to_vec());
    prop_oneof![
        5 => good.clone().prop_map(String::from),
        3 => (good.clone(), tail.clone()).prop_map(|(g, t)| format!("{g}{t}")),
        1 => (tail, good).prop_map(|(t, g)| format!("{t}{g}")),
        1 => "\\PC{0,24}",
        1 => ".{0,24}",
    ]
    .boxed()
}

/// Values that are good for some field (keys and places without a pool of their own).
const ANY_GOOD: &[&str] = &[
    "debian-12",
    "vmbr0",
    "local-lvm",
    "dhcp",
    "10.0.0.5/24",
    "Europe/Berlin",
    "web-1",
    "/etc/motd",
    "https://packages.example/linux/ubuntu",
    "",
];

fn hostile_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            -1, 0, 1, 2, 15, 16, 99, 100, 512, 4094, 4095, 8192, 8193, 65535, 65536,
            999_999_999, 1_000_000_000, i64::MAX, i64::MIN, i64::MAX - 1, 4_294_967_296,
        ]),
        1 => any::<i64>(),
    ]
}

fn hostile_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::sample::select(vec![
            0.0,
            -0.0,
            0.0005,
            0.001,
            8.0,
            131072.0,
            131072.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e300,
        ]),
        any::<f64>(),
    ]
}

/// A value of any TOML type (for "wrong type" fields).
fn any_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        hostile_string(ANY_GOOD).prop_map(toml::Value::String),
        hostile_int().prop_map(toml::Value::Integer),
        hostile_float().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            proptest::collection::btree_map(hostile_string(ANY_GOOD), inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// The type of a profile field, with good values for its strings.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Str(&'static [&'static str]),
    Int,
    Float,
    Bool,
    Strs(&'static [&'static str]),
    Table(&'static [(&'static str, Kind)]),
    Files,
    Commands,
    Password,
}

const STORAGES: &[&str] = &["local", "local-lvm", "local-zfs", "tank.ct_1"];
const URLS: &[&str] = &[
    "https://packages.example/linux/ubuntu",
    "http://mirror.example/x?a=1&b=2#f",
];
const ROOTFS: &[(&str, Kind)] = &[("storage", Kind::Str(STORAGES)), ("size", Kind::Float)];
const NETWORK: &[(&str, Kind)] = &[
    ("bridge", Kind::Str(&["vmbr0", "vmbr1", "br-lab_1.5"])),
    ("ip", Kind::Str(&["dhcp", "manual", "10.0.0.5/24"])),
    ("gateway", Kind::Str(&["10.0.0.1"])),
    ("ip6", Kind::Str(&["auto", "dhcp", "fd00::5/64"])),
    ("gateway6", Kind::Str(&["fd00::1"])),
    ("vlan", Kind::Int),
    ("firewall", Kind::Bool),
    ("mtu", Kind::Int),
    (
        "hwaddr",
        Kind::Str(&["BC:24:11:00:00:01", "bc:24:11:ab:cd:ef"]),
    ),
];
const FEATURES: &[(&str, Kind)] = &[
    ("nesting", Kind::Bool),
    ("keyctl", Kind::Bool),
    ("fuse", Kind::Bool),
    ("mknod", Kind::Bool),
];
const FUSE: &[(&str, Kind)] = &[
    ("source", Kind::Str(&["node", "url", "package"])),
    (
        "path",
        Kind::Str(&["/usr/local/bin/fuse-overlayfs", "/opt/bin/fo"]),
    ),
    ("url", Kind::Str(URLS)),
    (
        "sha256",
        Kind::Str(&["0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"]),
    ),
];
const DOCKER: &[(&str, Kind)] = &[
    (
        "install",
        Kind::Str(&["distro", "docker-ce", "present", "none"]),
    ),
    (
        "storage_driver",
        Kind::Str(&["fuse-overlayfs", "overlay2", "vfs", "auto"]),
    ),
    (
        "verify_image",
        Kind::Str(&["busybox:1.36", "ghcr.io/a/b@sha256:00", ""]),
    ),
    ("repository", Kind::Str(URLS)),
    ("fuse_overlayfs", Kind::Table(FUSE)),
];
/// Every profile field with its type.
const FIELDS: &[(&str, Kind)] = &[
    ("description", Kind::Str(&["a lab box", "-x"])),
    ("hostname", Kind::Str(&["web-1", "a.lab"])),
    ("vmid", Kind::Int),
    (
        "template",
        Kind::Str(&[
            "debian-12",
            "ubuntu-24.04",
            "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst",
        ]),
    ),
    ("template_storage", Kind::Str(STORAGES)),
    ("unprivileged", Kind::Bool),
    ("cores", Kind::Int),
    ("memory", Kind::Int),
    ("swap", Kind::Int),
    ("onboot", Kind::Bool),
    (
        "tags",
        Kind::Strs(&["docker", "ci", "_x+1.a-b", "provision"]),
    ),
    (
        "timezone",
        Kind::Str(&["Europe/Berlin", "host", "Etc/GMT+1"]),
    ),
    ("nameserver", Kind::Strs(&["1.1.1.1", "fd00::53"])),
    ("searchdomain", Kind::Str(&["lab.example"])),
    (
        "ssh_public_keys",
        Kind::Strs(&["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@x"]),
    ),
    ("root_password", Kind::Password),
    ("rootfs", Kind::Table(ROOTFS)),
    ("network", Kind::Table(NETWORK)),
    ("features", Kind::Table(FEATURES)),
    ("docker", Kind::Table(DOCKER)),
    ("files", Kind::Files),
    ("commands", Kind::Commands),
];

/// A right-typed (mostly) value with hostile content for one field.
fn value_of(kind: Kind) -> BoxedStrategy<toml::Value> {
    use toml::Value as V;
    let strs = |good: &'static [&'static str], n: std::ops::Range<usize>| {
        proptest::collection::vec(hostile_string(good).prop_map(V::String), n).prop_map(V::Array)
    };
    let typed: BoxedStrategy<V> = match kind {
        Kind::Str(good) => hostile_string(good).prop_map(V::String).boxed(),
        Kind::Int => hostile_int().prop_map(V::Integer).boxed(),
        Kind::Float => prop_oneof![
            hostile_float().prop_map(V::Float),
            hostile_int().prop_map(V::Integer)
        ]
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(V::Boolean).boxed(),
        Kind::Strs(good) => strs(good, 0..4).boxed(),
        Kind::Table(fields) => table_of(fields, 0.3).prop_map(V::Table).boxed(),
        Kind::Files => proptest::collection::vec(
            (
                hostile_string(&["/etc/motd", "/opt/my app/conf.d/a.conf"]),
                proptest::option::of(hostile_string(&["hello\n", ""])),
                proptest::option::weighted(0.2, hostile_string(&["/dev/null"])),
                proptest::option::weighted(0.5, hostile_string(&["0644", "0755", "0o600"])),
            )
                .prop_map(|(dest, content, source, mode)| {
                    let mut t = toml::Table::new();
                    t.insert("dest".into(), V::String(dest));
                    for (k, v) in [("content", content), ("source", source), ("mode", mode)] {
                        if let Some(v) = v {
                            t.insert(k.into(), V::String(v));
                        }
                    }
                    V::Table(t)
                }),
            0..3,
        )
        .prop_map(V::Array)
        .boxed(),
        Kind::Commands => {
            proptest::collection::vec(strs(&["systemctl", "enable", "--now", "x y"], 0..3), 0..3)
                .prop_map(V::Array)
                .boxed()
        }
        Kind::Password => (
            proptest::sample::select(vec!["env", "file", "prompt", "plain"]),
            hostile_string(&["PW_VAR", "/run/secrets/pw", ""]),
        )
            .prop_map(|(k, v)| {
                if k == "plain" {
                    return V::String(v);
                }
                let mut t = toml::Table::new();
                let value = if k == "prompt" {
                    V::Boolean(v.is_empty())
                } else {
                    V::String(v)
                };
                t.insert(k.into(), value);
                V::Table(t)
            })
            .boxed(),
    };
    prop_oneof![8 => typed, 1 => any_value()].boxed()
}

/// A table with each of `fields` present with probability `p`, and now and then an unknown key.
fn table_of(fields: &'static [(&'static str, Kind)], p: f64) -> BoxedStrategy<toml::Table> {
    let per_field: Vec<BoxedStrategy<Option<(String, toml::Value)>>> = fields
        .iter()
        .map(|(k, kind)| {
            let k = k.to_string();
            proptest::option::weighted(p, value_of(*kind))
                .prop_map(move |v| v.map(|v| (k.clone(), v)))
                .boxed()
        })
        .collect();
    let unknown = proptest::option::weighted(0.03, hostile_string(ANY_GOOD));
    (per_field, unknown)
        .prop_map(|(pairs, unknown)| {
            let mut t: toml::Table = pairs.into_iter().flatten().collect();
            if let Some(k) = unknown {
                t.insert(k, toml::Value::Integer(1));
            }
            t
        })
        .boxed()
}

/// How a generated document is damaged before parsing.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Truncate(usize),
    Insert(usize, char),
    Delete(usize),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => Just(Mutation::None),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::sample::select(vec!['"', '\'', '[', ']', '=', '\n', '\\', '{', '#', ',', '\u{0}', 'é']))
            .prop_map(|(i, c)| Mutation::Insert(i, c)),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply_mutation(text: &str, m: &Mutation) -> String {
    let at = |i: usize| text.floor_char_boundary(i % (text.len() + 1));
    match *m {
        Mutation::None => text.to_string(),
        Mutation::Truncate(i) => text[..at(i)].to_string(),
        Mutation::Insert(i, c) => {
            let i = at(i);
            format!("{}{c}{}", &text[..i], &text[i..])
        }
        Mutation::Delete(i) => {
            let i = at(i);
            let mut s = text.to_string();
            if i < s.len() {
                s.remove(i);
            }
            s
        }
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let k = i % lines.len();
            let mut out: Vec<&str> = lines.clone();
            out.insert(k, lines[k]);
            out.join("\n")
        }
    }
}

/// What an accepted profile may put on `pct create`: nothing that smuggles a second property,
/// option or line.
fn accepted_profile_carries_nothing_in(p: &profile::Profile) -> Result<(), TestCaseError> {
    let opts = plan::create_options(p, "web", !p.ssh_public_keys.is_empty());
    for (k, v) in &opts {
        prop_assert!(
            !v.contains(['\n', '\r', '\0']),
            "--{k} carries a line break: {v:?}"
        );
    }
    let get = |key: &str| {
        opts.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // net0: exactly the keys the tool writes, with the profile's values.
    let net0 = get("net0");
    let m = parse_property_string(&net0, "name");
    let allowed = [
        "name", "bridge", "firewall", "gw", "gw6", "hwaddr", "ip", "ip6", "mtu", "tag", "type",
    ];
    for k in m.keys() {
        prop_assert!(allowed.contains(&k.as_str()), "net0 gained {k:?}: {net0}");
    }
    prop_assert_eq!(m.get("bridge"), Some(&p.network.bridge), "{}", net0);
    prop_assert_eq!(m.get("ip"), Some(&p.network.ip), "{}", net0);
    prop_assert_eq!(net0.matches(',').count() + 1, m.len(), "{}", net0);
    // rootfs: STORAGE:SIZE and nothing else.
    let rootfs = get("rootfs");
    prop_assert!(
        !rootfs.contains([',', '=']),
        "rootfs carries a property: {rootfs}"
    );
    prop_assert_eq!(rootfs.matches(':').count(), 1, "{}", rootfs);
    // features: only the four flags.
    let feats = parse_property_string(&get("features"), "");
    for k in feats.keys() {
        prop_assert!(
            ["fuse", "keyctl", "mknod", "nesting"].contains(&k.as_str()),
            "features gained {k:?}"
        );
    }
    // tags: what the profile says, plus the tool's own.
    let tags = split_tags(&get("tags"));
    let mut want = p.tags.clone();
    want.push(TOOL_TAG.to_string());
    want.sort();
    want.dedup();
    prop_assert_eq!(tags, want);
    // Values that are whole arguments never read as an option.
    for key in ["hostname", "timezone", "searchdomain", "nameserver"] {
        let v = get(key);
        prop_assert!(!v.starts_with('-'), "--{key} {v:?}");
    }
    prop_assert!(!p.template.starts_with('-'));
    prop_assert!(!p.docker.verify_image.starts_with('-'));
    for f in &p.files {
        prop_assert!(
            f.dest.starts_with('/') && !f.dest.chars().any(char::is_control),
            "files dest {:?}",
            f.dest
        );
    }
    Ok(())
}

#[test]
fn profile_parser_survives_near_valid_profiles_and_accepts_nothing_hostile() {
    let accepted = AtomicU64::new(0);
    fuzz(
        "profile_structured",
        1_500,
        (table_of(FIELDS, 0.12), mutation()),
        |(table, m)| {
            let text = toml::to_string(&table).unwrap_or_default();
            let text = apply_mutation(&text, &m);
            match profile::parse_layer("f.toml", &text) {
                Ok((layer, idx)) => match profile::resolve("f", &[(layer, idx)], None) {
                    Ok(p) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        accepted_profile_carries_nothing_in(&p)?;
                    }
                    Err(e) => errors_are_clean(&e)?,
                },
                Err(e) => errors_are_clean(&e)?,
            }
            Ok(())
        },
    );
    // The generator must reach the "accepted" branch, or the property above tests nothing.
    let n = accepted.load(Ordering::Relaxed);
    eprintln!("fuzz profile_structured: {n} profiles accepted");
    assert!(n > 0, "no generated profile was accepted");
}

// ---------------------------------------------------------------------------------------------
// Lab files.

/// Near-valid lab files: entries with names, counts, VMIDs (extreme ones too) and profile fields.
fn lab_text() -> impl Strategy<Value = String> {
    let entry = (
        prop_oneof![
            4 => hostile_string(&["web", "runner-{n}", "db-1"]),
            1 => proptest::sample::select(vec!["{n}", "a{n}{n}", "-{n}", "Web", "x{n}y{N}"])
                .prop_map(String::from),
        ],
        proptest::option::weighted(0.4, hostile_int()),
        proptest::option::weighted(0.3, hostile_int()),
        proptest::option::weighted(0.3, hostile_int()),
        proptest::option::weighted(
            0.5,
            proptest::sample::select(vec![
                "docker",
                "docker-auto",
                "nope",
                "./missing.toml",
                "../x/y.toml",
                "",
            ]),
        ),
        table_of(
            &[
                ("memory", Kind::Int),
                ("tags", Kind::Strs(&["ci"])),
                ("network", Kind::Table(NETWORK)),
                ("hostname", Kind::Str(&["web"])),
                ("extends", Kind::Str(&["docker"])),
            ],
            0.1,
        ),
    )
        .prop_map(|(name, count, vmid, vmid_base, profile, mut t)| {
            t.insert("name".into(), toml::Value::String(name));
            for (k, v) in [("count", count), ("vmid", vmid), ("vmid_base", vmid_base)] {
                if let Some(v) = v {
                    t.insert(k.into(), toml::Value::Integer(v));
                }
            }
            if let Some(p) = profile {
                t.insert("profile".into(), toml::Value::String(p.into()));
            }
            toml::Value::Table(t)
        });
    (
        proptest::collection::vec(entry, 0..4),
        proptest::option::of(table_of(
            &[("memory", Kind::Int), ("cores", Kind::Int)],
            0.3,
        )),
        mutation(),
    )
        .prop_map(|(entries, defaults, m)| {
            let mut doc = toml::Table::new();
            if let Some(mut d) = defaults {
                d.insert("profile".into(), toml::Value::String("docker".into()));
                doc.insert("defaults".into(), toml::Value::Table(d));
            }
            doc.insert("container".into(), toml::Value::Array(entries));
            apply_mutation(&toml::to_string(&doc).unwrap_or_default(), &m)
        })
}

#[test]
fn lab_file_parser_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let accepted = AtomicU64::new(0);
    fuzz(
        "lab_file",
        600,
        prop_oneof![
            3 => lab_text(),
            1 => tomlish_bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
        |text| {
            match labfile::parse("lab.toml", &text, dir, &Layer::default()) {
                Ok(lab) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    for e in &lab.entries {
                        prop_assert!(provision::validate::hostname(&e.name).is_ok());
                        accepted_profile_carries_nothing_in(&e.request.profile)?;
                    }
                }
                Err(e) => errors_are_clean(&e)?,
            }
            Ok(())
        },
    );
    let n = accepted.load(Ordering::Relaxed);
    eprintln!("fuzz lab_file: {n} lab files accepted");
    assert!(n > 0, "no generated lab file was accepted");
}

/// Found by the fuzzer above: `vmid_base` near i64::MAX overflowed `vmid_base + n - 1`
/// (a panic in debug builds, a wrapped negative VMID in the message of release builds).
#[test]
fn lab_file_with_an_extreme_vmid_base_is_refused_not_a_panic() {
    for base in [i64::MAX, i64::MAX - 1, i64::MIN] {
        let text = format!(
            "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"runner-{{n}}\"\ncount = 2\nvmid_base = {base}\n"
        );
        let res = std::panic::catch_unwind(|| {
            labfile::parse(
                "lab.toml",
                &text,
                std::path::Path::new("."),
                &Layer::default(),
            )
        });
        let Ok(res) = res else {
            panic!("vmid_base = {base} panics the lab-file parser");
        };
        let e = res.expect_err("refused").to_string();
        assert!(e.contains("container[0].vmid_base"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Quoting through a real shell.

/// Parses `line` with /bin/sh (`set -- LINE`) and returns the words it sees.
fn sh_words(line: &str) -> Vec<String> {
    let script = format!("set -- {line}\nfor a do printf '%s\\0' \"$a\"; done");
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "sh failed on {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).expect("sh returned what it got: UTF-8"))
        .collect();
    words.pop();
    words
}

/// Any character but NUL, weighted towards the ones a shell or a terminal acts on.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::sample::select(
            "'\"\\$`;&|<>(){}[]*?!#~=%^ \t\n\r\u{1}\u{7}\u{8}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{202e}\u{feff}-é"
                .chars()
                .collect::<Vec<_>>()
        ),
        2 => any::<char>().prop_filter("NUL cannot be in an argv", |c| *c != '\0'),
        1 => proptest::char::range('\u{1}', '\u{1f}'),
    ]
}

#[test]
fn quoted_argv_of_any_text_parses_back_in_a_real_shell() {
    let word = proptest::collection::vec(hostile_char(), 0..16)
        .prop_map(|cs| cs.into_iter().collect::<String>());
    fuzz(
        "quote_argv_sh",
        400,
        proptest::collection::vec(word, 1..5),
        |argv| {
            let line = quote_argv(&argv).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(sh_words(&line), argv);
            Ok(())
        },
    );
}

#[test]
fn nul_in_any_position_is_refused_by_quoting() {
    fuzz(
        "quote_argv_nul",
        300,
        (
            proptest::collection::vec("[^\u{0}]{0,6}", 0..4),
            ".{0,4}",
            ".{0,4}",
        ),
        |(mut argv, a, b)| {
            let i = argv.len();
            argv.push(format!("{a}\0{b}"));
            let err = quote_argv(&argv).unwrap_err().to_string();
            prop_assert!(err.contains(&format!("argument {i}")), "{}", err);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile node answers and container facts (issue 13): guest lists, pending configs, `pct
// config`, template indexes, storages, nextid and the in-container facts go through the
// parsers and the planner; nothing panics, every VMID accepted is in PVE's range, every size
// stays bounded by its input, and what is printed of it (text and JSON, through the one
// escaping edge) shows no unsafe character raw.

/// Strings a node or a container could print: PVE-like words with terminal controls, C1,
/// bidi and zero-width characters, huge numbers, JSON and property-string syntax mixed in.
fn node_text() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(vec![
            "web", "provision", "docker", "running", "stopped", "lxc", "qemu", "pve1",
            "local:vztmpl/", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst", "system",
            "debian-12-standard_12.7-1_amd64.tar.zst", ".tar.", "overlay2", "fuse-overlayfs",
            "vfs", "overlayfs", "100", "4294967396", "4294967295", "-1", "0", "99", "1e3",
            "18446744073709551616", "=", ":", ",", ";", " ", "\n", "\"", "\\", "{", "}", "[", "]",
        ]).prop_map(String::from),
        3 => proptest::collection::vec(hostile_char(), 0..6).prop_map(|v| v.into_iter().collect()),
        1 => proptest::sample::select(vec![
            "\u{1b}]0;pwned\u{7}", "\u{1b}]52;c;cm0gLXJmIC8=\u{7}", "\u{1b}[2J", "\u{9b}2J",
            "\u{200f}", "\u{200e}", "\u{61c}", "\u{200b}", "\u{2060}", "\u{feff}", "\u{e0041}",
            "\r", "\u{202e}",
        ]).prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..8)
        .prop_map(|v| v.concat())
        .boxed()
}

/// A JSON value a node could put where a VMID, a name or a config value goes.
fn node_json() -> BoxedStrategy<serde_json::Value> {
    use serde_json::{Value, json};
    prop_oneof![
        3 => node_text().prop_map(Value::String),
        2 => any::<i64>().prop_map(|n| json!(n)),
        2 => any::<u64>().prop_map(|n| json!(n)),
        1 => proptest::sample::select(vec![
            json!(4_294_967_396_u64), json!(0), json!(99), json!(4_294_967_295_u64), json!(-1),
            json!("100abc"), json!(100.5), json!(null), json!(true), json!([100]), json!({"a": 1}),
            json!(100), json!("999999999"),
        ]),
    ]
    .boxed()
}

/// `/cluster/resources`: entries with hostile fields, sometimes not an array at all.
fn guest_list() -> impl Strategy<Value = String> {
    let entry = (
        proptest::sample::select(vec!["lxc", "qemu", "node", "storage"]),
        node_json(),
        node_json(),
        node_json(),
        node_json(),
    )
        .prop_map(|(t, vmid, name, status, tags)| {
            serde_json::json!({"type": t, "vmid": vmid, "name": name, "node": "pve1",
                "status": status, "tags": tags})
        });
    prop_oneof![
        6 => proptest::collection::vec(entry, 0..6)
            .prop_map(|v| serde_json::Value::Array(v).to_string()),
        1 => node_text(),
    ]
}

/// Every untrusted string, rendered as the tool renders it: through the stream edge (text) and
/// as JSON. Neither shows an unsafe character raw, and the JSON reads back to the same string.
fn shown_safely(s: &str) -> Result<(), TestCaseError> {
    let text = provision::error::for_stream(s);
    prop_assert!(
        !text
            .chars()
            .any(|c| is_unsafe_char(c) && c != '\n' && c != '\t'),
        "text shows raw: {text:?}"
    );
    let doc = serde_json::to_string_pretty(&serde_json::json!({ "v": s })).unwrap();
    let safe = provision::error::json_safe(&doc);
    prop_assert!(
        !safe.chars().any(|c| is_unsafe_char(c) && c != '\n'),
        "JSON shows raw: {safe:?}"
    );
    let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
    prop_assert_eq!(back["v"].as_str(), Some(s));
    Ok(())
}

#[test]
fn hostile_guest_lists_and_nextid_give_checked_vmids_or_an_error() {
    fuzz(
        "guest_list",
        400,
        (guest_list(), node_text()),
        |(json, nextid)| {
            match provision::facts::parse_resources(&json) {
                Ok(guests) => {
                    // Each VMID is the node's, exactly: never wrapped (2^32+100 is not 100).
                    let input: serde_json::Value = serde_json::from_str(&json).unwrap();
                    let mut want: Vec<String> = input
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| matches!(e["type"].as_str(), Some("lxc" | "qemu")))
                        .map(|e| match &e["vmid"] {
                            serde_json::Value::String(s) => s.trim().to_string(),
                            other => other.to_string(),
                        })
                        .collect();
                    let mut got: Vec<String> = guests.iter().map(|g| g.vmid.to_string()).collect();
                    want.sort();
                    got.sort();
                    prop_assert_eq!(got, want);
                    for g in &guests {
                        prop_assert!((100..=999_999_999).contains(&g.vmid), "{g:?}");
                        prop_assert!(g.name.len() <= json.len() && g.tags.len() <= json.len());
                        shown_safely(&g.name)?;
                        for t in &g.tags {
                            shown_safely(t)?;
                        }
                    }
                }
                Err(e) => shown_safely(&format!("{e:#}"))?,
            }
            match provision::facts::node_vmid_text(&nextid) {
                Ok(v) => prop_assert!((100..=999_999_999).contains(&v)),
                Err(m) => {
                    prop_assert!(m.len() < 200, "an unbounded message: {} bytes", m.len());
                    prop_assert!(!m.chars().any(is_unsafe_char), "{m:?}");
                }
            }
            Ok(())
        },
    );
}

#[test]
fn hostile_configs_templates_and_storages_never_panic() {
    let pending =
        proptest::collection::vec((node_text(), node_json(), node_json(), node_json()), 0..6)
            .prop_map(|v| {
                serde_json::Value::Array(
                v.into_iter()
                    .map(|(k, value, p, d)| {
                        serde_json::json!({"key": k, "value": value, "pending": p, "delete": d})
                    })
                    .collect(),
            )
            .to_string()
            });
    fuzz(
        "node_answers",
        300,
        (pending, node_text(), node_text(), node_text()),
        |(pending, config, index, storage)| {
            if let Ok(c) = provision::facts::parse_pending(&pending) {
                for (k, v) in c.current.iter().chain(&c.pending) {
                    shown_safely(k)?;
                    shown_safely(v)?;
                }
            }
            let _ = provision::facts::parse_pending(&config);
            for (k, v) in provision::facts::parse_pct_config(&config) {
                shown_safely(&k)?;
                shown_safely(&v)?;
            }
            let _ = parse_property_string(&config, "name");
            let listed = provision::facts::parse_pveam_list(&index);
            let offered = provision::facts::parse_pveam_available(&index);
            prop_assert!(listed.len() + offered.len() <= 2 * index.lines().count());
            for t in listed.iter().chain(&offered) {
                shown_safely(t)?;
            }
            let _ = plan::newest_match("ubuntu-24.04", offered.iter().map(String::as_str));
            let _ = provision::facts::parse_pvesm_status(&storage);
            let _ = provision::facts::parse_node_storage(&storage);
            let _ = provision::facts::local_node_name(&storage);
            Ok(())
        },
    );
}

/// What the in-container facts script could print when the container is hostile.
fn inside_facts_text() -> impl Strategy<Value = String> {
    let b64 = proptest::collection::vec(any::<u8>(), 0..64)
        .prop_map(|b| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b));
    let daemon_json = prop_oneof![
        proptest::sample::select(vec![
            "{\"storage-driver\": \"overlay2\"}",
            "{\"storage-driver\": \"\u{1b}]0;x\u{7}\"}",
            "{\"features\": true}",
            "[]",
            "{\"a\": 1, \"a\": 2}",
            "{\"storage-driver\": 5}",
        ])
        .prop_map(|s| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)),
        b64,
        node_text(),
    ];
    let key = proptest::sample::select(vec![
        "os_id",
        "os_version",
        "docker_installed",
        "docker_active",
        "docker_driver",
        "docker_objects",
        "docker_stored",
        "daemon_json_stat",
        "fuse_overlayfs_sha256",
        "fuse_overlayfs_link",
        "busybox",
        "libfuse3",
        "addr",
        "file",
        "state_password",
        "state_commands",
        "state_",
        "junk",
    ]);
    (
        proptest::collection::vec((key, node_text()), 0..12),
        daemon_json,
        any::<bool>(),
    )
        .prop_map(|(lines, dj, with_dj)| {
            let mut s = String::from("os_id=ubuntu\ndocker_installed=1\ndocker_active=1\n");
            for (k, v) in lines {
                s.push_str(&format!("{k}={v}\n"));
            }
            if with_dj {
                s.push_str(&format!("daemon_json_b64={dj}\n"));
            }
            s
        })
}

#[test]
fn hostile_container_facts_go_through_the_planner_without_a_panic() {
    let prof = profile::load("docker", &Layer::default()).expect("the docker profile");
    let files: plan::ProfileFiles = Vec::new();
    let sources = plan::SourceFacts::default();
    fuzz(
        "inside_facts",
        300,
        (inside_facts_text(), any::<bool>(), any::<bool>()),
        |(text, force, allow)| {
            let f = match provision::facts::parse_inside_facts(&text) {
                Ok(f) => f,
                Err(e) => return shown_safely(&format!("{e:#}")),
            };
            if let Some(o) = f.daemon_json_owner {
                prop_assert!(o.mode <= 0o7777);
            }
            let opts = provision::request::Options {
                force,
                allow_storage_switch: allow,
                ..Default::default()
            };
            for driver in [
                profile::Driver::FuseOverlayfs,
                profile::Driver::Overlay2,
                profile::Driver::Vfs,
            ] {
                let res = plan::plan_inside(&plan::InsideInput {
                    profile: &prof,
                    driver: Some(driver),
                    facts: &f,
                    sources: &sources,
                    files: &files,
                    password: None,
                    opts: &opts,
                });
                match res {
                    Ok(p) => {
                        for n in &p.notes {
                            shown_safely(n)?;
                        }
                        for st in &p.steps {
                            if let plan::Step::WriteDaemonJson { content, .. } = st {
                                // A file that is not UTF-8 is never merged (lossily) unless
                                // forced; the merged file stays bounded by its input.
                                prop_assert!(
                                    force || !f.daemon_json_not_utf8,
                                    "a non-UTF-8 daemon.json was merged without --force"
                                );
                                prop_assert!(content.len() <= 4 * text.len() + 256);
                            }
                        }
                    }
                    Err(e) => {
                        let m = format!("{e:#}");
                        prop_assert!(!m.chars().any(is_unsafe_char), "raw in {m:?}");
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn special_files_as_profiles_and_lab_files_are_refused_not_a_panic() {
    // A directory, an empty file, /dev/null, /dev/zero, /dev/urandom, a FIFO (nobody writes to
    // it: opening it for reading would block), a link to /dev/zero, a dangling symlink and a
    // symlink loop: each is an input error naming the file, at once, with no unbounded read.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("adir.toml")).unwrap();
    std::fs::write(d.join("empty.toml"), "").unwrap();
    std::os::unix::fs::symlink(d.join("nowhere.toml"), d.join("dangling.toml")).unwrap();
    std::os::unix::fs::symlink(d.join("loop.toml"), d.join("loop.toml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.toml")).unwrap();
    let fifo = d.join("fifo.toml");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut paths: Vec<String> = [
        "adir.toml",
        "empty.toml",
        "dangling.toml",
        "loop.toml",
        "zero.toml",
        "fifo.toml",
    ]
    .iter()
    .map(|n| d.join(n).display().to_string())
    .collect();
    paths.extend(["/dev/null", "/dev/zero", "/dev/urandom"].map(String::from));
    for p in &paths {
        let e = profile::load(p, &Layer::default()).expect_err(p);
        errors_are_clean(&e).unwrap_or_else(|m| panic!("{p}: {m}"));
        let e = labfile::load(std::path::Path::new(p), &Layer::default()).expect_err(p);
        errors_are_clean(&e).unwrap_or_else(|m| panic!("{p}: {m}"));
    }
}
