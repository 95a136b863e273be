"""PVE container config files (STATE/pve/lxc/VMID.conf), as pve-container reads and writes them.

Layout: `#description` comment lines, `key: value` lines sorted by key, then the raw `lxc.*`
lines in file order (kept as a list under "lxc", as pve-container keeps $conf->{lxc}), then an
optional `[pve:pending]` section (with `delete: k1,k2`), snapshots are not supported.
"""

import hashlib
import os
import re
import sys
import urllib.parse

from .common import PVEError, atomic_write, node_name, sp

# PVE::Tools::encode_text: escape control/high-bit characters and ':' - and '%' from
# libpve-common-perl 8.2.2 (fix #5486; before it a literal "%41" came back as "A").
_UNSAFE_OLD = re.compile(r"[^\x20-\x39\x3b-\x7e]")
_UNSAFE = re.compile(r"[^\x20-\x24\x26-\x39\x3b-\x7e]")


def encode_text(s):
    from . import release
    unsafe = _UNSAFE if release.percent_encodes_description() else _UNSAFE_OLD
    raw = s.encode("utf-8")
    out = []
    for b in raw:
        c = chr(b)
        if unsafe.match(c):
            out.append("%%%02X" % b)
        else:
            out.append(c)
    return "".join(out)


def decode_text(s):
    return urllib.parse.unquote(s, errors="replace")


def conf_dir():
    return sp("pve", "lxc")


def conf_path(vmid):
    return os.path.join(conf_dir(), "%s.conf" % vmid)


def exists(vmid):
    return os.path.isfile(conf_path(vmid))


def list_vmids():
    try:
        names = os.listdir(conf_dir())
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        m = re.fullmatch(r"(\d+)\.conf", n)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def not_found(vmid):
    return PVEError("Configuration file 'nodes/%s/lxc/%s.conf' does not exist" % (node_name(), vmid))


def parse(text):
    conf = {}
    pending = None
    section = conf
    descr = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line == "[pve:pending]":
            pending = {}
            section = pending
            continue
        if line.startswith("[") and line.endswith("]"):
            section = {}  # snapshot sections: ignored by the lab
            continue
        if line.startswith("#"):
            if section is conf:
                descr.append(decode_text(line[1:]))
            continue
        m = re.match(r"^(lxc\.[a-z0-9_\-\.]+)(:|\s*=)\s*(.*?)\s*$", line)
        if m:
            if valid_lxc_key(m.group(1)):
                section.setdefault("lxc", []).append([m.group(1), m.group(3)])
            else:
                sys.stderr.write("vm - unable to parse config: %s\n" % line)
            continue
        m = re.match(r"^(\S+?):\s*(.*\S)?\s*$", line)
        if m:
            section[m.group(1)] = m.group(2) or ""
    if descr:
        conf["description"] = "\n".join(descr)
    if pending is not None:
        conf["pending"] = pending
    return conf


# pve-container's $valid_lxc_conf_keys (the keys admins use), and its prefixes: cgroup2,
# prlimit and net are all allowed; cgroup (v1) is deprecated but allowed.
_LXC_KEYS = {"lxc.apparmor.profile", "lxc.apparmor.allow_incomplete", "lxc.apparmor.allow_nesting",
             "lxc.apparmor.raw", "lxc.selinux.context", "lxc.mount.entry", "lxc.mount.auto",
             "lxc.mount.fstab", "lxc.idmap", "lxc.cap.drop", "lxc.cap.keep", "lxc.environment",
             "lxc.init.cmd", "lxc.init.uid", "lxc.init.gid", "lxc.init.cwd", "lxc.init.groups",
             "lxc.signal.halt", "lxc.signal.reboot", "lxc.signal.stop", "lxc.hook.mount",
             "lxc.hook.autodev", "lxc.hook.start", "lxc.hook.stop", "lxc.autodev", "lxc.tty.max",
             "lxc.console.path", "lxc.seccomp.profile", "lxc.sysctl", "lxc.namespace.keep"}
_LXC_PREFIXES = ("lxc.cgroup2.", "lxc.cgroup.", "lxc.prlimit.", "lxc.net.", "lxc.sysctl.",
                 "lxc.environment.")


def valid_lxc_key(key):
    return key in _LXC_KEYS or key.startswith(_LXC_PREFIXES)


def load(vmid):
    try:
        with open(conf_path(vmid)) as f:
            text = f.read()
    except FileNotFoundError:
        raise not_found(vmid)
    conf = parse(text)
    conf["digest"] = hashlib.sha1(text.encode()).hexdigest()
    return conf


def _lines(d):
    out = ""
    for k in sorted(d):
        if k in ("digest", "description", "pending", "lock_owner", "lxc"):
            continue
        v = str(d[k])
        if "\n" in v:
            raise PVEError("detected invalid newline inside property '%s'" % k)
        out += "%s: %s\n" % (k, v)
    for k, v in d.get("lxc") or []:
        out += "%s: %s\n" % (k, v)
    return out


def render(conf):
    raw = ""
    for cl in (conf.get("description") or "").split("\n"):
        if conf.get("description"):
            raw += "#" + encode_text(cl) + "\n"
    raw += _lines(conf)
    pend = conf.get("pending")
    if pend:
        raw += "\n[pve:pending]\n"
        if pend.get("description"):
            for cl in pend["description"].split("\n"):
                raw += "#" + encode_text(cl) + "\n"
        raw += _lines(pend)
    return raw


def write(vmid, conf):
    os.makedirs(conf_dir(), exist_ok=True)
    atomic_write(conf_path(vmid), render(conf), 0o640)


def pending_deletes(conf):
    pend = conf.get("pending") or {}
    d = pend.get("delete")
    if not d:
        return []
    return [x.lstrip("!") for x in re.split(r"[,;\s]+", d) if x]


def apply_pending(conf):
    """Return a copy of conf with the pending section applied (PVE vmconfig_apply_pending)."""
    new = {k: v for k, v in conf.items() if k != "pending"}
    pend = conf.get("pending") or {}
    for k in pending_deletes(conf):
        old = new.pop(k, None)
        # A detached mount point volume stays, as unusedN (PVE never deletes it on detach).
        vol = (old or "").split(",")[0].replace("volume=", "")
        if re.fullmatch(r"mp\d+", k) and vol and not vol.startswith("/"):
            n = 0
            while "unused%d" % n in new:
                n += 1
            new["unused%d" % n] = vol
    for k, v in pend.items():
        if k == "delete":
            continue
        new[k] = v
    return new
