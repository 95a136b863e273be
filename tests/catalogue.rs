//! Bad input, before anything changes: a catalogue of hostile profiles, files and command lines.
//!
//! Every case runs the real binary in a temporary directory whose PATH starts with recording
//! shims for every program the tool could start on a node (pct, pveam, pvesm, pvesh and the few
//! helpers it runs there). Each shim appends its argv to one log and fails. For every case the
//! binary must exit with 2, say where the bad value is (`FILE:LINE:COL: FIELD:` for files,
//! `command line: OPTION:` for arguments) and what is wrong, and the log must stay empty: input
//! is refused before a single command runs.
//!
//! The catalogue is two tables, profiles and command lines ([`cases`]) and lab files for
//! `provision apply|status|destroy` ([`lab_cases`]); growing it is adding a line. Cases that
//! need several files or exact bytes copy a directory from tests/fixtures/catalogue.

use assert_cmd::Command;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Programs shimmed on PATH: the PVE tools and what the tool runs on a node besides them.
const SHIMS: &[&str] = &[
    "pct",
    "pveam",
    "pvesm",
    "pvesh",
    "sha256sum",
    "cat",
    "rm",
    "sh",
    "curl",
    "ssh",
];

/// One hostile input and what the refusal must say.
struct Case {
    /// What the case is about (shown when it fails).
    name: &'static str,
    /// Files written into the case directory: relative path -> bytes.
    files: Vec<(String, Vec<u8>)>,
    /// A fixture directory (under tests/fixtures/catalogue) copied into the case directory.
    fixture: Option<&'static str>,
    /// Arguments after the program name.
    args: Vec<OsString>,
    /// Extra environment.
    env: Vec<(&'static str, OsString)>,
    /// Substrings stderr must contain.
    expect: Vec<String>,
    /// Substrings stderr must not contain (secrets).
    absent: Vec<String>,
    /// Files that are not regular files, made in the case directory.
    special: Vec<Special>,
}

/// A file that is not a plain regular file, made in the case directory.
enum Special {
    /// A FIFO (named pipe) with no writer: opening it for reading blocks.
    Fifo(&'static str),
    /// A symbolic link PATH -> TARGET.
    Link(&'static str, &'static str),
    /// A directory.
    Dir(&'static str),
}

/// The profile file most cases write, as the binary shows it.
const P: &str = "./p.toml";

/// The lab file of the lab-file cases.
const L: &str = "./lab.toml";

/// A lab file's usual first lines: every entry starts from the docker profile.
const D: &str = "[defaults]\nprofile = \"docker\"\n";

impl Case {
    /// `provision web --profile ./p.toml` with `text` as p.toml.
    fn profile(name: &'static str, text: impl Into<Vec<u8>>) -> Case {
        Case {
            name,
            files: vec![("p.toml".into(), text.into())],
            fixture: None,
            args: ["web", "--profile", P].map(OsString::from).to_vec(),
            env: Vec::new(),
            expect: Vec::new(),
            absent: Vec::new(),
            special: Vec::new(),
        }
    }

    /// `provision apply ./lab.toml` with `text` as lab.toml.
    fn lab(name: &'static str, text: impl Into<Vec<u8>>) -> Case {
        let mut c = Case::cli(name, &["apply", L]);
        c.files.push(("lab.toml".into(), text.into()));
        c
    }

    /// The error is at LINE:COL of lab.toml, in FIELD.
    fn at_l(self, line: usize, col: usize, field: &str) -> Case {
        self.at(L, line, col, field)
    }

    /// Replaces the arguments (same files).
    fn args(mut self, args: &[&str]) -> Case {
        self.args = args.iter().map(OsString::from).collect();
        self
    }

    /// `provision ARGS...` with no files.
    fn cli(name: &'static str, args: &[&str]) -> Case {
        Case {
            name,
            files: Vec::new(),
            fixture: None,
            args: args.iter().map(OsString::from).collect(),
            env: Vec::new(),
            expect: Vec::new(),
            absent: Vec::new(),
            special: Vec::new(),
        }
    }

    /// `provision web --profile PROFILE` in a copy of a fixture directory.
    fn fixture(name: &'static str, dir: &'static str, profile: &str) -> Case {
        let mut c = Case::cli(name, &["web", "--profile", profile]);
        c.fixture = Some(dir);
        c
    }

    /// Replaces the arguments with raw bytes (non-UTF-8 argv).
    fn raw_args(mut self, args: &[&[u8]]) -> Case {
        self.args = args
            .iter()
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        self
    }

    /// The error is at FILE:LINE:COL, in FIELD (empty: no field, e.g. a TOML syntax error).
    fn at(mut self, file: &str, line: usize, col: usize, field: &str) -> Case {
        self.expect.push(if field.is_empty() {
            format!("{file}:{line}:{col}: ")
        } else {
            format!("{file}:{line}:{col}: {field}: ")
        });
        self
    }

    /// The error is at LINE:COL of p.toml, in FIELD.
    fn at_p(self, line: usize, col: usize, field: &str) -> Case {
        self.at(P, line, col, field)
    }

    /// The error is about a whole file (no line), optionally naming a field.
    fn whole(mut self, file: &str, field: &str) -> Case {
        self.expect.push(if field.is_empty() {
            format!("{file}: ")
        } else {
            format!("{file}: {field}: ")
        });
        self
    }

    /// The error is on the command line, at OPTION.
    fn cl(mut self, option: &str) -> Case {
        self.expect.push(format!("command line: {option}: "));
        self
    }

    /// stderr also says this.
    fn says(mut self, s: &str) -> Case {
        self.expect.push(s.to_string());
        self
    }

    /// stderr never shows this (a secret).
    fn hides(mut self, s: &str) -> Case {
        self.absent.push(s.to_string());
        self
    }

    /// Sets an environment variable for the run.
    fn env(mut self, k: &'static str, v: impl Into<OsString>) -> Case {
        self.env.push((k, v.into()));
        self
    }

    /// Adds a FIFO to the case directory.
    fn fifo(mut self, path: &'static str) -> Case {
        self.special.push(Special::Fifo(path));
        self
    }

    /// Adds a symbolic link PATH -> TARGET to the case directory.
    fn link(mut self, path: &'static str, target: &'static str) -> Case {
        self.special.push(Special::Link(path, target));
        self
    }

    /// Adds a directory to the case directory.
    fn dir(mut self, path: &'static str) -> Case {
        self.special.push(Special::Dir(path));
        self
    }

    /// Adds a file to the case directory.
    fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Case {
        self.files.push((path.to_string(), bytes.into()));
        self
    }
}

/// A `[[files]]` entry with `dest` written as a TOML basic string (escapes allowed).
fn files_dest(dest: &str) -> String {
    format!("template = \"debian-12\"\n[[files]]\ndest = \"{dest}\"\ncontent = \"x\"\n")
}

/// One `[[mounts]]` entry (line 3 on) after a template line: `body` holds its keys.
fn mount(body: &str) -> String {
    format!("template = \"debian-12\"\n[[mounts]]\n{body}")
}

/// N counted entries `rI-{n}` of count C (three lines each), then `tail`.
fn many(n: usize, count: u32, tail: &str) -> String {
    let mut s: String = (0..n)
        .map(|i| format!("[[container]]\nname = \"r{i}-{{n}}\"\ncount = {count}\n"))
        .collect();
    s.push_str(tail);
    s
}

/// The whole catalogue.
fn cases() -> Vec<Case> {
    let label64 = "a".repeat(64);
    let name256 = ["abcdefghij"; 26].join(".");
    let long_description = format!("description = \"{}\"\n", "d".repeat(8180));
    let mut huge = b"template = \"debian-12\"\n".to_vec();
    huge.extend(std::iter::repeat_n(b'#', (1 << 20) + 1));
    vec![
        // ---- Malformed TOML.
        Case::profile("unclosed string", "template = \"debian-12\n")
            .at_p(1, 22, "")
            .says("invalid basic string"),
        Case::profile("duplicate key", "memory = 1024\nmemory = 2048\n")
            .at_p(2, 1, "")
            .says("duplicate key"),
        Case::profile("key without value", "template\n")
            .at_p(1, 9, "")
            .says("expected `=`"),
        Case::profile("unclosed table header", "[network\nbridge = \"vmbr0\"\n")
            .at_p(1, 9, "")
            .says("unclosed table"),
        Case::profile(
            "table defined twice",
            "[network]\nbridge = \"vmbr0\"\n[network]\nip = \"dhcp\"\n",
        )
        .at_p(3, 2, "")
        .says("duplicate key"),
        Case::profile("invalid escape", "template = \"deb\\qian\"\n")
            .at_p(1, 17, "")
            .says("escaped value"),
        Case::profile("JSON instead of TOML", "{\"template\": \"debian-12\"}\n")
            .at_p(1, 1, "")
            .says("invalid"),
        Case::profile("NUL byte", "template = \"debian-12\"\n\0\n")
            .at_p(2, 1, "")
            .says("NUL byte"),
        // ---- Wrong types.
        Case::profile("memory as text", "memory = \"lots\"\n")
            .at_p(1, 10, "memory")
            .says("invalid type"),
        Case::profile("tags as one string", "tags = \"docker\"\n")
            .at_p(1, 8, "tags")
            .says("expected a sequence"),
        Case::profile("feature as text", "[features]\nnesting = \"yes\"\n")
            .at_p(2, 11, "features.nesting")
            .says("expected a boolean"),
        Case::profile(
            "feature carrying a property",
            "[features]\nnesting = \"1,mount=nfs\"\n",
        )
        .at_p(2, 11, "features.nesting")
        .says("expected a boolean"),
        Case::profile("files as a table", "files = {}\n")
            .at_p(1, 9, "files")
            .says("expected a sequence"),
        Case::profile("fractional cores", "cores = 1.5\n")
            .at_p(1, 9, "cores")
            .says("invalid type"),
        Case::profile("vmid as text", "vmid = \"100\"\n")
            .at_p(1, 8, "vmid")
            .says("invalid type"),
        Case::profile("network as text", "network = \"vmbr0\"\n")
            .at_p(1, 11, "network")
            .says("invalid type"),
        Case::profile("command as a string", "commands = [\"reboot\"]\n")
            .at_p(1, 13, "commands[0]")
            .says("expected a sequence"),
        Case::profile("disk size with unit", "[rootfs]\nsize = \"8G\"\n")
            .at_p(2, 8, "rootfs.size")
            .says("invalid type"),
        Case::profile("extends as a number", "extends = 42\n")
            .at_p(1, 11, "extends")
            .says("invalid type"),
        Case::profile(
            "plain password in the profile is refused without echoing it",
            "template = \"debian-12\"\nroot_password = \"hunter22-secret\"\n",
        )
        .at_p(2, 17, "root_password")
        .says("never written into a profile")
        .hides("hunter22"),
        // ---- Unknown keys.
        Case::profile("misspelt key", "template = \"debian-12\"\nmemroy = 512\n")
            .at_p(2, 1, "memroy")
            .says("unknown field"),
        Case::profile("unknown nested key", "[network]\nipp = \"dhcp\"\n")
            .at_p(2, 1, "network.ipp")
            .says("unknown field"),
        Case::profile("unknown table", "[dokcer]\ninstall = \"distro\"\n")
            .at_p(1, 2, "dokcer")
            .says("unknown field"),
        Case::profile(
            "unknown deep key",
            "[docker.fuse_overlayfs]\nsha = \"00\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.sha")
        .says("unknown field"),
        Case::profile(
            "unknown password source",
            "root_password = { envv = \"PW\" }\n",
        )
        .at_p(1, 19, "root_password.envv")
        .says("root_password is { env"),
        Case::profile(
            "unknown key in a files entry",
            "[[files]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nowner = \"root\"\n",
        )
        .at_p(4, 1, "files[0].owner")
        .says("unknown field"),
        // ---- Out of range.
        Case::profile("vmid below 100", "vmid = 5\n")
            .at_p(1, 1, "vmid")
            .says("out of range"),
        Case::profile("vmid above the maximum", "vmid = 1000000000\n")
            .at_p(1, 1, "vmid")
            .says("out of range"),
        Case::profile("zero cores", "cores = 0\n")
            .at_p(1, 1, "cores")
            .says("out of range"),
        Case::profile("too many cores", "cores = 8193\n")
            .at_p(1, 1, "cores")
            .says("out of range"),
        Case::profile("memory below PVE's minimum", "memory = 8\n")
            .at_p(1, 1, "memory")
            .says("out of range"),
        Case::profile("memory beyond i64", "memory = 99999999999999999999\n")
            .at_p(1, 10, "memory")
            .says("i64"),
        Case::profile("negative swap", "swap = -1\n")
            .at_p(1, 1, "swap")
            .says("out of range"),
        Case::profile("VLAN 4095", "[network]\nvlan = 4095\n")
            .at_p(2, 1, "network.vlan")
            .says("out of range"),
        Case::profile("MTU 63", "[network]\nmtu = 63\n")
            .at_p(2, 1, "network.mtu")
            .says("out of range"),
        Case::profile("zero disk", "[rootfs]\nsize = 0\n")
            .at_p(2, 1, "rootfs.size")
            .says("out of range"),
        Case::profile("NaN disk", "[rootfs]\nsize = nan\n")
            .at_p(2, 1, "rootfs.size")
            .says("out of range"),
        Case::profile("infinite disk", "[rootfs]\nsize = inf\n")
            .at_p(2, 1, "rootfs.size")
            .says("out of range"),
        Case::profile("description longer than PVE keeps", long_description)
            .at_p(1, 1, "description")
            .says("at most"),
        // ---- Hostnames and tags PVE refuses.
        Case::profile("underscore in hostname", "hostname = \"web_1\"\n")
            .at_p(1, 1, "hostname")
            .says("not a valid hostname"),
        Case::profile("hostname starting with a hyphen", "hostname = \"-web\"\n")
            .at_p(1, 1, "hostname")
            .says("not a valid hostname"),
        Case::profile(
            "hostname label of 64 characters",
            format!("hostname = \"{label64}.lab\"\n"),
        )
        .at_p(1, 1, "hostname")
        .says("not a valid hostname"),
        Case::profile("tag with a separator", "tags = [\"ok\", \"a;b\"]\n")
            .at_p(1, 15, "tags[1]")
            .says("not a valid tag"),
        Case::profile("tag starting with a hyphen", "tags = [\"-x\"]\n")
            .at_p(1, 9, "tags[0]")
            .says("not a valid tag"),
        Case::profile("tag with a newline", "tags = [\"docker\\nprovision\"]\n")
            .at_p(1, 9, "tags[0]")
            .says("not a valid tag"),
        Case::profile("tag with a substitution", "tags = [\"$(id)\"]\n")
            .at_p(1, 9, "tags[0]")
            .says("not a valid tag"),
        Case::profile("hostname in the profile with a command", "hostname = \"web;reboot\"\n")
            .at_p(1, 1, "hostname")
            .says("not a valid hostname"),
        Case::profile("tag with a space", "tags = [\"a b\"]\n")
            .at_p(1, 9, "tags[0]")
            .says("not a valid tag"),
        // ---- Property-string injection (a value carrying `,key=value`).
        Case::profile("storage carrying size=", "[rootfs]\nstorage = \"local,size=1\"\n")
            .at_p(2, 1, "rootfs.storage")
            .says("not a valid storage ID"),
        Case::profile(
            "bridge carrying firewall=",
            "[network]\nbridge = \"vmbr0,firewall=0\"\n",
        )
        .at_p(2, 1, "network.bridge")
        .says("not a valid bridge name"),
        Case::profile("ip carrying gw=", "[network]\nip = \"dhcp,gw=1.2.3.4\"\n")
            .at_p(2, 1, "network.ip")
            .says("not an IPv4 address"),
        Case::profile("ip6 carrying gw6=", "[network]\nip6 = \"auto,gw6=fe80::1\"\n")
            .at_p(2, 1, "network.ip6")
            .says("not an IPv6 address"),
        Case::profile(
            "gateway carrying tag=",
            "[network]\nip = \"10.0.0.5/24\"\ngateway = \"10.0.0.1,tag=5\"\n",
        )
        .at_p(3, 1, "network.gateway")
        .says("not an IPv4 address"),
        Case::profile(
            "MAC carrying bridge=",
            "[network]\nhwaddr = \"BC:24:11:00:00:02,bridge=vmbr9\"\n",
        )
        .at_p(2, 1, "network.hwaddr")
        .says("not a MAC address"),
        Case::profile(
            "template storage carrying content=",
            "template_storage = \"local,content=rootdir\"\n",
        )
        .at_p(1, 1, "template_storage")
        .says("not a valid storage ID"),
        Case::profile(
            "template volume carrying size=",
            "template = \"local:vztmpl/x.tar.zst,size=1\"\n",
        )
        .at_p(1, 1, "template")
        .says("characters PVE does not use"),
        Case::profile("two nameservers in one", "nameserver = [\"1.1.1.1,8.8.8.8\"]\n")
            .at_p(1, 15, "nameserver[0]")
            .says("not an IP address"),
        // ---- Files: destinations and entries.
        Case::profile("dest climbing out with ..", files_dest("../etc/passwd"))
            .at_p(3, 1, "files[0].dest")
            .says("not an absolute path"),
        Case::profile("relative dest", files_dest("etc/passwd"))
            .at_p(3, 1, "files[0].dest")
            .says("not an absolute path"),
        Case::profile("dest with .. inside", files_dest("/etc/../etc/shadow"))
            .at_p(3, 1, "files[0].dest")
            .says("`..`"),
        // ---- Managed paths in other spellings (issue 13): every check sees the normal form.
        Case::profile("daemon.json spelled with /./", files_dest("/etc/docker/./daemon.json"))
            .at_p(3, 1, "files[0].dest")
            .says("is /etc/docker/daemon.json: /etc/docker/daemon.json is managed by provision"),
        Case::profile("daemon.json spelled with //", files_dest("/etc//docker/daemon.json"))
            .at_p(3, 1, "files[0].dest")
            .says("managed by provision"),
        Case::profile("daemon.json with a trailing /.", files_dest("/etc/docker/daemon.json/."))
            .at_p(3, 1, "files[0].dest")
            .says("managed by provision"),
        Case::profile(
            "fuse-overlayfs spelled with a leading //",
            files_dest("//usr/local/bin/fuse-overlayfs"),
        )
        .at_p(3, 1, "files[0].dest")
        .says("is /usr/local/bin/fuse-overlayfs"),
        Case::profile("state file spelled with /./", files_dest("/var/lib/provision/./state"))
            .at_p(3, 1, "files[0].dest")
            .says("provision's record"),
        Case::profile(
            "staging name spelled with /./",
            files_dest("/etc/./motd.provision-new"),
        )
        .at_p(3, 1, "files[0].dest")
        .says("temporary and backup files"),
        Case::profile(
            "one destination in two spellings",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/motd\"\ncontent = \"x\"\n[[files]]\ndest = \"/etc/./motd\"\ncontent = \"y\"\n",
        )
        .at_p(6, 1, "files[1].dest")
        .says("\"/etc/motd\" is also the destination of files[0]"),
        Case::profile("dest that is the root", files_dest("/."))
            .at_p(3, 1, "files[0].dest")
            .says("root directory"),
        // ---- Invisible and terminal-driving characters in input (issue 13): shown escaped.
        Case::profile("a key with a right-to-left mark", "\"template\u{200f}\" = \"debian-12\"\n")
            .says("\\u{200f}"),
        Case::profile(
            "a value with an OSC 52 clipboard write",
            "template = \"x\\u001b]52;c;cm0gLXJmIC8=\\u0007\"\n",
        )
        .at_p(1, 1, "template")
        .says("\\u{1b}]52"),
        Case::profile("a key with a C1 CSI", "\"memory\u{9b}2J\" = 1\n").says("\\u{9b}"),
        Case::profile("a key with a zero-width joiner", "\"mem\u{200d}ory\" = 512\n")
            .says("\\u{200d}"),
        Case::profile("a key with a byte-order mark inside", "\"me\u{feff}mory\" = 512\n")
            .says("\\u{feff}"),
        // ---- Messages that say what is wrong (issue 13).
        Case::profile("a date where a number goes", "memory = 1979-05-27\n")
            .at_p(1, 10, "memory")
            .says("invalid type: date-time `1979-05-27`, expected"),
        Case::profile("a date-time as the hostname", "hostname = 1979-05-27T07:32:00Z\n")
            .at_p(1, 12, "hostname")
            .says("date-time `1979-05-27T07:32:00Z`"),
        Case::cli("profiles show with an empty name", &["profiles", "show", ""])
            .cl("profiles show NAME")
            .says("is not a profile name"),
        Case::cli("profiles show with a missing file", &["profiles", "show", "./nope.toml"])
            .cl("profiles show NAME"),
        Case::cli(
            "a relative password file is read next to the profile, not in the working directory",
            &["web", "--profile", "./sub/p.toml"],
        )
        .file(
            "sub/p.toml",
            "template = \"debian-12\"\nroot_password = { file = \"pw\" }\n",
        )
        .file("pw", "from-the-working-directory")
        // The working directory has a `pw`: the error shows it was not the one read.
        .says("cannot read the file named in root_password.file"),
        Case::profile("dest naming a directory", files_dest("/etc/"))
            .at_p(3, 1, "files[0].dest")
            .says("names a directory"),
        Case::profile("dest with a newline", files_dest("/tmp/a\\nb"))
            .at_p(3, 1, "files[0].dest")
            .says("control character"),
        Case::profile("dest with a tab", files_dest("/tmp/a\\tb"))
            .at_p(3, 1, "files[0].dest")
            .says("control character"),
        Case::profile("dest with an escape sequence", files_dest("/tmp/a\\u001b[2Jb"))
            .at_p(3, 1, "files[0].dest")
            .says("control character"),
        Case::profile("dest with command substitution", files_dest("/tmp/$(reboot)"))
            .at_p(3, 1, "files[0].dest")
            .says("shell metacharacter"),
        Case::profile("dest with backticks", files_dest("/tmp/`id`"))
            .at_p(3, 1, "files[0].dest")
            .says("shell metacharacter"),
        Case::profile("dest with a semicolon", files_dest("/tmp/a;reboot"))
            .at_p(3, 1, "files[0].dest")
            .says("shell metacharacter"),
        Case::profile("dest is daemon.json", files_dest("/etc/docker/daemon.json"))
            .at_p(3, 1, "files[0].dest")
            .says("managed by provision"),
        Case::profile("dest is a provision temp file", files_dest("/etc/motd.provision-new"))
            .at_p(3, 1, "files[0].dest")
            .says("temporary and backup files"),
        Case::profile(
            "duplicate files dest",
            "[[files]]\ndest = \"/etc/motd\"\ncontent = \"a\"\n[[files]]\ndest = \"/etc/motd\"\ncontent = \"b\"\n",
        )
        .at_p(5, 1, "files[1].dest")
        .says("also the destination of files[0]"),
        Case::profile(
            "content and source together",
            "[[files]]\ndest = \"/etc/motd\"\ncontent = \"a\"\nsource = \"motd\"\n",
        )
        .at_p(1, 1, "files[0]")
        .says("exactly one of `content` and `source`"),
        Case::profile(
            "mode that is not octal",
            "[[files]]\ndest = \"/etc/motd\"\ncontent = \"a\"\nmode = \"0999\"\n",
        )
        .at_p(4, 1, "files[0].mode")
        .says("not an octal file mode"),
        Case::profile(
            "missing source file",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/motd\"\nsource = \"motd.txt\"\n",
        )
        .at_p(4, 1, "files[0].source")
        .says("does not exist"),
        Case::profile(
            "source with a newline",
            "[[files]]\ndest = \"/etc/motd\"\nsource = \"a\\nb\"\n",
        )
        .at_p(3, 1, "files[0].source")
        .says("control character"),
        // ---- Shell metacharacters and newlines in strings that reach commands.
        Case::profile("template with a command", "template = \"ubuntu-24.04; reboot\"\n")
            .at_p(1, 1, "template")
            .says("neither a template short form"),
        Case::profile("template substitution", "template = \"$(id)\"\n")
            .at_p(1, 1, "template")
            .says("neither a template short form"),
        Case::profile(
            "template volume climbing out",
            "template = \"local:vztmpl/../../etc/passwd\"\n",
        )
        .at_p(1, 1, "template")
        .says("characters PVE does not use"),
        Case::profile(
            "template volume with a newline",
            "template = \"local:vztmpl/a.tar.zst\\n--unprivileged 0\"\n",
        )
        .at_p(1, 1, "template")
        .says("characters PVE does not use"),
        Case::profile("nameserver with a command", "nameserver = [\"1.1.1.1; reboot\"]\n")
            .at_p(1, 15, "nameserver[0]")
            .says("not an IP address"),
        Case::profile("nameserver with a newline", "nameserver = [\"1.1.1.1\\n\"]\n")
            .at_p(1, 15, "nameserver[0]")
            .says("not an IP address"),
        Case::profile("searchdomain with a command", "searchdomain = \"lab$(reboot)\"\n")
            .at_p(1, 1, "searchdomain")
            .says("not a valid search domain"),
        Case::profile("searchdomain with a newline", "searchdomain = \"lab\\nx\"\n")
            .at_p(1, 1, "searchdomain")
            .says("not a valid search domain"),
        Case::profile("timezone with a command", "timezone = \"Europe/Berlin; reboot\"\n")
            .at_p(1, 1, "timezone")
            .says("not a timezone"),
        Case::profile("timezone climbing out", "timezone = \"../../etc/shadow\"\n")
            .at_p(1, 1, "timezone")
            .says("not a timezone"),
        Case::profile("timezone like an option", "timezone = \"-x\"\n")
            .at_p(1, 1, "timezone")
            .says("not a timezone"),
        Case::profile("description with an escape", "description = \"a\\u001b[2Jb\"\n")
            .at_p(1, 1, "description")
            .says("control character"),
        // Values pct refuses (issue 12): refused here first, with PVE's reason.
        Case::profile("timezone pct refuses (Etc/UTC)", "timezone = \"Etc/UTC\"\n")
            .at_p(1, 1, "timezone")
            .says("invalid time zone"),
        Case::profile("prefix below 8", "[network]\nip = \"10.0.0.5/7\"\n")
            .at_p(2, 1, "network.ip")
            .says("valid IPv4 CIDR network"),
        Case::profile("SSH key with a cut body", "ssh_public_keys = [\"ssh-ed25519 AAAA\"]\n")
            .at_p(1, 20, "ssh_public_keys[0]")
            .says("SSH public key validation error"),
        Case::profile("SSH key that is a comment", "ssh_public_keys = [\"# my laptop\"]\n")
            .at_p(1, 20, "ssh_public_keys[0]")
            .says("a comment line holds no key"),
        Case::profile(
            "two SSH keys smuggled in one",
            "ssh_public_keys = [\"ssh-ed25519 AAAA a\\nssh-rsa BBBB b\"]\n",
        )
        .at_p(1, 20, "ssh_public_keys[0]")
        .says("not an SSH public key"),
        Case::profile("empty command", "commands = [[]]\n")
            .at_p(1, 13, "commands[0]")
            .says("non-empty argv"),
        Case::profile(
            "fuse-overlayfs path relative",
            "[docker.fuse_overlayfs]\npath = \"bin/fuse-overlayfs\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.path")
        .says("not an absolute path"),
        Case::profile(
            "fuse-overlayfs path with a substitution",
            "[docker.fuse_overlayfs]\npath = \"/usr/bin/$(id)\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.path")
        .says("shell metacharacter"),
        Case::profile(
            "fuse-overlayfs URL with a substitution",
            "[docker.fuse_overlayfs]\nurl = \"https://x.example/$(id)\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.url")
        .says("not an http(s) URL"),
        Case::profile(
            "fuse-overlayfs URL with a space",
            "[docker.fuse_overlayfs]\nurl = \"https://x.example/a b\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.url")
        .says("not an http(s) URL"),
        Case::profile(
            "fuse-overlayfs URL with a pipe",
            "[docker.fuse_overlayfs]\nurl = \"https://x.example/a|sh\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.url")
        .says("not an http(s) URL"),
        Case::profile(
            "fuse-overlayfs URL of a local file",
            "[docker.fuse_overlayfs]\nurl = \"file:///etc/shadow\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.url")
        .says("not an http(s) URL"),
        Case::profile(
            "short sha256",
            "[docker.fuse_overlayfs]\nsha256 = \"abc\"\n",
        )
        .at_p(2, 1, "docker.fuse_overlayfs.sha256")
        .says("not a SHA-256"),
        Case::profile(
            "repository with a newline",
            "[docker]\nrepository = \"https://packages.example/linux/ubuntu\\ntrusted\"\n",
        )
        .at_p(2, 1, "docker.repository")
        .says("not an http(s) URL"),
        Case::profile(
            "repository with backticks",
            "[docker]\nrepository = \"https://x.example/`id`\"\n",
        )
        .at_p(2, 1, "docker.repository")
        .says("not an http(s) URL"),
        Case::profile(
            "repository with apt options",
            "[docker]\nrepository = \"https://x.example/ubuntu [trusted=yes]\"\n",
        )
        .at_p(2, 1, "docker.repository")
        .says("not an http(s) URL"),
        Case::profile(
            "verify image with a command",
            "[docker]\nverify_image = \"busybox; reboot\"\n",
        )
        .at_p(2, 1, "docker.verify_image")
        .says("not an image reference"),
        Case::profile(
            "verify image like an option",
            "[docker]\nverify_image = \"-v/:/host\"\n",
        )
        .at_p(2, 1, "docker.verify_image")
        .says("not an image reference"),
        Case::profile(
            "verify image with a newline",
            "[docker]\nverify_image = \"busybox\\n\"\n",
        )
        .at_p(2, 1, "docker.verify_image")
        .says("not an image reference"),
        Case::profile("install method as a command", "[docker]\ninstall = \"curl|sh\"\n")
            .at_p(2, 1, "docker.install")
            .says("not one of"),
        Case::profile("unknown storage driver", "[docker]\nstorage_driver = \"zfs\"\n")
            .at_p(2, 1, "docker.storage_driver")
            .says("not one of"),
        // ---- Rules across fields.
        Case::profile(
            "URL source without its checksum",
            "[docker.fuse_overlayfs]\nsource = \"url\"\nurl = \"https://x.example/f\"\n",
        )
        .at_p(1, 9, "docker.fuse_overlayfs")
        .says("needs both `url` and `sha256`"),
        Case::profile("docker-ce without repository", "[docker]\ninstall = \"docker-ce\"\n")
            .at_p(2, 1, "docker.install")
            .says("needs docker.repository"),
        Case::profile(
            "gateway with dhcp",
            "[network]\nip = \"dhcp\"\ngateway = \"10.0.0.1\"\n",
        )
        .at_p(3, 1, "network.gateway")
        .says("static `ip`"),
        Case::profile(
            "fuse off with fuse-overlayfs",
            "[features]\nfuse = false\n[docker]\ninstall = \"distro\"\nstorage_driver = \"fuse-overlayfs\"\n",
        )
        .at_p(2, 1, "features.fuse")
        .says("needs the container's fuse feature"),
        // ---- Passwords (read before any command; never shown).
        Case::profile(
            "password variable name with a space",
            "root_password = { env = \"MY PW\" }\n",
        )
        .at_p(1, 1, "root_password")
        .says("not an environment variable name"),
        Case::profile(
            "password variable not set",
            "template = \"debian-12\"\nroot_password = { env = \"PROVISION_TEST_UNSET_PW\" }\n",
        )
        .whole("profile ./p.toml", "root_password")
        .says("is not set"),
        Case::profile(
            "password too short",
            "template = \"debian-12\"\nroot_password = { env = \"PROVISION_TEST_PW\" }\n",
        )
        .env("PROVISION_TEST_PW", "abc")
        .whole("profile ./p.toml", "root_password")
        .says("shorter than 5")
        .hides("abc\n"),
        Case::profile(
            "password file with a second chpasswd line",
            "template = \"debian-12\"\nroot_password = { file = \"pw.txt\" }\n",
        )
        .file("pw.txt", "s3cret-pw\nroot:owned\n")
        .whole("profile ./p.toml", "root_password")
        .says("newline")
        .hides("s3cret-pw")
        .hides("owned"),
        // ---- Encodings, sizes, empty files.
        Case::profile(
            "invalid UTF-8 in a string",
            b"template = \"debian-12\"\ndescription = \"\xff\"\n".to_vec(),
        )
        .at_p(2, 16, "")
        .says("not valid UTF-8"),
        Case::fixture("Latin-1 file", "encodings", "./latin1.toml")
            .at("./latin1.toml", 2, 19, "")
            .says("not valid UTF-8"),
        Case::fixture("UTF-16 file", "encodings", "./utf16.toml")
            .at("./utf16.toml", 1, 1, "")
            .says("not valid UTF-8"),
        Case::profile("file over 1 MiB", huge)
            .whole(P, "")
            .says("larger than 1048576 bytes"),
        Case::profile("empty file", "")
            .whole(P, "")
            .says("the file is empty"),
        Case::profile("comments only", "# nothing here\n\n   # really\n")
            .whole(P, "")
            .says("the file is empty"),
        // ---- Files that are not regular files, or are huge (issue 13, class 2): refused
        // without being opened or read past their limit; a FIFO never hangs the run.
        Case::cli("profile is /dev/zero", &["web", "--profile", "/dev/zero"])
            .whole("/dev/zero", "")
            .says("a character device, not a regular file"),
        Case::cli("profile is /dev/urandom", &["web", "--profile", "/dev/urandom"])
            .whole("/dev/urandom", "")
            .says("a character device"),
        Case::cli("profile is a FIFO", &["web", "--profile", "./fifo.toml"])
            .fifo("fifo.toml")
            .whole("./fifo.toml", "")
            .says("a FIFO (named pipe), not a regular file"),
        Case::cli("profile is a directory", &["web", "--profile", "./d.toml"])
            .dir("d.toml")
            .whole("./d.toml", "")
            .says("a directory"),
        Case::profile("extends /dev/zero", "extends = \"/dev/zero\"\n")
            .whole("/dev/zero", "")
            .says("a character device"),
        Case::profile("extends a FIFO", "extends = \"./fifo.toml\"\n")
            .fifo("fifo.toml")
            .says("a FIFO"),
        Case::cli(
            "no profile named X, with FIFOs in the search directories",
            &["web", "--profile", "nope"],
        )
        .fifo("profiles/nope.toml")
        .fifo("profiles/other.toml")
        .fifo("config/provision/profiles/third.toml")
        .cl("--profile")
        .says("no profile named \"nope\""),
        Case::profile(
            "password file is /dev/zero",
            "template = \"debian-12\"\nroot_password = { file = \"/dev/zero\" }\n",
        )
        .whole("profile ./p.toml", "root_password")
        .says("a character device"),
        Case::profile(
            "password file is a FIFO",
            "template = \"debian-12\"\nroot_password = { file = \"pw.fifo\" }\n",
        )
        .fifo("pw.fifo")
        .whole("profile ./p.toml", "root_password")
        .says("a FIFO"),
        Case::profile(
            "password file over 4 KiB",
            "template = \"debian-12\"\nroot_password = { file = \"pw.txt\" }\n",
        )
        .file("pw.txt", vec![b'p'; 5000])
        .whole("profile ./p.toml", "root_password")
        .says("larger than 4096 bytes")
        .hides("ppppp"),
        Case::profile(
            "files.source is /dev/urandom",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"/dev/urandom\"\n",
        )
        .at_p(4, 1, "files[0].source")
        .says("/dev/urandom is a character device, not a regular file"),
        Case::profile(
            "files.source is a FIFO",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"x.fifo\"\n",
        )
        .fifo("x.fifo")
        .at_p(4, 1, "files[0].source")
        .says("is a FIFO (named pipe), not a regular file"),
        Case::profile(
            "files.source over 16 MiB",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"big\"\n",
        )
        .file("big", vec![b'x'; (16 << 20) + 1])
        .whole("profile ./p.toml", "files")
        .says("larger than 16777216 bytes"),
        Case::profile(
            "access.identity is /dev/zero",
            "template = \"debian-12\"\n[access]\nmethod = \"ssh\"\nidentity = \"/dev/zero\"\n",
        )
        .whole("profile ./p.toml", "access.identity")
        .says("a character device"),
        // ---- Secrets and host files carried into a container (class 3).
        Case::profile(
            "files.source is this process's environment",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"/proc/self/environ\"\n",
        )
        .env("PROVISION_TEST_PW", "s3cret-env-pw")
        .whole("profile ./p.toml", "files")
        .says("lies under /proc")
        .hides("s3cret-env-pw"),
        Case::profile(
            "files.source is a link to the environment",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"env.txt\"\n",
        )
        .link("env.txt", "/proc/self/environ")
        .env("PROVISION_TEST_PW", "s3cret-env-pw")
        .whole("profile ./p.toml", "files")
        .says("lies under /proc")
        .hides("s3cret-env-pw"),
        Case::profile(
            "files.source under /proc/1",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"/proc/1/cmdline\"\n",
        )
        .whole("profile ./p.toml", "files")
        .says("lies under /proc"),
        Case::profile(
            "files.source under /sys",
            "template = \"debian-12\"\n[[files]]\ndest = \"/etc/x\"\nsource = \"/sys/kernel/uevent_seqnum\"\n",
        )
        .whole("profile ./p.toml", "files")
        .says("lies under /sys"),
        Case::profile(
            "password typed as the variable name",
            "root_password = { env = \"hunter22 secret\" }\n",
        )
        .at_p(1, 1, "root_password")
        .says("not an environment variable name")
        .hides("hunter22"),
        Case::profile(
            "password typed as a variable name that is not set",
            "template = \"debian-12\"\nroot_password = { env = \"Hunter22Secret\" }\n",
        )
        .whole("profile ./p.toml", "root_password")
        .says("is not set")
        .hides("Hunter22Secret"),
        Case::profile(
            "password typed as the file name",
            "template = \"debian-12\"\nroot_password = { file = \"hunter22-secret\" }\n",
        )
        .whole("profile ./p.toml", "root_password")
        .says("no such file")
        .hides("hunter22"),
        // ---- Crashes and half-made containers (class 8).
        Case::profile(
            "access.identity missing (found before pct create)",
            "template = \"debian-12\"\n[access]\nmethod = \"ssh\"\nidentity = \"./no-key\"\n",
        )
        .whole("profile ./p.toml", "access.identity")
        .says("cannot read the key file ./no-key"),
        Case::profile("template option as a volume name", "template = \"debian-12\"\n")
            .args(&["web", "--profile", P, "--template", "local:vztmpl/--help"])
            .cl("--template")
            .says("starts with a letter or digit"),
        Case::profile(
            "template volume name starting with a dash",
            "template = \"local:vztmpl/-x.tar.zst\"\n",
        )
        .at_p(1, 1, "template")
        .says("starts with a letter or digit"),
        Case::profile(
            "byte order mark and comments only",
            b"\xef\xbb\xbf# nothing here\n".to_vec(),
        )
        .whole(P, "")
        .says("the file is empty"),
        // ---- References to what is not there; cycles.
        Case::profile("extends an unknown profile", "extends = \"nope\"\n")
            .at_p(1, 1, "extends")
            .says("no profile named \"nope\""),
        Case::profile("extends a missing file", "extends = \"./missing.toml\"\n")
            .at_p(1, 1, "extends")
            .says("does not exist"),
        Case::profile("extends a strange name", "extends = \"a b\"\n")
            .at_p(1, 1, "extends")
            .says("not a profile name"),
        Case::cli("missing profile file", &["web", "--profile", "./missing.toml"])
            .cl("--profile")
            .says("does not exist"),
        Case::cli("profile name with a space", &["web", "--profile", "my profile"])
            .cl("--profile")
            .says("not a profile name"),
        Case::fixture("cycle a -> b -> a", "cycle-ab", "./a.toml")
            .at("./b.toml", 2, 1, "extends")
            .says("makes a cycle"),
        Case::fixture("cycle a -> a", "cycle-self", "./self.toml")
            .at("./self.toml", 2, 1, "extends")
            .says("makes a cycle"),
        Case::fixture(
            "cycle through two spellings of one file",
            "cycle-spelled",
            "./cyc/a.toml",
        )
        .at("./cyc/./b.toml", 2, 1, "extends")
        .says("makes a cycle"),
        Case::fixture("broken parent profile", "bad-parent", "./child.toml")
            .at("./parent.toml", 4, 1, "network.bridge")
            .says("not a valid bridge name"),
        // ---- The command line: NAME, --vmid and overrides.
        Case::cli("NAME with a semicolon", &["we;b", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME with a substitution", &["web$(reboot)", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME with a newline", &["web\nx", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("empty NAME", &["", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME like an option", &["--profile", "docker", "--", "-web"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME of 259 characters", &[&name256, "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME with an underscore", &["web_1", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        Case::cli("NAME with a property", &["web,tags=x", "--profile", "docker"])
            .cl("NAME")
            .says("not a valid hostname"),
        // clap refuses non-UTF-8 arguments itself (exit 2) and does not say which one.
        Case::cli("non-UTF-8 NAME", &[])
            .raw_args(&[b"w\xffb", b"--profile", b"docker"])
            .says("invalid UTF-8"),
        Case::cli("non-UTF-8 profile path", &[])
            .raw_args(&[b"web", b"--profile", b"./p\xff.toml"])
            .says("invalid UTF-8"),
        Case::cli("--vmid below 100", &["web", "--profile", "docker", "--vmid", "99"])
            .cl("--vmid")
            .says("out of range"),
        Case::cli(
            "--vmid above the maximum",
            &["web", "--profile", "docker", "--vmid", "1000000000"],
        )
        .cl("--vmid")
        .says("out of range"),
        Case::cli("--vmid that is not a number", &["web", "--profile", "docker", "--vmid", "1e3"])
            .says("invalid value"),
        Case::cli("--memory below minimum", &["web", "--profile", "docker", "--memory", "8"])
            .cl("--memory")
            .says("out of range"),
        Case::cli("--cores 0", &["web", "--profile", "docker", "--cores", "0"])
            .cl("--cores")
            .says("out of range"),
        Case::cli(
            "--storage carrying size=",
            &["web", "--profile", "docker", "--storage", "local,size=1"],
        )
        .cl("--storage")
        .says("not a valid storage ID"),
        Case::cli(
            "--bridge carrying firewall=",
            &["web", "--profile", "docker", "--bridge", "vmbr0,firewall=0"],
        )
        .cl("--bridge")
        .says("not a valid bridge name"),
        Case::cli(
            "--ip carrying gw=",
            &["web", "--profile", "docker", "--ip", "dhcp,gw=1.2.3.4"],
        )
        .cl("--ip")
        .says("not an IPv4 address"),
        Case::cli("--disk negative", &["web", "--profile", "docker", "--disk", "-1"])
            .cl("--disk")
            .says("out of range"),
        Case::cli("--disk NaN", &["web", "--profile", "docker", "--disk", "NaN"])
            .cl("--disk")
            .says("out of range"),
        Case::cli("--vlan 5000", &["web", "--profile", "docker", "--vlan", "5000"])
            .cl("--vlan")
            .says("out of range"),
        Case::cli(
            "--template with a command",
            &["web", "--profile", "docker", "--template", "debian-12;reboot"],
        )
        .cl("--template")
        .says("neither a template short form"),
        Case::cli(
            "--template-storage with a space",
            &["web", "--profile", "docker", "--template-storage", "a b"],
        )
        .cl("--template-storage")
        .says("not a valid storage ID"),
        Case::cli(
            "--storage-driver unknown",
            &["web", "--profile", "docker", "--storage-driver", "zfs"],
        )
        .cl("--storage-driver")
        .says("not one of"),
        Case::cli(
            "--gateway with dhcp",
            &["web", "--profile", "docker", "--gateway", "10.0.0.1"],
        )
        .cl("--gateway")
        .says("static `ip`"),
        // ---- Mount points: every value reaches PVE's property string through one renderer.
        Case::profile("mount path climbing out", mount("path = \"/data/../etc\"\nhost = \"/tank\"\n"))
            .at_p(3, 1, "mounts[0].path")
            .says("invalid path"),
        Case::profile("mount path relative", mount("path = \"data\"\nhost = \"/tank\"\n"))
            .at_p(3, 1, "mounts[0].path")
            .says("not an absolute path"),
        Case::profile("mount on the root", mount("path = \"/\"\nhost = \"/tank\"\n"))
            .at_p(3, 1, "mounts[0].path")
            .says("root disk"),
        Case::profile("mount over /proc", mount("path = \"/proc/sys\"\nhost = \"/tank\"\n"))
            .at_p(3, 1, "mounts[0].path")
            .says("under /proc"),
        Case::profile(
            "comma injects a key into the mp string",
            mount("path = \"/data,ro=0\"\nhost = \"/tank\"\n"),
        )
        .at_p(3, 1, "mounts[0].path")
        .says("property string"),
        Case::profile(
            "= in a bind source",
            mount("path = \"/data\"\nhost = \"/tank/a=b\"\n"),
        )
        .at_p(4, 1, "mounts[0].host")
        .says("property string"),
        Case::profile(
            "newline injects a config line",
            mount("path = \"/data\"\nhost = \"/tank\\nlxc.apparmor.profile: unconfined\"\n"),
        )
        .at_p(4, 1, "mounts[0].host")
        .says("control character"),
        Case::profile("bind of the node's root", mount("path = \"/data\"\nhost = \"/\"\n"))
            .at_p(4, 1, "mounts[0].host")
            .says("node's root"),
        Case::profile("bind of /etc/pve", mount("path = \"/data\"\nhost = \"/etc/pve/priv\"\n"))
            .at_p(4, 1, "mounts[0].host")
            .says("cluster file system"),
        Case::profile("bind source relative", mount("path = \"/data\"\nhost = \"tank\"\n"))
            .at_p(4, 1, "mounts[0].host")
            .says("not an absolute path"),
        Case::profile(
            "duplicate mount paths",
            mount("path = \"/data\"\nhost = \"/tank\"\n[[mounts]]\npath = \"//data/\"\nhost = \"/tank2\"\n"),
        )
        .at_p(6, 1, "mounts[1].path")
        .says("also the path of mounts[0]"),
        Case::profile("two sources", mount("path = \"/data\"\nhost = \"/tank\"\nstorage = \"local-lvm\"\n"))
            .says("mounts[0]")
            .says("exactly one of"),
        Case::profile("new volume without size", mount("path = \"/data\"\nstorage = \"local-lvm\"\n"))
            .says("mounts[0].size")
            .says("needs its size"),
        Case::profile(
            "volume id with traversal",
            mount("path = \"/data\"\nvolume = \"local:../../etc\"\n"),
        )
        .at_p(4, 1, "mounts[0].volume")
        .says("no `..`"),
        Case::profile(
            "unknown mount option",
            mount("path = \"/data\"\nhost = \"/tank\"\nmountoptions = [\"exec\"]\n"),
        )
        .says("mounts[0].mountoptions[0]")
        .says("not a mount option PVE accepts"),
        Case::profile(
            "owner outside the mapped range",
            mount("path = \"/data\"\nhost = \"/tank\"\nowner = { uid = 70000, gid = 0 }\n"),
        )
        .says("mounts[0].owner.uid")
        .says("65535"),
        Case::profile(
            "quota on a bind mount",
            mount("path = \"/data\"\nhost = \"/tank\"\nquota = true\n"),
        )
        .at_p(5, 1, "mounts[0].quota")
        .says("for volumes"),
        Case::profile(
            "a mount on Docker's data next to docker.data",
            mount("path = \"/var/lib/docker\"\nstorage = \"local-lvm\"\nsize = 8\n[docker]\ndata = { storage = \"local-lvm\", size = 8 }\n"),
        )
        .at_p(3, 1, "mounts[0].path")
        .says("docker.data"),
        Case::profile("docker.data without size", "[docker]\ndata = { storage = \"local-lvm\" }\n")
            .says("docker.data: ")
            .says("size"),
        Case::profile(
            "device outside /dev",
            "template = \"debian-12\"\n[[devices]]\npath = \"/etc/shadow\"\n",
        )
        .at_p(3, 1, "devices[0].path")
        .says("not under /dev"),
        Case::profile(
            "device path climbing out of /dev",
            "template = \"debian-12\"\n[[devices]]\npath = \"/dev/../etc/shadow\"\n",
        )
        .at_p(3, 1, "devices[0].path")
        .says("`..`"),
        Case::profile(
            "comma injects a key into the dev string",
            "template = \"debian-12\"\n[[devices]]\npath = \"/dev/null,mode=0666\"\n",
        )
        .at_p(3, 1, "devices[0].path")
        .says("property string"),
        Case::profile(
            "device mode not octal",
            "template = \"debian-12\"\n[[devices]]\npath = \"/dev/null\"\nmode = \"rw\"\n",
        )
        .at_p(4, 1, "devices[0].mode")
        .says("octal"),
        Case::profile("gpu of an unknown vendor", "gpu = \"nvidia\"\n")
            .at_p(1, 1, "gpu")
            .says("intel"),
        Case::profile(
            "gpu and the render node as a device",
            "gpu = \"intel\"\n[[devices]]\npath = \"/dev/dri/renderD128\"\n",
        )
        .says("devices[0].path")
        .says("not both"),
        Case::profile("unknown mount key", mount("path = \"/data\"\nhost = \"/tank\"\nfoo = 1\n"))
            .says("unknown field `foo`"),
    ]
}

/// Lab files (`provision apply|status|destroy FILE`): the whole file is checked before anything
/// runs.
fn lab_cases() -> Vec<Case> {
    let lab = |name, body: &str| Case::lab(name, format!("{D}{body}"));
    let mut huge = format!("{D}[[container]]\nname = \"a\"\n").into_bytes();
    huge.extend(std::iter::repeat_n(b'#', (1 << 20) + 1));
    vec![
        // ---- Duplicates (after counted entries are expanded).
        lab(
            "duplicate names",
            "[[container]]\nname = \"web\"\n[[container]]\nname = \"web\"\n",
        )
        .at_l(6, 1, "container[1].name")
        .says("also container[0]"),
        lab(
            "names differing in case",
            "[[container]]\nname = \"Web\"\n[[container]]\nname = \"web\"\n",
        )
        .at_l(6, 1, "container[1].name")
        .says("must be unique"),
        lab(
            "a counted name meets a plain one",
            "[[container]]\nname = \"r-{n}\"\ncount = 3\n[[container]]\nname = \"r-2\"\n",
        )
        .at_l(7, 1, "container[1].name")
        .says("(n = 2)"),
        lab(
            "duplicate VMIDs after expansion",
            "[[container]]\nname = \"r-{n}\"\ncount = 3\nvmid_base = 300\n[[container]]\nname = \"db\"\nvmid = 302\n",
        )
        .at_l(9, 1, "container[1].vmid")
        .says("VMID 302 is also container[0] (n = 3)"),
        lab(
            "duplicate fixed VMIDs",
            "[[container]]\nname = \"a\"\nvmid = 300\n[[container]]\nname = \"b\"\nvmid = 300\n",
        )
        .at_l(8, 1, "container[1].vmid")
        .says("VMIDs must be unique"),
        // ---- {n} patterns and counts.
        lab("count without {n}", "[[container]]\nname = \"r\"\ncount = 3\n")
            .at_l(5, 1, "container[0].count")
            .says("needs `{n}`"),
        lab("{n} without count", "[[container]]\nname = \"r-{n}\"\n")
            .at_l(4, 1, "container[0].name")
            .says("no `count`"),
        lab(
            "pattern making a bad hostname",
            "[[container]]\nname = \"-{n}\"\ncount = 2\n",
        )
        .at_l(4, 1, "container[0].name")
        .says("for n = 1"),
        lab(
            "pattern with another placeholder",
            "[[container]]\nname = \"a{n}{x}\"\ncount = 2\n",
        )
        .at_l(4, 1, "container[0].name")
        .says("not a valid hostname"),
        lab(
            "pattern with a substitution",
            "[[container]]\nname = \"r$(id){n}\"\ncount = 2\n",
        )
        .at_l(4, 1, "container[0].name")
        .says("not a valid hostname"),
        lab("count 0", "[[container]]\nname = \"r-{n}\"\ncount = 0\n")
            .at_l(5, 1, "container[0].count")
            .says("out of range"),
        lab("count 1001", "[[container]]\nname = \"r-{n}\"\ncount = 1001\n")
            .at_l(5, 1, "container[0].count")
            .says("out of range"),
        lab("count as text", "[[container]]\nname = \"r-{n}\"\ncount = \"two\"\n")
            .at_l(5, 9, "container[0].count")
            .says("invalid type"),
        lab(
            "one vmid for several containers",
            "[[container]]\nname = \"r-{n}\"\ncount = 2\nvmid = 300\n",
        )
        .at_l(6, 1, "container[0].vmid")
        .says("vmid_base"),
        lab(
            "vmid_base whose last VMID is out of range",
            "[[container]]\nname = \"r-{n}\"\ncount = 2\nvmid_base = 999999999\n",
        )
        .at_l(6, 1, "container[0].vmid_base")
        .says("out of range"),
        lab(
            "vmid_base at the end of i64",
            "[[container]]\nname = \"r-{n}\"\ncount = 2\nvmid_base = 9223372036854775807\n",
        )
        .at_l(6, 1, "container[0].vmid_base")
        .says("out of range"),
        lab(
            "vmid_base without count",
            "[[container]]\nname = \"r\"\nvmid_base = 300\n",
        )
        .at_l(5, 1, "container[0].vmid_base")
        .says("goes with `count`"),
        // ---- Profiles.
        Case::lab(
            "unknown profile in an entry",
            "[[container]]\nname = \"a\"\nprofile = \"nope\"\n",
        )
        .at_l(3, 1, "container[0].profile")
        .says("no profile named \"nope\""),
        Case::lab(
            "unknown default profile",
            "[defaults]\nprofile = \"nope\"\n[[container]]\nname = \"a\"\n",
        )
        .at_l(2, 1, "defaults.profile")
        .says("no profile named \"nope\""),
        Case::lab(
            "a name of the wrong type is not also called missing",
            format!("{D}[[container]]\nname = 5\n"),
        )
        .at_l(4, 8, "container[0].name")
        .says("invalid type: integer `5`, expected a string")
        .hides("missing `name`"),
        Case::lab(
            "a profile of the wrong type is not also called missing",
            "[defaults]\nprofile = 7\n[[container]]\nname = \"a\"\n",
        )
        .at_l(2, 11, "defaults.profile")
        .says("expected a string")
        .hides("no profile:"),
        Case::lab(
            "an entry's profile of the wrong type is not also called missing",
            "[[container]]\nname = \"a\"\nprofile = [\"docker\"]\n",
        )
        .at_l(3, 11, "container[0].profile")
        .hides("no profile:"),
        Case::lab(
            "a lab value with a bidi override",
            format!("{D}[[container]]\nname = \"a\\u202eb\"\n"),
        )
        .says("\\u{202e}"),
        Case::lab("no profile at all", "[[container]]\nname = \"a\"\n")
            .at_l(1, 1, "container[0]")
            .says("no profile"),
        Case::lab(
            "missing profile file",
            "[[container]]\nname = \"a\"\nprofile = \"./missing.toml\"\n",
        )
        .at_l(3, 1, "container[0].profile")
        .says("does not exist"),
        Case::lab(
            "a profile file with a bad value",
            "[[container]]\nname = \"a\"\nprofile = \"profiles/ci.toml\"\n",
        )
        .file("profiles/ci.toml", "extends = \"docker\"\nmemory = 1\n")
        .at("./profiles/ci.toml", 2, 1, "memory")
        .says("out of range"),
        // ---- Bad values in entries and defaults.
        lab("entry memory below minimum", "[[container]]\nname = \"a\"\nmemory = 8\n")
            .at_l(5, 1, "container[0].memory")
            .says("out of range"),
        lab(
            "defaults swap negative",
            "swap = -1\n[[container]]\nname = \"a\"\n",
        )
        .at_l(3, 1, "defaults.swap")
        .says("out of range"),
        lab(
            "entry bridge carrying firewall=",
            "[[container]]\nname = \"a\"\n[container.network]\nbridge = \"vmbr0,firewall=0\"\n",
        )
        .at_l(6, 1, "container[0].network.bridge")
        .says("not a valid bridge name"),
        lab(
            "entry storage carrying size=",
            "[[container]]\nname = \"a\"\n[container.rootfs]\nstorage = \"local,size=1\"\n",
        )
        .at_l(6, 1, "container[0].rootfs.storage")
        .says("not a valid storage ID"),
        lab(
            "entry gateway with dhcp",
            "[[container]]\nname = \"a\"\n[container.network]\nip = \"dhcp\"\ngateway = \"10.0.0.1\"\n",
        )
        .at_l(7, 1, "container[0].network.gateway")
        .says("static `ip`"),
        lab(
            "entry files dest climbing out",
            "[[container]]\nname = \"a\"\n[[container.files]]\ndest = \"../etc/passwd\"\ncontent = \"x\"\n",
        )
        .at_l(6, 1, "container[0].files[0].dest")
        .says("not an absolute path"),
        lab(
            "entry files source missing",
            "[[container]]\nname = \"a\"\n[[container.files]]\ndest = \"/etc/motd\"\nsource = \"nothere.txt\"\n",
        )
        .at_l(7, 1, "container[0].files[0].source")
        .says("nothere.txt"),
        lab(
            "entry name with a command",
            "[[container]]\nname = \"web;reboot\"\n",
        )
        .at_l(4, 1, "container[0].name")
        .says("not a valid hostname"),
        lab(
            "entry name with a newline",
            "[[container]]\nname = \"web\\nx\"\n",
        )
        .at_l(4, 1, "container[0].name")
        .says("not a valid hostname"),
        lab(
            "entry timezone with a command",
            "[[container]]\nname = \"a\"\ntimezone = \"UTC;reboot\"\n",
        )
        .at_l(5, 1, "container[0].timezone")
        .says("not a timezone"),
        lab(
            "node and host that are not names",
            "[[container]]\nname = \"a\"\nnode = \"pve_1\"\nhost = \"root@\"\n",
        )
        .at_l(5, 1, "container[0].node")
        .at_l(6, 1, "container[0].host"),
        lab(
            "plain password in an entry is refused without echoing it",
            "[[container]]\nname = \"a\"\nroot_password = \"hunter22-secret\"\n",
        )
        .at_l(5, 17, "container[0].root_password")
        .hides("hunter22"),
        // ---- Keys that have no place in a lab file.
        lab("hostname in an entry", "[[container]]\nname = \"a\"\nhostname = \"b\"\n")
            .at_l(5, 1, "container[0].hostname")
            .says("its `name`"),
        lab("extends in an entry", "[[container]]\nname = \"a\"\nextends = \"docker\"\n")
            .at_l(5, 1, "container[0].extends")
            .says("`profile`"),
        lab("vmid in defaults", "vmid = 300\n[[container]]\nname = \"a\"\n")
            .at_l(3, 1, "defaults.vmid")
            .says("same for every container"),
        lab("unknown key in an entry", "[[container]]\nname = \"a\"\nmemroy = 512\n")
            .at_l(5, 1, "container[0].memroy")
            .says("unknown field"),
        Case::lab(
            "unknown top-level table",
            "[default]\nprofile = \"docker\"\n[[container]]\nname = \"a\"\n",
        )
        .at_l(1, 2, "default")
        .says("unknown key"),
        Case::lab("container as a number", "container = 3\n")
            .at_l(1, 1, "container")
            .says("[[container]]"),
        Case::lab("no containers", D)
            .whole(L, "container")
            .says("no [[container]] entries"),
        // ---- The file itself.
        Case::lab("unclosed array table", "[[container]\n")
            .at_l(1, 13, "")
            .says("unclosed array table"),
        Case::lab("NUL byte", format!("{D}\0\n"))
            .at_l(3, 1, "")
            .says("NUL byte"),
        Case::lab(
            "invalid UTF-8",
            [
                format!("{D}[[container]]\nname = \"a\"\ndescription = \"").into_bytes(),
                vec![0xff],
                b"\"\n".to_vec(),
            ]
            .concat(),
        )
        .at_l(5, 16, "")
        .says("not valid UTF-8"),
        Case::lab("file over 1 MiB", huge)
            .whole(L, "")
            .says("larger than 1048576 bytes"),
        Case::lab("empty file", "")
            .whole(L, "container")
            .says("no [[container]] entries"),
        Case::cli("missing lab file", &["apply", "./nope.toml"])
            .whole("./nope.toml", "")
            .says("cannot read the file"),
        // ---- Files that are not regular files (class 2).
        Case::cli("lab file is /dev/zero", &["apply", "/dev/zero"])
            .whole("/dev/zero", "")
            .says("a character device"),
        Case::cli("lab file is a FIFO", &["apply", L])
            .fifo("lab.toml")
            .whole(L, "")
            .says("a FIFO"),
        Case::cli("status of a FIFO lab file", &["status", L])
            .fifo("lab.toml")
            .whole(L, "")
            .says("a FIFO"),
        Case::cli("lab file is a directory", &["destroy", L])
            .dir("lab.toml")
            .whole(L, "")
            .says("a directory"),
        lab(
            "lab files.source is the environment",
            "[[defaults.files]]\ndest = \"/etc/x\"\nsource = \"/proc/self/environ\"\n[[container]]\nname = \"a\"\n",
        )
        .env("PROVISION_TEST_PW", "s3cret-env-pw")
        .says("lies under /proc")
        .hides("s3cret-env-pw"),
        // ---- Size of the whole (class 7): capped with a clear error, all errors first.
        Case::lab(
            "container = []",
            "container = []\n[defaults]\nprofile = \"docker\"\n",
        )
        .whole(L, "container")
        .says("no [[container]] entries"),
        lab("more than 10000 containers", &many(11, 1000, ""))
            .at_l(35, 1, "container[10].count")
            .says("more than 10000 containers"),
        lab(
            "1500 entries of count 1000 and a bad name: both reported",
            &many(1500, 1000, "[[container]]\nname = \"bad name!\"\n"),
        )
        .at_l(35, 1, "container[10].count")
        .at_l(4504, 1, "container[1500].name")
        .says("not a valid hostname"),
        lab(
            "a too-big source shared by 150 containers: a bounded list of errors",
            "[[container]]\nname = \"r-{n}\"\ncount = 150\nfiles = [{ dest = \"/etc/x\", source = \"big\" }]\n",
        )
        .file("big", vec![b'x'; (16 << 20) + 1])
        .says("larger than")
        .says("and 50 more errors (the first 100 are shown)"),
        lab(
            "a counted name clashing for every n is one error",
            "[[container]]\nname = \"r-{n}\"\ncount = 1000\n[[container]]\nname = \"r-{n}\"\ncount = 1000\n",
        )
        .at_l(7, 1, "container[1].name")
        .says("(n = 1)")
        .hides("(n = 2)"),
        lab("errors past 100 are counted", &"[[container]]\nname = \"a\"\n".repeat(202))
            .says("and 101 more errors"),
        // ---- Other subcommands and options read the same file the same way.
        lab(
            "status of a file with duplicates",
            "[[container]]\nname = \"a\"\n[[container]]\nname = \"A\"\n",
        )
        .args(&["status", L])
        .at_l(6, 1, "container[1].name"),
        lab(
            "destroy of a file with duplicates",
            "[[container]]\nname = \"a\"\n[[container]]\nname = \"A\"\n",
        )
        .args(&["destroy", L])
        .at_l(6, 1, "container[1].name"),
        lab("--only naming no entry", "[[container]]\nname = \"a\"\n")
            .args(&["apply", L, "--only", "nope"])
            .cl("--only")
            .says("not a container of"),
    ]
}

/// Writes the recording shims into DIR/bin; every call appends a line to DIR/calls.log.
fn shims(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    let log = dir.join("calls.log");
    std::fs::create_dir_all(&bin).unwrap();
    for name in SHIMS {
        // Builtins only: `sh`, `cat` and `rm` are shimmed too.
        let script = format!(
            "#!/bin/sh\nprintf '%s' {name} >> '{log}'\nfor a in \"$@\"; do printf ' %s' \"$a\" >> '{log}'; done\necho >> '{log}'\nexit 1\n",
            log = log.display()
        );
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (bin, log)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs one case; returns what was wrong, if anything.
fn run_case(c: &Case) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let (bin, log) = shims(tmp.path());
    if let Some(dir) = c.fixture {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/catalogue")
            .join(dir);
        copy_dir(&from, tmp.path());
    }
    for (path, bytes) in &c.files {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    for sp in &c.special {
        let at = |p: &str| {
            let p = tmp.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            p
        };
        match sp {
            Special::Fifo(p) => {
                let c = std::ffi::CString::new(at(p).to_str().unwrap()).unwrap();
                // SAFETY: mkfifo reads the NUL-terminated path only.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            Special::Link(p, target) => std::os::unix::fs::symlink(target, at(p)).unwrap(),
            Special::Dir(p) => std::fs::create_dir_all(at(p)).unwrap(),
        }
    }
    let mut cmd = Command::cargo_bin("provision").unwrap();
    // A FIFO or a device that is read would hang the run: the bound turns that into a failure.
    cmd.timeout(std::time::Duration::from_secs(60));
    cmd.env_clear()
        .current_dir(tmp.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", tmp.path())
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .env("LC_ALL", "C")
        .args(&c.args);
    for (k, v) in &c.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit status {:?}, expected 2", out.status.code()));
    }
    for e in &c.expect {
        if !stderr.contains(e.as_str()) {
            wrong.push(format!("stderr lacks {e:?}"));
        }
    }
    for a in &c.absent {
        if stderr.contains(a.as_str()) || String::from_utf8_lossy(&out.stdout).contains(a.as_str())
        {
            wrong.push(format!("output shows {a:?}"));
        }
    }
    // Whatever the input holds, nothing that could drive a terminal or hide text is printed.
    for (stream, bytes) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
        let text = String::from_utf8_lossy(bytes);
        if let Some(c) = text
            .chars()
            .find(|c| provision::error::is_unsafe_char(*c) && !matches!(c, '\n' | '\t'))
        {
            wrong.push(format!("{stream} shows {c:?} raw"));
        }
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    if !calls.is_empty() {
        wrong.push(format!("commands ran:\n{calls}"));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "case {:?}: {}\n  stderr: {}",
            c.name,
            wrong.join("; "),
            stderr.trim_end().replace('\n', "\n          ")
        )
    })
}

#[test]
fn bad_input_is_refused_with_its_place_before_any_command() {
    let cases = cases();
    let failures: Vec<String> = cases.iter().filter_map(run_case).collect();
    eprintln!(
        "catalogue: {} cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(cases.len() >= 60, "the catalogue shrank to {}", cases.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn bad_lab_files_are_refused_with_their_place_before_any_command() {
    let cases = lab_cases();
    let failures: Vec<String> = cases.iter().filter_map(run_case).collect();
    eprintln!(
        "lab-file catalogue: {} cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn case_names_are_unique() {
    for table in [cases(), lab_cases()] {
        let mut names: Vec<&str> = table.iter().map(|c| c.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "two catalogue cases share a name");
    }
}

#[test]
fn the_shims_record_what_would_have_run() {
    // Guards the catalogue itself: a shim that recorded nothing would make every case pass.
    let tmp = tempfile::tempdir().unwrap();
    let (bin, log) = shims(tmp.path());
    let st = std::process::Command::new(bin.join("pvesh"))
        .args(["get", "/cluster/resources"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(log).unwrap(),
        "pvesh get /cluster/resources\n"
    );
    // And a valid profile does reach the node: the first command is the guest list.
    let p = tmp.path().join("ok.toml");
    std::fs::write(&p, "template = \"debian-12\"\n").unwrap();
    let out = Command::cargo_bin("provision")
        .unwrap()
        .env_clear()
        .current_dir(tmp.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", tmp.path())
        .args(["web", "--profile", "./ok.toml"])
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(tmp.path().join("calls.log")).unwrap();
    assert!(
        calls.contains("pvesh get /cluster/resources"),
        "{calls}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
