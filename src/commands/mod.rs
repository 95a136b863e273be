//! One module per subcommand: `pub fn run(args, global) -> Result<u8>` (the exit code).
//!
//! Shared here: opening the node transport, turning command-line overrides into a profile
//! layer, reading the root password from where the profile says (never from argv), printing.

pub mod apply;
pub mod completions;
pub mod destroy;
pub mod doctor;
pub mod image;
pub mod inventory;
pub mod profiles;
pub mod single;
pub mod status;

use crate::cli::{GlobalArgs, OutputFormat, Overrides};
use crate::error::{InputError, InputErrors};
use crate::profile::{DockerLayer, Layer, NetworkLayer, PasswordSource, Profile, RootfsLayer};
use crate::transport::Transport;
use crate::transport::local::Local;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::Arc;

/// Subcommands other than the single form and `profiles`.
pub fn dispatch(c: &crate::cli::Command, g: &GlobalArgs) -> Result<u8> {
    match c {
        crate::cli::Command::Doctor(a) => doctor::run(a, g),
        crate::cli::Command::Apply(a) => apply::run(a, g),
        crate::cli::Command::Status(a) => status::run(a, g),
        crate::cli::Command::Destroy(a) => destroy::run(a, g),
        crate::cli::Command::Inventory(a) => inventory::run(a, g),
        crate::cli::Command::Image(a) => image::run(a, g),
        crate::cli::Command::Completions { shell } => completions::run(*shell),
        crate::cli::Command::Man { dir } => completions::man(dir),
        crate::cli::Command::CompleteProfiles => completions::profile_names(),
        _ => anyhow::bail!("{c:?}: not built yet"),
    }
}

/// The node transport: local processes, or SSH with --host.
pub fn open_node(g: &GlobalArgs) -> Result<Arc<dyn Transport>> {
    match &g.host {
        None => Ok(Arc::new(Local)),
        Some(h) => ssh_node(g, h),
    }
}

fn ssh_node(g: &GlobalArgs, host: &str) -> Result<Arc<dyn Transport>> {
    use crate::transport::ssh::{Ssh, SshTarget};
    let target = SshTarget::parse(host).map_err(|e| {
        InputErrors(vec![InputError::whole(
            "command line",
            "--host",
            format!("{e:#}"),
        )])
    })?;
    let s = Ssh::connect(target, &ssh_options(g))?;
    Ok(Arc::new(s))
}

/// Opens a cluster member (see [`crate::cluster::reach`]): root's key on a node, the
/// command line's keys with `--host`; the cluster's known_hosts either way.
pub fn member_opener(
    g: &GlobalArgs,
) -> impl Fn(&crate::cluster::Member, &dyn Transport) -> Result<Arc<dyn Transport>> + Sync + use<> {
    let base = ssh_options(g);
    let on_node = g.host.is_none();
    move |m, via| crate::cluster::reach::open_member(m, via, &base, on_node)
}

/// SSH settings from the command line (for nodes, and the keys for containers reached over SSH).
pub fn ssh_options(g: &GlobalArgs) -> crate::transport::ssh::SshOptions {
    let mut opts = crate::transport::ssh::SshOptions::default();
    if !g.identity.is_empty() {
        opts.identities = g.identity.clone();
    }
    opts.passphrase_env = g.ssh_passphrase_env.clone();
    opts.accept_new_host_key = g.accept_new_host_key;
    opts.allow_password = g.ssh_allow_password;
    if !g.known_hosts.is_empty() {
        opts.known_hosts = g.known_hosts.clone();
    }
    opts
}

/// Command-line overrides as the top profile layer.
pub fn overrides_layer(o: &Overrides) -> Layer {
    let mut l = Layer {
        template: o.template.clone(),
        template_storage: o.template_storage.clone(),
        memory: o.memory,
        swap: o.swap,
        cores: o.cores,
        ..Layer::default()
    };
    if o.storage.is_some() || o.disk.is_some() {
        l.rootfs = Some(RootfsLayer {
            storage: o.storage.clone(),
            size: o.disk,
        });
    }
    if o.bridge.is_some() || o.ip.is_some() || o.gateway.is_some() || o.vlan.is_some() {
        l.network = Some(NetworkLayer {
            bridge: o.bridge.clone(),
            ip: o.ip.clone(),
            gateway: o.gateway.clone(),
            vlan: o.vlan,
            ..NetworkLayer::default()
        });
    }
    if o.storage_driver.is_some() {
        l.docker = Some(DockerLayer {
            storage_driver: o.storage_driver.clone(),
            ..DockerLayer::default()
        });
    }
    l
}

/// Reads the root password from the profile's source. Errors are input errors (exit 2).
pub fn read_password(p: &Profile) -> Result<Option<String>> {
    let Some(src) = &p.root_password else {
        return Ok(None);
    };
    let err = |m: String| {
        InputErrors(vec![InputError::whole(
            format!("profile {}", p.name),
            "root_password",
            m,
        )])
    };
    // Neither the variable's name nor the file's path is shown: a password typed into
    // `env = ...` or `file = ...` by mistake must not reach a terminal or a CI log.
    let pw = match src {
        PasswordSource::Env(var) => std::env::var(var).map_err(|_| {
            err("the environment variable named in root_password.env is not set (or not UTF-8); its name is not shown, in case it is the password itself".into())
        })?,
        PasswordSource::File(path) => {
            let bytes = crate::input::read_input(std::path::Path::new(path), crate::input::PASSWORD_LIMIT)
                .map_err(|e| err(format!("cannot read the file named in root_password.file (its path is not shown, in case it is the password itself): {}", io_reason(&e))))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| err("the password file is not UTF-8 text".into()))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        PasswordSource::Prompt(false) => return Ok(None),
        PasswordSource::Prompt(true) => {
            if !std::io::stdin().is_terminal() {
                return Err(err("root_password = { prompt = true } needs a terminal; use { env = \"VAR\" } or { file = \"/path\" } in CI".into()).into());
            }
            rpassword::prompt_password("root password for the container: ")
                .context("reading the password")?
        }
    };
    if pw.chars().count() < 5 {
        return Err(err("the password is shorter than 5 characters (PVE's minimum)".into()).into());
    }
    // chpasswd reads `user:password` lines: a newline would start a second entry.
    if pw.contains(['\n', '\r', '\0']) {
        return Err(err("the password contains a newline or NUL".into()).into());
    }
    Ok(Some(pw))
}

/// An I/O error's reason without the path some errors carry.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> Result<()> {
    crate::outln!(
        "{}",
        crate::error::json_safe(&serde_json::to_string_pretty(v)?)
    );
    Ok(())
}

/// Asks "proceed?" on a terminal; true without a terminal or with --yes.
pub fn confirm(g: &GlobalArgs, question: &str) -> Result<bool> {
    if g.yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(true);
    }
    crate::err!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Format selector.
pub fn json(g: &GlobalArgs) -> bool {
    g.output == OutputFormat::Json
}
