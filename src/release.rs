//! Which Proxmox VE release a node runs, and what that release's `pct` can do.
//!
//! Read once per run per node from `pveversion -v` (pure parsing here, the command itself is run
//! by the node facts). Every release-dependent decision of the tool goes through [`Caps`] and
//! [`guest_refusal`]: argv builders and the planner take these values and never compare
//! versions themselves. The numbers come from pve-container's and pve-manager's changelogs
//! (what each version added, and from when); a node whose versions cannot be read, or that is
//! newer than anything known here, is treated as the newest known release and the plan says so.

use serde::Serialize;
use std::cmp::Ordering;
use std::fmt;

/// A Debian package version, compared component by component (`4.4-3` < `4.4-7` < `5.0.9` <
/// `5.0.10`). Only the numeric components count; an epoch (`1:`) and a trailing non-numeric
/// part (`-pve1`) are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Version {
    parts: Vec<u32>,
    text: String,
}

impl Version {
    /// Parses `5.0.9`, `4.4-3`, `6.0.5-3`, `2.2.0-pve1`, `1:2.3.4-pve1`. None when it does not
    /// start with a number.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let body = s.split_once(':').map_or(s, |(_, b)| b);
        let mut parts = Vec::new();
        for piece in body.split(['.', '-', '~', '+']) {
            let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                break;
            }
            parts.push(digits.parse().ok()?);
            if digits.len() != piece.len() {
                break;
            }
        }
        (!parts.is_empty()).then(|| Version {
            parts,
            text: s.to_string(),
        })
    }

    /// The version from literal numbers (for the tables below).
    fn of(parts: &[u32]) -> Version {
        let text = parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        Version {
            parts: parts.to_vec(),
            text,
        }
    }

    /// The first `n` numeric components (missing ones are 0).
    fn major_minor(&self) -> (u32, u32) {
        (
            self.parts.first().copied().unwrap_or(0),
            self.parts.get(1).copied().unwrap_or(0),
        )
    }

    fn at_least(&self, parts: &[u32]) -> bool {
        *self >= Version::of(parts)
    }

    fn below(&self, parts: &[u32]) -> bool {
        !self.at_least(parts)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n)
            .map(|i| {
                let a = self.parts.get(i).copied().unwrap_or(0);
                let b = other.parts.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.text
    }
}

/// The versions of a node's packages that matter to the tool, as `pveversion -v` lists them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PveVersions {
    /// `pve-manager` (the release: 8.1.3, 7.4-3).
    pub manager: Option<Version>,
    /// `pve-container`: the switch for every pct behaviour.
    pub container: Option<Version>,
    /// `lxc-pve`.
    pub lxc: Option<Version>,
    /// `libpve-storage-perl`.
    pub storage: Option<Version>,
    /// `zfsutils-linux`, where installed.
    pub zfs: Option<Version>,
    /// The running kernel (`proxmox-ve: ... (running kernel: 6.8.12-9-pve)`).
    pub kernel: Option<String>,
}

/// Parses `pveversion -v`. Lines that are not `package: version` are skipped; a package that is
/// listed as `not correctly installed` is left out.
pub fn parse_pveversion(text: &str) -> PveVersions {
    let mut v = PveVersions::default();
    for line in text.lines() {
        let Some((pkg, rest)) = line.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        if let Some(k) = rest.split("running kernel:").nth(1) {
            let k = k.trim().trim_end_matches(')').trim();
            if !k.is_empty() && v.kernel.is_none() {
                v.kernel = Some(k.chars().take(64).collect());
            }
        }
        let version = Version::parse(rest.split_whitespace().next().unwrap_or(""));
        match pkg.trim() {
            "pve-manager" => v.manager = version,
            "pve-container" => v.container = version,
            "lxc-pve" => v.lxc = version,
            "libpve-storage-perl" => v.storage = version,
            "zfsutils-linux" => v.zfs = version,
            _ => {}
        }
    }
    v
}

/// The newest pve-container whose behaviour this table knows (PVE 9.2).
const NEWEST_KNOWN_CONTAINER: &[u32] = &[6, 1, 10];

/// What a node's release can do, derived from its versions in one place.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Caps {
    /// `pve-manager` major.minor, e.g. `8.1`, or `unknown`.
    pub release: String,
    /// The pve-container version the decisions were made on.
    pub container: String,
    /// True when the versions could not be read or are newer than the table: the newest
    /// known behaviour is assumed.
    pub assumed: bool,
    /// `pct exec --keep-env` exists (pve-container 5.0.9, March 2024). Without it pct passes
    /// neither flag to lxc-attach, whose own default keeps the caller's environment.
    pub exec_keep_env: bool,
    /// `devN` options (pve-container 5.0.7).
    pub dev_passthrough: bool,
    /// A new `devN` is hot-added to a running container (pve-container 6.0.4).
    pub dev_hotplug: bool,
    /// `idmap` on mount points (pve-container 6.1.6).
    pub mp_idmap: bool,
    /// `pct create` makes unprivileged containers by default (6.0.6); the tool always passes
    /// `--unprivileged` explicitly anyway.
    pub unprivileged_default: bool,
    /// A failed hot-plug writes nothing to the config (5.2.2); before, the config (pending
    /// entries included) had already been written.
    pub hotplug_error_atomic: bool,
    /// `pct move-volume --target-vmid` hands a volume to another container (4.1-2, PVE 7.1).
    pub move_volume_to_ct: bool,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps::newest()
    }
}

impl Caps {
    /// Capabilities of the node with these versions.
    pub fn from_versions(v: &PveVersions) -> Caps {
        let newest = Version::of(NEWEST_KNOWN_CONTAINER);
        let (c, assumed) = match &v.container {
            Some(c) if *c <= newest => (c.clone(), false),
            Some(c) => (c.clone(), true),
            None => (newest, true),
        };
        let release = v.manager.as_ref().map_or_else(
            || "unknown".to_string(),
            |m| {
                let (a, b) = m.major_minor();
                format!("{a}.{b}")
            },
        );
        Caps {
            release,
            container: c.to_string(),
            assumed,
            exec_keep_env: c.at_least(&[5, 0, 9]),
            dev_passthrough: c.at_least(&[5, 0, 7]),
            dev_hotplug: c.at_least(&[6, 0, 4]),
            mp_idmap: c.at_least(&[6, 1, 6]),
            unprivileged_default: c.at_least(&[6, 0, 6]),
            hotplug_error_atomic: c.at_least(&[5, 2, 2]),
            move_volume_to_ct: c.at_least(&[4, 1, 2]),
        }
    }

    /// The newest known behaviour (no versions read: an empty node in a dry run, or a node
    /// whose `pveversion` did not answer).
    pub fn newest() -> Caps {
        Caps::from_versions(&PveVersions::default())
    }

    /// `PVE 8.1 (pve-container 5.0.8)`, with a note when the behaviour was assumed.
    pub fn describe(&self) -> String {
        if self.assumed {
            format!(
                "PVE {} (pve-container {}; newer than or not known to this provision: the newest known behaviour is assumed)",
                self.release, self.container
            )
        } else {
            format!("PVE {} (pve-container {})", self.release, self.container)
        }
    }

    /// Why `pct create` of this guest would fail on this node, or None when it is accepted.
    pub fn guest_refusal(&self, guest: &GuestOs) -> Option<String> {
        if self.assumed && self.container == Version::of(NEWEST_KNOWN_CONTAINER).text {
            // Nothing known about the node: the newest behaviour accepts what it can parse.
            return None;
        }
        let c = Version::parse(&self.container)?;
        guest_refusal(&c, guest)
    }
}

/// A guest OS as a template names it (`debian-12-standard_12.12-1_amd64.tar.zst` is Debian
/// 12.12, `ubuntu-24.04-standard_24.04-2_amd64.tar.zst` Ubuntu 24.04).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestOs {
    /// `debian`, `ubuntu`, ...
    pub os: String,
    /// As the guest's own version file has it: `12.12`, `24.04`.
    pub version: String,
}

impl GuestOs {
    /// The guest a template file name or volume id stands for, when it follows PVE's naming
    /// (`OS-MAJOR-standard_VERSION-REV_ARCH.tar.*`).
    pub fn from_template(name: &str) -> Option<GuestOs> {
        let file = name.rsplit(['/', ':']).next()?;
        let (head, rest) = file.split_once('_')?;
        let mut words = head.split('-');
        let os = words.next()?.to_ascii_lowercase();
        let major = words.next()?;
        let version = rest.split(['-', '_']).next()?;
        if !version.starts_with(major) || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        Some(GuestOs {
            os,
            version: version.to_string(),
        })
    }
}

/// One Ubuntu release: its version, the first pve-container of the PVE 7 line that accepts it
/// (None: never backported), and the first of PVE 8 and later.
type UbuntuSince = (&'static str, Option<&'static [u32]>, &'static [u32]);

/// Ubuntu releases pve-container accepts, and from which versions.
const UBUNTU: &[UbuntuSince] = &[
    ("22.04", Some(&[4, 1, 3]), &[4, 1, 3]),
    ("22.10", Some(&[4, 2, 3]), &[4, 2, 3]),
    ("23.04", Some(&[4, 2, 3]), &[4, 2, 3]),
    ("23.10", Some(&[4, 4, 5]), &[5, 0, 2]),
    ("24.04", Some(&[4, 4, 7]), &[5, 1, 10]),
    ("24.10", None, &[5, 2, 2]),
    ("25.04", None, &[5, 2, 2]),
    ("25.10", None, &[5, 3, 3]),
    ("26.04", None, &[5, 3, 3]),
    ("26.10", None, &[6, 1, 7]),
];

/// Why pve-container `c` refuses `guest` at create, in PVE's words, or None.
pub fn guest_refusal(c: &Version, guest: &GuestOs) -> Option<String> {
    match guest.os.as_str() {
        "ubuntu" => ubuntu_refusal(c, &guest.version),
        "debian" => debian_refusal(c, &guest.version),
        _ => None,
    }
}

fn ubuntu_refusal(c: &Version, v: &str) -> Option<String> {
    let refused = || Some(format!("unsupported Ubuntu version '{v}'"));
    let major: u32 = v.split('.').next()?.parse().ok()?;
    let pve7 = c.below(&[5, 0, 0]);
    // From 6.0.12 (and 5.3.3 on PVE 8) an unknown newer Ubuntu only warns.
    let lenient = c.at_least(&[6, 0, 12]) || (c.at_least(&[5, 3, 3]) && c.below(&[6, 0, 0]));
    if major < 22 {
        // 16.04 to 21.10 are known to every release this tool supports; older ones are
        // refused as ancient from the lenient versions on.
        return (major < 17 && lenient)
            .then(|| format!("unsupported ancient Ubuntu version '{v}'"));
    }
    let Some((_, seven, eight)) = UBUNTU.iter().find(|(u, _, _)| *u == v) else {
        return if lenient { None } else { refused() };
    };
    let ok = if pve7 {
        seven.is_some_and(|s| c.at_least(s))
    } else if c.below(&[6, 0, 0]) || eight.first() == Some(&6) {
        c.at_least(eight)
    } else {
        // The 6.x line carries everything the 5.x line accepted, and 25.10/26.04 from 6.0.12.
        match v {
            "25.10" | "26.04" => c.at_least(&[6, 0, 12]),
            _ => true,
        }
    };
    if ok { None } else { refused() }
}

fn debian_refusal(c: &Version, v: &str) -> Option<String> {
    // pve-container compares the whole /etc/debian_version as a number: under a "<= 12" limit
    // only 12.0 passes, 12.5 is refused.
    let n: f64 = v.parse().ok()?;
    let (limit, warn_above): (f64, bool) = if c.below(&[4, 4, 5]) {
        (12.0, false)
    } else if c.below(&[5, 0, 0]) {
        (13.0, false)
    } else if c.below(&[5, 0, 2]) {
        (12.0, false)
    } else if c.below(&[5, 3, 1]) {
        (13.0, false)
    } else if c.below(&[6, 0, 0]) {
        (14.999, c.at_least(&[5, 3, 3]))
    } else if c.below(&[6, 0, 10]) {
        (13.0, false)
    } else {
        (14.999, c.at_least(&[6, 0, 12]))
    };
    if n < 4.0 {
        return Some(format!("unsupported debian version '{v}'"));
    }
    (n > limit && !warn_above).then(|| format!("unsupported debian version '{v}'"))
}

/// Of the Ubuntu LTS templates offered (`ubuntu-YY.04-standard_...`, even YY), the newest that
/// pve-container accepts on this node.
pub fn newest_accepted_ubuntu_lts<'a>(caps: &Caps, offered: &'a [String]) -> Option<&'a String> {
    offered
        .iter()
        .filter_map(|name| GuestOs::from_template(name).map(|g| (name, g)))
        .filter(|(_, g)| g.os == "ubuntu" && is_lts(&g.version))
        .filter(|(_, g)| caps.guest_refusal(g).is_none())
        .max_by(|(_, a), (_, b)| {
            Version::parse(&a.version)
                .cmp(&Version::parse(&b.version))
                .then(a.version.cmp(&b.version))
        })
        .map(|(name, _)| name)
}

fn is_lts(v: &str) -> bool {
    let mut it = v.split('.');
    let (Some(y), Some(m)) = (it.next(), it.next()) else {
        return false;
    };
    m == "04" && y.parse::<u32>().is_ok_and(|y| y % 2 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(container: &str) -> Caps {
        Caps::from_versions(&PveVersions {
            container: Version::parse(container),
            manager: Version::parse("8.1.3"),
            ..Default::default()
        })
    }

    fn g(os: &str, v: &str) -> GuestOs {
        GuestOs {
            os: os.into(),
            version: v.into(),
        }
    }

    #[test]
    fn versions_order_like_debian_for_pve_packages() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("4.4-3") < v("4.4-7"));
        assert!(v("4.4-7") < v("5.0.0"));
        assert!(v("5.0.8") < v("5.0.9"));
        assert!(v("5.0.9") < v("5.0.10"));
        assert!(v("2.2.0-pve1") > v("2.1.12-pve1"));
        assert_eq!(
            v("1:2.3.4-pve1"),
            Version::of(&[2, 3, 4]).with_text("1:2.3.4-pve1")
        );
        assert!(Version::parse("pve1").is_none());
        assert!(Version::parse("").is_none());
    }

    impl Version {
        fn with_text(mut self, t: &str) -> Version {
            self.text = t.into();
            self
        }
    }

    #[test]
    fn pveversion_v_of_each_style_is_read() {
        let pve9 = "proxmox-ve: 9.1.0 (running kernel: 6.17.2-1-pve)\n\
                    pve-manager: 9.1.1 (running version: 9.1.1/42db4a6cf33dac83)\n\
                    proxmox-kernel-6.17: 6.17.2-1\n\
                    pve-container: 6.0.18\n\
                    lxc-pve: 6.0.5-3\n\
                    libpve-storage-perl: 9.1.0\n\
                    zfsutils-linux: 2.3.4-pve1\n";
        let v = parse_pveversion(pve9);
        assert_eq!(v.container.as_ref().unwrap().to_string(), "6.0.18");
        assert_eq!(v.zfs.as_ref().unwrap().to_string(), "2.3.4-pve1");
        assert_eq!(v.kernel.as_deref(), Some("6.17.2-1-pve"));
        assert_eq!(Caps::from_versions(&v).release, "9.1");
        let pve7 = "proxmox-ve: 7.4-1 (running kernel: 5.15.102-1-pve)\n\
                    pve-manager: 7.4-3 (running version: 7.4-3/9002ab8a)\n\
                    pve-container: 4.4-3\n\
                    zfsutils-linux: not correctly installed\n";
        let v = parse_pveversion(pve7);
        assert_eq!(v.container.as_ref().unwrap().to_string(), "4.4-3");
        assert_eq!(v.zfs, None);
        let c = Caps::from_versions(&v);
        assert_eq!(c.release, "7.4");
        assert!(!c.exec_keep_env && !c.assumed);
    }

    #[test]
    fn keep_env_from_pve_container_5_0_9() {
        assert!(!caps("5.0.8").exec_keep_env);
        assert!(caps("5.0.9").exec_keep_env);
        assert!(caps("5.0.10").exec_keep_env);
        assert!(!caps("4.4-7").exec_keep_env);
        assert!(caps("6.1.10").exec_keep_env);
    }

    #[test]
    fn unknown_or_newer_nodes_get_the_newest_behaviour_and_say_so() {
        let c = Caps::newest();
        assert!(c.assumed && c.exec_keep_env && c.dev_hotplug);
        assert!(c.describe().contains("assumed"));
        let c = caps("7.0.1");
        assert!(c.assumed && c.exec_keep_env);
        assert!(!caps("6.1.10").assumed);
    }

    #[test]
    fn ubuntu_acceptance_follows_the_setup_code_per_version() {
        let u = |c: &str, v: &str| guest_refusal(&Version::parse(c).unwrap(), &g("ubuntu", v));
        // 24.04: 5.1.10 on PVE 8, backported as 4.4-7 on PVE 7.
        assert_eq!(
            u("5.0.8", "24.04").as_deref(),
            Some("unsupported Ubuntu version '24.04'")
        );
        assert!(u("5.0.11", "24.04").is_some());
        assert!(u("5.1.10", "24.04").is_none());
        assert!(u("4.4-6", "24.04").is_some());
        assert!(u("4.4-7", "24.04").is_none());
        assert!(u("4.4-3", "22.04").is_none());
        // 24.10 never reached PVE 7.
        assert!(u("4.4-7", "24.10").is_some());
        assert!(u("5.2.2", "24.10").is_none());
        // 26.04: 6.0.12, backported as 5.3.3; the last PVE 8 (5.3.5) accepts it.
        assert!(u("5.3.2", "26.04").is_some());
        assert!(u("5.3.5", "26.04").is_none());
        assert!(u("6.0.9", "26.04").is_some());
        assert!(u("6.0.12", "26.04").is_none());
        // Unknown newer versions only warn from 6.0.12 / 5.3.3 on.
        assert!(u("6.0.9", "27.04").is_some());
        assert!(u("6.0.12", "27.04").is_none());
        assert!(u("6.1.10", "16.04").is_some());
    }

    #[test]
    fn debian_point_releases_count_against_the_limit() {
        let d = |c: &str, v: &str| guest_refusal(&Version::parse(c).unwrap(), &g("debian", v));
        // PVE 7.4 GA (4.4-3): limit 12, compared as a number, so 12.12 is refused.
        assert_eq!(
            d("4.4-3", "12.12").as_deref(),
            Some("unsupported debian version '12.12'")
        );
        assert!(d("4.4-3", "11.7").is_none());
        assert!(d("4.4-7", "12.12").is_none());
        assert!(d("5.0.3", "12.12").is_none());
        assert!(d("5.0.8", "13.6").is_some());
        assert!(d("6.0.9", "13.6").is_some());
        assert!(d("6.0.10", "13.6").is_none());
        assert!(d("5.3.1", "13.6").is_none());
        assert!(d("6.1.10", "15").is_none());
        assert!(d("6.0.10", "15").is_some());
    }

    #[test]
    fn template_names_give_the_guest() {
        assert_eq!(
            GuestOs::from_template("local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"),
            Some(g("debian", "12.12"))
        );
        assert_eq!(
            GuestOs::from_template("ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"),
            Some(g("ubuntu", "25.04"))
        );
        assert_eq!(GuestOs::from_template("local:vztmpl/my-own.tar.gz"), None);
        assert_eq!(
            GuestOs::from_template("alpine-3.20-default_20240908_amd64.tar.xz"),
            None
        );
    }

    #[test]
    fn newest_ubuntu_lts_is_chosen_per_node() {
        let offered: Vec<String> = [
            "debian-12-standard_12.12-1_amd64.tar.zst",
            "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
            "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst",
            "ubuntu-26.04-standard_26.04-1_amd64.tar.zst",
        ]
        .map(String::from)
        .to_vec();
        let pick = |c: &str| newest_accepted_ubuntu_lts(&caps(c), &offered).cloned();
        assert_eq!(
            pick("5.0.3").as_deref(),
            Some("ubuntu-22.04-standard_22.04-1_amd64.tar.zst")
        );
        assert_eq!(
            pick("5.2.6").as_deref(),
            Some("ubuntu-24.04-standard_24.04-2_amd64.tar.zst")
        );
        assert_eq!(
            pick("6.1.10").as_deref(),
            Some("ubuntu-26.04-standard_26.04-1_amd64.tar.zst")
        );
        assert_eq!(newest_accepted_ubuntu_lts(&caps("6.1.10"), &[]), None);
    }
}
