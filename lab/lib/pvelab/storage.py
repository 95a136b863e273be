"""The lab node's storages, like /etc/pve/storage.cfg on a node.

local:     dir storage for templates (vztmpl, iso, backup) - like a ZFS/LVM install's `local`,
           it cannot hold container root filesystems.
labct:     dir storage for container volumes (rootdir, images): `labct:VMID/vm-VMID-disk-N.raw`.
local-zfs: type zfspool (rpool/data on a ZFS install): `local-zfs:subvol-VMID-disk-N`.
local-lvm: type lvmthin (pve/data on an ext4/xfs install): `local-lvm:vm-VMID-disk-N`.

Every volume is a directory under STATE/storage/<id>/ whatever the type: the types are what
`pvesm`/`pvesh` report and how volumes are named, not a real ZFS dataset or LVM thin volume.

A test can put a storage in a failure state (STATE/storage-state.json, `labctl storage`):
  offline  - cannot be activated: `pvesm status` shows it inactive with zeros and prints the
             activation error on stderr, like a node whose NFS/VG/pool is gone; commands that
             activate it fail before any task starts.
  failing  - activates, but writing to it inside a task fails (allocation, resize, download).
"""

import json
import os
import re

from .common import PVEError, atomic_write, lab_config, sp

STORAGES = {
    "local": {"type": "dir", "content": ["backup", "iso", "vztmpl"], "subdir": "local"},
    "labct": {"type": "dir", "content": ["images", "rootdir"], "subdir": "labct"},
    "local-lvm": {"type": "lvmthin", "content": ["images", "rootdir"], "subdir": "local-lvm",
                  "vgname": "pve", "thinpool": "data"},
    "local-zfs": {"type": "zfspool", "content": ["images", "rootdir"], "subdir": "local-zfs",
                  "pool": "rpool/data"},
}
STATES = ("online", "offline", "failing")
if (lab_config() or {}).get("member_of"):
    # a member of the lab cluster also sees the cluster's one shared storage (cluster.py)
    STORAGES["labshared"] = {"type": "dir", "content": ["images", "rootdir"], "subdir": "labshared", "shared": 1}


def path_of(storeid):
    return sp("storage", STORAGES[storeid]["subdir"])


def template_dir(storeid="local"):
    return os.path.join(path_of(storeid), "template", "cache")


def _state_file():
    return sp("storage-state.json")


def states():
    try:
        with open(_state_file()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def set_state(storeid, state):
    if storeid not in STORAGES:
        raise PVEError("storage '%s' does not exist" % storeid)
    if state not in STATES:
        raise PVEError("unknown storage state '%s' (%s)" % (state, ", ".join(STATES)))
    s = states()
    if state == "online":
        s.pop(storeid, None)
    else:
        s[storeid] = state
    atomic_write(_state_file(), json.dumps(s, sort_keys=True), 0o644)


def state(storeid):
    return states().get(storeid, "online")


def activation_error(storeid):
    s = STORAGES[storeid]
    if s["type"] == "dir":
        return ("unable to activate storage '%s' - directory is expected to be a mount point but is not "
                "mounted: '%s'" % (storeid, path_of(storeid)))
    if s["type"] == "zfspool":
        pool = s["pool"].split("/")[0]
        return ("could not activate storage '%s', zfs error: cannot import '%s': no such pool available"
                % (storeid, pool))
    return "no such logical volume %s/%s" % (s["vgname"], s["thinpool"])


def activate(storeid):
    """PVE::Storage::activate_storage: dies when the storage is offline."""
    check_exists(storeid)
    if state(storeid) == "offline":
        raise PVEError(activation_error(storeid))


def write_fault(storeid, what):
    """Raised inside a task that writes to a `failing` storage."""
    if state(storeid) == "failing":
        raise PVEError("%s on storage '%s' failed: the lab has set this storage to fail "
                       "(labctl storage %s failing)" % (what, storeid, storeid))


def check_exists(storeid):
    if storeid not in STORAGES:
        raise PVEError("storage '%s' does not exist" % storeid)
    return STORAGES[storeid]


def content_str(storeid):
    return ",".join(STORAGES[storeid]["content"])


def parse_volume_id(volid):
    m = re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", volid, re.I)
    if not m:
        raise PVEError("unable to parse volume ID '%s'" % volid)
    return m.group(1), m.group(2)


def volume_name(storeid, vmid, n):
    """The name a new volume gets, per storage type (like the plugins' find_free_diskname)."""
    t = STORAGES[storeid]["type"]
    if t == "zfspool":
        return "%s:subvol-%d-disk-%d" % (storeid, vmid, n)
    if t == "lvmthin":
        return "%s:vm-%d-disk-%d" % (storeid, vmid, n)
    return "%s:%d/vm-%d-disk-%d.raw" % (storeid, vmid, vmid, n)


def volume_path(volid):
    """Absolute path of a volume id (vztmpl or a container volume) -> (path, kind)."""
    storeid, volname = parse_volume_id(volid)
    check_exists(storeid)
    base = path_of(storeid)
    t = STORAGES[storeid]["type"]
    m = re.fullmatch(r"vztmpl/([^/]+)", volname)
    if m and t == "dir":
        return os.path.join(template_dir(storeid), m.group(1)), "vztmpl"
    if t == "dir":
        m = re.fullmatch(r"(\d+)/([^/]+)", volname)
        if m:
            return os.path.join(base, "images", m.group(1), m.group(2)), "images"
        raise PVEError("unable to parse directory volume name '%s'" % volname)
    if t == "zfspool" and re.fullmatch(r"(subvol|basevol|vm|base)-\d+-[a-z0-9\-]+", volname):
        return os.path.join(base, volname), "images"
    if t == "lvmthin" and re.fullmatch(r"(vm|base)-\d+-[a-z0-9\-]+", volname):
        return os.path.join(base, volname), "images"
    raise PVEError("unable to parse %s volume name '%s'" % (t, volname))


def volume_format(storeid):
    return {"zfspool": "subvol", "lvmthin": "raw"}.get(STORAGES[storeid]["type"], "raw")


def list_volumes(storeid):
    """[(volid, vmid, format)] of container volumes on a storage."""
    base = path_of(storeid)
    out = []
    t = STORAGES[storeid]["type"]
    if t == "dir":
        d = os.path.join(base, "images")
        if os.path.isdir(d):
            for vmid in sorted(os.listdir(d), key=lambda x: int(x) if x.isdigit() else 0):
                if not vmid.isdigit():
                    continue
                for v in sorted(os.listdir(os.path.join(d, vmid))):
                    out.append(("%s:%s/%s" % (storeid, vmid, v), int(vmid), "raw"))
    elif os.path.isdir(base):
        for v in sorted(os.listdir(base)):
            m = re.fullmatch(r"(?:subvol|vm)-(\d+)-disk-\d+", v)
            if m:
                out.append(("%s:%s" % (storeid, v), int(m.group(1)), volume_format(storeid)))
    return out


def vm_volume_dirs(storeid, vmid):
    """Paths that belong to a CT's volumes on this storage (for destroy)."""
    base = path_of(storeid)
    if STORAGES[storeid]["type"] == "dir":
        return [os.path.join(base, "images", str(vmid))]
    out = []
    if os.path.isdir(base):
        for v in os.listdir(base):
            if re.fullmatch(r"(?:subvol|vm)-%d-disk-\d+" % vmid, v):
                out.append(os.path.join(base, v))
    return out


def statvfs(storeid):
    p = path_of(storeid)
    os.makedirs(p, exist_ok=True)
    st = os.statvfs(p)
    total = st.f_blocks * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    return total, used, avail


def status_list(content=None, storage=None, warn=None):
    """PVE::Storage::storage_info: an offline storage is listed inactive with zeros, and its
    activation error goes to `warn` (stderr on pvesm)."""
    out = []
    for sid in sorted(STORAGES):
        s = STORAGES[sid]
        if storage and sid != storage:
            continue
        if content and content not in s["content"]:
            continue
        rec = {"storage": sid, "type": s["type"], "content": content_str(sid),
               "active": 0, "enabled": 1, "shared": s.get("shared", 0), "total": 0, "used": 0, "avail": 0}
        if state(sid) == "offline":
            if warn:
                warn(activation_error(sid) + "\n")
        else:
            total, used, avail = statvfs(sid)
            rec.update(active=1, total=total, used=used, avail=avail)
        rec["used_fraction"] = (rec["used"] / rec["total"]) if rec["total"] else 0
        out.append(rec)
    return out


def list_templates(storeid):
    d = template_dir(storeid)
    out = []
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        names = []
    for n in names:
        if re.search(r"\.tar\.(gz|xz|zst)$", n):
            ext = n.rsplit(".", 1)[-1]
            out.append({"volid": "%s:vztmpl/%s" % (storeid, n), "size": os.path.getsize(os.path.join(d, n)),
                        "format": {"gz": "tgz", "xz": "txz", "zst": "tzst"}[ext], "content": "vztmpl"})
    return out
