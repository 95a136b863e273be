"""The lab node's storages, like /etc/pve/storage.cfg on a node with two dir storages.

local: dir storage for templates (vztmpl, iso, backup) - like a ZFS/LVM install's `local`,
       it cannot hold container root filesystems.
labct: dir storage for container volumes (rootdir, images).
"""

import os
import re

from .common import PVEError, sp

STORAGES = {
    "local": {"type": "dir", "content": ["backup", "iso", "vztmpl"], "subdir": "local"},
    "labct": {"type": "dir", "content": ["images", "rootdir"], "subdir": "labct"},
}


def path_of(storeid):
    return sp("storage", STORAGES[storeid]["subdir"])


def template_dir(storeid="local"):
    return os.path.join(path_of(storeid), "template", "cache")


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


def volume_path(volid):
    """Absolute path of a volume id (vztmpl or a container volume)."""
    storeid, volname = parse_volume_id(volid)
    check_exists(storeid)
    base = path_of(storeid)
    m = re.fullmatch(r"vztmpl/([^/]+)", volname)
    if m:
        return os.path.join(template_dir(storeid), m.group(1)), "vztmpl"
    m = re.fullmatch(r"(\d+)/([^/]+)", volname)
    if m:
        return os.path.join(base, "images", m.group(1), m.group(2)), "images"
    raise PVEError("unable to parse directory volume name '%s'" % volname)


def statvfs(storeid):
    p = path_of(storeid)
    os.makedirs(p, exist_ok=True)
    st = os.statvfs(p)
    total = st.f_blocks * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    return total, used, avail


def status_list(content=None, storage=None):
    out = []
    for sid in sorted(STORAGES):
        s = STORAGES[sid]
        if storage and sid != storage:
            continue
        if content and content not in s["content"]:
            continue
        total, used, avail = statvfs(sid)
        out.append({
            "storage": sid, "type": s["type"], "content": content_str(sid),
            "active": 1, "enabled": 1, "shared": 0,
            "total": total, "used": used, "avail": avail,
            "used_fraction": (used / total) if total else 0,
        })
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
