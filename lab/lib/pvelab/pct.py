"""`pct` of the lab node: the PVE container toolkit's CLI, strict like a node.

Parameters of create/set are validated generically against the real schemas
(lab/pve-schema/pct-*.json, narrowed per release by release.py); the other subcommands carry their small schemas here.
Error texts follow pve-container / pve-common; where the lab had to choose a wording
it says so in lab/README.md.
"""

import getpass
import os
import re
import shutil
import subprocess
import sys
import time

from . import conf as pveconf
from . import cluster, lxc, mounts, release, schema, storage, task
from .common import ConfigLock, PVEError, node_name, param_error, require_lab

VMID = {"name": "vmid", "type": "integer", "format": "pve-vmid", "minimum": 100, "maximum": 999999999}
B = {"type": "boolean", "optional": True}

USAGE = {
    "create": "pct create <vmid> <ostemplate> [OPTIONS]",
    "set": "pct set <vmid> [OPTIONS]",
    "start": "pct start <vmid> [OPTIONS]",
    "stop": "pct stop <vmid> [OPTIONS]",
    "shutdown": "pct shutdown <vmid> [OPTIONS]",
    "reboot": "pct reboot <vmid> [OPTIONS]",
    "status": "pct status <vmid> [OPTIONS]",
    "config": "pct config <vmid> [OPTIONS]",
    "pending": "pct pending <vmid>",
    "list": "pct list",
    "destroy": "pct destroy <vmid> [OPTIONS]",
    "exec": "pct exec <vmid> [<extra-args>] [OPTIONS]",
    "enter": "pct enter <vmid> [OPTIONS]",
    "push": "pct push <vmid> <file> <destination> [OPTIONS]",
    "pull": "pct pull <vmid> <path> <destination> [OPTIONS]",
    "resize": "pct resize <vmid> <disk> <size> [OPTIONS]",
    "move-volume": "pct move-volume <vmid> <volume> [<storage>] [<target-vmid>] [<target-volume>] [OPTIONS]",
}

SMALL = {
    "start": {"vmid": VMID, "debug": B, "skiplock": B},
    "stop": {"vmid": VMID, "skiplock": B, "overrule-shutdown": B,
             "timeout": {"type": "integer", "minimum": 0, "optional": True}},
    "shutdown": {"vmid": VMID, "forceStop": B, "timeout": {"type": "integer", "minimum": 0, "optional": True}},
    "reboot": {"vmid": VMID, "timeout": {"type": "integer", "minimum": 0, "optional": True}},
    "status": {"vmid": VMID, "verbose": B},
    "config": {"vmid": VMID, "current": B, "snapshot": {"type": "string", "format": "pve-configid", "optional": True}},
    "pending": {"vmid": VMID},
    "list": {},
    "destroy": {"vmid": VMID, "force": B, "purge": B, "destroy-unreferenced-disks": B},
    "move-volume": {"vmid": VMID, "volume": {"type": "string", "pattern": r"(rootfs|mp\d+|unused\d+)"},
                    "storage": {"type": "string", "optional": True},
                    "target-vmid": {"type": "integer", "minimum": 100, "maximum": 999999999, "optional": True},
                    "target-volume": {"type": "string", "pattern": r"(rootfs|mp\d+|unused\d+)", "optional": True},
                    "delete": B, "digest": {"type": "string", "optional": True},
                    "target-digest": {"type": "string", "optional": True},
                    "bwlimit": {"type": "number", "minimum": 0, "optional": True}},
    "exec": {"vmid": VMID, "keep-env": B},
    "enter": {"vmid": VMID, "keep-env": B},
    "push": {"vmid": VMID, "file": {"type": "string"}, "destination": {"type": "string"},
             "user": {"type": "string", "optional": True}, "group": {"type": "string", "optional": True},
             "perms": {"type": "string", "optional": True}},
    "pull": {"vmid": VMID, "path": {"type": "string"}, "destination": {"type": "string"},
             "user": {"type": "string", "optional": True}, "group": {"type": "string", "optional": True},
             "perms": {"type": "string", "optional": True}},
}
SMALL["resize"] = {"vmid": VMID,
                  "disk": {"type": "string", "enum": ["rootfs"] + ["mp%d" % i for i in range(256)]},
                  "size": {"type": "string", "pattern": r"\+?\d+(\.\d+)?[KMGT]?"},
                  "digest": {"type": "string", "maxLength": 40, "optional": True}}
POSITIONAL = {"push": ["vmid", "file", "destination"], "pull": ["vmid", "path", "destination"], "list": [],
              "resize": ["vmid", "disk", "size"],
              "move-volume": ["vmid", "volume", "storage", "target-vmid", "target-volume"]}

# options a running container takes at once (PVE's $LXC_FASTPLUG_OPTIONS + cgroup limits)
FASTPLUG = {"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"}
HOTPLUG = {"memory", "swap", "cpulimit", "cpuunits"}
READ_ONLY = {"unprivileged"}
REQUIRED = {"memory", "rootfs", "ostype"}


def out(s=""):
    sys.stdout.write(s + "\n")


def api_props(name):
    props = dict(schema.load_api_schema(name))
    props.pop("node", None)
    return props


def ensure_exists(vmid):
    if not pveconf.exists(vmid):
        raise pveconf.not_found(vmid)


def check_running(vmid):
    return lxc.is_running(vmid)


def normalise_tags(value):
    seen = []
    for t in schema.split_list(value):
        t = t.lower()
        if t not in seen:
            seen.append(t)
    return ";".join(sorted(seen))


def format_size(b):
    b = int(b)
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if b and b % (1 << shift) == 0:
            return "%d%s" % (b >> shift, unit)
    return str(b)


def net_value(value, old=None):
    fmt = schema.load_api_schema("pct-create")["net0"]["format"]
    net = schema.parse_property_string(fmt, value)
    if not net.get("hwaddr"):
        oldhw = None
        if old:
            try:
                oldhw = schema.parse_property_string(fmt, old).get("hwaddr")
            except schema.FormatError:
                oldhw = None
        net["hwaddr"] = oldhw or lxc.random_hwaddr()
    net.setdefault("type", "veth")
    return schema.print_property_string(net, fmt)


def check_keyctl(features, unprivileged, usage):
    if not features:
        return
    f = schema.parse_property_string(schema.load_api_schema("pct-create")["features"]["format"], features)
    if f.get("keyctl") == "1" and not unprivileged:
        raise param_error({"features": "keyctl is only supported for unprivileged containers"}, usage)


def read_ssh_keys(path):
    """pct reads the file; the API checks each non-empty line with `ssh-keygen -l`
    (PVE::Tools::validate_ssh_public_keys), so a comment line is refused too."""
    import tempfile
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise PVEError("unable to open file '%s' - %s" % (path, e.strerror))
    for line in text.split("\n"):
        if re.fullmatch(r"\s*", line):
            continue
        with tempfile.NamedTemporaryFile("w", prefix="pve-sshkey.") as t:
            t.write(line)
            t.flush()
            r = subprocess.run(["ssh-keygen", "-l", "-f", t.name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            raise PVEError("SSH public key validation error")
    return text


# ---------------------------------------------------------------- create

def cmd_create(args):
    usage = USAGE["create"]
    props = api_props("pct-create")
    opts = schema.getopt_with_optional_value(args, props, ["vmid", "ostemplate"], usage, optional_value=("password",))
    if "password" in opts and opts["password"] == "":
        opts["password"] = prompt_password()
    schema.validate(opts, props, usage)
    require_lab()
    vmid = int(opts.pop("vmid"))
    ostemplate = opts.pop("ostemplate")
    password = opts.pop("password", None)
    ssh_keys = None
    if "ssh-public-keys" in opts:
        ssh_keys = read_ssh_keys(opts.pop("ssh-public-keys"))
    start_after = opts.pop("start", "0") == "1"
    force = opts.pop("force", "0") == "1"
    for k in ("bwlimit", "ignore-unpack-errors", "restore", "unique", "pool", "ha-managed", "debug"):
        opts.pop(k, None)
    storage_id = opts.pop("storage", "local")
    # default 0 up to pve-container 6.0.5, 1 from 6.0.6 (PVE 9.0)
    unpriv = opts.pop("unprivileged", release.default_unprivileged()) == "1"
    node = node_name()

    def check_unused():
        if pveconf.exists(vmid) and not force:
            raise PVEError("CT %d already exists on node '%s'" % (vmid, node))
        cluster.check_vmid_unused(vmid, pveconf.conf_dir())
        if force and pveconf.exists(vmid) and lxc.is_running(vmid):
            raise PVEError("can't overwrite running container")

    check_unused()

    # template
    if ostemplate.startswith("/"):
        tpl_path = ostemplate
    else:
        sid, _ = storage.parse_volume_id(ostemplate)
        storage.check_exists(sid)
        tpl_path, kind = storage.volume_path(ostemplate)
        if kind != "vztmpl":
            raise PVEError("can't find file '%s'" % ostemplate)
    # rootfs / mount point storages
    fmt_root = props["rootfs"]["format"]
    rootfs = opts.pop("rootfs", None)
    if rootfs is None:
        rootfs = "%s:4" % storage_id
    elif re.fullmatch(r"\d+(\.\d+)?", rootfs):
        rootfs = "%s:%s" % (storage_id, rootfs)
    root = schema.parse_property_string(fmt_root, rootfs)
    m = re.fullmatch(r"([^:]+):(\d+(?:\.\d+)?)", root["volume"])
    if not m:
        raise PVEError("unable to create rootfs from '%s': only STORAGE:SIZE_IN_GiB allocations are supported "
                       "by the lab node" % root["volume"])
    rsid, gib = m.group(1), float(m.group(2))
    storage.check_exists(rsid)
    if "rootdir" not in storage.STORAGES[rsid]["content"]:
        raise param_error({"storage": "storage '%s' does not support container directories" % rsid}, usage)
    mps = {}
    for k in sorted(list(opts)):
        if re.fullmatch(r"mp\d+", k):
            mp = schema.parse_property_string(props[k]["format"], opts.pop(k))
            mounts.check_source(k, mp, usage)
            mps[k] = mp
        elif mounts.is_dev(k):
            mounts.check_device(k, schema.parse_property_string(props[k]["format"], opts[k]))
        elif re.fullmatch(r"unused\d+", k):
            sys.stderr.write("ignoring '%s', cannot create/restore with unused volume\n" % k)
            opts.pop(k)
    check_keyctl(opts.get("features"), unpriv, usage)
    if not os.path.isfile(tpl_path):
        raise PVEError("can't find file '%s'" % ostemplate)

    conf = {}
    for k, v in opts.items():
        if k == "tags":
            v = normalise_tags(v)
        elif re.fullmatch(r"net\d+", k):
            v = net_value(v)
        conf[k] = v

    with ConfigLock(vmid):
        check_unused()
        if force and pveconf.exists(vmid):
            destroy_volumes(vmid, pveconf.load(vmid))
            lxc.remove_ct(vmid)
        with cluster.registry_lock():  # pmxcfs refuses a config whose VMID another node has
            cluster.check_vmid_unused(vmid, pveconf.conf_dir())
            pveconf.write(vmid, {})  # reserve the ID, like PVE's empty config
        created = []
        keys = lxc.SSHHostKeys(conf.get("hostname", "CT%d" % vmid))
        try:
            storage.activate(rsid)
            storage.write_fault(rsid, "allocating a volume")
            vol = storage.volume_name(rsid, vmid, 0)
            root_path, _ = storage.volume_path(vol)
            os.makedirs(os.path.dirname(root_path), exist_ok=True)
            created.append(root_path)
            out("extracting archive '%s'" % tpl_path)
            t = time.monotonic()
            lxc.extract_template(tpl_path, root_path, unpriv)
            out("Total bytes read: %d (%.0fMiB, extracted in %.1fs)" % (
                os.path.getsize(tpl_path), os.path.getsize(tpl_path) / 1048576, time.monotonic() - t))
            out("Detected container architecture: amd64")
            ostype, warning = release.detect_guest(root_path)  # PVE::LXC::Setup->new
            if warning:
                sys.stderr.write("WARN: %s\n" % warning)
            root["volume"] = vol
            # pve-container alloc: int(GiB * 1024) * 1024 KiB (whole MiB, truncated).
            root["size"] = format_size(int(gib * 1024) * (1 << 20))
            conf["rootfs"] = schema.print_property_string(root, fmt_root)
            alloc = {"rootfs": root["volume"]}
            for k, mp in sorted(mps.items(), key=lambda t: int(t[0][2:])):
                created += mounts.allocate(vmid, mp, alloc, unpriv)
                alloc[k] = mp["volume"]
                conf[k] = schema.print_property_string(mp, props[k]["format"])
            conf.setdefault("arch", "amd64")
            conf["ostype"] = ostype
            conf.setdefault("hostname", "CT%d" % vmid)
            conf.setdefault("memory", "512")
            conf.setdefault("swap", "512")
            if unpriv:
                conf["unprivileged"] = "1"
            rfs = lxc.Rootfs(root_path, unpriv)
            for t in ("rsa", "ecdsa", "ed25519"):
                out("Creating SSH host key 'ssh_host_%s_key' - this may take some time ..." % t)
            lxc.clear_machine_id(rfs)  # post_create_hook, before the SSH host keys are rewritten
            keys.install(rfs)
            lxc.mask_units(rfs)
            if ssh_keys:
                lxc.install_ssh_keys(rfs, ssh_keys)
            if password is not None:
                lxc.set_password(root_path, unpriv, password)
            lxc.setup_guest(vmid, conf, rfs)
            lxc.write_lxc_config(vmid, conf)
            pveconf.write(vmid, conf)
        except BaseException:
            keys.cleanup()
            for p in created:
                shutil.rmtree(p, ignore_errors=True)
            img = os.path.join(storage.path_of(rsid), "images", str(vmid))
            if os.path.isdir(img) and not os.listdir(img):
                os.rmdir(img)
            lxc.remove_ct(vmid)
            try:
                os.unlink(pveconf.conf_path(vmid))
            except FileNotFoundError:
                pass
            raise
        if start_after:
            do_start(vmid, locked=True)
    return 0


def prompt_password():
    if sys.stdin.isatty():
        p1 = getpass.getpass("Enter new password: ")
        p2 = getpass.getpass("Retype new password: ")
        if p1 != p2:
            raise PVEError("passwords do not match")
        return p1
    line = sys.stdin.readline()
    return line.rstrip("\n")


# ---------------------------------------------------------------- set

def cleanup_pending(conf):
    pend = conf.get("pending")
    if not pend:
        return
    for k in list(pend):
        if k == "delete":
            continue
        if k in conf and conf[k] == pend[k]:
            del pend[k]
    dels = [d for d in pveconf.pending_deletes(conf) if d in conf or d in pend]
    if dels:
        pend["delete"] = ",".join(dels)
    else:
        pend.pop("delete", None)
    if not pend:
        conf.pop("pending", None)


def cmd_set(args):
    usage = USAGE["set"]
    props = api_props("pct-set")
    opts = schema.parse_and_validate(args, props, ["vmid"], usage)
    vmid = int(opts.pop("vmid"))
    delete = schema.split_list(opts.pop("delete", "") or "")
    revert = schema.split_list(opts.pop("revert", "") or "")
    digest = opts.pop("digest", None)
    if not opts and not delete and not revert:
        raise PVEError("no options specified")
    for k in delete:
        if k in opts:
            raise PVEError("duplicate parameter '%s' - specified in both 'delete' and as option" % k)
    require_lab()
    with ConfigLock(vmid):
        conf = pveconf.load(vmid)
        if digest and digest != conf["digest"]:
            raise PVEError("detected modified configuration - file changed by other user? Try again.")
        conf.pop("digest", None)
        running = check_running(vmid)
        unpriv = conf.get("unprivileged") == "1"
        pend = conf.setdefault("pending", {})
        for k in revert:
            pend.pop(k, None)
            pend["delete"] = ",".join(d for d in pveconf.pending_deletes(conf) if d != k)
        for k in delete:
            if k in READ_ONLY:
                raise PVEError("unable to delete read-only option: '%s'" % k)
            if k in REQUIRED:
                raise PVEError("unable to delete required option '%s'" % k)
            if k not in conf and k not in pend:
                sys.stderr.write("cannot delete '%s' - not set in current configuration!\n" % k)
                continue
            dels = pveconf.pending_deletes(conf)
            if k not in dels:
                dels.append(k)
            pend["delete"] = ",".join(dels)
            pend.pop(k, None)
        for k in sorted(opts):
            v = opts[k]
            if k in READ_ONLY:
                raise PVEError("unable to modify read-only option: '%s'" % k)
            if k == "tags":
                v = normalise_tags(v)
            elif re.fullmatch(r"net\d+", k):
                v = net_value(v, pend.get(k) or conf.get(k))
            elif k == "features":
                check_keyctl(v, unpriv, usage)
            elif k == "rootfs":
                raise PVEError("%s: changing the root disk with pct set is not supported by the lab node" % k)
            elif mounts.is_mp(k):
                v = set_mount(vmid, k, v, conf, props, usage)
            elif mounts.is_dev(k):
                mounts.check_device(k, schema.parse_property_string(props[k]["format"], v))
            pend[k] = v
            dels = [d for d in pveconf.pending_deletes(conf) if d != k]
            if dels:
                pend["delete"] = ",".join(dels)
            else:
                pend.pop("delete", None)
        cleanup_pending(conf)
        if running:
            hotplug(vmid, conf)
        else:
            conf = pveconf.apply_pending(conf)
        cleanup_pending(conf)
        pveconf.write(vmid, conf)
    return 0


def set_mount(vmid, key, value, conf, props, usage):
    """`pct set --mpN`: checked and, for `STORAGE:SIZE`, allocated at once (as PVE does, even
    when the mount point then stays pending)."""
    fmt = props[key]["format"]
    mp = schema.parse_property_string(fmt, value)
    mounts.check_source(key, mp, usage)
    mounts.allocate(vmid, mp, conf, conf.get("unprivileged") == "1")
    return schema.print_property_string(mp, fmt)


def hotplug(vmid, conf):
    pend = conf.get("pending") or {}
    dels = pveconf.pending_deletes(conf)
    changed_mem = False
    fmt = api_props("pct-set")["mp0"]["format"]
    for k in sorted(pend):
        # Only a new mount point is hot-added; a changed one stays pending.
        if mounts.is_mp(k) and k not in conf:
            mounts.hot_add(vmid, k, schema.parse_property_string(fmt, pend[k]), in_worker)
            conf[k] = pend.pop(k)
        # A new device is hot-added from pve-container 6.0.4; before, and when changed, pending.
        elif mounts.is_dev(k) and k not in conf and release.at_least("container", "6.0.4"):
            dfmt = api_props("pct-set")[k]["format"]
            mounts.hot_add_device(vmid, k, schema.parse_property_string(dfmt, pend[k]),
                                  conf.get("unprivileged") == "1", in_worker)
            conf[k] = pend.pop(k)
    for k in list(dels):
        if k in FASTPLUG or k in HOTPLUG:
            conf.pop(k, None)
            dels.remove(k)
            changed_mem |= k in ("memory", "swap")
    for k in sorted(pend):
        if k == "delete":
            continue
        if k in FASTPLUG or k in HOTPLUG:
            conf[k] = pend.pop(k)
            changed_mem |= k in ("memory", "swap")
            if k == "cores":
                n = max(1, min(int(conf[k]), os.cpu_count() or 1))
                lxc.set_cgroup(vmid, "cpuset.cpus", "0" if n == 1 else "0-%d" % (n - 1))
    if dels:
        pend["delete"] = ",".join(dels)
    else:
        pend.pop("delete", None)
    if changed_mem:
        lxc.apply_memory_live(vmid, conf)


# ---------------------------------------------------------------- lifecycle

def do_start(vmid, locked=False):
    if not locked:
        with ConfigLock(vmid):
            return do_start(vmid, locked=True)
    if True:
        conf = pveconf.load(vmid)
        if check_running(vmid):
            raise PVEError("CT %s already running" % vmid)
        if conf.get("lock"):
            raise PVEError("CT %s is locked (%s)" % (vmid, conf["lock"]))
        if conf.get("pending"):
            conf = pveconf.apply_pending(conf)
            conf.pop("digest", None)
            pveconf.write(vmid, conf)
        conf.pop("digest", None)
        lxc.start(vmid, conf)


def small(cmd, args):
    props = SMALL[cmd]
    pos = POSITIONAL.get(cmd, ["vmid"])
    return schema.parse_and_validate(args, props, pos, USAGE[cmd])


def cmd_start(args):
    o = small("start", args)
    require_lab()
    ensure_exists(o["vmid"])
    do_start(int(o["vmid"]))
    return 0


def cmd_stop(args):
    o = small("stop", args)
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    with ConfigLock(vmid):
        if not check_running(vmid):
            raise PVEError("CT %d not running" % vmid)
        lxc.stop(vmid, kill=True)
    return 0


def shutdown(vmid, timeout, force):
    if not lxc.stop(vmid, kill=False, timeout=timeout):
        if not force:
            raise PVEError("container did not stop within %s seconds" % timeout)
        lxc.stop(vmid, kill=True)


def cmd_shutdown(args):
    o = small("shutdown", args)
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    with ConfigLock(vmid, timeout=10):
        if not check_running(vmid):
            raise PVEError("CT %d not running" % vmid)
        shutdown(vmid, int(o.get("timeout", 60)), o.get("forceStop") == "1")
    return 0


def cmd_reboot(args):
    o = small("reboot", args)
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    with ConfigLock(vmid):
        if not check_running(vmid):
            raise PVEError("CT %d not running" % vmid)
        shutdown(vmid, int(o.get("timeout", 60)), True)
    do_start(vmid)
    return 0


def cmd_status(args):
    o = small("status", args)
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    if o.get("verbose") == "1":
        st = status_current(vmid)
        for k in sorted(st):
            if isinstance(st[k], dict):
                continue
            out("%s: %s" % (k, st[k]))
    else:
        out("status: %s" % ("running" if check_running(vmid) else "stopped"))
    return 0


def status_current(vmid):
    conf = pveconf.load(vmid)
    running = check_running(vmid)
    mem = int(conf.get("memory", "512")) * 1048576
    st = {
        "vmid": vmid, "name": conf.get("hostname", "CT%d" % vmid), "type": "lxc",
        "status": "running" if running else "stopped",
        "cpus": int(conf.get("cores", os.cpu_count() or 1)), "cpu": 0,
        "maxmem": mem, "maxswap": int(conf.get("swap", "512")) * 1048576,
        "mem": lxc.memory_usage(vmid) if running else 0, "swap": 0,
        "maxdisk": disk_size(conf), "disk": 0,
        "uptime": lxc.uptime(vmid) if running else 0,
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
        "ha": {"managed": 0},
    }
    if conf.get("tags"):
        st["tags"] = conf["tags"]
    if conf.get("lock"):
        st["lock"] = conf["lock"]
    if running:
        st["pid"] = lxc.init_pid(vmid)
    if conf.get("template"):
        st["template"] = int(conf["template"])
    return st


def disk_size(conf):
    try:
        root = schema.parse_property_string(schema.load_api_schema("pct-create")["rootfs"]["format"], conf["rootfs"])
        return schema._parse_size(root.get("size", "0")) or 0
    except (KeyError, schema.FormatError):
        return 0


def config_view(vmid, current=False):
    conf = pveconf.load(vmid)
    if not current:
        conf = dict(pveconf.apply_pending(conf), digest=conf["digest"])
    conf.pop("pending", None)
    return conf


def cmd_config(args):
    o = small("config", args)
    vmid = int(o["vmid"])
    if o.get("snapshot"):
        ensure_exists(vmid)
        raise PVEError("snapshot '%s' does not exist" % o["snapshot"])
    conf = config_view(vmid, o.get("current") == "1")
    for k in sorted(conf):
        if k in ("digest", "lxc"):
            continue
        v = conf[k]
        if k == "description":
            v = pveconf.encode_text(v)
        out("%s: %s" % (k, v))
    # pct config prints the raw lxc.* keys last, in file order (PVE::CLI::pct).
    for k, v in conf.get("lxc") or []:
        out("%s: %s" % (k, v))
    return 0


def pending_items(vmid):
    conf = pveconf.load(vmid)
    props = api_props("pct-set")
    pend = conf.get("pending") or {}
    dels = pveconf.pending_deletes(conf)
    res = []
    for k in conf:
        # config_with_pending_array leaves out what is not a plain value (the lxc.* list).
        if k in ("pending", "lxc"):
            continue
        item = {"key": k, "value": schema.typed(k, conf[k], props)}
        if k in pend:
            item["pending"] = schema.typed(k, pend[k], props)
        if k in dels:
            item["delete"] = 1
        res.append(item)
    for k in pend:
        if k in ("delete", "lxc") or k in conf:
            continue
        res.append({"key": k, "pending": schema.typed(k, pend[k], props)})
    for k in dels:
        if k not in pend and k not in conf:
            res.append({"key": k, "delete": 1})
    return sorted(res, key=lambda i: i["key"])


def cmd_pending(args):
    o = small("pending", args)
    for item in pending_items(int(o["vmid"])):
        k = item["key"]
        if k == "digest":
            continue
        v, p = item.get("value"), item.get("pending")
        if k == "description":
            v = pveconf.encode_text(v) if v is not None else None
            p = pveconf.encode_text(p) if p is not None else None
        if v is not None:
            if item.get("delete"):
                out("del %s: %s" % (k, v))
            elif p is not None:
                out("cur %s: %s" % (k, v))
                out("new %s: %s" % (k, p))
            else:
                out("cur %s: %s" % (k, v))
        elif p is not None:
            out("new %s: %s" % (k, p))
    return 0


def cmd_list(args):
    small("list", args)
    rows = []
    for vmid in pveconf.list_vmids():
        try:
            conf = pveconf.load(vmid)
        except PVEError:
            continue
        rows.append((vmid, "running" if check_running(vmid) else "stopped", conf.get("lock", ""),
                     conf.get("hostname", "CT%d" % vmid)))
    if not rows:
        return 0
    fmt = "%-10s %-10s %-12s %-20s"
    out(fmt % ("VMID", "Status", "Lock", "Name"))
    for r in rows:
        out(fmt % r)
    return 0


def destroy_volumes(vmid, conf, unreferenced=True):
    """Remove the CT's volumes. They vanish at once (renamed into a trash dir); the files are
    deleted by a detached `rm -rf`, because freeing blocks on this kind of disk can take seconds.
    `unreferenced`: also the CT's volumes the config does not name (PVE's
    destroy-unreferenced-disks; off by default for `pct destroy`)."""
    victims = []
    for k, v in conf.items():
        if k == "rootfs" or re.fullmatch(r"(mp|unused)\d+", k):
            try:
                vol = v.split(",")[0].replace("volume=", "")
                if vol.startswith("/"):
                    continue
                path, _ = storage.volume_path(vol)
            except PVEError:
                continue
            victims.append(path)
    for sid in storage.STORAGES if unreferenced else ():
        victims += storage.vm_volume_dirs(sid, vmid)
    trash = None
    for p in victims:
        if not os.path.lexists(p):
            continue
        if trash is None:
            trash = os.path.join(storage.path_of("labct"), ".trash", "%d.%d.%d" % (vmid, os.getpid(), time.time()))
            os.makedirs(trash)
        os.rename(p, os.path.join(trash, "%d-%s" % (len(os.listdir(trash)), os.path.basename(p))))
    if trash:
        subprocess.Popen(["rm", "-rf", "--one-file-system", trash], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def cmd_destroy(args):
    o = small("destroy", args)
    vmid = int(o["vmid"])
    conf = pveconf.load(vmid)
    if conf.get("protection") == "1":
        raise PVEError("can't remove CT %d - protection mode enabled" % vmid)
    force = o.get("force") == "1"
    if not force and check_running(vmid):
        raise PVEError("unable to destroy CT %d - container is running" % vmid)
    with ConfigLock(vmid):
        conf = pveconf.load(vmid)
        if conf.get("lock"):
            raise PVEError("CT %d is locked (%s)" % (vmid, conf["lock"]))
        if check_running(vmid):
            if not force:
                raise PVEError("unable to destroy CT %d - container is running" % vmid)
            lxc.stop(vmid, kill=True)
        destroy_volumes(vmid, conf, o.get("destroy-unreferenced-disks") == "1")
        lxc.remove_ct(vmid)
        os.unlink(pveconf.conf_path(vmid))
    if o.get("purge") == "1":
        pass  # no backup jobs / HA / replication on the lab node
    return 0


def cmd_resize(args):
    """Grow a volume. The lab's volumes are directories: only the recorded size changes."""
    o = small("resize", args)
    vmid, disk, size = int(o["vmid"]), o["disk"], o["size"]
    ext = size.startswith("+")
    request = schema._parse_size(size.lstrip("+"))

    def load_and_check():
        conf = pveconf.load(vmid)
        if conf.get("lock"):
            raise PVEError("CT %d is locked (%s)" % (vmid, conf["lock"]))
        if o.get("digest") and o["digest"] != conf["digest"]:
            raise PVEError("detected modified configuration - file changed by other user? Try again.")
        if not conf.get(disk):
            raise PVEError("disk '%s' does not exist" % disk)  # lab wording
        fmt = schema.load_api_schema("pct-create")[disk]["format"]
        mp = schema.parse_property_string(fmt, conf[disk])
        if mp["volume"].startswith("/"):
            raise PVEError("you can't resize a mount point which is not a volume")
        sid, _ = storage.parse_volume_id(mp["volume"])
        storage.activate(sid)
        cur = schema._parse_size(mp.get("size", "0")) or 0
        new = int(cur + request if ext else request)
        if new < cur:
            raise PVEError("unable to shrink disk size")
        if new == cur:
            raise PVEError("disk is already at specified size")
        return conf, fmt, mp, sid, new

    load_and_check()  # early checks before forking + locking: these exit non-zero

    def worker():
        with ConfigLock(vmid):
            conf, fmt, mp, sid, new = load_and_check()
            storage.write_fault(sid, "resizing volume '%s'" % mp["volume"])
            mp["size"] = format_size(new)
            conf.pop("digest", None)
            conf[disk] = schema.print_property_string(mp, fmt)
            pveconf.write(vmid, conf)
    # resize runs in a worker without $upid_exit: a failure inside it exits 0
    return task.run(worker)


def cmd_move_volume(args):
    """`pct move-volume`: only the reassign to another container (`--target-vmid`, pve-container
    4.1-2) is imitated, with pve-container's checks and words; moving to another storage is not."""
    if not release.at_least("container", "4.1-2"):
        args = [a for a in args if not a.startswith("--target-")]
    o = small("move-volume", args)
    vmid, key = int(o["vmid"]), o["volume"]
    target = o.get("target-vmid")
    tkey = o.get("target-volume") or key
    if o.get("storage") and target:
        raise PVEError("either set storage or target-vmid, but not both")
    if not target:
        if o.get("storage"):
            raise PVEError("lab: moving a volume to another storage is not imitated")
        raise PVEError("both 'storage' and 'target-vmid' missing, either needs to be set")
    target = int(target)
    if key == "rootfs" or tkey == "rootfs":
        raise PVEError("Cannot move to/from 'rootfs'")
    if key.startswith("unused") and not tkey.startswith("unused"):
        raise PVEError("Moving an unused volume to a used one is not possible")
    for v in (vmid, target):
        if not pveconf.exists(v):
            raise PVEError("could not find CT %d" % v)
    with ConfigLock(vmid), ConfigLock(target) if target != vmid else _nolock():
        src = pveconf.load(vmid)
        dst = src if target == vmid else pveconf.load(target)
        for c, v in ((src, vmid), (dst, target)):
            if c.get("lock"):
                raise PVEError("CT %d is locked (%s)" % (v, c["lock"]))
        if src.get("template") == "1" or dst.get("template") == "1":
            raise PVEError("Can't move volumes from or to template CT")
        if key not in src:
            raise PVEError("volume '%s' for container '%d' does not exist" % (key, vmid))
        if tkey in dst:
            raise PVEError("Target volume key '%s' is already in use for container '%d'" % (tkey, target))
        fmt = api_props("pct-set")["mp0"]["format"]
        value = src[key]
        mp = {"volume": value} if key.startswith("unused") else schema.parse_property_string(fmt, value)
        vol = mp["volume"]
        if vol.startswith("/"):
            raise PVEError("Cannot move a bindmount or device mount to another container")
        if check_running(vmid) and not key.startswith("unused"):
            raise PVEError("Cannot move in-use volume while the source CT is running - detach or shutdown first")
        sid, _ = storage.parse_volume_id(vol)
        old_path, _ = storage.volume_path(vol)
        n = 0
        while True:
            new = storage.volume_name(sid, target, n)
            new_path, _ = storage.volume_path(new)
            if not os.path.lexists(new_path):
                break
            n += 1

        def worker():
            sys.stdout.write("moving volume '%s' from container '%d' to '%d'\n" % (key, vmid, target))
            os.makedirs(os.path.dirname(new_path), exist_ok=True)
            os.rename(old_path, new_path)
            del src[key]
            src.pop("digest", None)
            sys.stdout.write("removing volume '%s' from container '%d' config\n" % (key, vmid))
            pveconf.write(vmid, src)
            d = src if target == vmid else pveconf.load(target)
            d.pop("digest", None)
            if tkey.startswith("unused"):
                d[tkey] = new
            else:
                mp["volume"] = new
                d.setdefault("pending", {})[tkey] = schema.print_property_string(mp, fmt)
                if check_running(target):
                    hotplug(target, d)
                else:
                    d = pveconf.apply_pending(d)
                cleanup_pending(d)
            pveconf.write(target, d)
            sys.stdout.write("target container '%d' updated with '%s'\n" % (target, tkey))
        return task.run(worker, upid_exit=True)


class _nolock:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---------------------------------------------------------------- exec / push / pull

def require_running(vmid, msg=None):
    ensure_exists(vmid)
    if not check_running(vmid):
        raise PVEError(msg or ("CT %d not running" % vmid))


def cmd_exec(args):
    props = exec_props("exec")
    o = schema.getopt(args, props, ["vmid"], USAGE["exec"], list_param="extra-args")
    schema.validate(o, props, USAGE["exec"], skip=("extra-args",))
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    if not check_running(vmid):
        raise PVEError("container '%d' not running!" % vmid)
    cmd = o.get("extra-args") or []
    if not cmd:
        raise PVEError("missing command")
    sys.stdout.flush()
    return subprocess.call(attach(vmid, cmd, o), env=attach_env())


def cmd_enter(args):
    props = exec_props("enter")
    o = schema.parse_and_validate(args, props, ["vmid"], USAGE["enter"])
    vmid = int(o["vmid"])
    ensure_exists(vmid)
    if not check_running(vmid):
        raise PVEError("container '%d' not running!" % vmid)
    return subprocess.call(attach(vmid, ["/bin/bash", "-l"], o), env=attach_env())


def exec_props(cmd):
    """--keep-env exists from pve-container 5.0.9 on; older pct refuses it as unknown."""
    props = dict(SMALL[cmd])
    if not release.has_keep_env():
        props.pop("keep-env")
    return props


def attach(vmid, argv, o):
    if not release.has_keep_env():
        return lxc.attach_cmd(vmid, argv, keep_env=None)  # lxc-attach's own default (keep)
    return lxc.attach_cmd(vmid, argv, o.get("keep-env", "1") == "1")


def attach_env():
    env = dict(os.environ)
    if release.has_keep_env():  # 5.0.9 also scrubs these (fix #5194)
        env.pop("SSL_CERT_FILE", None)
        env.pop("SSL_CERT_DIR", None)
    return env


CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


def _open_ns(pid, kind, what):
    try:
        return os.open("/proc/%d/ns/%s" % (pid, kind), os.O_RDONLY)
    except OSError:
        raise PVEError("failed to open the container's %s namespace" % what)


def _setns(fd, nstype, what):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(fd, nstype) != 0:
            raise PVEError("failed to enter the container's %s namespace" % what)
    finally:
        os.close(fd)


def in_worker(fn):
    """Run fn() in a forked child, like fork_worker's child (setns() must not touch the parent).
    Raises PVEError with the child's error message."""
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            fn()
        except PVEError as e:
            os.write(wfd, e.render().rstrip("\n").encode(errors="replace"))
            code = 1
        except BaseException as e:  # noqa: B902 - a lab bug must not leave a half-dead child
            os.write(wfd, ("provision-lab internal error: %r" % e).encode(errors="replace"))
            code = 1
        finally:
            try:
                sys.stdout.flush()
            except Exception:
                pass
            os._exit(code)
    os.close(wfd)
    msg = b""
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        msg += chunk
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise PVEError(msg.decode(errors="replace") or "worker failed")


def create_file(path, perms, user, group):
    """pct.pm create_file: resolve owner, open (new files 0666 & ~umask), chmod/chown; returns fd."""
    import grp
    import pwd
    uid = gid = None
    if user is not None:
        if re.fullmatch(r"\d+", user):
            uid = int(user)
        else:
            try:
                uid = pwd.getpwnam(user).pw_uid
            except KeyError:
                raise PVEError("failed to get uid for: %s" % user)
    if group is not None:
        if re.fullmatch(r"\d+", group):
            gid = int(group)
        else:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise PVEError("failed to get gid for: %s" % group)
    mode = None
    if perms is not None:
        p = perms if perms.startswith("0") else "0" + perms
        try:  # strtoul(perms, 0): 0x.. hex, 0.. octal
            mode = int(p, 16) if p.lower().startswith("0x") else int(p, 8)
        except ValueError:
            raise PVEError("invalid mode: '%s'" % p)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
        if mode is None:
            um = os.umask(0)
            os.umask(um)
            mode = 0o666 & ~um
    except OSError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as e:
            raise PVEError("failed to create file: %s: %s" % (path, e.strerror))
    if mode is not None:
        os.fchmod(fd, mode)
    if uid is not None or gid is not None:
        st = os.fstat(fd)
        try:
            os.fchown(fd, st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
        except OSError as e:
            raise PVEError("failed to change file owner: %s" % e.strerror)
    return fd


def copy_fd(src, dst):
    """File::Copy::copy as pct calls it: the result is not checked, so a write error (a full
    disk) ends the copy silently and the task still succeeds, leaving a truncated file."""
    while True:
        try:
            buf = os.read(src, 1 << 16)
        except OSError:
            return
        if not buf:
            return
        try:
            while buf:
                n = os.write(dst, buf)
                buf = buf[n:]
        except OSError:
            return


def cmd_push(args):
    o = small("push", args)
    vmid = int(o["vmid"])
    src, dst = o["file"], o["destination"]
    with ConfigLock(vmid):
        conf = pveconf.load(vmid)
        if not check_running(vmid):
            raise PVEError("can only push files to a running CT")
        unpriv = conf.get("unprivileged") == "1"
        pid = lxc.init_pid(vmid)

        def worker():
            try:
                sfd = os.open(src, os.O_RDONLY)
            except OSError:
                raise PVEError("failed to open %s for reading" % src)
            mntns = _open_ns(pid, "mnt", "mount")
            userns = _open_ns(pid, "user", "user") if unpriv else None
            _setns(mntns, CLONE_NEWNS, "mount")
            os.chdir("/")
            if unpriv:
                _setns(userns, CLONE_NEWUSER, "user")
                os.setgid(0)
                os.setuid(0)
            dfd = create_file(dst, o.get("perms"), o.get("user"), o.get("group"))
            copy_fd(sfd, dfd)
        # a worker without $upid_exit: a failed copy exits 0
        return task.run(lambda: in_worker(worker))


def cmd_pull(args):
    o = small("pull", args)
    vmid = int(o["vmid"])
    src, dst = o["path"], o["destination"]
    with ConfigLock(vmid):
        pveconf.load(vmid)
        if not check_running(vmid):
            raise PVEError(release.pull_stopped_line())
        pid = lxc.init_pid(vmid)

        def worker():
            dfd = create_file(dst, o.get("perms"), o.get("user"), o.get("group"))
            _setns(_open_ns(pid, "mnt", "mount"), CLONE_NEWNS, "mount")
            os.chdir("/")
            try:
                sfd = os.open(src, os.O_RDONLY)
            except OSError as e:
                raise PVEError("failed to open %s: %s" % (src, e.strerror))
            copy_fd(sfd, dfd)
        return task.run(lambda: in_worker(worker))


# ---------------------------------------------------------------- main

COMMANDS = {
    "create": cmd_create, "set": cmd_set, "start": cmd_start, "stop": cmd_stop,
    "shutdown": cmd_shutdown, "reboot": cmd_reboot, "status": cmd_status, "config": cmd_config,
    "pending": cmd_pending, "list": cmd_list, "destroy": cmd_destroy, "exec": cmd_exec,
    "enter": cmd_enter, "push": cmd_push, "pull": cmd_pull, "resize": cmd_resize,
    "move-volume": cmd_move_volume, "move_volume": cmd_move_volume,
}


def usage_all(err):
    s = "ERROR: %s\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n" % err
    for c in sorted(USAGE):
        s += "       %s\n" % USAGE[c]
    s += "       pct help [<extra-args>] [OPTIONS]\n"
    return s


def main(argv):
    if not argv:
        sys.stderr.write(usage_all("no command specified"))
        return 255
    cmd, args = argv[0], argv[1:]
    if cmd in ("help", "--help", "-h"):
        sys.stdout.write(usage_all("help").split("\n", 1)[1])
        return 0
    f = COMMANDS.get(cmd)
    if f is None:
        sys.stderr.write(usage_all("unknown command 'pct %s'" % cmd))
        return 255
    return f(args)
