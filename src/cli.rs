//! Command-line interface (clap derive). Doc comments are the help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Docker-ready unprivileged LXC containers on Proxmox VE, from TOML profiles.
///
/// Run as root on a PVE node (or reach one with --host). `provision NAME --profile PROFILE`
/// creates the container NAME (or brings an existing one made by provision back to its
/// profile): pct create with the profile's template, resources, network and features, start,
/// Docker installed and configured inside, and a real `docker run` to prove it works. Running
/// it again changes nothing when everything is in place.
///
/// Exit codes: 0 done or already as specified; 1 a container could not be brought to its
/// profile; 2 usage, profile or configuration error (nothing was changed).
#[derive(Parser, Debug)]
#[command(
    name = "provision",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROVISION_COMMIT"), ")"),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  provision web1 --profile docker --dry-run\n  provision web1 --profile docker --memory 4096 --yes\n  provision apply examples/ci-lab.toml --jobs 4\n  provision profiles show docker"
)]
pub struct Cli {
    /// Subcommands; without one, NAME --profile PROFILE provisions one container.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The single-container form.
    #[command(flatten)]
    pub single: SingleArgs,
    /// Options for every form.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// For CI and scripts (stdout is one JSON document).
    Json,
}

/// Options shared by every form.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Show the plan (every command, secrets masked) and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Output format of plans and reports.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG works too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress display.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Do not ask for confirmation on a terminal.
    #[arg(short, long, global = true)]
    pub yes: bool,
    /// Reach the PVE node over SSH: [user@]host[:port] (default: run pct here).
    #[arg(long, global = true, value_name = "[USER@]HOST[:PORT]")]
    pub host: Option<String>,
    /// SSH private key for --host (repeatable; ssh-agent is tried first).
    #[arg(long, global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Environment variable holding the passphrase of the --identity key (never on argv).
    #[arg(long, global = true, value_name = "VAR")]
    pub ssh_passphrase_env: Option<String>,
    /// Allow SSH password authentication for --host, with the password from the environment
    /// variable PROVISION_SSH_PASSWORD (never from argv); off by default.
    #[arg(long, global = true)]
    pub ssh_allow_password: bool,
    /// Record an unknown SSH host key in ~/.ssh/known_hosts instead of refusing (a changed key
    /// is always refused).
    #[arg(long, global = true)]
    pub accept_new_host_key: bool,
    /// known_hosts file to check (repeatable; default ~/.ssh/known_hosts and
    /// /etc/ssh/ssh_known_hosts).
    #[arg(long, global = true, value_name = "FILE")]
    pub known_hosts: Vec<PathBuf>,
}

/// What may be changed on existing containers.
#[derive(Args, Debug, Clone, Default)]
pub struct ChangeArgs {
    /// Restart a running container when changes (features, network...) are pending; without
    /// it they are reported as pending.
    #[arg(long)]
    pub restart: bool,
    /// Take over a container that provision did not create (adds the `provision` tag).
    #[arg(long)]
    pub adopt: bool,
    /// Replace an invalid /etc/docker/daemon.json (a backup is kept) instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Allow changing Docker's storage driver on a container that has one (its images and
    /// containers do not survive the switch).
    #[arg(long)]
    pub allow_storage_switch: bool,
    /// Destroy a container that this run created if it then fails (never one that existed).
    #[arg(long)]
    pub rollback: bool,
    /// Time bound of a step's commands, for every kind (SECONDS) or one kind (KIND=SECONDS;
    /// kinds: template, create, config, start, install, fuse-overlayfs, docker, file,
    /// commands, password, verify). A command that outlives it is killed with its process
    /// group and the step fails naming it. Repeatable.
    #[arg(long, value_name = "[KIND=]SECONDS", value_parser = step_timeout)]
    pub step_timeout: Vec<String>,
}

/// Checks one `--step-timeout` value.
fn step_timeout(s: &str) -> Result<String, String> {
    crate::request::StepTimeouts::default()
        .add(s)
        .map(|()| s.to_string())
        .map_err(|e| format!("{e:#}"))
}

/// Per-run overrides of profile fields (they win over every profile layer).
#[derive(Args, Debug, Clone, Default)]
pub struct Overrides {
    /// Template: short form like ubuntu-24.04 or a volume id local:vztmpl/NAME.
    #[arg(long, help_heading = "Profile overrides")]
    pub template: Option<String>,
    /// Storage holding templates.
    #[arg(long, help_heading = "Profile overrides")]
    pub template_storage: Option<String>,
    /// Memory in MiB.
    #[arg(
        long,
        help_heading = "Profile overrides",
        allow_negative_numbers = true
    )]
    pub memory: Option<i64>,
    /// Swap in MiB.
    #[arg(
        long,
        help_heading = "Profile overrides",
        allow_negative_numbers = true
    )]
    pub swap: Option<i64>,
    /// CPU cores.
    #[arg(
        long,
        help_heading = "Profile overrides",
        allow_negative_numbers = true
    )]
    pub cores: Option<i64>,
    /// Storage for the root disk.
    #[arg(long, help_heading = "Profile overrides")]
    pub storage: Option<String>,
    /// Root disk size in GiB.
    #[arg(
        long,
        help_heading = "Profile overrides",
        allow_negative_numbers = true
    )]
    pub disk: Option<f64>,
    /// Bridge for eth0.
    #[arg(long, help_heading = "Profile overrides")]
    pub bridge: Option<String>,
    /// eth0 address: dhcp, manual or IPv4/CIDR.
    #[arg(long, help_heading = "Profile overrides")]
    pub ip: Option<String>,
    /// IPv4 gateway (with a static --ip).
    #[arg(long, help_heading = "Profile overrides")]
    pub gateway: Option<String>,
    /// VLAN tag.
    #[arg(
        long,
        help_heading = "Profile overrides",
        allow_negative_numbers = true
    )]
    pub vlan: Option<i64>,
    /// Docker storage driver: auto, fuse-overlayfs, overlay2 or vfs.
    #[arg(long, help_heading = "Profile overrides")]
    pub storage_driver: Option<String>,
}

/// `provision NAME --profile PROFILE`.
#[derive(Args, Debug, Clone, Default)]
pub struct SingleArgs {
    /// Hostname of the container to create or converge.
    #[arg(value_name = "NAME", required = true)]
    pub name: Option<String>,
    /// Profile name (see `provision profiles`) or path to a .toml file.
    #[arg(long, short = 'p', required = true)]
    pub profile: Option<String>,
    /// VMID (default: the node's next free ID, chosen under a lock).
    #[arg(long, allow_negative_numbers = true)]
    pub vmid: Option<i64>,
    /// What may be changed.
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Profile overrides.
    #[command(flatten)]
    pub overrides: Overrides,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the profiles provision can see, or show one fully resolved.
    Profiles {
        /// What to do.
        #[command(subcommand)]
        action: Option<Box<ProfilesCmd>>,
    },
    /// Bring every container of a lab file to its entry (create, pct set, Docker...).
    Apply(ApplyArgs),
    /// Show each entry of a lab file: VMID, state, differences, Docker's configured state.
    Status(FileArgs),
    /// Stop and destroy the containers of a lab file (only ones provision created).
    Destroy(DestroyArgs),
    /// Check a node before anything is created: each check OK / WARN / FAIL with the fix.
    Doctor(DoctorArgs),
    /// Write an inventory of a lab file's containers for CI tools (JSON, Ansible, ssh_config).
    Inventory(InventoryArgs),
    /// Node-local images (`image = "auto"`): build, list, prune.
    Image(ImageArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write the man pages (provision.1 and provision-SUBCOMMAND.1) into DIR (packaging).
    #[command(hide = true)]
    Man {
        /// Directory to write into (created when missing).
        dir: PathBuf,
    },
    /// Print the names of the profiles provision can see, one a line (shell completion).
    #[command(name = "complete-profiles", hide = true)]
    CompleteProfiles,
}

/// Shells `provision completions` writes for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// What `provision inventory` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryFormat {
    /// One JSON document: every container with VMID, node, state, addresses, groups.
    Json,
    /// An Ansible inventory in YAML (groups from tags and counted entries, `ansible_host`).
    Ansible,
    /// OpenSSH client configuration: one `Host` block per container.
    SshConfig,
}

/// `inventory`.
#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// File and selection.
    #[command(flatten)]
    pub file: FileArgs,
    /// What to write.
    #[arg(long, value_enum, default_value_t = InventoryFormat::Json)]
    pub format: InventoryFormat,
    /// Write to this file instead of stdout (replaced atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What `provision image` does.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageAction {
    /// Build the images of the profiles (and of the lab file's `image = "auto"` entries) that
    /// are not on the node yet, each once.
    Build,
    /// List the images this tool built on the node, with the profiles and entries using them.
    List,
    /// Remove the images no given profile or lab-file entry uses (only images this tool built).
    Prune,
}

/// `image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// build, list or prune.
    #[arg(value_enum)]
    pub action: ImageAction,
    /// A lab file whose entries with `image = "auto"` count as users of their images.
    pub file: Option<PathBuf>,
    /// Profiles whose images count (repeatable).
    #[arg(long, short = 'p', value_name = "PROFILE")]
    pub profile: Vec<String>,
}

/// `profiles` actions.
#[derive(Subcommand, Debug)]
pub enum ProfilesCmd {
    /// Print the fully resolved profile (after extends and overrides) as TOML.
    Show {
        /// Profile name or path.
        name: String,
        /// Overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
}

/// A lab file.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Only these entries (container names).
    #[arg(long, num_args = 1..)]
    pub only: Vec<String>,
}

/// `apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// File and selection.
    #[command(flatten)]
    pub file: FileArgs,
    /// How many containers are worked on at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// What may be changed.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `destroy`.
#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// File and selection.
    #[command(flatten)]
    pub file: FileArgs,
    /// Also destroy containers that match an entry but lack the provision tag.
    #[arg(long)]
    pub force: bool,
    /// Also delete the containers' volumes besides the root disk (mount point volumes and
    /// unused volumes); without it a container holding such volumes is refused. Bind-mounted
    /// node paths are never touched.
    #[arg(long)]
    pub delete_volumes: bool,
    /// Keep the containers' data volumes by handing them to container VMID first (PVE's
    /// `pct move-volume --target-vmid`: renamed for their new owner, mounted there at the same
    /// path); the volume ids they get are reported. A volume whose path VMID already mounts
    /// stays, and is refused without --delete-volumes.
    #[arg(long, value_name = "VMID")]
    pub move_volumes_to: Option<u32>,
}

/// `doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// A lab file whose containers are checked for (templates, storages, key quota).
    pub file: Option<PathBuf>,
    /// Profile to check for (without a file).
    #[arg(long, short = 'p', default_value = "docker")]
    pub profile: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_form_parses_exactly_as_typed() {
        let c = Cli::try_parse_from(["provision", "mycontainer", "--profile", "docker"]).unwrap();
        assert_eq!(c.single.name.as_deref(), Some("mycontainer"));
        assert_eq!(c.single.profile.as_deref(), Some("docker"));
        assert!(c.command.is_none());
    }

    #[test]
    fn subcommands_do_not_need_name() {
        let c = Cli::try_parse_from(["provision", "profiles"]).unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Profiles { action: None })
        ));
        let c = Cli::try_parse_from(["provision", "apply", "lab.toml", "-j", "8", "--dry-run"])
            .unwrap();
        assert!(c.global.dry_run);
    }

    #[test]
    fn name_without_profile_is_a_usage_error() {
        let e = Cli::try_parse_from(["provision", "web"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
