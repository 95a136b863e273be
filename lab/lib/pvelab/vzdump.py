"""The lab node's `vzdump` for containers, like pve-manager's PVE/VZDump.pm with pve-container's
PVE/VZDump/LXC.pm (read from their sources; see lab/README.md "vzdump").

What a node does and the lab copies:
- `vzdump VMID [--mode snapshot|suspend|stop] [--compress 0|1|gzip|lzo|zstd] [--dumpdir DIR |
  --storage ID] [--remove 0|1] [--quiet 1]`; `--dumpdir` and `--storage` together are refused.
- The task log goes to stderr as `INFO: ...` / `ERROR: ...` lines (VZDump::Plugin::debugmsg).
- stop mode: a running guest is shut down cleanly, archived, and started again.
- The archive: `vzdump-lxc-VMID-YYYY_MM_DD-HH_MM_SS.tar[.zst|.gz|.lzo]`, written as `*.dat`
  and renamed when complete; first member `./etc/vzdump/pct.conf` (the guest config), then the
  root filesystem as `./...`; tar runs inside the container's user namespace
  (`lxc-usernsexec`), so an unprivileged container's files are stored with the uids the
  container sees (0, not 100000): "unshifted". Default excludes `/tmp/?*`, `/var/tmp/?*`,
  `/var/run/?*.pid`, and `lost+found` for unprivileged guests.
- Exit status: 0 when the job succeeded, 255 when any guest failed (`job errors`).

The lab differs: snapshot and suspend modes fall back to stop (a node falls back from snapshot
to suspend when the storage cannot snapshot; the lab's storages never can); no `lzo`; no PBS,
no notes, no pruning (`--remove` accepted and ignored), no hook scripts, no bandwidth limit.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import conf as pveconf
from . import lxc, storage
from .common import ID_BASE, ID_RANGE, ConfigLock, PVEError, param_error, require_lab

USAGE = "vzdump help [<extra-args>] [OPTIONS]"
OPTS = {"mode": ("snapshot", "suspend", "stop"), "compress": ("0", "1", "gzip", "lzo", "zstd"),
        "dumpdir": None, "storage": None, "remove": ("0", "1"), "quiet": ("0", "1"),
        "stopwait": None, "all": ("0", "1")}
EXCLUDES = ("/tmp/?*", "/var/tmp/?*", "/var/run/?*.pid")
COMPRESSORS = {"0": (None, ""), "zstd": (["zstd", "--threads=1"], ".zst"), "1": (["gzip"], ".gz"),
               "gzip": (["gzip"], ".gz")}


def log(level, msg):
    for line in str(msg).rstrip("\n").split("\n"):
        sys.stderr.write("%s: %s\n" % (level, line))
    sys.stderr.flush()


def parse(args):
    opts, vmids = {}, []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name = a.lstrip("-")
            val = None
            if "=" in name:
                name, val = name.split("=", 1)
            matches = [k for k in OPTS if k == name] or [k for k in OPTS if k.startswith(name)]
            if len(matches) != 1:
                raise PVEError("Unknown option: %s\n400 unable to parse option" % name, usage=USAGE)
            name = matches[0]
            if val is None:
                if i + 1 >= len(args):
                    raise PVEError("Option %s requires an argument\n400 unable to parse option" % name,
                                   usage=USAGE)
                val = args[i + 1]
                i += 1
            allowed = OPTS[name]
            if allowed and val not in allowed:
                raise param_error({name: "value '%s' does not have a value in the enumeration '%s'"
                                       % (val, ", ".join(allowed))}, USAGE)
            opts[name] = val
        else:
            vmids += [v for v in re.split(r"[,;\s]+", a) if v]
        i += 1
    if "dumpdir" in opts and "storage" in opts:
        raise PVEError("cannot use options 'storage' and 'dumpdir' at the same time")
    for v in vmids:
        if not re.fullmatch(r"[1-9][0-9]{2,8}", v):
            raise param_error({"vmid": "invalid format - value does not look like a valid VM ID"}, USAGE)
    if not vmids:
        raise param_error({"vmid": "property is missing and it is not optional"}, USAGE)
    return opts, [int(v) for v in vmids]


def dump_dir(opts):
    if "dumpdir" in opts:
        return opts["dumpdir"]
    sid = opts.get("storage", "local")
    storage.check_exists(sid)
    if "backup" not in storage.STORAGES[sid]["content"]:
        raise PVEError("storage '%s' does not support backups" % sid)
    storage.activate(sid)
    return os.path.join(storage.path_of(sid), "dump")


def archive(vmid, conf, target, comp):
    """tar of pct.conf + the rootfs, inside the container's user namespace, then compressed."""
    unpriv = conf.get("unprivileged") == "1"
    root_path = lxc.rootfs_path(conf)
    tmp = tempfile.mkdtemp(prefix="vzdumptmp%d_%d." % (os.getpid(), vmid), dir="/var/tmp")
    try:
        os.makedirs(os.path.join(tmp, "etc/vzdump"))
        cfg = os.path.join(tmp, "etc/vzdump/pct.conf")
        with open(cfg, "w") as f:
            f.write(pveconf.render(conf))
        if unpriv:  # readable as the container's root inside the user namespace
            for d, _, files in os.walk(tmp):
                os.chown(d, ID_BASE, ID_BASE)
                for n in files:
                    os.chown(os.path.join(d, n), ID_BASE, ID_BASE)
        userns = ["lxc-usernsexec", "-m", "u:0:%d:%d" % (ID_BASE, ID_RANGE),
                  "-m", "g:0:%d:%d" % (ID_BASE, ID_RANGE), "--"] if unpriv else []
        tar = userns + ["tar", "cpf", "-", "--totals", "--sparse", "--numeric-owner", "--acls", "--xattrs",
                        "--xattrs-include=user.*", "--xattrs-include=security.capability",
                        "--warning=no-file-ignored", "--warning=no-xattr-write", "--one-file-system",
                        "--warning=no-file-ignored", "--directory=%s" % tmp, "./etc/vzdump/pct.conf",
                        "--directory=%s" % root_path, "--no-anchored"]
        if unpriv:
            tar.append("--exclude=lost+found")
        tar += ["--anchored"] + ["--exclude=.%s" % e for e in EXCLUDES] + ["./"]
        with open(target, "wb") as out:
            if comp:
                t = subprocess.Popen(tar, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                z = subprocess.Popen(comp, stdin=t.stdout, stdout=out, stderr=subprocess.PIPE)
                t.stdout.close()
                zerr = z.communicate()[1]
                terr = t.communicate()[1]
                codes = (t.returncode, z.returncode)
            else:
                t = subprocess.run(tar, stdout=out, stderr=subprocess.PIPE)
                terr, zerr, codes = t.stderr, b"", (t.returncode, 0)
        for line in terr.decode(errors="replace").splitlines():
            log("INFO", line)
        if codes[0] != 0:
            raise PVEError("command '%s' failed: exit code %d" % (" ".join(tar[:8]) + " ...", codes[0]))
        if codes[1] != 0:
            raise PVEError("command '%s' failed: exit code %d (%s)" % (
                " ".join(comp), codes[1], zerr.decode(errors="replace").strip()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def backup_one(vmid, opts, ddir):
    started = time.monotonic()
    log("INFO", "Starting Backup of VM %d (lxc)" % vmid)
    log("INFO", "Backup started at %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
    if not pveconf.exists(vmid):
        raise PVEError("unable to find VM %d" % vmid)
    conf = pveconf.load(vmid)
    running = lxc.is_running(vmid)
    log("INFO", "status = %s" % ("running" if running else "stopped"))
    if conf.get("hostname"):
        log("INFO", "CT Name: %s" % conf["hostname"])
    mode = opts.get("mode", "snapshot")
    if mode != "stop" and running:
        log("INFO", "mode failure - the lab's storages cannot snapshot or suspend; using 'stop' mode")
    log("INFO", "backup mode: stop")
    log("INFO", "ionice priority: 7")
    comp, ext = COMPRESSORS.get(opts.get("compress", "0"), (None, ""))
    if opts.get("compress") == "lzo":
        raise PVEError("lzo compression is not available on the lab node")
    base = "vzdump-lxc-%d-%s" % (vmid, time.strftime("%Y_%m_%d-%H_%M_%S"))
    target = os.path.join(ddir, base + ".tar" + ext)
    tmptar = os.path.join(ddir, base + ".tar.dat")
    restart = False
    with ConfigLock(vmid):
        try:
            if running:
                log("INFO", "stopping virtual guest")
                if not lxc.stop(vmid, kill=False, timeout=int(opts.get("stopwait", "10")) * 60):
                    raise PVEError("unable to stop container %d" % vmid)
                restart = True
            log("INFO", "creating vzdump archive '%s'" % target)
            archive(vmid, conf, tmptar, comp)
            os.rename(tmptar, target)
            size = os.path.getsize(target)
            log("INFO", "archive file size: %.2fMB" % (size / 1e6))
        finally:
            if os.path.exists(tmptar):
                os.unlink(tmptar)
            if restart:
                log("INFO", "restarting vm")
                lxc.start(vmid, pveconf.load(vmid))
                log("INFO", "guest is online again after %d seconds" % (time.monotonic() - started))
    log("INFO", "Finished Backup of VM %d (%s)" % (vmid, time.strftime("%H:%M:%S", time.gmtime(
        time.monotonic() - started))))
    log("INFO", "Backup finished at %s" % time.strftime("%Y-%m-%d %H:%M:%S"))


def main(args):
    opts, vmids = parse(args)
    require_lab()
    ddir = dump_dir(opts)
    if not os.path.isdir(ddir):
        os.makedirs(ddir, exist_ok=True)
    cmdline = "vzdump " + " ".join(args)
    log("INFO", "starting new backup job: %s" % cmdline)
    errors = 0
    for vmid in vmids:
        try:
            backup_one(vmid, opts, ddir)
        except (PVEError, OSError) as e:
            msg = e.render().strip() if isinstance(e, PVEError) else str(e)
            log("ERROR", "Backup of VM %d failed - %s" % (vmid, msg))
            log("INFO", "Failed at %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
            errors += 1
    if errors:
        log("INFO", "Backup job finished with errors")
        sys.stderr.write("job errors\n")
        return 255
    log("INFO", "Backup job finished successfully")
    return 0
