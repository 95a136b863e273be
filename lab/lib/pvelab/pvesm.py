"""`pvesm` of the lab node: `status` (and `list`) over the two lab storages."""

import os
import sys

from . import schema, storage
from .common import require_lab

CONTENT = {"type": "string", "optional": True, "enum": ["backup", "images", "iso", "rootdir", "snippets", "vztmpl", "import"]}
STORE = {"type": "string", "format": "pve-storage-id", "optional": True}
USAGE = {
    "status": "pvesm status [OPTIONS]",
    "list": "pvesm list <storage> [OPTIONS]",
    "path": "pvesm path <volume>",
}


def cmd_status(args):
    o = schema.parse_and_validate(args, {"content": CONTENT, "storage": STORE, "enabled": {"type": "boolean", "optional": True},
                                         "format": {"type": "boolean", "optional": True},
                                         "target": {"type": "string", "format": "pve-node", "optional": True}},
                                  [], USAGE["status"])
    require_lab()
    if o.get("storage"):
        storage.check_exists(o["storage"])
    rows = storage.status_list(o.get("content"), o.get("storage"))
    width = max([len(r["storage"]) for r in rows] + [0]) + 1
    print(("%-" + str(width) + "s %10s %10s %15s %15s %15s %8s") % ("Name", "Type", "Status", "Total", "Used", "Available", "%"))
    for r in rows:
        per = (r["used"] * 100.0 / r["total"]) if r["total"] else 0
        print(("%-" + str(width) + "s %10s %10s %15d %15d %15d % 7.2f%%") % (
            r["storage"], r["type"], "active", r["total"] // 1024, r["used"] // 1024, r["avail"] // 1024, per))
    return 0


def cmd_list(args):
    o = schema.parse_and_validate(args, {"storage": {"type": "string", "format": "pve-storage-id"}, "content": CONTENT,
                                         "vmid": {"type": "integer", "format": "pve-vmid", "optional": True}},
                                  ["storage"], USAGE["list"])
    require_lab()
    sid = o["storage"]
    storage.check_exists(sid)
    rows = []
    for t in storage.list_templates(sid):
        rows.append((t["volid"], t["format"], "vztmpl", t["size"], ""))
    base = os.path.join(storage.path_of(sid), "images")
    if os.path.isdir(base):
        for vmid in sorted(os.listdir(base), key=lambda x: int(x) if x.isdigit() else 0):
            for v in sorted(os.listdir(os.path.join(base, vmid))):
                rows.append(("%s:%s/%s" % (sid, vmid, v), "subvol", "rootdir", 0, vmid))
    if o.get("content"):
        rows = [r for r in rows if r[2] == o["content"]]
    if o.get("vmid"):
        rows = [r for r in rows if r[4] == o["vmid"]]
    print("%-50s %-6s %-10s %12s %s" % ("Volid", "Format", "Type", "Size", "VMID"))
    for r in rows:
        print("%-50s %-6s %-10s %12d %s" % r)
    return 0


def cmd_path(args):
    o = schema.parse_and_validate(args, {"volume": {"type": "string"}}, ["volume"], USAGE["path"])
    require_lab()
    path, _ = storage.volume_path(o["volume"])
    print(path)
    return 0


COMMANDS = {"status": cmd_status, "list": cmd_list, "path": cmd_path}


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
