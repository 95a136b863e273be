//! The one place that renders a PVE property string (`mpN`, `devN`) from values the tool
//! wants to write. PVE splits such a string at every `,` and each part at its first `=`, and a
//! config line ends at a newline: a value holding one of those would add or change keys of
//! its own (`/data,ro=0`, `/x\nlxc.apparmor.profile: unconfined`). Every value passes
//! [`value_rule`] here, whatever checked it before, so no caller can forget it.

use crate::validate::Rule;

/// Why a value cannot stand in a property string, if it cannot.
pub fn value_rule(v: &str) -> Rule {
    if v.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{v:?} contains the control character {c:?}; PVE's configuration is one line per key"
        ));
    }
    if let Some(c) = v.chars().find(|c| matches!(c, ',' | '=')) {
        return Err(format!(
            "{v:?} contains {c:?}, which separates the keys of PVE's property string (`key=value,key=value`): it would add a key of its own"
        ));
    }
    Ok(())
}

/// `first,key=value,...`: the default key's value first (unkeyed, as PVE prints it), then the
/// other keys in the order given. Refuses any value that would break out of its slot.
pub fn render(first: &str, rest: &[(&str, String)]) -> Result<String, String> {
    value_rule(first)?;
    let mut s = first.to_string();
    for (k, v) in rest {
        debug_assert!(k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        value_rule(v).map_err(|m| format!("{k}: {m}"))?;
        s.push(',');
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    Ok(s)
}

/// Splits a property string as PVE does: `,` between parts, the first `=` between key and
/// value; a part without `=` is the default key's value.
pub fn parse(s: &str, default_key: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (default_key.to_string(), p.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_add_keys_are_refused() {
        assert!(render("/tank/media", &[("mp", "/media".into())]).is_ok());
        for bad in ["/a,ro=1", "/a=b", "/a\nlxc.x: y", ""] {
            assert!(render(bad, &[]).is_err(), "{bad:?}");
            assert!(render("/ok", &[("mp", bad.into())]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_reads_the_default_key() {
        let p = parse("local-lvm:vm-1-disk-1,mp=/data,size=8G", "volume");
        assert_eq!(p[0], ("volume".into(), "local-lvm:vm-1-disk-1".into()));
        assert_eq!(p[2], ("size".into(), "8G".into()));
    }
}
