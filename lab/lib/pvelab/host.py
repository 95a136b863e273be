"""Host side of the lab (used by lab/labctl): packages, subuid, bridge, NAT, dnsmasq, template.

Everything `up` changes on the machine is recorded in STATE/host-prev.json *before* it is
changed, so `down` can put it back even after a half-finished `up`.
Human-readable progress goes to stderr; stdout is reserved for the export lines.
"""

import glob
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from . import common, storage
from .common import atomic_write, cache_dir, sp

BRIDGE = "vmbr0"
BRIDGE_ALIAS = "provision-lab"
NFT_TABLE = "provision_lab"
DEFAULT_SUBNET = "10.199.77.0/24"
SUITE = "bookworm"  # the host's own suite: how the mirror is found in its apt sources
# Debian templates the lab builds: major -> suite (Debian 12 is PROVISION_LAB_TEMPLATE)
DEBIAN_SUITES = {12: "bookworm", 13: "trixie"}
TEMPLATE_PACKAGES = [
    "systemd-sysv", "dbus", "iproute2", "ca-certificates", "openssh-server",
    "ifupdown", "isc-dhcp-client", "procps", "less",
]

# binary -> Debian package that provides it
HOST_TOOLS = {
    "lxc-start": "lxc", "newuidmap": "uidmap", "debootstrap": "debootstrap",
    "fuse-overlayfs": "fuse-overlayfs", "zstd": "zstd", "nft": "nftables",
    "dnsmasq": "dnsmasq-base", "ssh-keygen": "openssh-client", "ip": "iproute2",
    "nsenter": "util-linux",
}


def say(msg):
    sys.stderr.write("labctl: %s\n" % msg)
    sys.stderr.flush()


class Stage:
    """Times a stage and reports it on stderr."""

    timings = []

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t = time.monotonic()
        return self

    def __exit__(self, et, ev, tb):
        dt = time.monotonic() - self.t
        Stage.timings.append((self.name, dt))
        say("%-28s %6.2f s%s" % (self.name, dt, "" if et is None else "  (failed)"))
        return False


class LabError(Exception):
    pass


def run(cmd, check=True, quiet=False, **kw):
    """Run a command, its output to stderr (never stdout)."""
    kw.setdefault("stdout", subprocess.DEVNULL if quiet else sys.stderr)
    kw.setdefault("stderr", subprocess.DEVNULL if quiet else sys.stderr)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise LabError("command failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r


def out(cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise LabError("command failed (exit %d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr.strip()))
    return r.stdout


# ---------------------------------------------------------------- facts

def apt_sources():
    """[(uri, suites, components)] of deb entries in the host's apt sources."""
    res = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(path).read()
        except OSError:
            continue
        for para in re.split(r"\n\s*\n", text):
            fields = {}
            for line in para.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                res.append((uri, fields.get("suites", "").split(), fields.get("components", "main").split()))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                res.append((line[1], [line[2]], line[3:] or ["main"]))
    return res


def debian_mirror():
    """The URI serving the main Debian archive (suite bookworm) of this machine."""
    for uri, suites, _ in apt_sources():
        if SUITE in suites and "security" not in uri:
            return uri
    for uri, suites, _ in apt_sources():
        if SUITE in suites:
            return uri
    raise LabError("no Debian '%s' mirror found in the apt sources (/etc/apt/sources.list.d/*.sources)" % SUITE)


def mirror_hosts():
    hosts = []
    for uri, _, _ in apt_sources():
        m = re.match(r"^[a-z+]+://(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)", uri)
        if m and m.group(1) not in hosts:
            hosts.append(m.group(1))
    return hosts


def host_nameservers():
    ns = []
    try:
        for line in open("/etc/resolv.conf"):
            p = line.split()
            if len(p) >= 2 and p[0] == "nameserver":
                ns.append(p[1])
    except OSError:
        pass
    return ns


def read_ip_forward():
    return open("/proc/sys/net/ipv4/ip_forward").read().strip()


def write_ip_forward(v):
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write(str(v) + "\n")


def bridge_is_ours():
    r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", BRIDGE],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0:
        return None  # absent
    try:
        info = json.loads(r.stdout)[0]
    except (ValueError, IndexError):
        return False
    return info.get("ifalias") == BRIDGE_ALIAS


def subnet_facts():
    net = ipaddress.ip_network(os.environ.get("PROVISION_LAB_SUBNET") or DEFAULT_SUBNET, strict=True)
    if net.version != 4 or net.prefixlen > 28:
        raise LabError("PROVISION_LAB_SUBNET must be an IPv4 network of /28 or larger")
    hosts = list(net.hosts())
    gw = hosts[0]
    n = len(hosts)
    # DHCP pool: the middle of the subnet; low and high ends stay free for static addresses.
    lo = hosts[min(n - 1, max(1, n * 100 // 254))]
    hi = hosts[min(n - 2, max(2, n * 199 // 254))]
    return {"subnet": str(net), "gateway": str(gw), "prefixlen": net.prefixlen,
            "netmask": str(net.netmask), "dhcp_start": str(lo), "dhcp_end": str(hi)}


def routes_overlap(subnet):
    net = ipaddress.ip_network(subnet)
    try:
        routes = json.loads(out(["ip", "-j", "-4", "route", "show"]))
    except ValueError:
        return None
    for r in routes:
        dst = r.get("dst")
        if not dst or dst == "default" or r.get("dev") == BRIDGE:
            continue
        try:
            if ipaddress.ip_network(dst, strict=False).overlaps(net):
                return "%s dev %s" % (dst, r.get("dev"))
        except ValueError:
            continue
    return None


# ---------------------------------------------------------------- packages

def pkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and r.stdout.strip().endswith("installed") and "not-installed" not in r.stdout


def ensure_packages():
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None or not pkg_installed(pkg)})
    missing += [p for p in ("lxc", "uidmap") if p not in missing and not pkg_installed(p)]
    if not missing:
        return []
    say("installing Debian packages: %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends"] + missing
    r = run(cmd, check=False, env=env)
    if r.returncode != 0:
        say("apt-get install failed; running apt-get update and retrying")
        run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], env=env)
        run(cmd, env=env)
    return missing


# ---------------------------------------------------------------- subuid / subgid

def _has_root_range(path):
    try:
        for line in open(path):
            p = line.strip().split(":")
            if len(p) == 3 and p[0] in ("root", "0") and int(p[1]) <= common.ID_BASE \
                    and int(p[1]) + int(p[2]) >= common.ID_BASE + common.ID_RANGE:
                return True
    except (OSError, ValueError):
        pass
    return False


def ensure_subids(prev):
    for path in ("/etc/subuid", "/etc/subgid"):
        if _has_root_range(path):
            continue
        line = "root:%d:%d\n" % (common.ID_BASE, common.ID_RANGE)
        if not os.path.exists(path):
            prev.setdefault("subid_created", []).append(path)
        with open(path, "a") as f:
            f.write(line)
        prev.setdefault("subid_added", []).append(path)
        say("added %s to %s" % (line.strip(), path))


def remove_subids(prev):
    line = "root:%d:%d" % (common.ID_BASE, common.ID_RANGE)
    for path in prev.get("subid_added", []):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        if line in lines:
            lines.remove(line)
            if not lines and path in prev.get("subid_created", []):
                os.unlink(path)
            else:
                atomic_write(path, "".join(l + "\n" for l in lines), 0o644)


# ---------------------------------------------------------------- network

def nft_ruleset(net, mirror_ips):
    elems = ", ".join(sorted(mirror_ips))
    elements = ("elements = { %s }" % elems) if elems else ""
    return """
table inet %(t)s {
    # Debian mirror addresses the containers may reach (filled by `labctl up` and by dnsmasq --nftset)
    set mirror4 {
        type ipv4_addr
        %(elements)s
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr %(net)s ip daddr %(net)s accept
        ct state established,related accept
        iifname "%(br)s" ip daddr @mirror4 tcp dport { 80, 443 } accept
        iifname "%(br)s" counter drop
        oifname "%(br)s" counter drop
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        ip saddr %(net)s ip daddr != %(net)s masquerade
    }
}
""" % {"t": NFT_TABLE, "net": net, "br": BRIDGE, "elements": elements}


def nft_table_exists():
    if shutil.which("nft") is None:  # a fresh machine before the first `up`
        return False
    return subprocess.run(["nft", "list", "table", "inet", NFT_TABLE],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


MIRROR_CLOSED = "provision-lab: mirror closed"


def mirror_rule_handles():
    """Handles of the rule that `labctl mirror closed` inserted (none: the mirror is open)."""
    r = subprocess.run(["nft", "-a", "list", "chain", "inet", NFT_TABLE, "forward"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise LabError("the lab's nft table is missing (is the lab up?): %s" % r.stderr.strip())
    return [line.rsplit("# handle ", 1)[1].strip() for line in r.stdout.splitlines()
            if MIRROR_CLOSED in line and "# handle " in line]


def set_mirror(state, source=None):
    """open: containers reach the Debian mirror (the default); closed: every packet from the
    bridge (or only from the addresses in `source`, an IPv4 CIDR) to a mirror address is
    rejected at once (ICMP admin-prohibited), so apt fails fast with "Could not connect" instead
    of waiting for a timeout - a node without internet. `open` removes every such rule."""
    if state not in ("open", "closed"):
        raise LabError("mirror state must be open or closed, not %r" % state)
    if source is not None:
        try:
            source = str(ipaddress.IPv4Network(source, strict=False))
        except ValueError as e:
            raise LabError("not an IPv4 network: %r (%s)" % (source, e))
    if state == "open":
        for h in mirror_rule_handles():
            run(["nft", "delete", "rule", "inet", NFT_TABLE, "forward", "handle", h])
        return
    match = ["ip", "saddr", source] if source else []
    run(["nft", "insert", "rule", "inet", NFT_TABLE, "forward", "iifname", BRIDGE] + match +
        ["ip", "daddr", "@mirror4", "counter", "reject", "with", "icmpx", "type", "admin-prohibited",
         "comment", '"%s"' % MIRROR_CLOSED])


def resolve4(host):
    try:
        ipaddress.IPv4Address(host)
        return [host]
    except ValueError:
        pass
    try:
        return sorted({ai[4][0] for ai in socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)})
    except OSError:
        return []


def setup_network(facts, prev):
    ours = bridge_is_ours()
    if ours is False:
        raise LabError("a bridge named %s exists and is not the lab's (no alias '%s'): refusing to touch it"
                       % (BRIDGE, BRIDGE_ALIAS))
    clash = routes_overlap(facts["subnet"])
    if clash:
        raise LabError("lab subnet %s overlaps a route of this machine (%s); set PROVISION_LAB_SUBNET"
                       % (facts["subnet"], clash))
    if ours is None:
        run(["ip", "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        run(["ip", "link", "set", BRIDGE, "alias", BRIDGE_ALIAS])
    addr = "%s/%d" % (facts["gateway"], facts["prefixlen"])
    have = out(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE])
    if addr not in have:
        run(["ip", "addr", "add", addr, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    if "ip_forward" not in prev:
        prev["ip_forward"] = read_ip_forward()
    write_ip_forward(1)
    ips = set()
    for h in mirror_hosts():
        ips.update(resolve4(h))
    if nft_table_exists():
        run(["nft", "delete", "table", "inet", NFT_TABLE])
    run(["nft", "-f", "-"], input=nft_ruleset(facts["subnet"], ips).encode(), stdout=sys.stderr)
    return sorted(ips)


def dnsmasq_pid():
    try:
        pid = int(open(sp("dnsmasq.pid")).read().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
    except OSError:
        return None
    if cmdline and os.path.basename(cmdline[0]) == b"dnsmasq" and sp("dnsmasq.pid").encode() in b" ".join(cmdline):
        return pid
    return None


def _alive(pid):
    """True while pid runs (a zombie - dnsmasq's parent may not reap it - counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_dnsmasq():
    pid = dnsmasq_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.02)
    try:
        os.unlink(sp("dnsmasq.pid"))
    except FileNotFoundError:
        pass


def start_dnsmasq(facts):
    stop_dnsmasq()
    upstream = [ns for ns in host_nameservers()] or ["127.0.0.1"]
    args = [
        "dnsmasq", "--conf-file=/dev/null", "--pid-file=" + sp("dnsmasq.pid"),
        "--interface=" + BRIDGE, "--bind-interfaces", "--except-interface=lo",
        "--listen-address=" + facts["gateway"],
        "--dhcp-range=%s,%s,%s,1h" % (facts["dhcp_start"], facts["dhcp_end"], facts["netmask"]),
        "--dhcp-option=option:router," + facts["gateway"],
        "--dhcp-option=option:dns-server," + facts["gateway"],
        "--dhcp-leasefile=" + sp("dnsmasq.leases"), "--dhcp-authoritative",
        "--no-resolv", "--no-hosts", "--no-poll", "--strict-order", "--no-ping",
        "--log-facility=" + sp("dnsmasq.log"), "--log-dhcp",
        # Only the Debian mirror's names are forwarded upstream; everything else is
        # answered NXDOMAIN: the containers reach the mirror and nothing else.
        "--address=/#/",
    ]
    for h in mirror_hosts():
        try:
            ipaddress.ip_address(h.strip("[]"))
            continue
        except ValueError:
            pass
        for ns in upstream:
            args.append("--server=/%s/%s" % (h, ns))
        args.append("--nftset=/%s/4#inet#%s#mirror4" % (h, NFT_TABLE))
    run(args)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if dnsmasq_pid():
            return
        time.sleep(0.02)
    raise LabError("dnsmasq did not start (see %s)" % sp("dnsmasq.log"))


def teardown_network(prev):
    stop_dnsmasq()
    if nft_table_exists():
        run(["nft", "delete", "table", "inet", NFT_TABLE])
    if bridge_is_ours():
        run(["ip", "link", "del", BRIDGE])
    if "ip_forward" in prev:
        write_ip_forward(prev["ip_forward"])


# ---------------------------------------------------------------- template

def cached_template(major=12):
    c = sorted(glob.glob(os.path.join(cache_dir(), "debian-%d-standard_*_amd64.tar.zst" % major)))
    return c[-1] if c else None


def build_template(major=12):
    """debootstrap --variant=minbase SUITE, cleaned and packed like a PVE template."""
    suite = DEBIAN_SUITES[major]
    os.makedirs(cache_dir(), exist_ok=True)
    for stale in glob.glob(os.path.join(cache_dir(), "build.*")):
        shutil.rmtree(stale, ignore_errors=True)
    root = os.path.join(cache_dir(), "build.%d" % os.getpid())
    os.makedirs(root)
    mirror = debian_mirror()
    try:
        with Stage("debootstrap %s" % suite):
            run(["debootstrap", "--variant=minbase", "--include=" + ",".join(TEMPLATE_PACKAGES),
                 suite, root, mirror], stdout=sys.stderr)
        with Stage("template: configure"):
            configure_template_tree(root, suite)
        ver = open(os.path.join(root, "etc/debian_version")).read().strip()
        # the name like PVE's (debian-13-standard_13.1-1); a testing tree ("trixie/sid") is 13.0
        if not re.fullmatch(r"%d\.\d+" % major, ver):
            ver = "%d.0" % major
        name = "debian-%d-standard_%s-1_amd64.tar.zst" % (major, ver)
        dest = os.path.join(cache_dir(), name)
        with Stage("template: pack"):
            tmp = dest + ".part"
            tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "--acls", "-C", root,
                                    "--anchored", "--exclude=./dev/*", "-cf", "-", "."],
                                   stdout=subprocess.PIPE)
            with open(tmp, "wb") as f:
                z = subprocess.run(["zstd", "-q", "-3", "-T0", "-c"], stdin=tar.stdout, stdout=f)
            tar.stdout.close()
            if tar.wait() != 0 or z.returncode != 0:
                raise LabError("packing the template failed")
            os.rename(tmp, dest)
        return dest
    finally:
        shutil.rmtree(root, ignore_errors=True)


def configure_template_tree(root, suite=SUITE):
    def w(rel, text, mode=0o644):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    # apt sources: the host's own entries for its suite, renamed to the template's suite
    lines = []
    for uri, suites, comps in apt_sources():
        s = [suite + x[len(SUITE):] for x in suites if x.startswith(SUITE)]
        if s:
            lines.append("Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n"
                         "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                         % (uri, " ".join(s), " ".join(comps)))
    w("etc/apt/sources.list.d/debian.sources", "\n".join(lines))
    try:
        os.unlink(os.path.join(root, "etc/apt/sources.list"))
    except FileNotFoundError:
        pass
    w("etc/hostname", "localhost\n")
    w("etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    w("etc/network/interfaces", "auto lo\niface lo inet loopback\n")
    w("etc/machine-id", "", 0o444)
    for p in ["var/lib/dbus/machine-id"] + [os.path.relpath(x, root) for x in
                                            glob.glob(os.path.join(root, "etc/ssh/ssh_host_*"))]:
        try:
            os.unlink(os.path.join(root, p))
        except FileNotFoundError:
            pass
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in glob.glob(os.path.join(root, d, "*")):
            if os.path.isfile(f) and not f.endswith("/lock"):
                os.unlink(f)
    for f in glob.glob(os.path.join(root, "var/cache/apt/*.bin")) + glob.glob(os.path.join(root, "var/log/*.log")):
        os.unlink(f)
    # units that only make sense on real hardware / a VM
    wants = os.path.join(root, "etc/systemd/system")
    for unit in ("systemd-timesyncd.service", "systemd-networkd-wait-online.service",
                 "getty@tty1.service", "sys-kernel-debug.mount", "sys-kernel-tracing.mount"):
        link = os.path.join(wants, unit)
        if not os.path.lexists(link):
            os.symlink("/dev/null", link)
    # dhclient must not wait for IPv6 / hang on boot longer than needed
    w("etc/dhcp/dhclient.conf.d/.keep", "")


def install_template_into_local(src):
    d = storage.template_dir("local")
    os.makedirs(d, exist_ok=True)
    dest = os.path.join(d, os.path.basename(src))
    if os.path.exists(dest) and os.path.getsize(dest) == os.path.getsize(src):
        return dest
    try:
        os.link(src, dest + ".tmp")
    except OSError:
        shutil.copyfile(src, dest + ".tmp")
    os.rename(dest + ".tmp", dest)
    return dest


# ---------------------------------------------------------------- misc host bits

def ensure_fuse_node():
    d = sp("dev")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "fuse")
    if not os.path.exists(p):
        os.mknod(p, 0o666 | 0o020000, os.makedev(10, 229))
    os.chmod(p, 0o666)
    return p


SECCOMP_EXTRA = "keyctl errno 38\n"


def ensure_seccomp():
    base = "/usr/share/lxc/config/common.seccomp"
    text = open(base).read()
    if not text.endswith("\n"):
        text += "\n"
    d = sp("lxc-config")
    os.makedirs(d, exist_ok=True)
    # Like PVE's pve-userns.seccomp: unprivileged containers without keyctl=1 get ENOSYS.
    atomic_write(os.path.join(d, "pve-userns.seccomp"), text + SECCOMP_EXTRA)
    atomic_write(os.path.join(d, "common.seccomp"), text)
