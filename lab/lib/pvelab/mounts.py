"""Mount points (mpN) on the lab node, as pve-container has them.

- A volume mount point `STORAGE:SIZE` is allocated when it is set (create or `pct set`), named
  like the storage's plugin names it, and owned by the container's root (100000 for an
  unprivileged container), like a freshly formatted volume.
- A bind mount `/node/path` must exist (PVE refuses it otherwise).
- At start every mpN becomes an `lxc.mount.entry` (parents before children, as PVE sorts them);
  `ro=1` mounts read-only.
- On a running container a NEW mpN is hot-added: the source is cloned with open_tree(2), made
  read-only with mount_setattr(2) when asked, and attached in the container's mount namespace
  with move_mount(2), as pve-container's hotplug does. A changed mpN stays pending.
- Deleting an mpN leaves its volume as `unusedN` (PVE never deletes a volume on detach).
"""

import ctypes
import os
import re
import stat
import subprocess

from .common import ID_BASE, PVEError, param_error
from . import lxc, schema, storage

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000

NEW_VOLUME = re.compile(r"([^:/]+):(\d+(?:\.\d+)?)")


def is_mp(key):
    return re.fullmatch(r"mp\d+", key) is not None


def source_path(mp):
    vol = mp["volume"]
    if vol.startswith("/"):
        return vol
    path, _ = storage.volume_path(vol)
    return path


def _used_disk_numbers(conf, vmid):
    used = set()
    for v in list(conf.values()) + list((conf.get("pending") or {}).values()):
        if isinstance(v, str):
            for m in re.finditer(r"(?:vm|subvol)-%d-disk-(\d+)" % vmid, v):
                used.add(int(m.group(1)))
    return used


def check_source(key, mp, usage):
    """What PVE refuses before anything is allocated: a missing bind source, a storage that
    does not take container volumes."""
    vol = mp["volume"]
    if vol.startswith("/"):
        if not os.path.isdir(vol):
            raise PVEError("%s: bind mount source path '%s' does not exist" % (key, vol))
        return
    m = NEW_VOLUME.fullmatch(vol)
    sid = m.group(1) if m else storage.parse_volume_id(vol)[0]
    storage.check_exists(sid)
    if "rootdir" not in storage.STORAGES[sid]["content"]:
        raise param_error({"storage": "storage '%s' does not support container directories" % sid}, usage)
    if not m:
        path, _ = storage.volume_path(vol)
        if not os.path.isdir(path):
            raise PVEError("%s: volume '%s' does not exist" % (key, vol))


def allocate(vmid, mp, conf, unpriv, first=1):
    """A `STORAGE:SIZE` volume becomes a real one; returns the directories created."""
    m = NEW_VOLUME.fullmatch(mp["volume"])
    if not m:
        return []
    sid, gib = m.group(1), float(m.group(2))
    storage.activate(sid)
    storage.write_fault(sid, "allocating a volume")
    used = _used_disk_numbers(conf, vmid)
    n = first
    while n in used:
        n += 1
    vol = storage.volume_name(sid, vmid, n)
    path, _ = storage.volume_path(vol)
    os.makedirs(path)
    if unpriv:
        os.chown(path, ID_BASE, ID_BASE)
    mp["volume"] = vol
    mp["size"] = format_size(int(gib * 1024) * (1 << 20))
    return [path]


def format_size(b):
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if b >= (1 << shift) and b % (1 << shift) == 0:
            return "%d%s" % (b >> shift, unit)
    return str(b)


def parse(fmt, value):
    return schema.parse_property_string(fmt, value)


def mount_entries(conf, fmt):
    """lxc.mount.entry lines for the mpN of conf, parents first (PVE sorts by path)."""
    mps = []
    for k, v in conf.items():
        if is_mp(k):
            mp = parse(fmt, v)
            mps.append((mp["mp"].rstrip("/"), mp))
    lines = []
    for target, mp in sorted(mps, key=lambda t: t[0]):
        opts = "bind,create=dir"
        if mp.get("ro") == "1":
            opts += ",ro"
        lines.append("lxc.mount.entry = %s %s none %s 0 0" % (source_path(mp), target.lstrip("/"), opts))
    return lines


def _syscall(nr, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def hot_add(vmid, key, mp, in_worker, file=False):
    """Attach a new mount point to the running container (pve-container's mountpoint hotplug)."""
    src = source_path(mp)
    target = mp["mp"].rstrip("/") or "/"
    pid = lxc.init_pid(vmid)
    if not pid:
        raise PVEError("unable to hotplug %s: container is not running" % key)
    try:
        tree = _syscall(SYS_OPEN_TREE, AT_FDCWD, src.encode(),
                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
        if mp.get("ro") == "1":
            attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
            _syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                     ctypes.byref(attr), ctypes.sizeof(attr))
    except OSError as e:
        raise PVEError("unable to hotplug %s: %s" % (key, e))
    ns = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY)
    userns = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY)

    def attach():
        libc = ctypes.CDLL(None, use_errno=True)
        # A file target is created on the container's /dev, a tmpfs of its user namespace: only
        # an ID mapped there may create it (host root gets EOVERFLOW), so enter it as its root.
        if file and os.readlink("/proc/%d/ns/user" % pid) != os.readlink("/proc/self/ns/user"):
            if libc.setns(userns, CLONE_NEWUSER) != 0:
                raise PVEError("unable to hotplug %s: cannot enter the container's user namespace" % key)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if libc.setns(ns, CLONE_NEWNS) != 0:
            raise PVEError("unable to hotplug %s: cannot enter the container's mount namespace" % key)
        os.chdir("/")
        # PVE refuses mount point paths through symbolic links (a link could point anywhere).
        parts = [p for p in target.split("/") if p]
        cur = ""
        for p in parts:
            cur += "/" + p
            if os.path.islink(cur):
                raise PVEError("unable to hotplug %s: mount point path '%s' contains a symlink" % (key, target))
            if not os.path.exists(cur):
                if file and cur == target:
                    os.close(os.open(cur, os.O_CREAT | os.O_WRONLY, 0o600))
                else:
                    os.mkdir(cur, 0o755)
        try:
            _syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        except OSError as e:
            raise PVEError("unable to hotplug %s: %s" % (key, e))

    try:
        in_worker(attach)
    finally:
        os.close(ns)
        os.close(userns)
        os.close(tree)


def next_unused(conf):
    n = 0
    while "unused%d" % n in conf:
        n += 1
    return "unused%d" % n


# ---------------------------------------------------------------- devN (device passthrough)

def is_dev(key):
    return re.fullmatch(r"dev\d+", key) is not None


def check_device(key, dev):
    """PVE::LXC::Tools::get_device_mode_and_rdev, at `pct set`/`create` and at start."""
    path = dev.get("path")
    if not path:
        raise PVEError("Path is not defined for passthrough device %s" % key)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PVEError("Device %s does not exist" % path)
    except OSError:
        raise PVEError("Error accessing device %s" % path)
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise PVEError("%s is not a device" % path)
    return st


def device_node(vmid, key, dev, unpriv):
    """create_passthrough_device_node: a node of the same type and number under the CT's
    passthrough directory, mode (default 0660) and owner mapped like the container's IDs."""
    st = check_device(key, dev)
    node = os.path.join(lxc.ct_dir(vmid), "passthrough") + dev["path"]
    os.makedirs(os.path.dirname(node), exist_ok=True)
    try:
        os.unlink(node)
    except FileNotFoundError:
        pass
    os.mknod(node, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
    os.chmod(node, int(dev["mode"], 8) if dev.get("mode") else 0o660)
    shift = ID_BASE if unpriv else 0
    os.chown(node, shift + int(dev.get("uid", 0)), shift + int(dev.get("gid", 0)))
    return node, st


def _allow(st, dev):
    kind = "b" if stat.S_ISBLK(st.st_mode) else "c"
    perms = "r" if dev.get("deny-write") == "1" else "rw"
    return "%s %d:%d %s" % (kind, os.major(st.st_rdev), os.minor(st.st_rdev), perms)


def device_entries(vmid, conf, fmt):
    """lxc config lines for the devN of conf: the cgroup allow line and a bind mount of the
    passthrough node at the device's path (PVE's autodev hook makes the node in /dev)."""
    unpriv = conf.get("unprivileged") == "1"
    v1 = os.path.isdir("/sys/fs/cgroup/devices")
    lines = []
    for k in sorted((k for k in conf if is_dev(k)), key=lambda k: int(k[3:])):
        dev = parse(fmt, conf[k])
        node, st = device_node(vmid, k, dev, unpriv)
        lines.append("%s = %s" % ("lxc.cgroup.devices.allow" if v1 else "lxc.cgroup2.devices.allow",
                                  _allow(st, dev)))
        lines.append("lxc.mount.entry = %s %s none bind,create=file 0 0" % (node, dev["path"].lstrip("/")))
    return lines


def hot_add_device(vmid, key, dev, unpriv, in_worker):
    """device_passthrough_hotplug (pve-container 6.0.4): the node appears at once; the
    device cgroup is widened with lxc-cgroup."""
    node, st = device_node(vmid, key, dev, unpriv)
    r = subprocess.run(["lxc-cgroup", "-P", lxc.lxcpath(), "-n", str(vmid), "devices.allow", _allow(st, dev)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise PVEError("unable to hotplug %s: %s" % (key, r.stderr.strip() or "cannot allow the device"))
    hot_add(vmid, key, {"volume": node, "mp": dev["path"]}, in_worker, file=True)
