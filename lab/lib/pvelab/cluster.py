"""The lab cluster: several lab nodes on this one machine that form one PVE cluster.

Layout under the lab's state dir S (the single-node lab keeps S as it is):

  S/cluster/                 the cluster file system (what pmxcfs shows in /etc/pve)
      members.json           the members (name, nodeid, ip), like corosync.conf's nodelist
      nodes/<node>/lxc/<id>.conf      guest configs; a VMID exists once in the cluster
      nodes/<node>/ssh_known_hosts    the node's host key under its name (PVE 8.1+)
      priv/known_hosts       every member's host key, by name and by address
      priv/authorized_keys   root's key of every member (one shared key in the lab)
  S/members/<node>/          the member's own state dir (PROVISION_LAB_STATE of its commands)
      lab.json               its facts: its node name, the cluster it belongs to
      pve -> ../../cluster/nodes/<node>   so its configs are where pmxcfs keeps them
      lxc/ storage/ lock/    its own LXC path, node-local storages and config locks
      storage/labshared -> S/shared-storage   the one shared storage
      sshd_config, ssh_host_ed25519_key, sshd.pid, sshd.log, offline (present while it is down)
      run-lock/              the member's /run/lock (its sshd runs in a mount namespace)
  S/sysroot/                 what a member's / holds for the tool: etc/pve -> S/cluster,
                             root/.ssh/id_ed25519 (root's key, shared by all members)

Each member's sshd listens on its own 127.0.10.N:22 and forces the member's identity on every
session (SetEnv PROVISION_LAB_STATE / PATH), so `ssh root@127.0.10.2 pct list` is node 2.
"""

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import time

from .common import PVEError, atomic_write, lab_config, state_dir

NAME = "provision-lab"
ADDR_PREFIX = "127.0.10."
SHARED = "labshared"
LAB_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))), "bin")
PATH_CLEAN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def lab_root():
    """S: the lab's own state dir, also when this process is a member."""
    cfg = lab_config() or {}
    return cfg.get("lab_state") or state_dir()


def cdir(*parts):
    return os.path.join(lab_root(), "cluster", *parts)


def member_dir(name, root=None):
    return os.path.join(root or lab_root(), "members", name)


def sysroot(root=None):
    return os.path.join(root or lab_root(), "sysroot")


def root_key(root=None):
    return os.path.join(sysroot(root), "root", ".ssh", "id_ed25519")


def is_member():
    return bool((lab_config() or {}).get("member_of"))


def members():
    """[{name, nodeid, ip}] of the cluster, [] when there is none."""
    try:
        with open(cdir("members.json")) as f:
            return json.load(f)["nodes"]
    except (OSError, ValueError, KeyError):
        return []


def member(name):
    for m in members():
        if m["name"] == name:
            return m
    return None


def _pid_alive(path):
    try:
        pid = int(open(path).read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def online(name):
    """Like corosync membership: the member is up (not taken down by `labctl node-down`)."""
    d = member_dir(name)
    return not os.path.exists(os.path.join(d, "offline")) and _pid_alive(os.path.join(d, "sshd.pid")) is not None


def quorate():
    ms = members()
    return sum(1 for m in ms if online(m["name"])) * 2 > len(ms)


# ---------------------------------------------------------------- the VMID registry (pmxcfs's vmlist)

def _conf_dirs():
    """(node, dir) of every guest config this machine's labs know: the single-node lab's and every
    member's. They share one bridge (veth<VMID>i<N>), so they share one VMID space."""
    root = lab_root()
    base = lab_config_of(root) or {}
    out = [(base.get("node", "?"), os.path.join(root, "pve", "lxc"))]
    for m in members():
        out.append((m["name"], cdir("nodes", m["name"], "lxc")))
    return out


def lab_config_of(d):
    try:
        with open(os.path.join(d, "lab.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def vmid_owner(vmid, skip_dir=None):
    for node, d in _conf_dirs():
        if skip_dir and os.path.realpath(d) == os.path.realpath(skip_dir):
            continue
        if os.path.isfile(os.path.join(d, "%d.conf" % vmid)):
            return node
    return None


def all_vmids():
    out = set()
    for _, d in _conf_dirs():
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for n in names:
            if n.endswith(".conf") and n[:-5].isdigit():
                out.add(int(n[:-5]))
    return out


@contextlib.contextmanager
def registry_lock():
    """Serialises "is the VMID free, then write its config" across all nodes of the machine, as
    pmxcfs does when it refuses to create nodes/X/lxc/ID.conf while ID exists on another node."""
    path = os.path.join(lab_root(), "lock", "vmid-registry.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_vmid_unused(vmid, own_dir):
    """PVE::Cluster::check_vmid_unused, names the node that has it."""
    owner = vmid_owner(vmid, skip_dir=own_dir)
    if owner is not None:
        raise PVEError("CT %d already exists on node '%s'" % (vmid, owner))


# ---------------------------------------------------------------- acting as another member

@contextlib.contextmanager
def as_member(name):
    """Run lab code as member `name` (its state dir) inside this process."""
    old = os.environ.get("PROVISION_LAB_STATE")
    os.environ["PROVISION_LAB_STATE"] = member_dir(name)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PROVISION_LAB_STATE", None)
        else:
            os.environ["PROVISION_LAB_STATE"] = old


def ssh_argv(name):
    """PVE::SSHInfo::ssh_info_to_command for a member, with the lab's root key."""
    m = member(name)
    if m is None:
        raise PVEError("no such cluster node '%s'" % name)
    kh = cdir("nodes", name, "ssh_known_hosts")
    return ["/usr/bin/ssh", "-e", "none", "-o", "BatchMode=yes", "-o", "HostKeyAlias=" + name,
            "-o", "UserKnownHostsFile=" + kh, "-o", "GlobalKnownHostsFile=none",
            "-o", "ConnectTimeout=5", "-i", root_key(), "root@" + m["ip"]]


def proxy_get(name, path, args):
    """pvesh's proxy_handler: the same call on the node that owns the path, over SSH, as JSON."""
    cmd = ssh_argv(name) + ["--", "pvesh", "--noproxy", "get", path, "--output-format", "json"]
    cmd += [shlex.quote(a) for a in args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()
        raise PVEError("proxy handler failed: command '%s' failed: exit code %d%s" % (
            " ".join(cmd), r.returncode, ("\n" + "\n".join(err)) if err else ""))
    try:
        return json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        return r.stdout


# ---------------------------------------------------------------- labctl: up, down, node-down/up

def _keygen(path, comment):
    if not os.path.exists(path):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], check=True)
    return open(path + ".pub").read().split()[:2]


def _sshd_config(name, ip, root):
    d = member_dir(name, root)
    env = {"PROVISION_LAB_STATE": d, "PROVISION_LAB_LOG": os.path.join(d, "invocations.jsonl"),
           "PATH": LAB_BIN + ":" + PATH_CLEAN}
    return "\n".join([
        "ListenAddress %s:22" % ip,
        "HostKey %s" % os.path.join(d, "ssh_host_ed25519_key"),
        "PidFile %s" % os.path.join(d, "sshd.pid"),
        "AuthorizedKeysFile %s" % os.path.join(root, "cluster", "priv", "authorized_keys"),
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LogLevel INFO",  # one 'Accepted publickey' line per session: the sessions a run opened
        "Subsystem sftp internal-sftp",
        "SetEnv " + " ".join("%s=%s" % kv for kv in sorted(env.items())),
        "",
    ])


def start_sshd(name, root=None):
    d = member_dir(name, root)
    if _pid_alive(os.path.join(d, "sshd.pid")):
        return
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    os.makedirs(os.path.join(d, "run-lock"), mode=0o755, exist_ok=True)
    # A node's /run/lock is its own: the member's sessions get a private one (a mount namespace
    # whose /run/lock is the member's dir), so node-local locks do not serialise members.
    script = 'mount --bind "$1" /run/lock && exec /usr/sbin/sshd -f "$2" -E "$3"'
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sshd-" + name,
                        os.path.join(d, "run-lock"), os.path.join(d, "sshd_config"), os.path.join(d, "sshd.log")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise PVEError("sshd of member %s did not start: %s" % (name, r.stderr.strip()))
    deadline = time.monotonic() + 10
    while not _pid_alive(os.path.join(d, "sshd.pid")):
        if time.monotonic() > deadline:
            raise PVEError("sshd of member %s wrote no pid file within 10 s (see %s)" % (name, os.path.join(d, "sshd.log")))
        time.sleep(0.02)


def stop_sshd(name, root=None):
    d = member_dir(name, root)
    pid = _pid_alive(os.path.join(d, "sshd.pid"))
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(os.path.join(d, "sshd.pid")) and time.monotonic() < deadline:
            time.sleep(0.02)
        # sshd removes its pid file on SIGTERM; a stale one would look alive after a pid reuse
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(d, "sshd.pid"))


def _link(target, path):
    if os.path.islink(path) and os.readlink(path) == target:
        return
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def up(n, base_cfg, templates):
    """Create (idempotently) an n-member cluster beside the single-node lab and start it."""
    root = state_dir()
    names = ["pve%d" % i for i in range(1, n + 1)]
    old = [m["name"] for m in members()]
    if old and old != names:
        raise PVEError("a lab cluster of %d members is up (%s); take the lab down first" % (len(old), ", ".join(old)))
    for d in ("cluster/priv/lock", "sysroot/root/.ssh", "sysroot/etc", "shared-storage", "lock"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "cluster", "priv"), 0o700)
    _link(os.path.join(root, "cluster"), os.path.join(root, "sysroot", "etc", "pve"))
    pub = _keygen(root_key(root), "root@%s" % NAME)
    atomic_write(os.path.join(root, "cluster", "priv", "authorized_keys"), " ".join(pub) + " root@pve\n", 0o600)
    nodes, known = [], ""
    for i, name in enumerate(names, 1):
        ip = ADDR_PREFIX + str(i)
        d = member_dir(name, root)
        for sub in ("lxc", "lock", "storage/local/template/cache"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.makedirs(os.path.join(root, "cluster", "nodes", name, "lxc"), exist_ok=True)
        _link(os.path.join(root, "cluster", "nodes", name), os.path.join(d, "pve"))
        _link(os.path.join(root, "shared-storage"), os.path.join(d, "storage", SHARED))
        for shared in ("lxc-config", "dev"):  # seccomp profiles and the private /dev/fuse
            _link(os.path.join(root, shared), os.path.join(d, shared))
        for tpl in templates:  # every member has the templates in its own `local`
            dest = os.path.join(d, "storage", "local", "template", "cache", os.path.basename(tpl))
            if not os.path.exists(dest):
                os.link(tpl, dest)
        hk = _keygen(os.path.join(d, "ssh_host_ed25519_key"), "root@" + name)
        line = " ".join(hk)
        known += "%s %s\n%s %s\n" % (name, line, ip, line)
        atomic_write(os.path.join(root, "cluster", "nodes", name, "ssh_known_hosts"), "%s %s\n" % (name, line), 0o644)
        cfg = dict(base_cfg, node=name, member_of=NAME, lab_state=root, nodeid=i, ip=ip)
        atomic_write(os.path.join(d, "lab.json"), json.dumps(cfg, indent=1, sort_keys=True), 0o644)
        atomic_write(os.path.join(d, "sshd_config"), _sshd_config(name, ip, root), 0o644)
        nodes.append({"name": name, "nodeid": i, "ip": ip})
    atomic_write(os.path.join(root, "cluster", "priv", "known_hosts"), known, 0o600)
    atomic_write(os.path.join(root, "cluster", "members.json"),
                 json.dumps({"name": NAME, "nodes": nodes}, indent=1), 0o644)
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(member_dir(name, root), "offline"))
        start_sshd(name, root)
    return nodes


def _stop_member_containers(name):
    from . import lxc
    with as_member(name):
        return lxc.destroy_all()


def down():
    """Stop every member's sshd and containers (labctl down then deletes the state dir)."""
    n = 0
    for m in members():
        stop_sshd(m["name"])
        n += _stop_member_containers(m["name"])
    return n


def node_down(name):
    """The member goes away as a powered-off node: sshd gone, its containers stopped."""
    if member(name) is None:
        raise PVEError("no such cluster node '%s'" % name)
    atomic_write(os.path.join(member_dir(name), "offline"), "", 0o644)
    stop_sshd(name)
    _stop_member_containers(name)


def node_up(name):
    if member(name) is None:
        raise PVEError("no such cluster node '%s'" % name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(member_dir(name), "offline"))
    start_sshd(name)


def env_pairs(name):
    """What `labctl up --nodes N` exports: this shell is member `name` (as if logged in on it)."""
    d = member_dir(name)
    return [("PROVISION_LAB_STATE", d), ("PROVISION_LAB_LOG", os.path.join(d, "invocations.jsonl")),
            ("PROVISION_LAB_NODE", name), ("PROVISION_LAB_CLUSTER", ",".join(m["name"] for m in members())),
            ("PROVISION_PVE_ROOT", sysroot())]



def owner_of(vmid):
    for m in members():
        if os.path.isfile(cdir("nodes", m["name"], "lxc", "%d.conf" % vmid)):
            return m["name"]
    return None


def migrate(vmid, target):
    """`pct migrate VMID TARGET --restart` done by the lab: shut down, move the node-local volumes
    and the config (a rename inside the cluster file system, which pmxcfs allows for the same
    VMID), start on the target if it ran. Returns the source node."""
    from . import conf as pveconf
    from . import lxc, pct, storage
    src = owner_of(vmid)
    if src is None:
        raise PVEError("CT %d is not a guest of the lab cluster" % vmid)
    if member(target) is None:
        raise PVEError("no such cluster node '%s'" % target)
    if target == src:
        raise PVEError("target is local node.")
    if not online(target):
        raise PVEError("target node '%s' is not online" % target)
    with as_member(src):
        conf = pveconf.load(vmid)
        running = lxc.is_running(vmid)
        if running:
            pct.shutdown(vmid, 60, True)
        vols = []
        for k, v in sorted(conf.items()):
            if k == "rootfs" or (k.startswith("mp") and k[2:].isdigit()):
                volid = v.split(",")[0]
                sid = volid.split(":")[0]
                if not volid.startswith("/") and sid != SHARED and not storage.STORAGES[sid].get("shared"):
                    vols.append((volid, storage.volume_path(volid)[0]))
        lxc.remove_ct(vmid)
    for volid, path in vols:
        with as_member(target):
            dest = storage.volume_path(volid)[0]
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(path, dest)
    os.rename(cdir("nodes", src, "lxc", "%d.conf" % vmid), cdir("nodes", target, "lxc", "%d.conf" % vmid))
    if running:
        with as_member(target):
            pct.do_start(vmid)
    return src
