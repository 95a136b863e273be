"""`pveversion [--verbose]` of the lab node, in the shape of pve-manager's bin/pveversion.

The versions are the selected release's (release.py); the running kernel named is the
release's PVE kernel, not this machine's (`uname -r` still tells the truth).
"""

import sys

from . import release
from .common import require_lab


def usage(msg=None):
    if msg:
        sys.stderr.write("ERROR: %s\n" % msg)
    sys.stderr.write("USAGE: pveversion [--verbose]\n")


def main(argv):
    verbose = False
    for a in argv:
        if a.startswith("-") and a not in ("-", "--"):
            name = a.lstrip("-").split("=", 1)[0].lower()
            if name and "verbose".startswith(name) and "=" not in a:
                verbose = True
                continue
            sys.stderr.write("Unknown option: %s\n" % name)
            usage()
            return 255
        usage()
        return 255
    require_lab()
    i = release.info()
    if not verbose:
        print("%s (running kernel: %s)" % (release.manager_text(), i["kernel"]))
        return 0
    print("proxmox-ve: %s (running kernel: %s)" % (i["pve"], i["kernel"]))
    print("pve-manager: %s (running version: %s/%s)" % (i["manager"], i["manager"], release.repoid()))
    print("%s: %s" % (i["kpkg"], i["kpkgver"]))
    for pkg, ver in sorted([("libpve-common-perl", i["common"]), ("libpve-storage-perl", i["storage"]),
                            ("lxc-pve", i["lxc"]), ("pve-container", i["container"]),
                            ("zfsutils-linux", i["zfs"])]):
        print("%s: %s" % (pkg, ver))
    return 0
