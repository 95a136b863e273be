//! Known failures of Docker in unprivileged LXC containers on Proxmox VE, as a table.
//!
//! Each entry (documented with sources in docs/known-issues.md, same ids) has:
//! - `doctor`: how `provision doctor` sees it coming from the node's facts and the profiles
//!   (its own check here, or the built-in doctor check that already covers it, or nothing when
//!   only the inside of a container shows it);
//! - `symptoms`: what dockerd / containerd / runc print when it bites. Each symptom is a list
//!   of fragments that must all occur (case-insensitive) in the failure text.
//!
//! Two users of the table: the doctor's `known:ID` checks (src/doctor/known.rs) and
//! [`recognise`] (called where a container's failure is reported, so that "docker run failed"
//! comes with the cause and the fix). This module decides nothing about a node: it is data and
//! text matching, so that the doctor and the report can both depend on it.

use serde::Serialize;

/// How the doctor sees an issue coming.
pub enum Doctor {
    /// A check of its own, `known:ID` (src/doctor/known.rs decides it from the node's facts).
    Check,
    /// Covered by the built-in doctor check with this id.
    Builtin(&'static str),
    /// Not detectable before a container runs Docker: the symptom is recognised afterwards.
    AfterOnly,
}

/// One known failure.
pub struct KnownIssue {
    /// Stable id (the anchor in docs/known-issues.md).
    pub id: &'static str,
    /// One line.
    pub title: &'static str,
    /// Which versions / setups it affects.
    pub affects: &'static str,
    /// Why it happens.
    pub cause: &'static str,
    /// What to do.
    pub fix: &'static str,
    /// Alternatives; each is a list of fragments that must all occur.
    pub symptoms: &'static [&'static [&'static str]],
    /// The doctor's side.
    pub doctor: Doctor,
}

/// A failure recognised as a known issue (in reports and JSON).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Diagnosis {
    /// The issue's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Why.
    pub cause: String,
    /// What to do.
    pub fix: String,
    /// Where it is written up.
    pub see: String,
}

/// Every known issue, most specific symptom first.
pub static ISSUES: &[KnownIssue] = &[
    KnownIssue {
        id: "runc-apparmor-sysctl",
        title: "runc's CVE-2025-52881 fix is refused by the LXC AppArmor profile",
        affects: "runc 1.2.8, 1.3.3, 1.4.0-rc.3 and later (Docker's containerd.io 1.7.28-2 and later, Docker 28.5.2 / 29, distribution runc updates of November 2025) inside containers on Proxmox VE with lxc-pve older than 6.0.5-2",
        cause: "runc now opens /proc/sys files through re-opened file descriptors; AppArmor resolves them as /sys/... paths, which the container-base abstraction of the LXC profile denies, so every `docker run` fails while setting net.ipv4.ip_unprivileged_port_start",
        fix: "update the node: `apt update && apt install lxc-pve` (6.0.5-2 or later) and restart the container; until then pin the container's containerd.io to 1.7.28-1 (or its runc to the previous release)",
        symptoms: &[
            &["reopen fd", "permission denied"],
            &["open sysctl", "permission denied"],
        ],
        doctor: Doctor::Check,
    },
    KnownIssue {
        id: "keyctl-disabled",
        title: "keyctl is off in an unprivileged container",
        affects: "every Proxmox VE release: unprivileged containers without features keyctl=1 (the GUI's default)",
        cause: "runc gives each container its own session keyring (keyctl(KEYCTL_JOIN_SESSION_KEYRING)); without the keyctl feature the container's seccomp policy refuses that system call",
        fix: "set features.keyctl = true in the profile (pct set VMID --features keyctl=1,nesting=1 ...) and restart the container",
        symptoms: &[
            &["session keyring", "operation not permitted"],
            &["session key", "function not implemented"],
        ],
        doctor: Doctor::Check,
    },
    KnownIssue {
        id: "keyring-quota",
        title: "the kernel key quota shared by all unprivileged containers is used up",
        affects: "nodes with many unprivileged containers running Docker (default maxkeys 200 / maxbytes 20000 per user; every unprivileged container's root is uid 100000 on the node)",
        cause: "each Docker container's runc creates a session keyring charged to uid 100000 on the node; once the quota is reached no further container starts",
        fix: "raise the quota on the node: sysctl -w kernel.keys.maxkeys=2000 kernel.keys.maxbytes=2000000 (and persist it in /etc/sysctl.d/)",
        symptoms: &[&["session key", "disk quota exceeded"]],
        doctor: Doctor::Builtin("keyring"),
    },
    KnownIssue {
        id: "nesting-disabled",
        title: "nesting is off: runc cannot mount /proc for the container",
        affects: "every Proxmox VE release: containers without features nesting=1",
        cause: "without nesting the container's AppArmor profile (lxc-container-default-cgns) forbids mounting proc and sysfs, which runc does for every container it starts",
        fix: "set features.nesting = true in the profile (pct set VMID --features nesting=1,keyctl=1 ...) and restart the container",
        symptoms: &[
            &["rootfs", "/proc", "permission denied"],
            &["rootfs", "/proc", "operation not permitted"],
            &["mount proc", "permission denied"],
        ],
        doctor: Doctor::Check,
    },
    KnownIssue {
        id: "apparmor-docker-default",
        title: "dockerd cannot load its docker-default AppArmor profile",
        affects: "Docker 23 and later in containers where AppArmor is enabled on the node but profiles cannot be loaded inside (nesting off, or no apparmor_parser in the container)",
        cause: "dockerd sees AppArmor enabled (the node's kernel) and loads its docker-default profile with apparmor_parser; from inside a confined container that is refused, or the parser is missing",
        fix: "enable nesting (features.nesting = true) and install the `apparmor` package in the container (it provides apparmor_parser), then restart Docker",
        symptoms: &[
            &["docker-default profile could not be loaded"],
            &["apparmor_parser", "permission denied"],
            &["apparmor_parser", "not found"],
        ],
        doctor: Doctor::AfterOnly,
    },
    KnownIssue {
        id: "overlay2-unsupported",
        title: "overlay2 on a filesystem or kernel that cannot carry it (ZFS before 2.2, kernel before 5.11)",
        affects: "container root disks on ZFS older than 2.2 (Proxmox VE before 8.1) and kernels older than 5.11",
        cause: "overlayfs needs RENAME_WHITEOUT and friends from the filesystem under /var/lib/docker (ZFS gained them in 2.2) and, in a user namespace, a 5.11+ kernel; otherwise dockerd refuses overlay2 or layers fail with invalid argument",
        fix: "use storage_driver = \"fuse-overlayfs\" (or \"auto\", which picks it there), or move the root disk to lvm-thin/dir, or upgrade to ZFS 2.2+ (Proxmox VE 8.1+)",
        symptoms: &[
            &["not supported over zfs"],
            &["driver not supported", "overlay2"],
            &["failed to mount overlay", "invalid argument"],
            &["unlinkat", "invalid argument"],
        ],
        doctor: Doctor::Builtin("driver:*"),
    },
    KnownIssue {
        id: "fuse-unavailable",
        title: "fuse-overlayfs cannot open /dev/fuse",
        affects: "containers using fuse-overlayfs without features fuse=1, or nodes without the fuse module / with a restrictive /dev/fuse",
        cause: "fuse-overlayfs mounts through /dev/fuse; PVE only passes the device into a container with the fuse feature, and the node must have it as char 10:229, mode 0666",
        fix: "set features.fuse = true (pct set VMID --features fuse=1,...), `modprobe fuse` on the node, and restart the container",
        symptoms: &[
            &["fuse: device not found"],
            &["/dev/fuse", "permission denied"],
            &["/dev/fuse", "operation not permitted"],
            &["/dev/fuse", "no such file or directory"],
        ],
        doctor: Doctor::Builtin("dev-fuse"),
    },
    KnownIssue {
        id: "uid-beyond-idmap",
        title: "an image holds files owned by a UID/GID the container does not map",
        affects: "every Proxmox VE release: unprivileged containers with the default idmap (65536 IDs, 0-65535) pulling images with larger owners",
        cause: "the container maps only 65536 UIDs/GIDs onto the node (100000-165535); extracting a layer with a file owned by a higher ID fails in lchown",
        fix: "give the container a larger idmap (lxc.idmap entries in /etc/pve/lxc/VMID.conf with a matching range in the node's /etc/subuid and /etc/subgid), or rebuild the image with owners below 65536",
        symptoms: &[
            &["lchown", "invalid argument"],
            &["increasing the number of subordinate ids"],
        ],
        doctor: Doctor::AfterOnly,
    },
    KnownIssue {
        id: "cgroup-v1-hybrid",
        title: "the node runs a cgroup v1 / hybrid hierarchy",
        affects: "Proxmox VE 7.x booted with systemd.unified_cgroup_hierarchy=0, and Proxmox VE 6.x (cgroup v2 is the default since 7.0; 8.0 dropped v1 for containers)",
        cause: "current systemd and Docker expect the unified cgroup v2 hierarchy; in a container on a hybrid node systemd cannot mount its cgroups and runc finds no cgroup mount points",
        fix: "remove systemd.unified_cgroup_hierarchy=0 from the node's kernel command line and reboot it (and upgrade to Proxmox VE 8)",
        symptoms: &[
            &["cgroup mountpoint does not exist"],
            &["failed to mount cgroup at /sys/fs/cgroup/systemd"],
        ],
        doctor: Doctor::Builtin("cgroup"),
    },
];

/// Compares Debian-style versions well enough for `6.0.5-2` against `6.0.0-1`: numeric runs
/// numerically, other runs as text, in order. Not a full dpkg comparison (no epochs or `~`).
pub fn version_lt(a: &str, b: &str) -> bool {
    fn parts(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digits = None;
        for c in s.chars() {
            let d = c.is_ascii_digit();
            if !c.is_ascii_alphanumeric() {
                if !cur.is_empty() {
                    out.push(cur.parse().map_err(|_| cur.clone()));
                    cur.clear();
                }
                digits = None;
                continue;
            }
            if digits.is_some_and(|x| x != d) {
                out.push(cur.parse().map_err(|_| cur.clone()));
                cur.clear();
            }
            digits = Some(d);
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(cur.parse().map_err(|_| cur.clone()));
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let ord = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Err(x), Err(y)) => x.cmp(y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
            (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        };
        if ord != std::cmp::Ordering::Equal {
            return ord == std::cmp::Ordering::Less;
        }
    }
    pa.len() < pb.len()
}

/// The issue with this id.
pub fn issue(id: &str) -> &'static KnownIssue {
    ISSUES.iter().find(|i| i.id == id).expect("known issue id")
}

/// The first lxc-pve release whose AppArmor profile lets runc's re-opened /proc/sys through.
pub const LXC_PVE_FIXED: &str = "6.0.5-2";

/// The known issue a failure's text shows, if any (first match in table order).
pub fn recognise(text: &str) -> Option<&'static KnownIssue> {
    let t = text.to_lowercase();
    ISSUES.iter().find(|i| {
        i.symptoms
            .iter()
            .any(|all| all.iter().all(|frag| t.contains(&frag.to_lowercase())))
    })
}

/// [`recognise`] over a failure's message and output, as a [`Diagnosis`] for the report.
pub fn diagnose(message: &str, tail: &[String]) -> Option<Diagnosis> {
    let text = format!("{message}\n{}", tail.join("\n"));
    recognise(&text).map(|i| Diagnosis {
        id: i.id.to_string(),
        title: i.title.to_string(),
        cause: i.cause.to_string(),
        fix: i.fix.to_string(),
        see: format!("docs/known-issues.md#{}", i.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_issue_has_a_symptom_or_a_check() {
        let mut ids: Vec<&str> = ISSUES.iter().map(|i| i.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ISSUES.len());
        assert!(ISSUES.len() >= 8);
        for i in ISSUES {
            assert!(
                !i.symptoms.is_empty() || !matches!(i.doctor, Doctor::AfterOnly),
                "{}",
                i.id
            );
            for s in i.symptoms {
                assert!(!s.is_empty(), "{}: empty symptom", i.id);
            }
        }
    }

    #[test]
    fn debian_versions_compare() {
        assert!(version_lt("6.0.0-1", "6.0.5-2"));
        assert!(version_lt("6.0.5-1", "6.0.5-2"));
        assert!(!version_lt("6.0.5-2", "6.0.5-2"));
        assert!(!version_lt("6.0.5-3", "6.0.5-2"));
        assert!(!version_lt("6.1.0-1", "6.0.5-2"));
        assert!(version_lt("5.0.2-2", "6.0.5-2"));
        assert!(version_lt("6.0.5", "6.0.5-2"));
    }

    #[test]
    fn an_unrelated_failure_is_not_dressed_up_as_a_known_issue() {
        assert!(recognise("docker run failed: exec format error").is_none());
        assert!(recognise("").is_none());
    }
}
