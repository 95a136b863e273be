//! Where an SSH connection goes (`[user@]host[:port]`, IPv6 in brackets) and how it connects
//! and authenticates (identities, known_hosts, timeouts).

use super::*;

/// Where to connect: `[user@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Login name (default `root`).
    pub user: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 22).
    pub port: u16,
}

impl SshTarget {
    /// Parses `[user@]host[:port]`; IPv6 addresses go in brackets when a port follows
    /// (`root@[::1]:2222`). Default user `root`, default port 22.
    pub fn parse(s: &str) -> Result<SshTarget> {
        let bad = |why: &str| {
            anyhow!(
                "invalid SSH target {s:?}: {why} (expected [user@]host[:port], e.g. root@pve1, \
                 pve1:2222 or root@[fe80::1]:22)"
            )
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let (user, rest) = match s.split_once('@') {
            None => ("root", s),
            Some((_, r)) if r.contains('@') => return Err(bad("it contains more than one '@'")),
            Some(("", _)) => return Err(bad("the user name before '@' is empty")),
            Some((u, r)) => {
                let ok = !u.starts_with('-')
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(bad(
                        "a user name may only contain letters, digits, '.', '_' and '-' and may \
                         not start with '-'",
                    ));
                }
                (u, r)
            }
        };
        let parse_port = |p: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(bad(&format!(
                    "the port {p:?} is not a number from 1 to 65535"
                ))),
            }
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, tail) = inner
                .split_once(']')
                .ok_or_else(|| bad("'[' has no closing ']'"))?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(bad(&format!("{h:?} in brackets is not an IPv6 address")));
            }
            let port = match tail {
                "" => 22,
                t => match t.strip_prefix(':') {
                    Some(p) => parse_port(p)?,
                    None => return Err(bad("only ':PORT' may follow ']'")),
                },
            };
            (h, port)
        } else if rest.matches(':').count() > 1 {
            if rest.parse::<Ipv6Addr>().is_err() {
                return Err(bad("write an IPv6 address in brackets, e.g. [fe80::1]:22"));
            }
            (rest, 22)
        } else if let Some((h, p)) = rest.split_once(':') {
            (h, parse_port(p)?)
        } else {
            (rest, 22)
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if !host.contains(':') {
            let ok = host.len() <= 253
                && !host.starts_with(['-', '.'])
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
            if !ok {
                return Err(bad(&format!(
                    "{host:?} is not a host name or IP address (letters, digits, '.', '-', '_')"
                )));
            }
        }
        Ok(SshTarget {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name known_hosts files use: `host` for port 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for SshTarget {
    /// `user@host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host_port())
    }
}

impl FromStr for SshTarget {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        SshTarget::parse(s)
    }
}

/// How to connect and authenticate.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// Private key files to offer (`--identity`); empty: ~/.ssh/id_ed25519, id_ecdsa, id_rsa
    /// (those that exist).
    pub identities: Vec<PathBuf>,
    /// Name of an environment variable holding the passphrase of encrypted keys. Without it an
    /// encrypted key is only usable when a terminal can be prompted.
    pub passphrase_env: Option<String>,
    /// Try password authentication with the password in `PROVISION_SSH_PASSWORD`.
    pub allow_password: bool,
    /// known_hosts files to check; the first one is where `accept_new_host_key` records keys.
    /// Default: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts.
    pub known_hosts: Vec<PathBuf>,
    /// Record the key of a host not yet known (never replaces a known, changed key).
    pub accept_new_host_key: bool,
    /// Try the keys of the ssh-agent at `SSH_AUTH_SOCK` first (default true).
    pub use_agent: bool,
    /// Limit for the TCP connect, the SSH handshake and authentication (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for each command and upload (default none).
    pub command_timeout: Option<Duration>,
    /// The name the host key is looked up under instead of the host (OpenSSH's
    /// `HostKeyAlias`; PVE's node-to-node SSH uses the node name).
    pub host_key_alias: Option<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        let mut known_hosts = Vec::new();
        if let Some(home) = home_dir() {
            known_hosts.push(home.join(".ssh/known_hosts"));
        }
        known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        SshOptions {
            identities: Vec::new(),
            passphrase_env: None,
            allow_password: false,
            known_hosts,
            accept_new_host_key: false,
            use_agent: true,
            connect_timeout: Duration::from_secs(10),
            command_timeout: None,
            host_key_alias: None,
        }
    }
}

pub(super) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
