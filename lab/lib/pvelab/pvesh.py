"""`pvesh get` of the lab node: the API paths the tool reads, as a one-node cluster answers them."""

import json
import os
import re
import sys

from . import conf as pveconf
from . import cluster, lxc, pct, release, schema, storage
from .common import PVEError, node_name, param_error, require_lab

USAGE_GET = "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]"
FORMAT_OPTS = {
    "output-format": {"type": "string", "enum": ["text", "json", "json-pretty", "yaml"], "optional": True},
    "noborder": {"type": "boolean", "optional": True},
    "noheader": {"type": "boolean", "optional": True},
    "human-readable": {"type": "boolean", "optional": True},
    "quiet": {"type": "boolean", "optional": True},
}
VMID_OPT = {"type": "integer", "format": "pve-vmid", "minimum": 100, "maximum": 999999999, "optional": True}
CONTENT = {"type": "string", "optional": True}


def vm_resource(vmid):
    st = pct.status_current(vmid)
    r = {
        "id": "lxc/%d" % vmid, "type": "lxc", "vmid": vmid, "name": st["name"], "node": node_name(),
        "status": st["status"], "template": st.get("template", 0), "maxmem": st["maxmem"], "mem": st["mem"],
        "maxcpu": st["cpus"], "cpu": 0, "maxdisk": st["maxdisk"], "disk": 0, "uptime": st["uptime"],
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "hastate": None,
    }
    r.pop("hastate")
    if st.get("tags"):
        r["tags"] = st["tags"]
    if st.get("lock"):
        r["lock"] = st["lock"]
    return r


def storage_resources():
    out = []
    for s in storage.status_list():
        out.append({"id": "storage/%s/%s" % (node_name(), s["storage"]), "type": "storage",
                    "storage": s["storage"], "node": node_name(), "status": "available",
                    "content": s["content"], "plugintype": s["type"], "shared": s["shared"],
                    "maxdisk": s["total"], "disk": s["used"]})
    return out


def node_resource():
    return {"id": "node/%s" % node_name(), "type": "node", "node": node_name(), "status": "online",
            "maxcpu": os.cpu_count() or 1, "cpu": 0, "maxmem": _memtotal(), "mem": 0,
            "uptime": int(float(open("/proc/uptime").read().split()[0])), "level": ""}


def _memtotal():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def ct_list():
    out = []
    for vmid in pveconf.list_vmids():
        try:
            st = pct.status_current(vmid)
        except PVEError:
            continue
        st.pop("ha", None)
        out.append(st)
    return out


def routes():
    """[(regex, {params}, handler(match, opts))]"""
    n = r"(?P<node>[^/]+)"
    v = r"(?P<vmid>[^/]+)"
    return [
        (r"/version", {}, lambda m, o: version()),
        (r"/nodes", {}, lambda m, o: nodes_list()),
        (r"/nodes/%s" % n, {}, lambda m, o: [{"name": x} for x in ("lxc", "status", "storage", "version")]),
        (r"/nodes/%s/status" % n, {}, lambda m, o: {"uptime": node_resource()["uptime"],
                                                     "cpuinfo": {"cpus": os.cpu_count() or 1},
                                                     "memory": {"total": _memtotal()},
                                                     "pveversion": release.manager_text(),
                                                     "kversion": "Linux %s" % release.info()["kernel"]}),
        (r"/nodes/%s/version" % n, {}, lambda m, o: version()),
        (r"/nodes/%s/storage" % n, {"content": CONTENT, "storage": {"type": "string", "format": "pve-storage-id", "optional": True},
                                    "enabled": {"type": "boolean", "optional": True},
                                    "format": {"type": "boolean", "optional": True},
                                    "target": {"type": "string", "optional": True}},
         lambda m, o: [{k: v for k, v in s.items() if k != "used_fraction" or s["active"]}
                       for s in storage.status_list(o.get("content"), o.get("storage"), warn=sys.stderr.write)]),
        (r"/nodes/%s/storage/(?P<sid>[^/]+)/content" % n, {"content": CONTENT, "vmid": VMID_OPT}, storage_content),
        (r"/nodes/%s/lxc" % n, {}, lambda m, o: ct_list()),
        (r"/nodes/%s/lxc/%s" % (n, v), {}, lambda m, o: _ct(m) and [{"subdir": s} for s in
                                                                ("config", "pending", "status", "interfaces")]),
        (r"/nodes/%s/lxc/%s/status" % (n, v), {}, lambda m, o: _ct(m) and [{"subdir": "current"}]),
        (r"/nodes/%s/lxc/%s/status/current" % (n, v), {}, lambda m, o: pct.status_current(_ct(m))),
        (r"/nodes/%s/lxc/%s/config" % (n, v), {"current": {"type": "boolean", "optional": True},
                                               "snapshot": {"type": "string", "optional": True}}, ct_config),
        (r"/nodes/%s/lxc/%s/pending" % (n, v), {}, lambda m, o: pct.pending_items(_ct(m))),
        (r"/nodes/%s/lxc/%s/interfaces" % (n, v), {}, ct_interfaces) if release.has_interfaces_api() else None,
        (r"/cluster/nextid", {"vmid": VMID_OPT}, nextid),
        (r"/cluster/resources", {"type": {"type": "string", "enum": ["vm", "storage", "node", "sdn"], "optional": True}},
         resources),
        (r"/cluster/status", {}, lambda m, o: cluster_status()),
    ]


def _ct(m):
    vmid = m.group("vmid")
    errors = {}
    schema.check_prop(vmid, dict(VMID_OPT, optional=False), "vmid", errors)
    if errors:
        raise param_error(errors, USAGE_GET)
    vmid = int(vmid)
    if not pveconf.exists(vmid):
        raise pveconf.not_found(vmid)
    return vmid


def storage_content(m, o):
    sid = m.group("sid")
    storage.check_exists(sid)
    res = [dict(t, content="vztmpl") for t in storage.list_templates(sid)]
    base = os.path.join(storage.path_of(sid), "images")
    if os.path.isdir(base):
        for vmid in sorted(os.listdir(base)):
            for v in sorted(os.listdir(os.path.join(base, vmid))):
                res.append({"volid": "%s:%s/%s" % (sid, vmid, v), "content": "rootdir", "format": "raw",
                            "vmid": int(vmid), "size": 0})
    if o.get("content"):
        res = [r for r in res if r["content"] == o["content"]]
    if o.get("vmid"):
        res = [r for r in res if r.get("vmid") == int(o["vmid"])]
    return res


def ct_config(m, o):
    vmid = _ct(m)
    if o.get("snapshot"):
        raise PVEError("snapshot '%s' does not exist" % o["snapshot"])
    c = pct.config_view(vmid, o.get("current") == "1")
    props = pct.api_props("pct-set")
    return {k: (schema.typed(k, v, props) if k not in ("digest", "lxc") else v) for k, v in c.items()}


def version():
    return {"version": release.info()["manager"], "release": release.short(), "repoid": release.repoid()}


def ct_interfaces(m, o):
    """PVE::LXC::get_interfaces: a stopped CT has no PID, so the call returns nothing (null)."""
    vmid = _ct(m)
    if not lxc.is_running(vmid):
        return None
    res = []
    for i in lxc.interfaces(vmid):
        e = {"name": i["name"], "hwaddr": i["hwaddr"]}
        for fam, addr, plen in i["addrs"]:
            e[fam] = "%s/%s" % (addr, plen)  # the last address of each family wins, as in PVE
        if release.interfaces_all_addresses():
            e["hardware-address"] = i["hwaddr"]
            e["ip-addresses"] = [{"ip-address-type": fam, "ip-address": addr, "prefix": plen}
                                 for fam, addr, plen in i["addrs"]]
        res.append(e)
    return res


def nodes_list():
    if not cluster.is_member():
        return [dict(node_resource(), id="node/%s" % node_name(), ssl_fingerprint="")]
    return [dict(r, ssl_fingerprint="") for r in member_node_resources()]


def cluster_status():
    """GET /cluster/status: a one-node lab has no cluster entry; a member lists the cluster
    (quorum) and every node with its address, online state and which one is `local`."""
    if not cluster.is_member():
        return [{"type": "node", "name": node_name(), "id": "node/%s" % node_name(),
                 "online": 1, "local": 1, "nodeid": 1, "ip": "127.0.0.1", "level": ""}]
    ms = cluster.members()
    out = [{"type": "cluster", "id": "cluster", "name": cluster.NAME, "nodes": len(ms),
            "quorate": 1 if cluster.quorate() else 0, "version": len(ms)}]
    for mem in ms:
        out.append({"type": "node", "name": mem["name"], "id": "node/%s" % mem["name"], "ip": mem["ip"],
                    "nodeid": mem["nodeid"], "online": 1 if cluster.online(mem["name"]) else 0,
                    "local": 1 if mem["name"] == node_name() else 0, "level": ""})
    return out


def member_node_resources():
    out = []
    for mem in cluster.members():
        with cluster.as_member(mem["name"]):
            r = node_resource()
        if not cluster.online(mem["name"]):
            r = {"id": r["id"], "type": "node", "node": mem["name"], "status": "offline"}
        out.append(r)
    return out


def member_resources(t):
    """What pmxcfs's status gives every node: the guests and storages of all members."""
    res = []
    for mem in cluster.members():
        up = cluster.online(mem["name"])
        with cluster.as_member(mem["name"]):
            if t in (None, "vm"):
                for vmid in pveconf.list_vmids():
                    try:
                        r = vm_resource(vmid)
                    except PVEError:
                        continue
                    if not up:
                        r = {k: r[k] for k in ("id", "type", "vmid", "name", "node", "template", "tags") if k in r}
                        r["status"] = "unknown"
                    res.append(r)
            if t in (None, "storage") and up:
                res += storage_resources()
    if t in (None, "node"):
        res += member_node_resources()
    return res


def nextid(m, o):
    """An integer, as the API schema says (`returns => { type => 'integer' }`); free in the
    whole cluster (and this machine's single-node lab, which shares the bridge)."""
    used = cluster.all_vmids() | set(pveconf.list_vmids())
    if o.get("vmid"):
        v = int(o["vmid"])
        if v in used:
            raise param_error({"vmid": "VM %d already exists" % v}, USAGE_GET)
        return v
    i = 100
    while i in used:
        i += 1
    if i >= 1000000:
        raise PVEError("unable to get any free VMID in range [100, 1000000]")
    return i


def resources(m, o):
    t = o.get("type")
    if cluster.is_member():
        return member_resources(t)
    res = []
    if t in (None, "vm"):
        for vmid in pveconf.list_vmids():
            try:
                res.append(vm_resource(vmid))
            except PVEError:
                continue
    if t in (None, "storage"):
        res += storage_resources()
    if t in (None, "node"):
        res.append(node_resource())
    return res


def render(data, fmt):
    if fmt == "json":
        return json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n"
    if fmt == "json-pretty":
        return json.dumps(data, indent=4, sort_keys=True) + "\n"
    if fmt == "yaml":
        return _yaml(data)
    # text
    if data is None:
        return ""
    if not isinstance(data, (dict, list)):
        return "%s\n" % data
    if isinstance(data, dict):
        w = max([len(k) for k in data] + [1])
        return "".join("%-*s %s\n" % (w, k, json.dumps(v) if isinstance(v, (dict, list)) else v)
                       for k, v in sorted(data.items()))
    if data and all(isinstance(r, dict) for r in data):
        cols = sorted({k for r in data for k in r})
        rows = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in data]
        ws = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
        line = lambda vals: " ".join(v.ljust(ws[i]) for i, v in enumerate(vals)).rstrip() + "\n"
        return line(cols) + "".join(line(r) for r in rows)
    return "".join("%s\n" % x for x in data)


def _yaml(d, ind=0):
    pad = " " * ind
    if isinstance(d, dict):
        return "".join("%s%s:%s" % (pad, k, (" %s\n" % json.dumps(v)) if not isinstance(v, (dict, list))
                                    else "\n" + _yaml(v, ind + 2)) for k, v in sorted(d.items())) or "{}\n"
    if isinstance(d, list):
        return "".join("%s- %s" % (pad, _yaml(x, ind + 2).lstrip()) for x in d) or "[]\n"
    return "%s%s\n" % (pad, json.dumps(d))


def cmd_get(args, noproxy=False):
    # the API path is the first non-option argument
    path = None
    rest = []
    for a in args:
        if path is None and not a.startswith("-"):
            path = a
        else:
            rest.append(a)
    if path is None:
        raise PVEError("not enough arguments", code=400, usage=USAGE_GET)
    p = "/" + path.strip("/")
    p = re.sub(r"/+", "/", p)
    require_lab()
    for route in routes():
        if route is None:
            continue
        rx, params, handler = route
        m = re.fullmatch(rx, p)
        if not m:
            continue
        props = dict(FORMAT_OPTS)
        props.update(params)
        o = schema.parse_and_validate(rest, props, [], USAGE_GET)
        nn = m.groupdict().get("node")
        if nn is not None and nn not in (node_name(), "localhost") and cluster.member(nn) is not None:
            if noproxy:
                raise PVEError("proxy loop detected - aborting")
            args = []
            for k, v in sorted(o.items()):
                if k not in ("output-format", "quiet"):
                    args += ["--" + k, v]
            data = cluster.proxy_get(nn, p, args)
            sys.stdout.write(render(data, o.get("output-format", "text")))
            return 0
        if nn is not None and nn not in (node_name(), "localhost"):
            raise PVEError("hostname lookup '%s' failed - failed to get address info for: %s: "
                           "Name or service not known" % (nn, nn))
        data = handler(m, o)
        sys.stdout.write(render(data, o.get("output-format", "text")))
        return 0
    sys.stderr.write("No 'get' handler defined for '%s'\n" % path)
    return 1


def usage_all(err):
    return ("ERROR: %s\nUSAGE: pvesh <COMMAND> [ARGS] [OPTIONS]\n       %s\n"
            "       (the lab node answers 'get' only)\n" % (err, USAGE_GET))


def main(argv):
    if not argv:
        sys.stderr.write(usage_all("no command specified"))
        return 255
    noproxy = argv[0] == "--noproxy"  # what a proxying node runs on the target node
    if noproxy:
        argv = argv[1:]
    if argv and argv[0] == "get":
        return cmd_get(argv[1:], noproxy)
    if not argv:
        sys.stderr.write(usage_all("no command specified"))
        return 255
    if argv[0] in ("ls", "set", "create", "delete", "usage", "help"):
        raise PVEError("lab node: 'pvesh %s' is not implemented (only 'pvesh get')" % argv[0])
    sys.stderr.write(usage_all("unknown command 'pvesh %s'" % argv[0]))
    return 255
