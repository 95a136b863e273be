//! JSON Schemas of profiles and lab files, for editors (taplo / Even Better TOML) and CI.
//!
//! Generated from the types the tool reads: a profile is a [`Layer`]; a lab file's layout is
//! described by the schema-only types below, whose own keys are the ones the lab-file parser
//! takes out of each table ([`crate::labfile::ENTRY_KEYS`], checked by a test) and whose other
//! keys are a [`Layer`]. The committed copies under `schema/` are checked to be current by
//! `tests/schema.rs`.

use crate::profile::Layer;
use schemars::JsonSchema;

/// A lab file: many containers from one TOML file (`provision apply|status|destroy FILE`).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LabFile {
    /// Any profile field, plus the profile every entry starts from.
    defaults: Option<Defaults>,
    /// One container, or several with `count`.
    container: Vec<Entry>,
}

/// `[defaults]`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Defaults {
    /// The profile every entry starts from (a name or a path).
    profile: Option<String>,
    #[serde(flatten)]
    layer: Layer,
}

/// `[[container]]`: any profile field overrides the profile and the defaults.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Entry {
    /// Its hostname; with `count`, it must contain `{n}` (runner-{n}).
    name: String,
    /// The profile it starts from (else `[defaults].profile`).
    profile: Option<String>,
    /// How many containers this entry makes (1 to 1000).
    #[schemars(range(min = 1, max = 1000))]
    count: Option<i64>,
    /// Fixed VMID (without `count`).
    vmid: Option<i64>,
    /// First VMID of a counted entry.
    vmid_base: Option<i64>,
    /// The PVE node it must be on; `auto`: the cluster member with the most headroom.
    node: Option<String>,
    /// The members `node = "auto"` may choose from (default: all).
    nodes: Option<Vec<String>>,
    /// Reach that node over SSH (`[user@]host[:port]`).
    host: Option<String>,
    #[serde(flatten)]
    layer: Layer,
}

/// The keys of `[[container]]` in this schema, and those of a profile.
pub fn entry_and_profile_keys() -> (Vec<String>, Vec<String>) {
    let keys = |v: serde_json::Value| -> Vec<String> {
        v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    (
        keys(serde_json::to_value(schemars::schema_for!(Entry)).unwrap_or_default()),
        keys(serde_json::to_value(schemars::schema_for!(Layer)).unwrap_or_default()),
    )
}

/// The JSON Schema of a profile file, pretty-printed.
pub fn profile_schema() -> String {
    let mut s = schemars::schema_for!(Layer);
    s.insert("title".into(), "provision profile".into());
    pretty(&serde_json::to_value(s).unwrap_or_default())
}

/// The JSON Schema of a lab file, pretty-printed.
pub fn lab_schema() -> String {
    let mut s = schemars::schema_for!(LabFile);
    s.insert("title".into(), "provision lab file".into());
    pretty(&serde_json::to_value(s).unwrap_or_default())
}

fn pretty(v: &serde_json::Value) -> String {
    let mut out = serde_json::to_string_pretty(v).unwrap_or_default();
    out.push('\n');
    out
}
