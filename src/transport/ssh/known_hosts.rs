//! Host keys: fingerprints as OpenSSH prints them, known_hosts files read line by line (a
//! changed key is shown with the line that recorded the old one), new keys recorded, a
//! container's stale key forgotten.

use super::*;

/// The OpenSSH fingerprint of a public key blob: `SHA256:` and unpadded base64.
pub fn fingerprint(key_blob: &[u8]) -> String {
    format!("SHA256:{}", B64_NO_PAD.encode(Sha256::digest(key_blob)))
}

/// The key type name at the start of a public key blob (`ssh-ed25519`).
pub(super) fn key_type(blob: &[u8]) -> &str {
    blob.get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n))
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("unknown")
}

/// How OpenSSH names a key type to humans: ED25519, ECDSA, RSA.
pub(super) fn key_type_label(name: &str) -> String {
    match name {
        "ssh-ed25519" => "ED25519".into(),
        "ssh-rsa" => "RSA".into(),
        "ssh-dss" => "DSA".into(),
        n if n.starts_with("ecdsa-sha2-") => "ECDSA".into(),
        n => n.to_string(),
    }
}

/// The file on a Debian/PVE node that holds the host key of this type.
pub(super) fn host_key_file(name: &str) -> &'static str {
    match name {
        "ssh-rsa" => "/etc/ssh/ssh_host_rsa_key.pub",
        n if n.starts_with("ecdsa-sha2-") => "/etc/ssh/ssh_host_ecdsa_key.pub",
        _ => "/etc/ssh/ssh_host_ed25519_key.pub",
    }
}

/// One known_hosts line about the host being connected to.
pub(super) struct KnownEntry {
    pub(super) file: PathBuf,
    pub(super) line: usize,
    pub(super) blob: Vec<u8>,
}

impl KnownEntry {
    pub(super) fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

#[derive(Default)]
pub(super) struct KnownKeys {
    /// Keys recorded for this host.
    pub(super) entries: Vec<KnownEntry>,
    /// Keys marked `@revoked` (for any host).
    pub(super) revoked: Vec<KnownEntry>,
}

/// Reads the known_hosts files line by line. Host names (plain, lists or hashed) are matched by
/// libssh2; the key itself is compared here, so that a changed key can be shown with the line
/// that recorded the old one. Lines libssh2 cannot read are skipped.
pub(super) fn scan_known_hosts(sess: &Session, files: &[PathBuf], name: &str) -> KnownKeys {
    let mut known = KnownKeys::default();
    for file in files {
        let text = match crate::input::read_input(file, crate::input::KNOWN_HOSTS_LIMIT) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("ssh: cannot read known_hosts file {}: {e}", file.display());
                continue;
            }
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let entry = |b64: &str| {
                B64.decode(b64).ok().map(|blob| KnownEntry {
                    file: file.clone(),
                    line: i + 1,
                    blob,
                })
            };
            if let Some(marker) = fields.first().filter(|f| f.starts_with('@')) {
                if *marker == "@revoked"
                    && let Some(e) = fields.get(3).and_then(|b| entry(b))
                {
                    known.revoked.push(e);
                }
                continue; // @cert-authority: certificates are not supported
            }
            let Some(e) = fields.get(2).and_then(|b| entry(b)) else {
                continue;
            };
            let Ok(mut kh) = sess.known_hosts() else {
                continue;
            };
            if kh.read_str(line, ssh2::KnownHostFileKind::OpenSSH).is_err() {
                tracing::debug!("ssh: skipping unreadable line {}", e.place());
                continue;
            }
            if matches!(kh.check(name, &e.blob), ssh2::CheckResult::Match) {
                known.entries.push(e);
            }
        }
    }
    known
}

/// Asks for the host key types already known for this host first (as OpenSSH does), so that a
/// server with several host keys presents one that can be checked.
pub(super) fn prefer_known_key_types(sess: &Session, known: &KnownKeys) {
    if known.entries.is_empty() {
        return;
    }
    let Ok(supported) = sess.supported_algs(ssh2::MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = Vec::new();
    for e in &known.entries {
        let algs: &[&str] = match key_type(&e.blob) {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            t => &[t][..],
        };
        for alg in algs {
            if let Some(s) = supported.iter().find(|s| *s == alg)
                && !prefs.contains(s)
            {
                prefs.push(s);
            }
        }
    }
    for s in &supported {
        if !prefs.contains(s) {
            prefs.push(s);
        }
    }
    let _ = sess.method_pref(ssh2::MethodType::HostKey, &prefs.join(","));
}

/// The name a host's key is recorded under: the alias when one is set, else host (and port).
pub(super) fn known_hosts_name(t: &SshTarget, opts: &SshOptions) -> String {
    opts.host_key_alias
        .clone()
        .unwrap_or_else(|| t.known_hosts_name())
}

pub(super) fn verify_host_key(
    sess: &Session,
    t: &SshTarget,
    opts: &SshOptions,
    known: &KnownKeys,
) -> Result<()> {
    let (blob, _) = sess
        .host_key()
        .ok_or_else(|| anyhow!("ssh:{t}: the server presented no host key"))?;
    let name = known_hosts_name(t, opts);
    let ty = key_type(blob);
    let label = key_type_label(ty);
    let fp = fingerprint(blob);
    if let Some(r) = known.revoked.iter().find(|r| r.blob == blob) {
        bail!(
            "ssh:{t}: the {label} host key {fp} of {name} is marked @revoked in {}; refusing \
             to connect",
            r.place()
        );
    }
    if known.entries.iter().any(|e| e.blob == blob) {
        tracing::debug!("ssh:{t}: host key {label} {fp} matches known_hosts");
        return Ok(());
    }
    let same_type = known.entries.iter().find(|e| key_type(&e.blob) == ty);
    if let Some(old) = same_type.or(known.entries.first()) {
        let old_label = key_type_label(key_type(&old.blob));
        bail!(
            "ssh:{t}: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\n\
             The server at {name} now presents the {label} host key {fp},\n\
             but {} records the {old_label} key {} for it.\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack), or the \
             host key has just been changed (e.g. the node was reinstalled).\n\
             Refusing to connect; --accept-new-host-key never replaces a known key. If the change \
             is expected, check the new fingerprint on the node (ssh-keygen -lf {}), then remove \
             the old entry with: ssh-keygen -R '{name}' -f {}",
            old.place(),
            fingerprint(&old.blob),
            host_key_file(ty),
            old.file.display()
        );
    }
    let Some(record_in) = opts.known_hosts.first() else {
        bail!(
            "ssh:{t}: the host key of {name} ({label} key fingerprint {fp}) cannot be checked: no \
             known_hosts file is configured"
        );
    };
    if !opts.accept_new_host_key {
        let port = if t.port == 22 {
            String::new()
        } else {
            format!("-p {} ", t.port)
        };
        bail!(
            "ssh:{t}: the host key of {name} is not known ({label} key fingerprint {fp}); \
             refusing to connect.\n\
             Check that fingerprint on the node (ssh-keygen -lf {}), then either run again with \
             --accept-new-host-key to record it in {}, or add it yourself: \
             ssh-keyscan {port}{} >> {}",
            host_key_file(ty),
            record_in.display(),
            t.host,
            record_in.display()
        );
    }
    record_host_key(record_in, &name, blob).with_context(|| {
        format!(
            "ssh:{t}: recording the host key of {name} in {}",
            record_in.display()
        )
    })?;
    tracing::warn!(
        "ssh:{t}: permanently added the {label} host key {fp} of {name} to {}",
        record_in.display()
    );
    Ok(())
}

/// Removes every line of the known_hosts file `file` that names `name` (plain host fields,
/// as [`record_host_key`] writes them), keeping the others; the file is replaced atomically.
/// Returns how many lines were removed (0 when the file does not exist).
pub fn forget_host_key(file: &Path, name: &str) -> io::Result<usize> {
    let text = match crate::input::read_input(file, crate::input::KNOWN_HOSTS_LIMIT) {
        Ok(t) => String::from_utf8(t).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the known_hosts file is not UTF-8 text",
            )
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let names = |line: &str| {
        let first = line.split_whitespace().next().unwrap_or("");
        !first.starts_with('@') && first.split(',').any(|h| h == name)
    };
    let kept: Vec<&str> = text.lines().filter(|l| !names(l)).collect();
    let removed = text.lines().count() - kept.len();
    if removed == 0 {
        return Ok(0);
    }
    let tmp = file.with_extension("provision-new");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file)?;
    Ok(removed)
}

/// Appends `name type base64` to a known_hosts file (created 0600, parent 0700).
pub(super) fn record_host_key(file: &Path, name: &str, blob: &[u8]) -> io::Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)?;
    let len = f.metadata()?.len();
    let mut line = String::new();
    if len > 0 {
        let mut last = [0u8];
        f.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    line.push_str(&format!("{name} {} {}\n", key_type(blob), B64.encode(blob)));
    f.write_all(line.as_bytes())?;
    f.sync_all()
}
