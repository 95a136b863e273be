"""`pvesm` of the lab node: `status` (and `list`) over the two lab storages."""

import os
import re
import sys

from . import release, schema, storage
from .common import PVEError, require_lab

CONTENT = {"type": "string", "optional": True, "enum": ["backup", "images", "iso", "rootdir", "snippets", "vztmpl", "import"]}
STORE = {"type": "string", "format": "pve-storage-id", "optional": True}
USAGE = {
    "status": "pvesm status [OPTIONS]",
    "list": "pvesm list <storage> [OPTIONS]",
    "path": "pvesm path <volume>",
    "free": "pvesm free <volume> [OPTIONS]",
}


def cmd_status(args):
    o = schema.parse_and_validate(args, {"content": CONTENT, "storage": STORE, "enabled": {"type": "boolean", "optional": True},
                                         "format": {"type": "boolean", "optional": True},
                                         "target": {"type": "string", "format": "pve-node", "optional": True}},
                                  [], USAGE["status"])
    require_lab()
    if o.get("storage"):
        storage.check_exists(o["storage"])
    rows = storage.status_list(o.get("content"), o.get("storage"), warn=sys.stderr.write)
    width = max([len(r["storage"]) for r in rows] + [0]) + 1
    # libpve-storage-perl 9.0.14 put the unit into the headings
    cols = ("Total (KiB)", "Used (KiB)", "Available (KiB)") if release.pvesm_units_header() else ("Total", "Used", "Available")
    print(("%-" + str(width) + "s %10s %10s %15s %15s %15s %8s") % (("Name", "Type", "Status") + cols + ("%",)))
    for r in rows:
        per = (r["used"] * 100.0 / r["total"]) if r["total"] else 0
        print(("%-" + str(width) + "s %10s %10s %15d %15d %15d % 7.2f%%") % (
            r["storage"], r["type"], "active" if r["active"] else "inactive",
            r["total"] // 1024, r["used"] // 1024, r["avail"] // 1024, per))
    return 0


def cmd_list(args):
    o = schema.parse_and_validate(args, {"storage": {"type": "string", "format": "pve-storage-id"}, "content": CONTENT,
                                         "vmid": {"type": "integer", "format": "pve-vmid", "optional": True}},
                                  ["storage"], USAGE["list"])
    require_lab()
    sid = o["storage"]
    storage.activate(sid)
    rows = []
    for t in storage.list_templates(sid):
        rows.append((t["volid"], t["format"], "vztmpl", t["size"], None))
    for volid, vmid, fmt in storage.list_volumes(sid):
        rows.append((volid, fmt, "rootdir" if fmt == "subvol" else "images", volume_size(volid), vmid))
    if o.get("content"):
        rows = [r for r in rows if r[2] == o["content"]]
    if o.get("vmid"):
        rows = [r for r in rows if r[4] == int(o["vmid"])]
    # pve-storage's print_content: widths from the data; VMID rows first, then the rest by format
    namew = max([len(r[0]) for r in rows] + [5])
    sizew = max([len(str(r[3])) for r in rows] + [1])
    fmt = "%%-%ds %%-7s %%-9s %%%ds" % (namew, sizew)
    print((fmt + " %s") % ("Volid", "Format", "Type", "Size", "VMID"))
    for r in rows:
        if r[4]:
            print((fmt + " %d") % r)
    for r in sorted([r for r in rows if not r[4]], key=lambda r: r[1]):
        print(fmt % r[:4])
    return 0


def volume_size(volid):
    """The size recorded in the owning CT's config (the lab's volumes are directories)."""
    from . import conf as pveconf
    m = re.search(r"(\d+)", volid.split(":", 1)[1])
    try:
        conf = pveconf.load(int(m.group(1)))
    except (PVEError, AttributeError, ValueError):
        return 0
    for k, v in conf.items():
        if (k == "rootfs" or re.fullmatch(r"mp\d+", k)) and (v.startswith(volid + ",") or v == volid):
            sm = re.search(r"(?:^|,)size=([^,]+)", v)
            return schema._parse_size(sm.group(1)) if sm else 0
    return 0


def cmd_path(args):
    o = schema.parse_and_validate(args, {"volume": {"type": "string"}}, ["volume"], USAGE["path"])
    require_lab()
    path, _ = storage.volume_path(o["volume"])
    storage.activate(storage.parse_volume_id(o["volume"])[0])
    print(path)
    return 0


def cmd_free(args):
    """`pvesm free VOLID` (API DELETE .../storage/S/content/VOLID): here only for templates
    (vztmpl), which is what the lab's callers free; other volumes go with `pct destroy`."""
    o = schema.parse_and_validate(args, {"volume": {"type": "string"},
                                         "storage": STORE, "delay": {"type": "integer", "optional": True}},
                                  ["volume"], USAGE["free"])
    require_lab()
    path, kind = storage.volume_path(o["volume"])
    storage.activate(storage.parse_volume_id(o["volume"])[0])
    if kind != "vztmpl":
        raise PVEError("the lab frees only templates (vztmpl); destroy the guest that owns '%s'" % o["volume"])
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise PVEError("volume '%s' does not exist" % o["volume"])
    return 0


COMMANDS = {"status": cmd_status, "list": cmd_list, "path": cmd_path, "free": cmd_free}


def usage_all(err):
    s = "ERROR: %s\nUSAGE: pvesm <COMMAND> [ARGS] [OPTIONS]\n" % err
    for c in sorted(USAGE):
        s += "       %s\n" % USAGE[c]
    return s


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(usage_all("unknown command 'pvesm %s'" % argv[0] if argv else "no command specified"))
        return 255
    return COMMANDS[argv[0]](argv[1:])
