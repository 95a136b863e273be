//! The JSON Schemas under `schema/` are current (generated from the types the tool reads), and
//! every shipped profile and example lab file validates against them.
//! `PROVISION_UPDATE_SCHEMA=1 cargo test schema::` rewrites them.

use provision::schema::{entry_and_profile_keys, lab_schema, profile_schema};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn current(file: &str, generated: &str) {
    let path = root().join("schema").join(file);
    if std::env::var("PROVISION_UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/{file} is not what the types give: run `PROVISION_UPDATE_SCHEMA=1 cargo test schema::` and commit it"
    );
}

#[test]
fn the_committed_schemas_are_current() {
    current("profile.schema.json", &profile_schema());
    current("lab.schema.json", &lab_schema());
}

#[test]
fn the_lab_schema_has_exactly_the_parsers_entry_keys() {
    // An entry's keys are the parser's own keys plus the profile's fields.
    let (entry, profile) = entry_and_profile_keys();
    let parser = provision::labfile::ENTRY_KEYS;
    for k in parser {
        assert!(
            entry.iter().any(|e| e == k),
            "the schema lacks the entry key {k}"
        );
    }
    for k in &entry {
        assert!(
            parser.contains(&k.as_str()) || profile.contains(k),
            "the schema has {k}, which the lab-file parser does not take"
        );
    }
}

fn validator(schema: &str) -> jsonschema::Validator {
    let v: serde_json::Value = serde_json::from_str(schema).unwrap();
    jsonschema::validator_for(&v).unwrap()
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let t: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(t).unwrap()
}

#[test]
fn shipped_profiles_and_examples_validate_and_bad_ones_do_not() {
    let profile = validator(&profile_schema());
    let lab = validator(&lab_schema());
    let profiles = toml_files(&root().join("profiles"));
    let labs = toml_files(&root().join("examples"));
    assert!(!profiles.is_empty() && !labs.is_empty());
    for p in &profiles {
        let errs: Vec<String> = profile
            .iter_errors(&as_json(p))
            .map(|e| e.to_string())
            .collect();
        assert!(errs.is_empty(), "{}: {errs:#?}", p.display());
    }
    for p in &labs {
        let errs: Vec<String> = lab
            .iter_errors(&as_json(p))
            .map(|e| e.to_string())
            .collect();
        assert!(errs.is_empty(), "{}: {errs:#?}", p.display());
    }
    // What the tool refuses, the schema refuses too: an unknown key, a wrong type.
    for bad in [
        serde_json::json!({"memroy": 512}),
        serde_json::json!({"memory": "lots"}),
        serde_json::json!({"rootfs": {"storage": "local", "sise": 8}}),
    ] {
        assert!(!profile.is_valid(&bad), "{bad}");
    }
    for bad in [
        serde_json::json!({"container": [{"name": "a", "cuont": 2}]}),
        serde_json::json!({"container": [{"profile": "docker"}]}),
        serde_json::json!({"defaults": {"memroy": 1}, "container": []}),
    ] {
        assert!(!lab.is_valid(&bad), "{bad}");
    }
}
