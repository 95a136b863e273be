//! Authentication: ssh-agent, key files (passphrase from a named environment variable or a
//! terminal prompt, wiped after use), a password only when allowed.

use super::*;

/// A passphrase or password: never printed, wiped when dropped.
pub(super) struct Secret(pub(super) zeroize::Zeroizing<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

pub(super) fn authenticate(sess: &Session, t: &SshTarget, opts: &SshOptions) -> Result<()> {
    let user = t.user.as_str();
    let offered = match sess.auth_methods(user) {
        Ok(m) => m.to_string(),
        Err(_) if sess.authenticated() => return Ok(()),
        Err(e) => bail!("ssh:{t}: connection lost during authentication (step: auth): {e}"),
    };
    let mut tried: Vec<String> = Vec::new();

    let agent_sock = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty());
    if opts.use_agent && agent_sock.is_some() {
        match try_agent(sess, user) {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push("agent".into()),
            Err(e) => tried.push(format!("agent (unusable: {})", e.message())),
        }
    }

    let keys = if opts.identities.is_empty() {
        home_dir()
            .map(|h| {
                ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|k| h.join(".ssh").join(k))
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.identities.clone()
    };
    for key in &keys {
        if try_key(sess, user, key, opts, &mut tried) {
            return Ok(());
        }
    }

    if opts.allow_password {
        match std::env::var(PASSWORD_ENV) {
            Ok(p) => {
                let p = Secret(p.into());
                if sess.userauth_password(user, &p.0).is_ok() && sess.authenticated() {
                    return Ok(());
                }
                tried.push("password".into());
            }
            Err(_) => tried.push(format!("password ({PASSWORD_ENV} is not set)")),
        }
    }

    let tried = if tried.is_empty() {
        "nothing: no ssh-agent and no key file in ~/.ssh; pass --identity".to_string()
    } else {
        tried.join(", ")
    };
    bail!(
        "authentication failed for {t} (tried: {tried}); the server accepts: {}",
        if offered.is_empty() { "?" } else { &offered }
    )
}

pub(super) fn try_agent(sess: &Session, user: &str) -> Result<bool, ssh2::Error> {
    let mut agent = sess.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    let mut ok = false;
    for id in agent.identities()? {
        if agent.userauth(user, &id).is_ok() && sess.authenticated() {
            ok = true;
            break;
        }
    }
    let _ = agent.disconnect();
    Ok(ok)
}

/// Offers one key file; notes what happened in `tried`.
pub(super) fn try_key(
    sess: &Session,
    user: &str,
    key: &Path,
    opts: &SshOptions,
    tried: &mut Vec<String>,
) -> bool {
    let name = format!("key {}", key.display());
    let text = match crate::input::read_input(key, crate::input::KEY_LIMIT) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tried.push(format!("{name} (no such file)"));
            return false;
        }
        Err(e) => {
            tried.push(format!("{name} (unreadable: {e})"));
            return false;
        }
    };
    let passphrase = if key_is_encrypted(&text) {
        match passphrase_for(key, opts) {
            Ok(p) => Some(p),
            Err(why) => {
                tried.push(format!("{name} ({why})"));
                return false;
            }
        }
    } else {
        None
    };
    let pass = passphrase.as_ref().map(|p| p.0.as_str());
    match sess.userauth_pubkey_file(user, None, key, pass) {
        Ok(()) if sess.authenticated() => true,
        Ok(()) => {
            tried.push(name);
            false
        }
        // The server said no.
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Session(
                    raw::LIBSSH2_ERROR_AUTHENTICATION_FAILED
                        | raw::LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                )
            ) =>
        {
            tried.push(name);
            false
        }
        // The key could not be read or decrypted.
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Session(
                    raw::LIBSSH2_ERROR_FILE | raw::LIBSSH2_ERROR_KEYFILE_AUTH_FAILED
                )
            ) =>
        {
            let why = if pass.is_some() {
                "wrong passphrase, or a key format libssh2 cannot read"
            } else {
                "a key format libssh2 cannot read"
            };
            tried.push(format!("{name} ({why})"));
            false
        }
        Err(e) => {
            tried.push(format!("{name} ({})", e.message()));
            false
        }
    }
}

/// True for an OpenSSH or PEM private key that is protected by a passphrase.
pub(super) fn key_is_encrypted(text: &str) -> bool {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    if let Some(start) = text.find(BEGIN) {
        let body: String = text[start + BEGIN.len()..]
            .lines()
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let Ok(raw) = B64.decode(body.trim()) else {
            return false;
        };
        let Some(rest) = raw.strip_prefix(b"openssh-key-v1\0") else {
            return false;
        };
        return key_type(rest) != "none";
    }
    text.contains("ENCRYPTED")
}

pub(super) fn passphrase_for(key: &Path, opts: &SshOptions) -> Result<Secret, String> {
    if let Some(var) = &opts.passphrase_env {
        return match std::env::var(var) {
            Ok(p) => Ok(Secret(p.into())),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "encrypted, and the passphrase variable ${var} is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("encrypted, and ${var} is not valid UTF-8"))
            }
        };
    }
    if io::stdin().is_terminal() {
        return prompt_passphrase(key).map_err(|e| format!("encrypted; prompting failed: {e}"));
    }
    Err(
        "encrypted; name an environment variable holding the passphrase, or run on a terminal to \
         be asked"
            .to_string(),
    )
}

/// Asks on the terminal (/dev/tty), without echo.
pub(super) fn prompt_passphrase(key: &Path) -> io::Result<Secret> {
    rpassword::prompt_password(format!("Enter passphrase for key {}: ", key.display()))
        .map(|p| Secret(p.into()))
}
