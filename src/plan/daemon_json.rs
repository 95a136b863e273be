//! Docker's daemon.json: the tool's keys merged into the user's file, which keeps every key the
//! user set; invalid JSON is refused unless forced.

use super::*;

/// Merges the keys the tool owns into the user's daemon.json. Returns the new text and the
/// keys that changed, or None when nothing changes. Refuses invalid JSON unless `force`.
pub fn merge_daemon_json(
    existing: Option<&str>,
    driver: Driver,
    force: bool,
) -> Result<Option<(String, Vec<String>)>> {
    use serde_json::{Map, Value};
    let mut root: Map<String, Value> = match existing.map(str::trim) {
        None | Some("") => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) | Err(_) if force => Map::new(),
            Ok(_) => bail!(
                "{DAEMON_JSON} is JSON but not an object; refusing to change it (fix it, or run with --force to back it up and replace it)"
            ),
            Err(e) => bail!(
                "{DAEMON_JSON} is not valid JSON ({e}); refusing to overwrite it (fix it, or run with --force to back it up and replace it)"
            ),
        },
    };
    let before = root.clone();
    let mut why = Vec::new();
    let want = Value::String(driver.as_str().to_string());
    if root.get("storage-driver") != Some(&want) {
        why.push(format!("storage-driver={}", driver.as_str()));
        root.insert("storage-driver".into(), want);
    }
    if driver == Driver::FuseOverlayfs || driver == Driver::Vfs {
        let feats = root
            .entry("features")
            .or_insert_with(|| Value::Object(Map::new()));
        if !feats.is_object() {
            if !force {
                bail!(
                    "{DAEMON_JSON}: \"features\" is not an object; refusing to change it (use --force)"
                );
            }
            *feats = Value::Object(Map::new());
        }
        let f = feats.as_object_mut().expect("object");
        if f.get("containerd-snapshotter") != Some(&Value::Bool(false)) {
            why.push("features.containerd-snapshotter=false".into());
            f.insert("containerd-snapshotter".into(), Value::Bool(false));
        }
    }
    if root == before && existing.is_some() {
        return Ok(None);
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(root))?;
    text.push('\n');
    Ok(Some((text, why)))
}

/// The storage driver daemon.json names now, if any.
pub fn current_driver(daemon_json: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(daemon_json?).ok()?;
    v.get("storage-driver")?.as_str().map(String::from)
}
