"""`pveam` of the lab node: the template index is the lab's template cache."""

import glob
import os
import shutil
import sys

from . import release, schema, storage, task
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


# Ubuntu `system` templates of pve-manager's shipped aplinfo.dat (pve-releases.md section 5): listed
# in the index like a node lists them, but the lab cannot download them (it reaches only the
# Debian mirror), so `pveam download` of one fails like a download that cannot reach its server.
UBUNTU_INDEX = [
    "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
    "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
    "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst",
    "ubuntu-26.04-standard_26.04-1_amd64.tar.zst",
]
URL = "lab-index://images/system/%s"  # where a node's index points (the lab names no real host)


def built_templates():
    """Debian templates the lab built (labctl up): name -> path in the template cache."""
    return {os.path.basename(p): p for p in glob.glob(os.path.join(cache_dir(), "debian-*-standard_*_amd64.tar.*"))}


def available_templates():
    return sorted(set(built_templates()) | set(UBUNTU_INDEX))


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
        if release.pveam_arch_column():  # pve-manager 9.2.7 added the architecture
            print("%-15s %-60s %s" % ("system", t, "amd64"))
        else:
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
    if name not in available_templates():
        raise param_error({"template": "no such template"}, USAGE["download"])
    storage.check_exists(sid)
    if "vztmpl" not in storage.STORAGES[sid]["content"]:
        raise PVEError("storage '%s' does not support templates" % sid)
    # From here on PVE runs a worker without $upid_exit: a failed download exits 0.
    return task.run(lambda: download(sid, name))


def download(sid, name):
    d = storage.template_dir(sid)
    dest = os.path.join(d, name)
    url = URL % name
    print("downloading %s to %s" % (url, dest))
    src = built_templates().get(name)
    if os.path.isfile(dest) and src and os.path.getsize(dest) == os.path.getsize(src):
        sys.stdout.write("calculating checksum of existing file...")
        print("OK, got correct file already, no need to download")
        return
    storage.activate(sid)
    storage.write_fault(sid, "download of '%s'" % name)
    if src is None:
        # what wget prints when the template server cannot be reached
        sys.stderr.write("--  %s\nprovision-lab: the lab node reaches only the Debian mirror; "
                         "'%s' is listed in its index but cannot be downloaded here\n" % (url, name))
        raise PVEError("download failed: command 'wget --progress=dot:giga -O %s.tmp_dwnl.%d %s' failed: "
                       "exit code 4" % (dest, os.getpid(), url))
    os.makedirs(d, exist_ok=True)
    tmp = dest + ".tmp_dwnl.%d" % os.getpid()
    try:
        shutil.copyfile(src, tmp)
        sys.stdout.write("calculating checksum...")
        print("OK, checksum verified")
        os.rename(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print("download of '%s' to '%s' finished" % (url, dest))


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
