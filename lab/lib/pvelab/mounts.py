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

from .common import PVEError, param_error
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
        os.chown(path, lxc.ID_BASE, lxc.ID_BASE)
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


def hot_add(vmid, key, mp, in_worker):
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

    def attach():
        libc = ctypes.CDLL(None, use_errno=True)
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
                os.mkdir(cur, 0o755)
        try:
            _syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        except OSError as e:
            raise PVEError("unable to hotplug %s: %s" % (key, e))

    try:
        in_worker(attach)
    finally:
        os.close(ns)
        os.close(tree)


def next_unused(conf):
    n = 0
    while "unused%d" % n in conf:
        n += 1
    return "unused%d" % n
