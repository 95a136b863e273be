//! TOML profiles: serde types, lookup, layering (`extends`), validation, resolution.
//!
//! A profile is read as a [`Layer`] (every field optional, unknown keys refused). Layers stack:
//! `extends` names the layer below; later layers win field by field; command-line overrides are
//! the last layer. Every value is checked in the layer that wrote it, so an error names that
//! file, line, column and field, even when a later layer would override it. The result is a
//! [`Profile`] with every field concrete. Nothing here runs a command or touches a host.

use crate::error::{InputError, InputErrors, line_col};
use crate::validate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Profiles built into the binary: (name, TOML text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("docker", include_str!("../profiles/docker.toml")),
    ("docker-auto", include_str!("../profiles/docker-auto.toml")),
];

/// Largest profile or lab file read (a profile is a small text file).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The tag that marks containers made by this tool.
pub const TOOL_TAG: &str = "provision";

/// How the root password is supplied: never on a command line.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PasswordSource {
    /// Name of an environment variable holding it.
    Env(String),
    /// Path of a file (on the machine running provision) holding it.
    File(String),
    /// Ask on the terminal.
    Prompt(bool),
}

/// `[rootfs]`.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RootfsLayer {
    /// Storage ID for the root disk (must allow container directories: `rootdir`).
    pub storage: Option<String>,
    /// Size in GiB (fractions allowed).
    pub size: Option<f64>,
}

/// `[network]`: the container's eth0.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkLayer {
    /// Bridge on the node, e.g. vmbr0.
    pub bridge: Option<String>,
    /// `dhcp`, `manual` or an IPv4/CIDR address.
    pub ip: Option<String>,
    /// IPv4 gateway (static addressing).
    pub gateway: Option<String>,
    /// `auto`, `dhcp`, `manual` or an IPv6/CIDR address.
    pub ip6: Option<String>,
    /// IPv6 gateway.
    pub gateway6: Option<String>,
    /// VLAN tag (1-4094).
    pub vlan: Option<i64>,
    /// PVE firewall on this interface.
    pub firewall: Option<bool>,
    /// MTU (64-65535).
    pub mtu: Option<i64>,
    /// Fixed MAC address.
    pub hwaddr: Option<String>,
}

/// `[features]`: LXC features.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeaturesLayer {
    /// Nested containers (Docker needs it).
    pub nesting: Option<bool>,
    /// keyctl() syscall (Docker/runc in unprivileged containers).
    pub keyctl: Option<bool>,
    /// /dev/fuse and fuse mounts (fuse-overlayfs).
    pub fuse: Option<bool>,
    /// mknod of safe device nodes (experimental, kernel >= 5.3).
    pub mknod: Option<bool>,
}

/// Where the fuse-overlayfs binary comes from.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FuseOverlayfsLayer {
    /// `node` (a file on the PVE node), `url` (downloaded on the node, SHA-256 required) or
    /// `package` (the container's distribution package).
    pub source: Option<String>,
    /// With `node`: the file's path on the node.
    pub path: Option<String>,
    /// With `url`: where to download it.
    pub url: Option<String>,
    /// Expected SHA-256 of the binary (required with `url`, optional with `node`).
    pub sha256: Option<String>,
}

/// `[docker]`.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerLayer {
    /// `distro` (distribution packages), `docker-ce` (Docker's repository), `present` (already
    /// installed: only configure), or `none` (no Docker).
    pub install: Option<String>,
    /// `fuse-overlayfs`, `overlay2`, `vfs` or `auto`.
    pub storage_driver: Option<String>,
    /// fuse-overlayfs binary source.
    pub fuse_overlayfs: Option<FuseOverlayfsLayer>,
    /// Image to pull and run for verification; empty: build a tiny local image (no registry).
    pub verify_image: Option<String>,
    /// With install = "docker-ce": the URL of Docker's apt repository for this distribution
    /// (the directory that holds `gpg` and `dists/`).
    pub repository: Option<String>,
}

/// `[access]`: how the inside of the container is reached.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessLayer {
    /// `pct` (pct exec/push on the node, the default) or `ssh` (straight into the container
    /// with the keys installed at create time).
    pub method: Option<String>,
    /// With `ssh`: the container's address; default the static `network.ip`, else the address
    /// the node reports for eth0 once the container is up.
    pub address: Option<String>,
    /// With `ssh`: the port (default 22).
    pub port: Option<i64>,
    /// With `ssh`: private key file (default: ssh-agent, --identity, ~/.ssh/id_*).
    pub identity: Option<String>,
}

/// One file to write into the container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute destination inside the container.
    pub dest: String,
    /// Inline content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A file on the machine running provision, to copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Octal permission bits as a string, e.g. "0644".
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".to_string()
}

/// One profile file as written: every field optional.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The profile this one builds on.
    pub extends: Option<String>,
    /// What the profile is for (shown by `provision profiles`).
    pub description: Option<String>,
    /// Hostname (the command line's NAME wins).
    pub hostname: Option<String>,
    /// Fixed VMID.
    pub vmid: Option<i64>,
    /// Template: a short form like `ubuntu-24.04` or a volume id `local:vztmpl/...`.
    pub template: Option<String>,
    /// Storage holding templates (vztmpl content).
    pub template_storage: Option<String>,
    /// Unprivileged container (default true).
    pub unprivileged: Option<bool>,
    /// CPU cores.
    pub cores: Option<i64>,
    /// Memory in MiB (at least 16).
    pub memory: Option<i64>,
    /// Swap in MiB.
    pub swap: Option<i64>,
    /// Start at node boot.
    pub onboot: Option<bool>,
    /// PVE tags (the tool adds its own).
    pub tags: Option<Vec<String>>,
    /// `host` or a zoneinfo name.
    pub timezone: Option<String>,
    /// DNS servers.
    pub nameserver: Option<Vec<String>>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// Public keys installed for root.
    pub ssh_public_keys: Option<Vec<String>>,
    /// Root password source (never on a command line).
    pub root_password: Option<PasswordSource>,
    /// Root disk.
    pub rootfs: Option<RootfsLayer>,
    /// eth0.
    pub network: Option<NetworkLayer>,
    /// LXC features.
    pub features: Option<FeaturesLayer>,
    /// Docker inside.
    pub docker: Option<DockerLayer>,
    /// How provision reaches the inside of the container.
    pub access: Option<AccessLayer>,
    /// Files to write inside.
    pub files: Option<Vec<FileSpec>>,
    /// Commands (argv arrays) to run inside after creation.
    pub commands: Option<Vec<Vec<String>>>,
}

macro_rules! overlay {
    ($base:expr, $top:expr; $($f:ident),* $(,)?) => {
        { $( if $top.$f.is_some() { $base.$f = $top.$f.clone(); } )* }
    };
}

fn overlay_sub<T: Clone + Default>(
    base: &mut Option<T>,
    top: &Option<T>,
    f: impl FnOnce(&mut T, &T),
) {
    if let Some(t) = top {
        let b = base.get_or_insert_with(T::default);
        f(b, t);
    }
}

impl Layer {
    /// Lays `top` over `self`: every field `top` sets wins.
    pub fn overlay(&mut self, top: &Layer) {
        overlay!(self, top; extends, description, hostname, vmid, template, template_storage,
            unprivileged, cores, memory, swap, onboot, tags, timezone, nameserver, searchdomain,
            ssh_public_keys, root_password, files, commands);
        overlay_sub(
            &mut self.rootfs,
            &top.rootfs,
            |b, t| overlay!(b, t; storage, size),
        );
        overlay_sub(
            &mut self.network,
            &top.network,
            |b, t| overlay!(b, t; bridge, ip, gateway, ip6, gateway6, vlan, firewall, mtu, hwaddr),
        );
        overlay_sub(
            &mut self.features,
            &top.features,
            |b, t| overlay!(b, t; nesting, keyctl, fuse, mknod),
        );
        overlay_sub(
            &mut self.access,
            &top.access,
            |b, t| overlay!(b, t; method, address, port, identity),
        );
        overlay_sub(&mut self.docker, &top.docker, |b, t| {
            overlay!(b, t; install, storage_driver, verify_image, repository);
            overlay_sub(
                &mut b.fuse_overlayfs,
                &t.fuse_overlayfs,
                |b, t| overlay!(b, t; source, path, url, sha256),
            );
        });
    }
}

/// Where each field of a layer stands in its file: dotted path -> (line, col).
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// File name shown in errors.
    pub file: String,
    entries: Vec<(String, Range<usize>, (usize, usize))>,
}

impl Index {
    /// Indexes every key of a TOML text (best effort; a text that does not parse has none).
    pub fn build(file: &str, text: &str) -> Index {
        let mut idx = Index {
            file: file.to_string(),
            entries: Vec::new(),
        };
        if let Ok(doc) = toml::de::DeTable::parse(text) {
            walk_table(doc.get_ref(), "", text, &mut idx.entries);
        }
        idx
    }

    /// An index for the command line: no positions.
    pub fn command_line() -> Index {
        Index {
            file: "command line".to_string(),
            entries: Vec::new(),
        }
    }

    /// An error at `field` (line/col found when indexed).
    pub fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        let (line, col) = self
            .entries
            .iter()
            .find(|(p, _, _)| p == field)
            .map_or((0, 0), |(_, _, lc)| *lc);
        InputError {
            file: self.file.clone(),
            line,
            col,
            field: if self.file == "command line" {
                cli_option(field)
            } else {
                field.to_string()
            },
            message: message.into(),
        }
    }

    /// The innermost field whose text contains `offset`.
    pub fn field_at(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, r, _)| r.start <= offset && offset < r.end.max(r.start + 1))
            .min_by_key(|(_, r, _)| r.end - r.start)
            .map(|(p, _, _)| p.as_str())
    }
}

/// The command-line option that sets a profile field (see `commands::overrides_layer`).
fn cli_option(field: &str) -> String {
    match field {
        "rootfs.storage" => "--storage".into(),
        "rootfs.size" => "--disk".into(),
        "network.bridge" => "--bridge".into(),
        "network.ip" => "--ip".into(),
        "network.gateway" => "--gateway".into(),
        "network.vlan" => "--vlan".into(),
        "docker.storage_driver" => "--storage-driver".into(),
        "docker.fuse_overlayfs" => "--storage-driver".into(),
        _ => format!("--{}", field.replace(['.', '_'], "-")),
    }
}

fn walk_table(
    t: &toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    out: &mut Vec<(String, Range<usize>, (usize, usize))>,
) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        let ks = k.span();
        let vs = v.span();
        let range = ks.start.min(vs.start)..ks.end.max(vs.end);
        out.push((path.clone(), range, line_col(text, ks.start)));
        walk_value(v.get_ref(), &path, text, out);
    }
}

fn walk_value(
    v: &toml::de::DeValue<'_>,
    path: &str,
    text: &str,
    out: &mut Vec<(String, Range<usize>, (usize, usize))>,
) {
    if let Some(t) = v.as_table() {
        walk_table(t, path, text, out);
    } else if let Some(a) = v.as_array() {
        for (i, item) in a.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let s = item.span();
            out.push((p.clone(), s.clone(), line_col(text, s.start)));
            walk_value(item.get_ref(), &p, text, out);
        }
    }
}

/// Reads a file as UTF-8 TOML text with clear errors for what a profile cannot be.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::whole(&shown, "", format!("cannot read the file: {e}")))?;
    text_from_bytes(&shown, bytes)
}

/// Checks size and encoding of a file's bytes.
pub fn text_from_bytes(file: &str, bytes: Vec<u8>) -> Result<String, InputError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(InputError::whole(
            file,
            "",
            format!(
                "the file is {} bytes; profiles and lab files are small text files (at most {} bytes)",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..good]).into_owned();
        let (line, col) = line_col(&text, good);
        InputError {
            file: file.to_string(),
            line,
            col,
            field: String::new(),
            message: "the file is not valid UTF-8 text".to_string(),
        }
    })
}

/// Parses TOML text into `T`, turning parse and type errors into located input errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    idx: &Index,
) -> Result<T, InputError> {
    if text.contains('\0') {
        let (line, col) = line_col(text, text.find('\0').unwrap_or(0));
        return Err(InputError {
            file: file.into(),
            line,
            col,
            field: String::new(),
            message: "the file contains a NUL byte; it is not a text file".into(),
        });
    }
    toml::from_str::<T>(text).map_err(|e| {
        let start = e.span().map_or(0, |s| s.start);
        let (line, col) = line_col(text, start);
        let field = idx.field_at(start).unwrap_or("").to_string();
        let message = toml_message(&field, &e);
        InputError {
            file: file.into(),
            line,
            col,
            field,
            message,
        }
    })
}

/// The message of a TOML parse or type error at `field`, on one line. serde's messages quote
/// the value (`unknown variant `hunter2``): for `root_password` (a password written into the
/// file by mistake) a fixed message is given instead, so that it never reaches a terminal or a
/// CI log. Lab-file parsing should use it too.
pub fn toml_message(field: &str, e: &toml::de::Error) -> String {
    if field.split('.').any(|part| part == "root_password") {
        "root_password is { env = \"VAR\" }, { file = \"/path\" } or { prompt = true }; a password is never written into a profile".to_string()
    } else {
        e.message().trim().replace('\n', " ")
    }
}

/// A layer read from somewhere, with its index.
#[derive(Clone, Debug)]
pub struct LoadedLayer {
    /// Profile name or file path.
    pub name: String,
    /// Where it was found (`embedded`, or a path).
    pub origin: String,
    /// The parsed layer.
    pub layer: Layer,
    /// Positions of its fields.
    pub index: Index,
    /// Directory of the file (for relative `extends` and `files.source`).
    pub dir: Option<PathBuf>,
}

/// Parses and checks one layer's text.
pub fn parse_layer(file: &str, text: &str) -> Result<(Layer, Index), InputErrors> {
    let idx = Index::build(file, text);
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(InputErrors(vec![InputError::whole(
            file,
            "",
            "the file is empty; a profile sets at least `extends` or `template`",
        )]));
    }
    let layer: Layer = parse_toml(file, text, &idx).map_err(|e| InputErrors(vec![e]))?;
    let errors = check_layer(&layer, &idx);
    if errors.is_empty() {
        Ok((layer, idx))
    } else {
        Err(InputErrors(errors))
    }
}

/// Directories searched for NAME.toml, in order, before the embedded profiles.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("profiles")];
    match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => dirs.push(PathBuf::from(x).join("provision/profiles")),
        None => {
            if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                dirs.push(PathBuf::from(h).join(".config/provision/profiles"));
            }
        }
    }
    dirs.push(PathBuf::from("/etc/provision/profiles"));
    dirs
}

/// True when `name` is a path rather than a profile name.
fn is_path(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}

/// Finds a profile by name or path and parses it (one layer, not its `extends`).
pub fn load_one(
    name: &str,
    relative_to: Option<&Path>,
    field_err: &dyn Fn(String) -> InputError,
) -> Result<LoadedLayer, InputErrors> {
    let from_file = |path: PathBuf| -> Result<LoadedLayer, InputErrors> {
        let shown = path.display().to_string();
        let text = read_text(&path).map_err(|e| InputErrors(vec![e]))?;
        let (layer, index) = parse_layer(&shown, &text)?;
        Ok(LoadedLayer {
            name: name.to_string(),
            origin: shown,
            layer,
            index,
            dir: path.parent().map(Path::to_path_buf),
        })
    };
    if is_path(name) {
        let p = Path::new(name);
        let p = match relative_to {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        };
        if !p.exists() {
            return Err(InputErrors(vec![field_err(format!(
                "profile file {} does not exist",
                p.display()
            ))]));
        }
        return from_file(p);
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        || name.is_empty()
    {
        return Err(InputErrors(vec![field_err(format!(
            "{name:?} is not a profile name (letters, digits, `-`, `_`, `.`) nor a path to a .toml file"
        ))]));
    }
    for dir in search_dirs() {
        let p = dir.join(format!("{name}.toml"));
        if p.is_file() {
            return from_file(p);
        }
    }
    if let Some((_, text)) = EMBEDDED.iter().find(|(n, _)| *n == name) {
        let shown = format!("<embedded>/{name}.toml");
        let (layer, index) = parse_layer(&shown, text)?;
        return Ok(LoadedLayer {
            name: name.to_string(),
            origin: "embedded".to_string(),
            layer,
            index,
            dir: None,
        });
    }
    let known: Vec<String> = list_profiles().into_iter().map(|p| p.name).collect();
    Err(InputErrors(vec![field_err(format!(
        "no profile named {name:?}; known profiles: {}",
        known.join(", ")
    ))]))
}

/// Loads `name` and everything it extends, bottom layer first. Refuses cycles.
pub fn load_chain(name: &str) -> Result<Vec<LoadedLayer>, InputErrors> {
    let mut chain: Vec<LoadedLayer> = Vec::new();
    let top = load_one(name, None, &|m| {
        InputError::whole("command line", "--profile", m)
    })?;
    chain.push(top);
    loop {
        let cur = chain.last().expect("non-empty");
        let Some(parent) = cur.layer.extends.clone() else {
            break;
        };
        let idx = cur.index.clone();
        let dir = cur.dir.clone();
        let next = load_one(&parent, dir.as_deref(), &|m| idx.error("extends", m))?;
        let canonical = |l: &LoadedLayer| {
            (l.origin != "embedded")
                .then(|| std::fs::canonicalize(&l.origin).ok())
                .flatten()
        };
        let next_canonical = canonical(&next);
        // The same file (however its path is spelled), or the same embedded profile.
        let same = |l: &LoadedLayer| {
            (l.origin == next.origin && (l.origin != "embedded" || l.name == next.name))
                || (next_canonical.is_some() && canonical(l) == next_canonical)
        };
        if chain.iter().any(same) {
            let names: Vec<&str> = chain.iter().map(|l| l.name.as_str()).collect();
            return Err(InputErrors(vec![idx.error(
                "extends",
                format!(
                    "`extends` makes a cycle: {} -> {}",
                    names.join(" -> "),
                    next.name
                ),
            )]));
        }
        if chain.len() > 16 {
            return Err(InputErrors(vec![
                idx.error("extends", "more than 16 levels of `extends`"),
            ]));
        }
        chain.push(next);
    }
    chain.reverse();
    Ok(chain)
}

/// A profile that can be listed.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileEntry {
    /// Name to pass to --profile.
    pub name: String,
    /// Where it comes from.
    pub origin: String,
    /// Its description, if any.
    pub description: String,
}

/// Every profile visible from here: files in the search directories, then embedded ones not
/// shadowed by a file.
pub fn list_profiles() -> Vec<ProfileEntry> {
    let mut out: BTreeMap<String, ProfileEntry> = BTreeMap::new();
    let describe = |text: &str| -> String {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| {
                t.get("description")
                    .and_then(|d| d.as_str())
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    for dir in search_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for p in files {
            if p.extension().is_some_and(|e| e == "toml")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && !out.contains_key(stem)
            {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.insert(
                    stem.to_string(),
                    ProfileEntry {
                        name: stem.to_string(),
                        origin: p.display().to_string(),
                        description: describe(&text),
                    },
                );
            }
        }
    }
    for (name, text) in EMBEDDED {
        out.entry(name.to_string()).or_insert_with(|| ProfileEntry {
            name: name.to_string(),
            origin: "embedded".to_string(),
            description: describe(text),
        });
    }
    out.into_values().collect()
}

fn push_rule(errors: &mut Vec<InputError>, idx: &Index, field: &str, rule: validate::Rule) {
    if let Err(m) = rule {
        errors.push(idx.error(field, m));
    }
}

fn range(v: i64, lo: i64, hi: i64, what: &str) -> validate::Rule {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{v} is out of range: {what} must be {lo} to {hi}"))
    }
}

/// Checks every value a layer sets. Returns all problems found.
pub fn check_layer(l: &Layer, idx: &Index) -> Vec<InputError> {
    let mut e = Vec::new();
    let er = &mut e;
    if let Some(h) = &l.hostname {
        push_rule(er, idx, "hostname", validate::hostname(h));
    }
    if let Some(v) = l.vmid {
        push_rule(er, idx, "vmid", validate::vmid(v));
    }
    if let Some(t) = &l.template {
        push_rule(er, idx, "template", check_template(t));
    }
    if let Some(s) = &l.template_storage {
        push_rule(er, idx, "template_storage", validate::storage_id(s));
    }
    if let Some(v) = l.cores {
        push_rule(er, idx, "cores", range(v, 1, 8192, "cores"));
    }
    if let Some(v) = l.memory {
        push_rule(
            er,
            idx,
            "memory",
            range(v, 16, 16 * 1024 * 1024, "memory (MiB)"),
        );
    }
    if let Some(v) = l.swap {
        push_rule(er, idx, "swap", range(v, 0, 16 * 1024 * 1024, "swap (MiB)"));
    }
    if let Some(tags) = &l.tags {
        for (i, t) in tags.iter().enumerate() {
            push_rule(er, idx, &format!("tags[{i}]"), validate::tag(t));
        }
    }
    if let Some(tz) = &l.timezone {
        push_rule(er, idx, "timezone", validate::timezone(tz));
    }
    if let Some(ns) = &l.nameserver {
        for (i, n) in ns.iter().enumerate() {
            push_rule(er, idx, &format!("nameserver[{i}]"), validate::ip_any(n));
        }
    }
    if let Some(sd) = &l.searchdomain {
        push_rule(er, idx, "searchdomain", validate::search_domains(sd));
    }
    if let Some(keys) = &l.ssh_public_keys {
        for (i, k) in keys.iter().enumerate() {
            push_rule(
                er,
                idx,
                &format!("ssh_public_keys[{i}]"),
                validate::ssh_public_key(k),
            );
        }
    }
    if let Some(p) = &l.root_password {
        let rule = match p {
            PasswordSource::Env(v) => {
                if !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    Ok(())
                } else {
                    Err(format!("{v:?} is not an environment variable name"))
                }
            }
            PasswordSource::File(f) => {
                if f.is_empty() || f.contains('\0') {
                    Err("the password file path is empty".to_string())
                } else {
                    Ok(())
                }
            }
            PasswordSource::Prompt(_) => Ok(()),
        };
        push_rule(er, idx, "root_password", rule);
    }
    if let Some(r) = &l.rootfs {
        if let Some(s) = &r.storage {
            push_rule(er, idx, "rootfs.storage", validate::storage_id(s));
        }
        if let Some(sz) = r.size {
            let rule = if (0.001..=131072.0).contains(&sz) {
                Ok(())
            } else {
                Err(format!(
                    "{sz} is out of range: the root disk size is in GiB, more than 0 and at most 131072"
                ))
            };
            push_rule(er, idx, "rootfs.size", rule);
        }
    }
    if let Some(n) = &l.network {
        if let Some(b) = &n.bridge {
            push_rule(er, idx, "network.bridge", validate::bridge(b));
        }
        if let Some(ip) = &n.ip {
            push_rule(er, idx, "network.ip", validate::ip_config(ip));
        }
        if let Some(g) = &n.gateway {
            push_rule(er, idx, "network.gateway", validate::ipv4(g));
        }
        if let Some(ip) = &n.ip6 {
            push_rule(er, idx, "network.ip6", validate::ip6_config(ip));
        }
        if let Some(g) = &n.gateway6 {
            push_rule(er, idx, "network.gateway6", validate::ipv6(g));
        }
        if let Some(v) = n.vlan {
            push_rule(er, idx, "network.vlan", range(v, 1, 4094, "a VLAN tag"));
        }
        if let Some(v) = n.mtu {
            push_rule(er, idx, "network.mtu", range(v, 64, 65535, "the MTU"));
        }
        if let Some(m) = &n.hwaddr {
            push_rule(er, idx, "network.hwaddr", validate::mac(m));
        }
    }
    if let Some(a) = &l.access {
        if let Some(m) = &a.method {
            push_rule(er, idx, "access.method", one_of(m, &["pct", "ssh"]));
        }
        if let Some(ad) = &a.address {
            push_rule(
                er,
                idx,
                "access.address",
                validate::ip_any(ad).or_else(|_| validate::hostname(ad)),
            );
        }
        if let Some(p) = a.port {
            push_rule(er, idx, "access.port", range(p, 1, 65535, "a port"));
        }
        if let Some(f) = &a.identity {
            push_rule(er, idx, "access.identity", validate::plain_text(f));
        }
    }
    if let Some(d) = &l.docker {
        if let Some(i) = &d.install {
            push_rule(
                er,
                idx,
                "docker.install",
                one_of(i, &["distro", "docker-ce", "present", "none"]),
            );
        }
        if let Some(s) = &d.storage_driver {
            push_rule(
                er,
                idx,
                "docker.storage_driver",
                one_of(s, &["fuse-overlayfs", "overlay2", "vfs", "auto"]),
            );
        }
        if let Some(u) = &d.repository {
            push_rule(er, idx, "docker.repository", check_url(u));
        }
        if let Some(img) = &d.verify_image {
            let rule = if img.is_empty()
                || (img.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && img
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-_./:@".contains(&c)))
            {
                Ok(())
            } else {
                Err(format!(
                    "{img:?} is not an image reference like busybox:1.36"
                ))
            };
            push_rule(er, idx, "docker.verify_image", rule);
        }
        if let Some(f) = &d.fuse_overlayfs {
            if let Some(s) = &f.source {
                push_rule(
                    er,
                    idx,
                    "docker.fuse_overlayfs.source",
                    one_of(s, &["node", "url", "package"]),
                );
            }
            if let Some(p) = &f.path {
                push_rule(
                    er,
                    idx,
                    "docker.fuse_overlayfs.path",
                    validate::container_path(p).map_err(|m| {
                        m.replace("names a directory", "names a directory on the node")
                    }),
                );
            }
            if let Some(u) = &f.url {
                push_rule(er, idx, "docker.fuse_overlayfs.url", check_url(u));
            }
            if let Some(s) = &f.sha256 {
                push_rule(
                    er,
                    idx,
                    "docker.fuse_overlayfs.sha256",
                    validate::sha256_hex(s),
                );
            }
        }
    }
    if let Some(files) = &l.files {
        let mut seen = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            let p = format!("files[{i}]");
            push_rule(
                er,
                idx,
                &format!("{p}.dest"),
                validate::container_path(&f.dest),
            );
            if let Some(why) = managed_path(&f.dest) {
                er.push(idx.error(&format!("{p}.dest"), why));
            }
            if let Some(prev) = seen.insert(f.dest.clone(), i) {
                er.push(idx.error(
                    &format!("{p}.dest"),
                    format!("{:?} is also the destination of files[{prev}]", f.dest),
                ));
            }
            let rule = match (&f.content, &f.source) {
                (Some(_), None) | (None, Some(_)) => Ok(()),
                _ => Err("give exactly one of `content` and `source`".to_string()),
            };
            push_rule(er, idx, &p, rule);
            if let Some(s) = &f.source {
                push_rule(er, idx, &format!("{p}.source"), validate::plain_text(s));
            }
            push_rule(
                er,
                idx,
                &format!("{p}.mode"),
                parse_mode(&f.mode).map(|_| ()),
            );
        }
    }
    if let Some(cmds) = &l.commands {
        for (i, c) in cmds.iter().enumerate() {
            let p = format!("commands[{i}]");
            if c.is_empty() || c[0].is_empty() {
                er.push(idx.error(&p, "a command is a non-empty argv array, e.g. [\"systemctl\", \"enable\", \"--now\", \"foo\"]"));
            }
            for (j, a) in c.iter().enumerate() {
                if a.contains('\0') {
                    er.push(idx.error(&format!("{p}[{j}]"), "contains a NUL byte"));
                }
            }
        }
    }
    if let Some(d) = &l.description {
        let max = 8192 - DESCRIPTION_SUFFIX.len();
        let rule = validate::description(d).and_then(|()| {
            if d.len() > max {
                Err(format!(
                    "the description is {} bytes; PVE keeps at most 8192 and provision adds {DESCRIPTION_SUFFIX:?}, so at most {max}",
                    d.len()
                ))
            } else {
                Ok(())
            }
        });
        push_rule(er, idx, "description", rule);
    }
    e
}

/// The text provision appends to a container's description.
pub const DESCRIPTION_SUFFIX: &str = " (managed by provision)";

/// Why a `files.dest` may not be written by a profile: provision manages that path itself, and a
/// profile file there would be overwritten by it (and overwrite it) on every run.
fn managed_path(dest: &str) -> Option<String> {
    if dest.ends_with(".provision-new") || dest.ends_with(".provision-backup") {
        return Some(format!(
            "{dest:?} ends like the temporary and backup files provision writes"
        ));
    }
    let managed = [
        ("/etc/docker/daemon.json", "set by the docker section"),
        (
            "/usr/local/bin/fuse-overlayfs",
            "set by docker.fuse_overlayfs",
        ),
        (
            "/var/lib/provision/state",
            "provision's record of what it did",
        ),
    ];
    managed.iter().find(|(p, _)| *p == dest).map(|(p, what)| {
        format!(
            "{p} is managed by provision ({what}); a file there would be rewritten on every run"
        )
    })
}

fn check_url(u: &str) -> validate::Rule {
    // RFC 3986 characters (anything else must be percent-encoded), minus the few that a shell
    // acts on even inside double quotes or that end a word.
    let url_char = |c: u8| c.is_ascii_alphanumeric() || b"-._~:/?#[]@!&()*+,=%".contains(&c);
    if (u.starts_with("https://") || u.starts_with("http://")) && u.bytes().all(url_char) {
        Ok(())
    } else {
        Err(format!("{u:?} is not an http(s) URL"))
    }
}

fn one_of(v: &str, allowed: &[&str]) -> validate::Rule {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(format!("{v:?} is not one of: {}", allowed.join(", ")))
    }
}

/// Parses an octal mode string like "0755".
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!("{s:?} is not an octal file mode like \"0644\"")),
    }
}

/// A template is a short form (`ubuntu-24.04`, `debian-12`) or a volume id
/// (`STORAGE:vztmpl/NAME.tar.zst`).
pub fn check_template(t: &str) -> validate::Rule {
    if let Some((storage, rest)) = t.split_once(':') {
        validate::storage_id(storage)?;
        let name = rest.strip_prefix("vztmpl/").ok_or_else(|| {
            format!("{t:?}: a template volume id looks like local:vztmpl/NAME.tar.zst")
        })?;
        if name.is_empty()
            || name.contains('/')
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c))
        {
            return Err(format!(
                "{t:?}: the template file name has characters PVE does not use"
            ));
        }
        return Ok(());
    }
    let ok = !t.is_empty()
        && t.as_bytes()[0].is_ascii_lowercase()
        && t.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is neither a template short form like ubuntu-24.04 nor a volume id like local:vztmpl/NAME.tar.zst"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The resolved profile.

/// Where the fuse-overlayfs binary comes from.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum FuseSource {
    /// A file on the PVE node.
    Node {
        /// Its path on the node.
        path: String,
        /// Expected SHA-256, if pinned.
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Downloaded on the node, verified against the SHA-256.
    Url {
        /// Where from.
        url: String,
        /// Required checksum.
        sha256: String,
    },
    /// The container's `fuse-overlayfs` package.
    Package,
}

/// Docker storage driver.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// fuse-overlayfs (ZFS < 2.2 rootfs).
    FuseOverlayfs,
    /// Docker's native overlay2.
    Overlay2,
    /// vfs (copies every layer).
    Vfs,
    /// Decide from the node's facts.
    Auto,
}

impl Driver {
    /// The name Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::FuseOverlayfs => "fuse-overlayfs",
            Driver::Overlay2 => "overlay2",
            Driver::Vfs => "vfs",
            Driver::Auto => "auto",
        }
    }
    fn parse(s: &str) -> Driver {
        match s {
            "fuse-overlayfs" => Driver::FuseOverlayfs,
            "overlay2" => Driver::Overlay2,
            "vfs" => Driver::Vfs,
            _ => Driver::Auto,
        }
    }
}

/// Access, resolved.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Access {
    /// pct | ssh.
    pub method: String,
    /// Address (ssh), when fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port (ssh).
    pub port: u16,
    /// Key file (ssh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// Docker section, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Docker {
    /// distro | docker-ce | present | none.
    pub install: String,
    /// Storage driver to configure.
    pub storage_driver: Driver,
    /// Where fuse-overlayfs comes from (used when the driver is fuse-overlayfs).
    pub fuse_overlayfs: FuseSource,
    /// Image for verification; empty = local probe image.
    pub verify_image: String,
    /// Docker's apt repository URL (install = docker-ce).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
}

/// Network, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Network {
    /// Bridge.
    pub bridge: String,
    /// dhcp | manual | IPv4/CIDR.
    pub ip: String,
    /// IPv4 gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// IPv6 config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// IPv6 gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// VLAN tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// PVE firewall.
    pub firewall: bool,
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<String>,
}

/// Features, resolved.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Features {
    /// nesting=1
    pub nesting: bool,
    /// keyctl=1
    pub keyctl: bool,
    /// fuse=1
    pub fuse: bool,
    /// mknod=1
    pub mknod: bool,
}

/// Root disk, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Rootfs {
    /// Storage ID.
    pub storage: String,
    /// GiB.
    pub size: f64,
}

/// A profile with every field concrete.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Profile {
    /// The name it was asked by.
    #[serde(skip)]
    pub name: String,
    /// Description.
    pub description: String,
    /// Hostname, when the profile fixes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// VMID, when fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Template short form or volume id.
    pub template: String,
    /// Template storage.
    pub template_storage: String,
    /// Unprivileged.
    pub unprivileged: bool,
    /// Cores.
    pub cores: u32,
    /// MiB.
    pub memory: u32,
    /// MiB.
    pub swap: u32,
    /// Start at boot.
    pub onboot: bool,
    /// Tags (without the tool's own).
    pub tags: Vec<String>,
    /// Timezone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// DNS servers.
    pub nameserver: Vec<String>,
    /// Search domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searchdomain: Option<String>,
    /// SSH keys for root.
    pub ssh_public_keys: Vec<String>,
    /// Root password source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<PasswordSource>,
    /// Root disk.
    pub rootfs: Rootfs,
    /// eth0.
    pub network: Network,
    /// Features.
    pub features: Features,
    /// Docker.
    pub docker: Docker,
    /// How the inside is reached.
    pub access: Access,
    /// Files to write.
    pub files: Vec<FileSpec>,
    /// Commands to run.
    pub commands: Vec<Vec<String>>,
    /// Warnings found while resolving (shown in the plan).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Directory of the profile file that set `files` (for relative `files.source`).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// Merges layers (bottom first) and resolves defaults; checks rules across fields.
pub fn resolve(
    name: &str,
    layers: &[(Layer, Index)],
    base_dir: Option<PathBuf>,
) -> Result<Profile, InputErrors> {
    let mut m = Layer::default();
    for (l, _) in layers {
        m.overlay(l);
    }
    // Which layer set a field last: for errors on rules that span fields.
    let who = |get: &dyn Fn(&Layer) -> bool| -> &Index {
        layers
            .iter()
            .rev()
            .find(|(l, _)| get(l))
            .map_or(&layers[layers.len() - 1].1, |(_, i)| i)
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let rootfs = m.rootfs.clone().unwrap_or_default();
    let net = m.network.clone().unwrap_or_default();
    let feat = m.features.clone().unwrap_or_default();
    let dock = m.docker.clone().unwrap_or_default();
    let fo = dock.fuse_overlayfs.clone().unwrap_or_default();
    let install = dock.install.clone().unwrap_or_else(|| "none".into());
    let driver = Driver::parse(dock.storage_driver.as_deref().unwrap_or("auto"));
    let unprivileged = m.unprivileged.unwrap_or(true);
    let mut features = Features {
        nesting: feat.nesting.unwrap_or(false),
        keyctl: feat.keyctl.unwrap_or(false),
        fuse: feat.fuse.unwrap_or(false),
        mknod: feat.mknod.unwrap_or(false),
    };
    let fuse_source = match fo.source.as_deref().unwrap_or("node") {
        "package" => FuseSource::Package,
        "url" => match (&fo.url, &fo.sha256) {
            (Some(u), Some(s)) => FuseSource::Url {
                url: u.clone(),
                sha256: s.to_lowercase(),
            },
            _ => {
                let i = who(&|l| {
                    l.docker
                        .as_ref()
                        .and_then(|d| d.fuse_overlayfs.as_ref())
                        .is_some_and(|f| f.source.is_some())
                });
                errors.push(i.error("docker.fuse_overlayfs", "source = \"url\" needs both `url` and `sha256` (a download is never trusted without its checksum)"));
                FuseSource::Package
            }
        },
        _ => FuseSource::Node {
            path: fo
                .path
                .clone()
                .unwrap_or_else(|| "/usr/local/bin/fuse-overlayfs".into()),
            sha256: fo.sha256.clone().map(|s| s.to_lowercase()),
        },
    };
    if install != "none" {
        if driver == Driver::FuseOverlayfs || driver == Driver::Auto {
            if feat.fuse == Some(false) && driver == Driver::FuseOverlayfs {
                let i = who(&|l| l.features.as_ref().is_some_and(|f| f.fuse.is_some()));
                errors.push(i.error("features.fuse", "fuse-overlayfs needs the container's fuse feature; remove `fuse = false` or choose storage_driver = \"overlay2\""));
            } else if !features.fuse && driver == Driver::FuseOverlayfs {
                features.fuse = true;
                warnings.push(
                    "features.fuse was not set: enabled it, fuse-overlayfs needs /dev/fuse"
                        .to_string(),
                );
            }
        }
        if !features.nesting {
            warnings.push(
                "Docker in LXC needs features.nesting = true; without it dockerd usually fails"
                    .to_string(),
            );
        }
        if unprivileged && !features.keyctl {
            warnings.push("Docker in an unprivileged container needs features.keyctl = true (runc uses keyctl)".to_string());
        }
    }
    if install == "docker-ce" && dock.repository.is_none() {
        let i = who(&|l| l.docker.as_ref().is_some_and(|d| d.install.is_some()));
        errors.push(i.error("docker.install", "install = \"docker-ce\" needs docker.repository: the URL of Docker's apt repository for the container's distribution"));
    }
    if !unprivileged {
        warnings.push("this is a PRIVILEGED container (unprivileged = false): root inside is root on the node".to_string());
        if features.keyctl {
            // PVE accepts it and leaves a privileged container's seccomp profile as it is
            // (keyctl is allowed there anyway).
            warnings.push("features.keyctl has no effect on a privileged container (PVE accepts it; keyctl() is not filtered there)".to_string());
        }
    }
    if net.gateway.is_some() && matches!(net.ip.as_deref(), None | Some("dhcp") | Some("manual")) {
        let i = who(&|l| l.network.as_ref().is_some_and(|n| n.gateway.is_some()));
        errors.push(i.error(
            "network.gateway",
            "a gateway goes with a static `ip` (address/prefix), not with dhcp or manual",
        ));
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    // PVE stores tags lower-cased.
    let mut tags: Vec<String> = m
        .tags
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    tags.retain(|t| t != TOOL_TAG);
    tags.sort();
    tags.dedup();
    Ok(Profile {
        name: name.to_string(),
        description: m.description.clone().unwrap_or_default(),
        hostname: m.hostname.clone(),
        vmid: m.vmid.map(|v| v as u32),
        template: m
            .template
            .clone()
            .unwrap_or_else(|| crate::plan::UBUNTU_LTS.into()),
        template_storage: m.template_storage.clone().unwrap_or_else(|| "local".into()),
        unprivileged,
        cores: m.cores.unwrap_or(1) as u32,
        memory: m.memory.unwrap_or(512) as u32,
        swap: m.swap.unwrap_or(512) as u32,
        onboot: m.onboot.unwrap_or(false),
        tags,
        timezone: m.timezone.clone(),
        nameserver: m.nameserver.clone().unwrap_or_default(),
        searchdomain: m.searchdomain.clone(),
        ssh_public_keys: m.ssh_public_keys.clone().unwrap_or_default(),
        root_password: m.root_password.clone(),
        rootfs: Rootfs {
            storage: rootfs
                .storage
                .unwrap_or_else(|| crate::rootdisk::AUTO.into()),
            size: rootfs.size.unwrap_or(8.0),
        },
        network: Network {
            bridge: net.bridge.unwrap_or_else(|| "vmbr0".into()),
            ip: net.ip.unwrap_or_else(|| "dhcp".into()),
            gateway: net.gateway,
            ip6: net.ip6,
            gateway6: net.gateway6,
            vlan: net.vlan.map(|v| v as u16),
            firewall: net.firewall.unwrap_or(false),
            mtu: net.mtu.map(|v| v as u16),
            hwaddr: net.hwaddr,
        },
        features,
        access: {
            let a = m.access.clone().unwrap_or_default();
            Access {
                method: a.method.unwrap_or_else(|| "pct".into()),
                address: a.address,
                port: a.port.unwrap_or(22) as u16,
                identity: a.identity,
            }
        },
        docker: Docker {
            install,
            storage_driver: driver,
            fuse_overlayfs: fuse_source,
            verify_image: dock.verify_image.unwrap_or_default(),
            repository: dock.repository.clone().unwrap_or_default(),
        },
        files: m.files.clone().unwrap_or_default(),
        commands: m.commands.clone().unwrap_or_default(),
        warnings,
        base_dir,
    })
}

/// Loads a profile by name or path, applies command-line overrides (already checked), and
/// resolves it.
pub fn load(name: &str, overrides: &Layer) -> Result<Profile, InputErrors> {
    let chain = load_chain(name)?;
    let cli_idx = Index::command_line();
    let errs = check_layer(overrides, &cli_idx);
    if !errs.is_empty() {
        return Err(InputErrors(errs));
    }
    // `files` is replaced as a whole by the layer that sets it last: its relative sources are
    // read from that layer's directory.
    let files_layer = chain
        .iter()
        .rev()
        .find(|l| l.layer.files.is_some())
        .or(chain.last());
    let base_dir = files_layer.and_then(|l| l.dir.clone());
    if let Some(l) = files_layer {
        let errs = check_sources(l);
        if !errs.is_empty() {
            return Err(InputErrors(errs));
        }
    }
    let mut layers: Vec<(Layer, Index)> = chain.into_iter().map(|l| (l.layer, l.index)).collect();
    layers.push((overrides.clone(), cli_idx));
    resolve(name, &layers, base_dir)
}

/// Checks that every `files.source` of a layer names a readable file.
fn check_sources(l: &LoadedLayer) -> Vec<InputError> {
    let mut errs = Vec::new();
    for (i, f) in l.layer.files.iter().flatten().enumerate() {
        let Some(src) = &f.source else { continue };
        let path = match &l.dir {
            Some(d) if Path::new(src).is_relative() => d.join(src),
            _ => PathBuf::from(src),
        };
        if !path.is_file() {
            errs.push(l.index.error(
                &format!("files[{i}].source"),
                format!(
                    "{} is not a file here (a relative source is read from the profile's directory)",
                    path.display()
                ),
            ));
        }
    }
    errs
}

impl Profile {
    /// The profile as TOML (for `profiles show`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
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
        let e = layer(
            "hostname = \"bad_name!\"\nvmid = 99\nmemory = 8\n[network]\nip = \"10.0.0.1\"\n",
        )
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
        let base = layer("template = \"debian-12\"\nmemory = 1024\n[network]\nbridge = \"vmbr1\"\nip = \"dhcp\"\n").unwrap();
        let top = layer("memory = 2048\n[network]\nip = \"10.1.2.3/24\"\ngateway = \"10.1.2.1\"\n")
            .unwrap();
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
        let e = layer(
            "[rootfs]\nstorage = \"local,size=1\"\n[network]\nbridge = \"vmbr0,firewall=0\"\n",
        )
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
}
