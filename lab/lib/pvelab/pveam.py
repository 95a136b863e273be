"""`pveam` of the lab node: the template index is the lab's template cache."""

import glob
import os
import shutil
import sys

from . import schema, storage
from .common import PVEError, cache_dir, param_error, require_lab

USAGE = {
    "update": "pveam update",
    "available": "pveam available [OPTIONS]",
    "list": "pveam list <storage> [OPTIONS]",
    "download": "pveam download <storage> <template>",
    "remove": "pveam remove <template_path>",
}
SECTION = {"type": "string", "enum": ["system", "mail", "turnkeylinux"], "optional": True}
STORE = {"type": "string", "format": "pve-storage-id"}


def available_templates():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(cache_dir(), "*-standard_*_amd64.tar.*")))


def cmd_update(args):
    schema.parse_and_validate(args, {}, [], USAGE["update"])
    require_lab()
    print("update successful")
    return 0


def cmd_available(args):
    o = schema.parse_and_validate(args, {"section": SECTION}, [], USAGE["available"])
    require_lab()
    if o.get("section") not in (None, "system"):
        return 0
    for t in available_templates():
        print("%-15s %s" % ("system", t))
    return 0


def cmd_list(args):
    o = schema.parse_and_validate(args, {"storage": STORE, "content": {"type": "string", "optional": True}},
                                  ["storage"], USAGE["list"])
    require_lab()
    sid = o["storage"]
    storage.check_exists(sid)
    if "vztmpl" not in storage.STORAGES[sid]["content"]:
        raise PVEError("storage '%s' does not support templates" % sid)
    rows = storage.list_templates(sid)
    if not rows:
        return 0
    print("%-80s %s" % ("NAME", "SIZE"))
    for r in rows:
        print("%-80s %.2fMB" % (r["volid"], r["size"] / (1024.0 * 1024.0)))
    return 0


def cmd_download(args):
    o = schema.parse_and_validate(args, {"storage": STORE, "template": {"type": "string", "maxLength": 255}},
                                  ["storage", "template"], USAGE["download"])
    require_lab()
    sid, name = o["storage"], o["template"]
    storage.check_exists(sid)
    if name not in available_templates():
        raise param_error({"template": "no such template"}, USAGE["download"])
    if "vztmpl" not in storage.STORAGES[sid]["content"]:
        raise PVEError("storage '%s' does not support templates" % sid)
    src = os.path.join(cache_dir(), name)
    d = storage.template_dir(sid)
    os.makedirs(d, exist_ok=True)
    dest = os.path.join(d, name)
    if os.path.exists(dest) and os.path.getsize(dest) == os.path.getsize(src):
        print("file '%s' already exists - no need to download" % dest)
        return 0
    print("downloading lab-cache:%s to %s" % (name, dest))
    tmp = dest + ".tmp_dwnl.%d" % os.getpid()
    shutil.copyfile(src, tmp)
    print("calculating checksum...OK, checksum verified")
    os.rename(tmp, dest)
    print("download of 'lab-cache:%s' to '%s' finished" % (name, dest))
    return 0


def cmd_remove(args):
    o = schema.parse_and_validate(args, {"template_path": {"type": "string"}}, ["template_path"], USAGE["remove"])
    require_lab()
    path, kind = storage.volume_path(o["template_path"])
    if kind != "vztmpl" or not os.path.exists(path):
        raise PVEError("volume '%s' does not exist" % o["template_path"])
    os.unlink(path)
    return 0


COMMANDS = {"update": cmd_update, "available": cmd_available, "list": cmd_list,
            "download": cmd_download, "remove": cmd_remove}


def usage_all(err):
    s = "ERROR: %s\nUSAGE: pveam <COMMAND> [ARGS] [OPTIONS]\n" % err
    for c in sorted(USAGE):
        s += "       %s\n" % USAGE[c]
    return s


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("help", "--help"):
            sys.stdout.write(usage_all("help").split("\n", 1)[1])
            return 0
        sys.stderr.write(usage_all("unknown command 'pveam %s'" % argv[0] if argv else "no command specified"))
        return 255
    return COMMANDS[argv[0]](argv[1:])
