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
    "nodes",
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
    /// The PVE node the container must be on, when the file says; `auto`: placed on the
    /// cluster member with the most headroom (see [`crate::cluster`]).
    pub node: Option<String>,
    /// The members `auto` may choose from (empty: every member).
    pub nodes: Vec<String>,
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
    /// `profile` was written (with a wrong type when `profile` is None: already reported).
    profile_given: bool,
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
    nodes: Option<Vec<String>>,
    host: Option<String>,
    /// Entry keys that were written, whatever their type: a key given with a wrong type is
    /// reported as that, never also as missing.
    given: Vec<String>,
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
            message: profile::toml_message_in(&field, e, self.text),
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
                    defaults.profile_given = own.contains_key("profile");
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
                    e.given = own.keys().cloned().collect();
                    e.name = own.remove("name").and_then(|v| cx.de(v));
                    e.profile = own.remove("profile").and_then(|v| cx.de(v));
                    e.node = own.remove("node").and_then(|v| cx.de(v));
                    e.nodes = own.remove("nodes").and_then(|v| cx.de(v));
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

mod entries;

use entries::check;

#[cfg(test)]
mod tests;
