//! Checking every value in the layer that wrote it, so that an error names that file, line,
//! column and field.

use super::*;

pub(super) fn push_rule(
    errors: &mut Vec<InputError>,
    idx: &Index,
    field: &str,
    rule: validate::Rule,
) {
    if let Err(m) = rule {
        errors.push(idx.error(field, m));
    }
}

pub(super) fn range(v: i64, lo: i64, hi: i64, what: &str) -> validate::Rule {
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
    if let Some(i) = &l.image {
        push_rule(er, idx, "image", one_of(i, &["auto", "none"]));
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
        check_root_password(er, idx, p);
    }
    if let Some(r) = &l.rootfs {
        check_rootfs(er, idx, r);
    }
    if let Some(n) = &l.network {
        check_network(er, idx, n);
    }
    if let Some(a) = &l.access {
        check_access(er, idx, a);
    }
    if let Some(d) = &l.docker {
        check_docker(er, idx, d);
    }
    if let Some(files) = &l.files {
        check_files(er, idx, files);
    }
    if let Some(cmds) = &l.commands {
        check_commands(er, idx, cmds);
    }
    if let Some(d) = &l.description {
        check_description(er, idx, d);
    }
    if let Some(m) = &l.mounts {
        for (field, message) in crate::mounts::check(m) {
            er.push(idx.error(&field, message));
        }
    }
    if let Some(g) = &l.gpu {
        push_rule(er, idx, "gpu", one_of(g, &["intel", "amd"]));
    }
    if let Some(d) = &l.devices {
        for (field, message) in crate::mounts::devices::check(d) {
            er.push(idx.error(&field, message));
        }
    }
    e
}

fn check_root_password(er: &mut Vec<InputError>, idx: &Index, p: &PasswordSource) {
    let rule = match p {
        PasswordSource::Env(v) => {
            if !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                Ok(())
            } else {
                // Not shown: a value that is not a variable name may be the password itself.
                Err("the value is not an environment variable name (letters, digits, `_`); it is not shown, in case it is the password itself".to_string())
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

fn check_rootfs(er: &mut Vec<InputError>, idx: &Index, r: &RootfsLayer) {
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

fn check_network(er: &mut Vec<InputError>, idx: &Index, n: &NetworkLayer) {
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

fn check_access(er: &mut Vec<InputError>, idx: &Index, a: &AccessLayer) {
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

fn check_docker(er: &mut Vec<InputError>, idx: &Index, d: &DockerLayer) {
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
    if let Some(data) = &d.data {
        match &data.storage {
            Some(s) => push_rule(er, idx, "docker.data.storage", validate::storage_id(s)),
            None => er.push(idx.error("docker.data", "give the volume's `storage` (and `size`)")),
        }
        match data.size {
            Some(g) => push_rule(er, idx, "docker.data.size", crate::mounts::size_rule(g)),
            None => er.push(idx.error("docker.data", "give the volume's `size` in GiB")),
        }
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
                validate::container_path(p)
                    .map_err(|m| m.replace("names a directory", "names a directory on the node")),
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

fn check_files(er: &mut Vec<InputError>, idx: &Index, files: &[FileSpec]) {
    let mut seen = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let p = format!("files[{i}]");
        // Every check sees the one normal spelling (`/etc/docker/./daemon.json` is daemon.json).
        match validate::normal_container_path(&f.dest) {
            Err(m) => er.push(idx.error(&format!("{p}.dest"), m)),
            Ok(dest) => {
                if let Some(why) = managed_path(&dest) {
                    let why = if dest == f.dest {
                        why
                    } else {
                        format!("{:?} is {dest}: {why}", f.dest)
                    };
                    er.push(idx.error(&format!("{p}.dest"), why));
                }
                if let Some(prev) = seen.insert(dest.clone(), i) {
                    er.push(idx.error(
                        &format!("{p}.dest"),
                        format!("{dest:?} is also the destination of files[{prev}]"),
                    ));
                }
            }
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

fn check_commands(er: &mut Vec<InputError>, idx: &Index, cmds: &[Vec<String>]) {
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

fn check_description(er: &mut Vec<InputError>, idx: &Index, d: &str) {
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

/// The text provision appends to a container's description.
pub const DESCRIPTION_SUFFIX: &str = " (managed by provision)";

/// Why a `files.dest` may not be written by a profile: provision manages that path itself, and a
/// profile file there would be overwritten by it (and overwrite it) on every run.
pub(super) fn managed_path(dest: &str) -> Option<String> {
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

pub(super) fn check_url(u: &str) -> validate::Rule {
    // RFC 3986 characters (anything else must be percent-encoded), minus the few that a shell
    // acts on even inside double quotes or that end a word.
    let url_char = |c: u8| c.is_ascii_alphanumeric() || b"-._~:/?#[]@!&()*+,=%".contains(&c);
    if (u.starts_with("https://") || u.starts_with("http://")) && u.bytes().all(url_char) {
        Ok(())
    } else {
        Err(format!("{u:?} is not an http(s) URL"))
    }
}

pub(super) fn one_of(v: &str, allowed: &[&str]) -> validate::Rule {
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
        // A name that starts with `-` would reach `pveam download STORAGE NAME` as an option.
        if name.is_empty()
            || !name.as_bytes()[0].is_ascii_alphanumeric()
            || name.contains('/')
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c))
        {
            return Err(format!(
                "{t:?}: the template file name has characters PVE does not use (it starts with a letter or digit and has only letters, digits, `-`, `_`, `.`, `+`)"
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
