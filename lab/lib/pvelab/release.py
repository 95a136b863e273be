"""Which Proxmox VE release the lab node answers as, and what differs between releases.

One row per release: the package versions its GA ISO shipped (pve-manager and pve-container from
their debian/changelog, see lab/README.md "Releases"; kernel/ZFS/LXC point versions are
illustrative where the release notes give only a series). Every behaviour switch below is keyed
on a package version, as on a node: `pve-container` decides pct's options and the accepted
guests, `libpve-storage-perl` the `pvesm status` header, `pve-manager` the template index.

The release is chosen by `labctl up --release R` (or `labctl release R`) and kept in
STATE/lab.json; PROVISION_LAB_RELEASE overrides it for one command (tests use that).
"""

import hashlib
import os
import re

from .common import PVEError, lab_config

DEFAULT = "9.2"

# key: pve-manager, pve-container, libpve-storage-perl, libpve-common-perl, lxc-pve,
#      zfsutils-linux, kernel (running), kernel package + its version, proxmox-ve, Debian
RELEASES = {
    "7.4": dict(manager="7.4-3", container="4.4-3", storage="7.4-2", common="7.3-3", lxc="5.0.2-2",
                zfs="2.1.9-pve1", kernel="5.15.102-1-pve", kpkg="pve-kernel-5.15", kpkgver="7.3-3",
                pve="7.4-1", debian="11.6"),
    # 7.4 with the last updates of the PVE 7 line (pve-manager 7.4-20, pve-container 4.4-7 of
    # June 2024, per their changelogs); the other package versions are illustrative. It takes
    # Debian <= 13.0 and Ubuntu 24.04 (backports), still no `--keep-env`, ZFS 2.1.
    "7.4-latest": dict(manager="7.4-20", container="4.4-7", storage="7.4-3", common="7.4-2", lxc="5.0.2-4",
                       zfs="2.1.15-pve1", kernel="5.15.158-2-pve", kpkg="pve-kernel-5.15", kpkgver="7.4-15",
                       pve="7.4-1", debian="11.11"),
    "8.0": dict(manager="8.0.3", container="5.0.3", storage="8.0.1", common="8.0.5", lxc="5.0.2-4",
                zfs="2.1.12-pve1", kernel="6.2.16-3-pve", kpkg="pve-kernel-6.2", kpkgver="8.0.2",
                pve="8.0.1", debian="12.0"),
    "8.1": dict(manager="8.1.3", container="5.0.8", storage="8.0.5", common="8.1.0", lxc="5.0.2-4",
                zfs="2.2.0-pve3", kernel="6.5.11-4-pve", kpkg="proxmox-kernel-6.5", kpkgver="6.5.11-4",
                pve="8.1.0", debian="12.2"),
    "8.2": dict(manager="8.2.2", container="5.0.11", storage="8.2.1", common="8.2.1", lxc="6.0.0-1",
                zfs="2.2.3-pve2", kernel="6.8.4-2-pve", kpkg="proxmox-kernel-6.8", kpkgver="6.8.4-2",
                pve="8.2.0", debian="12.5"),
    "8.3": dict(manager="8.3.0", container="5.2.2", storage="8.2.9", common="8.2.9", lxc="6.0.0-1",
                zfs="2.2.6-pve1", kernel="6.8.12-4-pve", kpkg="proxmox-kernel-6.8", kpkgver="6.8.12-4",
                pve="8.3.0", debian="12.8"),
    "8.4": dict(manager="8.4.0", container="5.2.6", storage="8.3.6", common="8.3.1", lxc="6.0.0-1",
                zfs="2.2.7-pve2", kernel="6.8.12-9-pve", kpkg="proxmox-kernel-6.8", kpkgver="6.8.12-9",
                pve="8.4.0", debian="12.10"),
    "9.0": dict(manager="9.0.3", container="6.0.9", storage="9.0.13", common="9.0.9", lxc="6.0.4-2",
                zfs="2.3.3-pve1", kernel="6.14.8-2-pve", kpkg="proxmox-kernel-6.14", kpkgver="6.14.8-2",
                pve="9.0.0", debian="13.0"),
    "9.1": dict(manager="9.1.1", container="6.0.18", storage="9.0.18", common="9.0.15", lxc="6.0.5-3",
                zfs="2.3.4-pve1", kernel="6.17.2-1-pve", kpkg="proxmox-kernel-6.17", kpkgver="6.17.2-1",
                pve="9.1.0", debian="13.2"),
    "9.2": dict(manager="9.2.2", container="6.1.10", storage="9.1.5", common="9.2.0", lxc="7.0.0-1",
                zfs="2.4.0-pve1", kernel="7.0.2-1-pve", kpkg="proxmox-kernel-7.0", kpkgver="7.0.2-1",
                pve="9.2.0", debian="13.5"),
    # 9.2 with the updates of the references' snapshot (pve-manager 9.2.11 of Aug 2026): the
    # only row whose `pveam available` has the third (arch) column.
    "9.2-latest": dict(manager="9.2.11", container="6.1.10", storage="9.1.7", common="9.2.1", lxc="7.0.0-1",
                       zfs="2.4.0-pve1", kernel="7.0.2-1-pve", kpkg="proxmox-kernel-7.0", kpkgver="7.0.2-1",
                       pve="9.2.0", debian="13.5"),
}


def vtuple(v):
    """'4.4-3' -> (4, 4, 3); '6.0.18' -> (6, 0, 18); '9.2.0~1' -> (9, 2, 0, 1)."""
    return tuple(int(x) for x in re.findall(r"\d+", v))


def name():
    r = os.environ.get("PROVISION_LAB_RELEASE")
    if not r:
        cfg = lab_config() or {}
        r = cfg.get("release") or DEFAULT
    if r not in RELEASES:
        raise PVEError("provision-lab: unknown release '%s' (known: %s)" % (r, ", ".join(RELEASES)))
    return r


def info(r=None):
    return RELEASES[r or name()]


def at_least(pkg, version, r=None):
    """True when this release's package `pkg` (container, manager, storage, common) >= version."""
    return vtuple(info(r)[pkg]) >= vtuple(version)


def repoid(r=None):
    """A stable, made-up repoid in the release's shape: 8 hex digits on 7.x, 16 from 8.0."""
    r = r or name()
    h = hashlib.sha1(("provision-lab " + r).encode()).hexdigest()
    return h[:8] if info(r)["manager"].startswith("7.") else h[:16]


def manager_text(r=None):
    """pve-manager/<version>/<repoid> as `pveversion` and /nodes/N/status print it."""
    return "pve-manager/%s/%s" % (info(r)["manager"], repoid(r))


def short(r=None):
    """`release` of /version: major.minor of pve-manager."""
    m = re.match(r"(\d+)\.(\d+)", info(r)["manager"])
    return "%s.%s" % (m.group(1), m.group(2))


# ---------------------------------------------------------------- pct's options per release

# (family or option, property-string key or None, pve-container version that added it)
ADDED = [
    ("dev", None, "5.0.7"),
    ("ha-managed", None, "6.0.14"),
    ("entrypoint", None, "6.0.15"),
    ("env", None, "6.0.15"),
    ("net", "host-managed", "6.0.15"),
    ("mp", "idmap", "6.1.6"),
    ("rootfs", "idmap", "6.1.6"),
    ("mp", "keepattrs", "6.1.2"),
]


def _family(opt):
    m = re.fullmatch(r"([a-z]+)\d+", opt)
    return m.group(1) if m and m.group(1) in ("dev", "net", "mp", "unused") else opt


def apply_schema(props, r=None):
    """The vendored PVE 9.x schema, minus what this release's pve-container does not know."""
    out = {}
    for k, v in props.items():
        fam = _family(k)
        if any(fam == f and key is None and not at_least("container", ver, r) for f, key, ver in ADDED):
            continue
        drop = [key for f, key, ver in ADDED if f == fam and key and not at_least("container", ver, r)]
        if drop and isinstance(v.get("format"), dict):
            v = dict(v, format={fk: fv for fk, fv in v["format"].items() if fk not in drop})
        out[k] = v
    return out


def default_unprivileged(r=None):
    """`pct create` without --unprivileged: 0 up to pve-container 6.0.5, 1 from 6.0.6."""
    return "1" if at_least("container", "6.0.6", r) else "0"


def has_keep_env(r=None):
    return at_least("container", "5.0.9", r)


def has_interfaces_api(r=None):
    return at_least("container", "5.0.8", r)


def interfaces_all_addresses(r=None):
    """`ip-addresses` and `hardware-address` in /interfaces from pve-container 5.2.6."""
    return at_least("container", "5.2.6", r)


def percent_encodes_description(r=None):
    """libpve-common-perl 8.2.2 (fix #5486) escapes '%' in the description comment lines."""
    return at_least("common", "8.2.2", r)


def pvesm_units_header(r=None):
    return at_least("storage", "9.0.14", r)


def pveam_arch_column(r=None):
    return at_least("manager", "9.2.7", r)


def pull_stopped_line(r=None):
    """`pct pull` on a stopped CT dies without a newline: Perl appends the source line."""
    line = {"4.4-3": 560, "5.0.3": 561, "5.0.8": 562, "5.0.9": 599, "5.0.11": 599, "5.2.2": 608,
            "5.2.6": 608, "6.0.9": 657, "6.0.18": 657, "6.1.10": 659}.get(info(r)["container"], 659)
    return "can only pull files from a running VM at /usr/share/perl5/PVE/CLI/pct.pm line %d.\n" % line


# ---------------------------------------------------------------- guests accepted (Setup/*.pm)

UBUNTU_ADDED = [  # (version, pve-container that knows it)
    ("22.10", "4.2-3"), ("23.04", "4.2-3"), ("23.10", "5.0.2"), ("24.04", "5.1.10"),
    ("24.10", "5.2.2"), ("25.04", "5.2.2"), ("25.10", "6.0.12"), ("26.04", "6.0.12"), ("26.10", "6.1.7"),
]
UBUNTU_OLD = ["12.04", "14.04", "15.04", "15.10", "16.04", "16.10", "17.04", "17.10", "18.04", "18.10",
              "19.04", "19.10", "20.04", "20.10", "21.04", "21.10", "22.04"]


# Backports to the PVE 7 line (pve-container stable-7, 4.4-x): pve-releases.md section 3.
UBUNTU_ADDED_PVE7 = [("23.10", "4.4-5"), ("24.04", "4.4-7")]


def pve7_line(r=None):
    return not at_least("container", "5.0.0", r)


def ubuntu_known(r=None):
    known = set(UBUNTU_OLD) | {v for v, c in UBUNTU_ADDED if at_least("container", c, r)}
    if pve7_line(r):
        known |= {v for v, c in UBUNTU_ADDED_PVE7 if at_least("container", c, r)}
    return known


def check_debian(version_line, r=None):
    """Setup::Debian->new: returns a warning text or None; raises PVEError on refusal."""
    v = version_line
    vmap = {"stretch/sid": "9.1", "buster/sid": "10", "bullseye/sid": "11", "bookworm/sid": "12",
            "kali-rolling": "11" if not at_least("container", "5.0.2", r) else "12"}
    if at_least("container", "5.0.2", r):
        vmap.update({"trixie/sid": "13", "forky/sid": "14"})
    if at_least("container", "6.0.10", r):
        vmap["duke/sid"] = "15"
    v = vmap.get(v, v)
    m = re.match(r"^(\d+(\.\d+)?)(\.\d+)?", v)
    if not m:
        raise PVEError("unable to parse version info '%s'" % v)
    if at_least("container", "6.0.10", r):
        major = int(m.group(1).split(".")[0])
        if major < 4:
            too = "too" if at_least("container", "6.0.12", r) else "to"
            raise PVEError("Container Debian version '%d' is %s old" % (major, too))
        if major >= 15:
            return ("The container's Debian version '%d' is newer than the tested version '14'. While "
                    "everything may work fine, full compatibility cannot be guaranteed. Please check "
                    "for PVE system updates." % major)
        return None
    num = float(m.group(1))
    # <= 13 from 5.0.2, and on the PVE 7 line from its backport 4.4-5.
    top = 13 if at_least("container", "5.0.2", r) or (pve7_line(r) and at_least("container", "4.4-5", r)) else 12
    if not (4 <= num <= top):
        raise PVEError("unsupported debian version '%s'" % m.group(1))
    return None


def check_ubuntu(release, r=None):
    if release is None:
        raise PVEError("unable to read version info")
    if release in ubuntu_known(r):
        return None
    if at_least("container", "6.0.12", r):
        m = re.fullmatch(r"(\d+)\.(\d+)", release)
        if m:
            if int(m.group(1)) < 17:
                raise PVEError("unsupported ancient Ubuntu version '%s'" % release)
            return ("The container's Ubuntu version '%s' is not in the known version list. As it's newer "
                    "than the minimum supported version it's likely to work OK, but full compatibility "
                    "cannot be guaranteed. Please check for PVE system updates." % release)
        raise PVEError("unsupported and unexpected Ubuntu version '%s'" % release)
    raise PVEError("unsupported Ubuntu version '%s'" % release)


def _read(root, rel):
    try:
        with open(os.path.join(root, rel), errors="replace") as f:
            return f.read()
    except OSError:
        return None


def detect_guest(root, r=None):
    """PVE::LXC::Setup's autodetection + the plugin's version check on an extracted rootfs.

    Returns (ostype, warning-or-None); raises PVEError with PVE's text when the guest is refused.
    Only the distributions the lab can set up (debian, ubuntu) and 'unmanaged' are handled;
    anything else PVE knows is refused by the lab with a lab message."""
    osr = _read(root, "etc/os-release") or _read(root, "usr/lib/os-release") or ""
    ident = None
    for line in osr.splitlines():
        m = re.match(r"^ID=\"?([^\"\s]+)\"?\s*$", line)
        if m:
            ident = m.group(1)
    known = {"alpine", "archlinux", "centos", "debian", "devuan", "fedora", "gentoo", "openeuler",
             "opensuse", "ubuntu", "nixos", "unmanaged", "opensuse-leap", "opensuse-tumbleweed",
             "opensuse-slowroll", "openEuler", "arch", "sles", "rocky", "almalinux"}
    ostype = None
    if ident in known:
        ostype = ident
    else:
        lsb = _read(root, "etc/lsb-release")
        if lsb is not None and re.search(r"^DISTRIB_ID=Ubuntu$", lsb, re.M | re.I):
            ostype = "ubuntu"
        elif os.path.isfile(os.path.join(root, "etc/debian_version")):
            ostype = "debian"
        elif os.path.isfile(os.path.join(root, "etc/os-release")):
            raise PVEError("unable to detect OS distribution")
        else:
            return "unmanaged", None
    if ostype == "debian":
        line = _read(root, "etc/debian_version")
        if line is None:
            raise PVEError("unable to read version info")
        return "debian", check_debian(line.splitlines()[0].strip() if line.strip() else "", r)
    if ostype == "ubuntu":
        lsb = _read(root, "etc/lsb-release") or ""
        if not re.search(r"^DISTRIB_ID=Ubuntu$", lsb, re.M | re.I):
            raise PVEError("got unknown DISTRIB_ID")
        m = re.search(r"^DISTRIB_RELEASE=(\d+\.\d+)$", lsb, re.M | re.I)
        return "ubuntu", check_ubuntu(m.group(1) if m else None, r)
    if ostype == "unmanaged":
        return "unmanaged", None
    raise PVEError("provision-lab: guest type '%s' is known to PVE but not set up by the lab node" % ostype)
