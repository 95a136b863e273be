//! Lab files: many containers from one TOML file (`provision apply|status|destroy FILE`).
//!
//! ```toml
//! [defaults]                 # any profile field, plus the profile every entry starts from
//! profile = "docker"
//! memory = 4096
//!
//! [[container]]              # one container...
//! name = "registry-cache"    # its hostname
//! vmid = 250                 # optional; else the node's next free ID, chosen under a lock
//! node = "pve1"              # optional: the PVE node it must be on
//! host = "root@pve1"         # optional: reach that node over SSH (default: here / --host)
//! [container.rootfs]         # any profile field overrides profile and defaults
//! size = 64
//!
//! [[container]]              # ...or several: runner-1 .. runner-8, VMIDs 300 .. 307
//! name = "runner-{n}"
//! count = 8
//! vmid_base = 300
//! ```
//!
//! An entry's profile is, bottom to top: the profile named by the entry's `profile` (else
//! `[defaults].profile`) with everything it `extends`, the `[defaults]` layer, the entry's own
//! fields, and command-line overrides. The whole file is checked before anything runs: every
//! problem is reported together, each with file:line:col and the field (a value that came from
//! a profile file is reported in that file). Nothing here runs a command or touches a node.
//!
//! Parsing works on toml's spanned document tree: the entry keys (`name`, `count`, ...) are
//! taken out of each `[[container]]` table and the rest is deserialized as a [`Layer`], so
//! `deny_unknown_fields` and the source positions both survive (serde's `flatten` keeps
//! neither).

use crate::error::{InputError, InputErrors, line_col};
use crate::profile::{self, Index, Layer, LoadedLayer, check_layer, read_text, resolve};
use crate::request::Request;
use crate::validate;
use serde::de::{DeserializeOwned, IntoDeserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The placeholder a counted entry's name must contain.
pub const COUNTER: &str = "{n}";

/// Most containers one counted entry may expand to.
pub const MAX_COUNT: i64 = 1000;

/// Most containers one lab file may make (all entries, counted ones expanded): the bound on the
/// work and memory of checking a file before anything runs.
pub const MAX_CONTAINERS: usize = 10_000;

/// Most errors reported for one file; the rest are counted in a last line.
pub const MAX_ERRORS: usize = 100;

/// Keys of a `[[container]]` table that are not profile fields.
pub const ENTRY_KEYS: &[&str] = &[
    "name",
    "profile",
    "count",
    "vmid",
    "vmid_base",
    "node",
    "host",
];

/// One container of a lab file (a counted entry gives several).
#[derive(Clone, Debug)]
pub struct Entry {
    /// Hostname (the counter already replaced).
    pub name: String,
    /// Where it is declared: `container[2]` (0-based, as in error messages).
    pub field: String,
    /// The `name` as written, when it is a counted pattern like `runner-{n}`.
    pub pattern: Option<String>,
    /// The counter value (1-based) for a counted entry.
    pub n: Option<u32>,
    /// The PVE node the container must be on, when the file says.
    pub node: Option<String>,
    /// SSH target of the node (`[user@]host[:port]`); None: the default node.
    pub host: Option<String>,
    /// What to converge: hostname, fixed VMID (entry `vmid`, `vmid_base + n - 1`, or the
    /// profile's `vmid`) and the resolved profile.
    pub request: Request,
}

impl Entry {
    /// The fixed VMID, when the file (or the profile) gives one.
    pub fn vmid(&self) -> Option<u32> {
        self.request.vmid
    }
}

/// A checked lab file.
#[derive(Clone, Debug)]
pub struct LabFile {
    /// The file as named on the command line (for messages).
    pub shown: String,
    /// Every container, expanded, in file order.
    pub entries: Vec<Entry>,
}

impl LabFile {
    /// The entries `--only` names (all of them when `only` is empty). A name matches an
    /// entry's hostname (case-insensitive) or a counted entry's pattern (`runner-{n}` selects
    /// every runner). Unknown names are input errors, all reported together.
    pub fn select(&self, only: &[String]) -> Result<Vec<&Entry>, InputErrors> {
        if only.is_empty() {
            return Ok(self.entries.iter().collect());
        }
        let matches = |e: &Entry, o: &str| {
            e.name.eq_ignore_ascii_case(o) || e.pattern.as_deref().is_some_and(|p| p == o)
        };
        let mut errs = Vec::new();
        for o in only {
            if !self.entries.iter().any(|e| matches(e, o)) {
                let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
                errs.push(InputError::whole(
                    "command line",
                    "--only",
                    format!(
                        "{o:?} is not a container of {}; its containers: {}",
                        self.shown,
                        names.join(", ")
                    ),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(InputErrors(errs));
        }
        Ok(self
            .entries
            .iter()
            .filter(|e| only.iter().any(|o| matches(e, o)))
            .collect())
    }
}

/// Reads and checks a lab file. `overrides` is the command-line layer (already a profile
/// layer; checked here too).
pub fn load(path: &Path, overrides: &Layer) -> Result<LabFile, InputErrors> {
    let text = read_text(path).map_err(|e| InputErrors(vec![e]))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parse(&path.display().to_string(), &text, &dir, overrides)
}

/// `[defaults]` as written.
#[derive(Default)]
struct RawDefaults {
    profile: Option<String>,
    layer: Layer,
}

/// One `[[container]]` as written.
#[derive(Default)]
struct RawEntry {
    /// `container[i]`.
    field: String,
    name: Option<String>,
    profile: Option<String>,
    count: Option<i64>,
    vmid: Option<i64>,
    vmid_base: Option<i64>,
    node: Option<String>,
    host: Option<String>,
    layer: Layer,
}

/// Prefix of the file name of the stand-in indexes given to [`resolve`] and [`check_layer`]
/// for the lab file's own layers: their errors are then moved to the real place in the file.
const MARK: &str = "\u{0}lab:";

fn marker(prefix: &str) -> Index {
    let mut i = Index::default();
    i.file = format!("{MARK}{prefix}");
    i
}

/// Gives errors reported against a [`marker`] index their place in the lab file.
fn relocate(errs: Vec<InputError>, idx: &Index) -> Vec<InputError> {
    errs.into_iter()
        .map(|e| match e.file.strip_prefix(MARK) {
            Some(prefix) if e.field.is_empty() => idx.error(prefix, e.message),
            Some(prefix) => idx.error(&format!("{prefix}.{}", e.field), e.message),
            None => e,
        })
        .collect()
}

/// Parsing state: the text, its index, the errors found so far.
struct Cx<'t> {
    file: &'t str,
    text: &'t str,
    idx: Index,
    errs: Vec<InputError>,
}

impl Cx<'_> {
    fn err(&mut self, field: &str, msg: impl Into<String>) {
        let e = self.idx.error(field, msg);
        self.errs.push(e);
    }

    /// A toml error with its position (the value's own span when the error has none).
    fn toml_err(&self, e: &toml::de::Error, fallback: Range<usize>) -> InputError {
        let start = e.span().unwrap_or(fallback).start;
        let (line, col) = line_col(self.text, start);
        let field = self.idx.field_at(start).unwrap_or("").to_string();
        InputError {
            file: self.file.to_string(),
            line,
            col,
            message: crate::profile::toml_message(&field, e),
            field,
        }
    }

    /// Deserializes one spanned value; an error is recorded with its position.
    fn de<T: DeserializeOwned>(&mut self, v: Spanned<DeValue<'_>>) -> Option<T> {
        let span = v.span();
        match T::deserialize(v.into_deserializer()) {
            Ok(t) => Some(t),
            Err(e) => {
                let ie = self.toml_err(&e, span);
                self.errs.push(ie);
                None
            }
        }
    }

    /// Splits a table into the entry keys listed in `keys` and a [`Layer`] of the rest (an
    /// empty layer when the rest does not deserialize: the error is recorded, and the entry
    /// keys are still checked).
    fn split<'i>(
        &mut self,
        field: &str,
        v: Spanned<DeValue<'i>>,
        keys: &[&str],
    ) -> Option<(BTreeMap<String, Spanned<DeValue<'i>>>, Layer)> {
        let span = v.span();
        let DeValue::Table(t) = v.into_inner() else {
            self.err(field, format!("`{field}` must be a table"));
            return None;
        };
        let mut own = BTreeMap::new();
        let mut rest = DeTable::new();
        for (k, val) in t {
            if keys.contains(&&**k.get_ref()) {
                own.insert(k.get_ref().to_string(), val);
            } else {
                rest.insert(k, val);
            }
        }
        let layer = self
            .de::<Layer>(Spanned::new(span, DeValue::Table(rest)))
            .unwrap_or_default();
        Some((own, layer))
    }
}

/// Parses and checks a lab file's text. `dir` is the file's directory (relative profile paths
/// and `files.source` of the lab's own layers are relative to it).
pub fn parse(
    file: &str,
    text: &str,
    dir: &Path,
    overrides: &Layer,
) -> Result<LabFile, InputErrors> {
    let mut cx = Cx {
        file,
        text,
        idx: Index::build(file, text),
        errs: Vec::new(),
    };
    if let Some(at) = text.find('\0') {
        let (line, col) = line_col(text, at);
        return Err(InputErrors(vec![InputError {
            file: file.into(),
            line,
            col,
            field: String::new(),
            message: "the file contains a NUL byte; it is not a text file".into(),
        }]));
    }
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => return Err(InputErrors(vec![cx.toml_err(&e, 0..0)])),
    };
    let mut defaults = RawDefaults::default();
    let mut raw = Vec::new();
    for (k, v) in doc.into_inner() {
        match &**k.get_ref() {
            "defaults" => {
                if let Some((mut own, layer)) = cx.split("defaults", v, &["profile"]) {
                    defaults.profile = own.remove("profile").and_then(|p| cx.de(p));
                    defaults.layer = layer;
                }
            }
            "container" => {
                let items: Vec<Spanned<DeValue<'_>>> = match v.get_ref() {
                    DeValue::Array(a) => a.iter().cloned().collect(),
                    _ => {
                        cx.err(
                            "container",
                            "`container` is a list of tables: write each one as [[container]]",
                        );
                        continue;
                    }
                };
                for (i, item) in items.into_iter().enumerate() {
                    let field = format!("container[{i}]");
                    let Some((mut own, layer)) = cx.split(&field, item, ENTRY_KEYS) else {
                        continue;
                    };
                    let mut e = RawEntry {
                        field,
                        layer,
                        ..RawEntry::default()
                    };
                    e.name = own.remove("name").and_then(|v| cx.de(v));
                    e.profile = own.remove("profile").and_then(|v| cx.de(v));
                    e.node = own.remove("node").and_then(|v| cx.de(v));
                    e.host = own.remove("host").and_then(|v| cx.de(v));
                    e.count = own.remove("count").and_then(|v| cx.de(v));
                    e.vmid = own.remove("vmid").and_then(|v| cx.de(v));
                    e.vmid_base = own.remove("vmid_base").and_then(|v| cx.de(v));
                    raw.push(e);
                }
            }
            other => {
                let other = other.to_string();
                cx.err(
                    &other,
                    format!(
                        "unknown key `{other}`: a lab file has a [defaults] table and [[container]] entries"
                    ),
                );
            }
        }
    }
    // `container = []` too: a lab file that makes nothing is a mistake, not a success.
    if raw.is_empty() && cx.errs.is_empty() {
        cx.errs.push(InputError::whole(
            file,
            "container",
            "the lab file has no [[container]] entries",
        ));
    }
    let entries = check(&mut cx, dir, &defaults, &raw, overrides);
    if cx.errs.is_empty() {
        return Ok(LabFile {
            shown: file.to_string(),
            entries,
        });
    }
    let mut errs = std::mem::take(&mut cx.errs);
    // File order first (errors in profile files after the lab file's own), each once.
    errs.sort_by_key(|e| (e.file != file, e.file.clone(), e.line, e.col));
    let mut seen = Vec::new();
    errs.retain(|e| {
        let dup = seen.contains(e);
        if !dup {
            seen.push(e.clone());
        }
        !dup
    });
    if errs.len() > MAX_ERRORS {
        let more = errs.len() - MAX_ERRORS;
        errs.truncate(MAX_ERRORS);
        errs.push(InputError::whole(
            file,
            "",
            format!("and {more} more errors (the first {MAX_ERRORS} are shown)"),
        ));
    }
    Err(InputErrors(errs))
}

/// Fields a lab layer may not set, with the key to use instead.
fn refuse_layer_keys(cx: &mut Cx<'_>, prefix: &str, l: &Layer, in_defaults: bool) {
    if l.hostname.is_some() {
        let m = if in_defaults {
            "a hostname in [defaults] would name every container the same; give each [[container]] a `name`"
        } else {
            "the container's hostname is its `name`"
        };
        cx.err(&format!("{prefix}.hostname"), m);
    }
    if l.vmid.is_some() {
        cx.err(
            &format!("{prefix}.vmid"),
            "a VMID in [defaults] would be the same for every container; set `vmid` (or `count` with `vmid_base`) in a [[container]]",
        );
    }
    if l.extends.is_some() {
        cx.err(
            &format!("{prefix}.extends"),
            "a lab file names the profile to start from with `profile`, not `extends`",
        );
    }
}

/// Makes a relative profile path relative to the lab file's directory.
fn profile_ref(name: &str, dir: &Path) -> String {
    let is_path = name.contains('/') || name.ends_with(".toml");
    if is_path && Path::new(name).is_relative() {
        dir.join(name).display().to_string()
    } else {
        name.to_string()
    }
}

/// Records the errors of loading a profile chain: "no such profile" (reported by
/// [`profile::load_chain`] against the command line) is moved to `field` in the lab file;
/// errors inside profile files keep their place there.
fn profile_errors(cx: &mut Cx<'_>, errs: &InputErrors, field: &str) {
    for er in &errs.0 {
        if er.file == "command line" && er.field == "--profile" {
            cx.err(field, er.message.clone());
        } else {
            cx.errs.push(er.clone());
        }
    }
}

/// Checks every entry and resolves its profile; errors go to `cx.errs`.
fn check(
    cx: &mut Cx<'_>,
    dir: &Path,
    defaults: &RawDefaults,
    raw: &[RawEntry],
    overrides: &Layer,
) -> Vec<Entry> {
    let d_errs = check_layer(&defaults.layer, &marker("defaults"));
    let d_errs = relocate(d_errs, &cx.idx);
    cx.errs.extend(d_errs);
    refuse_layer_keys(cx, "defaults", &defaults.layer, true);
    let cli = check_layer(overrides, &Index::command_line());
    cx.errs.extend(cli);
    let mut chains: BTreeMap<String, Result<Vec<LoadedLayer>, InputErrors>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut idents = Vec::new();
    let mut total = 0usize;
    // The default profile is checked even when every entry names its own.
    if let Some(name) = &defaults.profile {
        let pref = profile_ref(name, dir);
        let chain = chains
            .entry(pref.clone())
            .or_insert_with(|| profile::load_chain(&pref));
        if let Err(errs) = chain {
            profile_errors(cx, errs, "defaults.profile");
        }
    }
    for e in raw {
        let p = e.field.as_str();
        let before = cx.errs.len();
        let l_errs = check_layer(&e.layer, &marker(p));
        let l_errs = relocate(l_errs, &cx.idx);
        cx.errs.extend(l_errs);
        refuse_layer_keys(cx, p, &e.layer, false);
        let Some(name) = &e.name else {
            cx.err(
                p,
                "missing `name`: the container's hostname (with `{n}` when `count` is set)",
            );
            continue;
        };
        let Some((counted, count)) = entry_count(cx, p, name, e.count) else {
            continue;
        };
        check_entry_place(cx, p, e, counted, count);
        let mut names = entry_names(name, counted, count);
        cap_total(cx, (p, e, name, counted), &mut names, &mut total);
        let first_ident = idents.len();
        push_idents(cx, &mut idents, p, e, name, &names);
        // The profile chain, with errors about a missing profile put where it is named.
        let (pname, pfield) = match (&e.profile, &defaults.profile) {
            (Some(n), _) => (n.clone(), format!("{p}.profile")),
            (None, Some(n)) => (n.clone(), "defaults.profile".to_string()),
            (None, None) => {
                cx.err(
                    p,
                    "no profile: set `profile` in this [[container]] or in [defaults] (e.g. profile = \"docker\")",
                );
                continue;
            }
        };
        let pref = profile_ref(&pname, dir);
        let chain = chains
            .entry(pref.clone())
            .or_insert_with(|| profile::load_chain(&pref));
        let chain = match chain {
            Ok(c) => c.clone(),
            Err(errs) => {
                profile_errors(cx, errs, &pfield);
                continue;
            }
        };
        if cx.errs.len() > before {
            continue;
        }
        check_lab_sources(cx, dir, &defaults.layer, p, &e.layer);
        let own_files = defaults.layer.files.is_some() || e.layer.files.is_some();
        let base_dir = if own_files {
            Some(dir.to_path_buf())
        } else {
            chain.last().and_then(|l| l.dir.clone())
        };
        let mut layers: Vec<(Layer, Index)> =
            chain.into_iter().map(|l| (l.layer, l.index)).collect();
        layers.push((defaults.layer.clone(), marker("defaults")));
        layers.push((e.layer.clone(), marker(p)));
        layers.push((overrides.clone(), Index::command_line()));
        let profile = match resolve(&pname, &layers, base_dir) {
            Ok(pr) => pr,
            Err(errs) => {
                let errs = relocate(errs.0, &cx.idx);
                cx.errs.extend(errs);
                continue;
            }
        };
        for (k, (n, hostname)) in names.into_iter().enumerate() {
            let ident = &mut idents[first_ident + k];
            if ident.vmid.is_none() {
                ident.vmid = profile.vmid.map(|v| (v, "profile"));
            }
            let vmid = ident.vmid.map(|(v, _)| v);
            out.push(Entry {
                name: hostname.clone(),
                field: p.to_string(),
                pattern: counted.then(|| name.clone()),
                n,
                node: e.node.clone(),
                host: e.host.clone(),
                request: Request {
                    hostname,
                    vmid,
                    profile: profile.clone(),
                },
            });
        }
    }
    duplicates(cx, &idents);
    out
}

/// Counts an entry's containers into `total` and keeps the file within [`MAX_CONTAINERS`]: the
/// entry that crosses it is named once; past it, the entry's name is still checked (for n = 1)
/// but no container is expanded (`names` emptied), so the duplicate check and the plan stay
/// bounded and the file's other errors are still reported.
fn cap_total(
    cx: &mut Cx<'_>,
    (p, e, name, counted): (&str, &RawEntry, &str, bool),
    names: &mut Vec<(Option<u32>, String)>,
    total: &mut usize,
) {
    if *total <= MAX_CONTAINERS && *total + names.len() > MAX_CONTAINERS {
        let field = if counted {
            format!("{p}.count")
        } else {
            p.to_string()
        };
        cx.err(
            &field,
            format!(
                "with this entry the lab file makes more than {MAX_CONTAINERS} containers, the most one file may make: split it into several lab files"
            ),
        );
    }
    *total = total.saturating_add(names.len());
    if *total > MAX_CONTAINERS {
        names.truncate(1);
        push_idents(cx, &mut Vec::new(), p, e, name, names);
        names.clear();
    }
}

/// How many containers an entry makes (`count` with `{n}` in the name), or None after
/// reporting why the pair does not fit.
fn entry_count(cx: &mut Cx<'_>, p: &str, name: &str, count: Option<i64>) -> Option<(bool, u32)> {
    let counted = name.contains(COUNTER);
    let count = match (count, counted) {
        (Some(c), true) if (1..=MAX_COUNT).contains(&c) => c as u32,
        (Some(c), true) => {
            cx.err(
                &format!("{p}.count"),
                format!("{c} is out of range: count must be 1 to {MAX_COUNT}"),
            );
            return None;
        }
        (Some(c), false) => {
            cx.err(
                &format!("{p}.count"),
                format!(
                    "count = {c} needs `{COUNTER}` in the name, e.g. name = \"runner-{COUNTER}\" (it becomes runner-1, runner-2, ...)"
                ),
            );
            return None;
        }
        (None, true) => {
            cx.err(
                &format!("{p}.name"),
                format!(
                    "{name:?} has `{COUNTER}` but no `count` says how many containers it makes"
                ),
            );
            return None;
        }
        (None, false) => 1,
    };
    Some((counted, count))
}

/// Checks an entry's `vmid`/`vmid_base` against its count, and its `node` and `host`.
fn check_entry_place(cx: &mut Cx<'_>, p: &str, e: &RawEntry, counted: bool, count: u32) {
    if let Some(v) = e.vmid {
        if counted {
            cx.err(
                &format!("{p}.vmid"),
                "one `vmid` cannot go to several containers: give `vmid_base` (the first container's VMID) with `count`",
            );
        } else if let Err(m) = validate::vmid(v) {
            cx.err(&format!("{p}.vmid"), m);
        }
    }
    if let Some(b) = e.vmid_base {
        if !counted {
            cx.err(
                &format!("{p}.vmid_base"),
                "`vmid_base` goes with `count`; a single container takes `vmid`",
            );
        } else {
            let last = b.saturating_add(i64::from(count) - 1);
            let m = match (validate::vmid(b), validate::vmid(last)) {
                (Err(m), _) => Some(m),
                (Ok(()), Err(m)) => Some(format!(
                    "with count = {count} the last container's VMID is {last}: {m}"
                )),
                (Ok(()), Ok(())) => None,
            };
            if let Some(m) = m {
                cx.err(&format!("{p}.vmid_base"), m);
            }
        }
    }
    if let Some(n) = &e.node
        && let Err(m) = validate::hostname(n)
    {
        cx.err(
            &format!("{p}.node"),
            m.replace("a valid hostname", "a valid PVE node name"),
        );
    }
    if let Some(h) = &e.host
        && let Err(err) = crate::transport::ssh::SshTarget::parse(h)
    {
        cx.err(&format!("{p}.host"), format!("{err:#}"));
    }
}

/// The hostnames an entry makes: one, or one per `n` of its count.
fn entry_names(name: &str, counted: bool, count: u32) -> Vec<(Option<u32>, String)> {
    if counted {
        (1..=count)
            .map(|n| (Some(n), name.replace(COUNTER, &n.to_string())))
            .collect()
    } else {
        vec![(None, name.to_string())]
    }
}

/// Records what makes each of an entry's containers unique (for the duplicate check) and
/// refuses a hostname that `{n}` made invalid.
fn push_idents(
    cx: &mut Cx<'_>,
    idents: &mut Vec<Ident>,
    p: &str,
    e: &RawEntry,
    name: &str,
    names: &[(Option<u32>, String)],
) {
    for (n, hostname) in names {
        let vmid = match (e.vmid, e.vmid_base, n) {
            (Some(v), _, None) if validate::vmid(v).is_ok() => Some((v as u32, "vmid")),
            (None, Some(b), Some(n)) => {
                let v = b.saturating_add(i64::from(*n) - 1);
                validate::vmid(v).is_ok().then_some((v as u32, "vmid_base"))
            }
            _ => None,
        };
        idents.push(Ident {
            field: p.to_string(),
            n: *n,
            name: hostname.clone(),
            vmid,
        });
    }
    if let Some((n, bad)) = names.iter().find(|(_, h)| validate::hostname(h).is_err()) {
        let m = validate::hostname(bad).err().unwrap_or_default();
        let m = match n {
            Some(n) => format!("{name:?} makes {bad:?} for n = {n}: {m}"),
            None => m,
        };
        cx.err(&format!("{p}.name"), m);
    }
}

/// A lab file's own `files.source` is read from the lab file's directory: it must exist now,
/// reported at its place, before anything runs.
fn check_lab_sources(cx: &mut Cx<'_>, dir: &Path, defaults: &Layer, p: &str, own: &Layer) {
    for (prefix, lay) in [("defaults", defaults), (p, own)] {
        for (j, f) in lay.files.iter().flatten().enumerate() {
            let Some(src) = &f.source else { continue };
            let path = if Path::new(src).is_relative() {
                dir.join(src)
            } else {
                PathBuf::from(src)
            };
            if !path.is_file() {
                cx.err(
                    &format!("{prefix}.files[{j}].source"),
                    format!("{} is not a file here (a relative source is read from the lab file's directory)", path.display()),
                );
            }
        }
    }
}

/// What makes a container unique in a lab file, for the duplicate check.
struct Ident {
    /// `container[i]`.
    field: String,
    /// Counter value.
    n: Option<u32>,
    /// Hostname.
    name: String,
    /// Fixed VMID and the key that set it.
    vmid: Option<(u32, &'static str)>,
}

/// Two containers with the same hostname or VMID (after counted entries are expanded).
fn duplicates(cx: &mut Cx<'_>, idents: &[Ident]) {
    let what = |e: &Ident| match e.n {
        Some(n) => format!("{} (n = {n})", e.field),
        None => e.field.clone(),
    };
    let mut names: BTreeMap<String, &Ident> = BTreeMap::new();
    let mut ids: BTreeMap<u32, &Ident> = BTreeMap::new();
    // One error per entry and key: a counted entry that clashes clashes for every n.
    let mut told: BTreeSet<(String, &'static str)> = BTreeSet::new();
    for e in idents {
        match names.get(&e.name.to_ascii_lowercase()) {
            Some(_) if told.contains(&(e.field.clone(), "name")) => {}
            Some(first) => {
                told.insert((e.field.clone(), "name"));
                let m = format!(
                    "{}: the name {:?} is also {}'s; hostnames in a lab file must be unique",
                    what(e),
                    e.name,
                    what(first)
                );
                cx.err(&format!("{}.name", e.field), m);
            }
            None => {
                names.insert(e.name.to_ascii_lowercase(), e);
            }
        }
        let Some((v, key)) = e.vmid else { continue };
        match ids.get(&v) {
            Some(_) if told.contains(&(e.field.clone(), key)) => {}
            Some(first) => {
                told.insert((e.field.clone(), key));
                let m = format!(
                    "{} ({}): VMID {v} is also {} ({})'s; VMIDs must be unique",
                    what(e),
                    e.name,
                    what(first),
                    first.name
                );
                cx.err(&format!("{}.{key}", e.field), m);
            }
            None => {
                ids.insert(v, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(a.docker.storage_driver, crate::profile::Driver::Auto);
        let b = &l.entries[1].request.profile;
        assert_eq!(
            b.docker.storage_driver,
            crate::profile::Driver::FuseOverlayfs
        );
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
        assert!(e.iter().any(|s| s.starts_with("lab.toml:21:1: container[4].vmid: VMID 99 is out of range")), "{all}");
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
        let e =
            errs("[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"-{n}\"\ncount = 2\n");
        assert!(
            e[0].contains("for n = 1") && e[0].contains("container[0].name"),
            "{e:?}"
        );
        let e = errs(
            "[defaults]\nprofile = \"docker\"\n[[container]]\nname = \"a{n}{x}\"\ncount = 2\n",
        );
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
        let e = errs(
            "[defaults]\nprofile = \"nope\"\n[[container]]\nname = \"a\"\nprofile = \"docker\"\n",
        );
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
}
