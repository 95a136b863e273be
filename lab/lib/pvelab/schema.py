"""PVE's parameter handling, re-done generically from the JSON schemas in lab/pve-schema/.

Mirrors PVE::JSONSchema (pve-common): Getopt::Long parsing (--opt/-opt, --opt=value,
unique prefixes, case-insensitive, permuted positionals, booleans with optional value,
repeatable -list options), then check_prop (type, format, pattern, length, range, enum)
with the same error texts, and property strings (parse_property_string/print_property_string).
"""

import ipaddress
import json
import os
import re

from .common import SCHEMA_DIR, PVEError, param_error

# ---------------------------------------------------------------- schema loading

_cache = {}


def load_api_schema(name):
    """pct-create / pct-set: returns {param_name: schema} with indexed families expanded."""
    from . import release
    key = (name, release.name())
    if key in _cache:
        return _cache[key]
    with open(os.path.join(SCHEMA_DIR, name + ".json")) as f:
        raw = json.load(f)
    props = {}
    for p in raw["parameters"]:
        p = dict(p)
        fp = p.get("format_properties")
        if fp is not None:
            items = fp if isinstance(fp, list) else list(fp.values())
            p["format"] = {q["name"]: q for q in items}
            p.pop("format_properties", None)
        elif p.get("format") == "property-string":
            p["format"] = {}
        idx = p.get("indexed")
        if idx:
            for i in range(idx["min_index"], idx["max_index"] + 1):
                q = dict(p)
                q["name"] = "%s%d" % (idx["prefix"], i)
                props[q["name"]] = q
        else:
            props[p["name"]] = p
    props = release.apply_schema(props)
    _cache[key] = props
    return props


# ---------------------------------------------------------------- formats

IPV4_RE = r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.I)
DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_RE = re.compile(r"^(%s\.)*%s$" % (DNS_LABEL, DNS_LABEL))


class FormatError(Exception):
    """die() inside a format verifier; str() is the message (PVE adds the newline)."""

    def __init__(self, msg, errors=None):
        super().__init__(msg)
        self.msg = msg
        self.errors = errors or {}

    def __str__(self):
        s = self.msg
        for k in sorted(self.errors):
            s += "\n%s: %s" % (k, self.errors[k])
        return s


def is_ipv4(v):
    return re.fullmatch(IPV4_RE, v) is not None


def is_ipv6(v):
    try:
        ipaddress.IPv6Address(v)
        return True
    except ValueError:
        return False


def split_list(v):
    # PVE::Tools::split_list: separators are whitespace, ',' and ';' (and NUL)
    return [x for x in re.split(r"[\s,;\0]+", v.strip()) if x != ""]


def _cidr(v, v6):
    m = re.fullmatch(r"(.+)/(\d+)", v)
    if not m:
        return False
    addr, bits = m.group(1), int(m.group(2))
    if v6:
        return is_ipv6(addr) and 7 < bits <= 128
    return is_ipv4(addr) and 7 < bits <= 32


def _zone_ok(tz):
    if tz in ("host", "UTC"):
        return True
    try:
        with open("/usr/share/zoneinfo/zone.tab") as f:
            for line in f:
                if line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) > 2 and parts[2] == tz:
                    return True
    except OSError:
        pass
    return False


def _parse_size(v):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])?", v)
    if not m:
        return None
    n = float(m.group(1))
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(m.group(2), 1)
    return int(n * mult)


def check_named_format(fmt, value):
    """One value against a named (non-property-string) PVE format; raises FormatError."""
    base, _, kind = fmt.rpartition("-")
    if kind == "list" and base:
        for v in split_list(value):
            check_named_format(base, v)
        return
    if fmt == "pve-vmid":
        if not re.fullmatch(r"[1-9][0-9]{2,8}", value):
            raise FormatError("value does not look like a valid VM ID")
    elif fmt == "dns-name":
        if not DNS_RE.match(value):
            raise FormatError("value does not look like a valid DNS name")
    elif fmt == "pve-tag":
        if not TAG_RE.match(value):
            raise FormatError("invalid characters in tag")
    elif fmt == "pve-storage-id":
        if not re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]", value, re.I):
            raise FormatError("storage ID '%s' contains illegal characters" % value)
    elif fmt == "pve-configid":
        if not CONFIGID_RE.match(value):
            raise FormatError("invalid configuration ID '%s'" % value)
    elif fmt == "pve-node":
        if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", value):
            raise FormatError("value does not look like a valid node name")
    elif fmt == "pve-poolid":
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", value):
            raise FormatError("invalid pool ID '%s'" % value)
    elif fmt == "ipv4":
        if not is_ipv4(value):
            raise FormatError("value does not look like a valid IPv4 address")
    elif fmt == "ipv6":
        if not is_ipv6(value):
            raise FormatError("value does not look like a valid IPv6 address")
    elif fmt == "mac-addr":
        if not re.fullmatch(r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", value, re.I):
            raise FormatError("value does not look like a valid unicast MAC address")
    elif fmt == "pve-ipv4-config":
        if value not in ("dhcp", "manual") and not _cidr(value, False):
            raise FormatError("value does not look like a valid ipv4 network configuration")
    elif fmt == "pve-ipv6-config":
        if value not in ("auto", "dhcp", "manual") and not _cidr(value, True):
            raise FormatError("value does not look like a valid ipv6 network configuration")
    elif fmt == "lxc-ip-with-ll-iface":
        addr, _, iface = value.partition("%")
        if not (is_ipv4(addr) or is_ipv6(addr)) or ("%" in value and not iface):
            raise FormatError("value does not look like a valid IP address")
    elif fmt == "disk-size":
        if _parse_size(value) is None:
            raise FormatError("value does not look like a valid disk size: %s" % value)
    elif fmt == "pve-startup-order":
        for part in value.split(","):
            if re.fullmatch(r"\s*", part):
                continue
            if not re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", part):
                raise FormatError("unable to parse startup options")
    elif fmt == "pve-ct-timezone":
        if not _zone_ok(value):
            raise FormatError("invalid time zone '%s'" % value)
    elif fmt == "pve-volume-id":
        if not re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", value, re.I):
            raise FormatError("unable to parse volume ID '%s'" % value)
    elif fmt == "pve-lxc-mp-string":
        if re.search(r"(^|/)\.\.?(/|$)", value):
            raise FormatError("invalid path: %s" % value)
    elif fmt == "pve-lxc-dev-string":
        if not value.startswith("/dev/") or re.search(r"(^|/)\.\.?(/|$)", value):
            raise FormatError("not a valid device path: %s" % value)
    # unknown named formats: accepted (PVE would know them; none appear in pct's schema)


# ---------------------------------------------------------------- check_prop

def perl_pattern(p):
    return p.replace("(?^:", "(?:")


def is_integer(v):
    return re.fullmatch(r"[+-]?\d+", v) is not None


def is_number(v):
    return re.fullmatch(r"[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?", v) is not None


def parse_boolean(v):
    if re.fullmatch(r"1|on|yes|true", v, re.I):
        return 1
    if re.fullmatch(r"0|off|no|false", v, re.I):
        return 0
    return None


def _num(v):
    f = float(v)
    return int(f) if f == int(f) else f


def check_prop(value, schema, path, errors):
    """Append errors[path] like PVE::JSONSchema::check_prop (value is a str or None)."""
    if value is None:
        if not schema.get("optional"):
            errors[path] = "property is missing and it is not optional"
        return
    t = schema.get("type")
    if t == "boolean":
        if value not in ("0", "1"):
            errors[path] = "type check ('boolean') failed - got '%s'" % value
            return
    elif t == "integer":
        if not is_integer(value):
            errors[path] = "type check ('integer') failed - got '%s'" % value
            return
    elif t == "number":
        if not is_number(value):
            errors[path] = "type check ('number') failed - got '%s'" % value
            return
    fmt = schema.get("format")
    if fmt:
        try:
            if isinstance(fmt, dict):
                parse_property_string(fmt, value, path)
            else:
                check_named_format(fmt, value)
        except FormatError as e:
            errors[path] = "invalid format - %s" % e
            return
    pat = schema.get("pattern")
    if pat and not re.fullmatch(perl_pattern(pat), value):
        errors[path] = "value does not match the regex pattern"
        return
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors[path] = "value may only be %s characters long" % schema["maxLength"]
        return
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors[path] = "value must be at least %s characters long" % schema["minLength"]
        return
    if is_number(value):
        if "maximum" in schema and float(value) > float(schema["maximum"]):
            errors[path] = "value must have a maximum value of %s" % _num(schema["maximum"])
            return
        if "minimum" in schema and float(value) < float(schema["minimum"]):
            errors[path] = "value must have a minimum value of %s" % _num(schema["minimum"])
            return
    if schema.get("enum") and value not in schema["enum"]:
        errors[path] = "value '%s' does not have a value in the enumeration '%s'" % (
            value, ", ".join(schema["enum"]))


def parse_property_string(fmt, data, path=""):
    """PVE::JSONSchema::parse_property_string: {key: str}; raises FormatError."""
    res = {}
    default_key = None
    for part in data.split(","):
        if re.fullmatch(r"\s*", part):
            continue
        m = re.fullmatch(r"([^=]+)=(.+)", part, re.S)
        if m:
            k, v = m.group(1), m.group(2)
            if k in res:
                raise FormatError("duplicate key in comma-separated list property: %s" % k)
            sch = fmt.get(k)
            if sch is None:
                raise FormatError("invalid key in comma-separated list property: %s" % k)
            if sch.get("type") == "boolean":
                b = parse_boolean(v)
                v = str(b) if b is not None else v
            res[k] = v
        elif "=" not in part:
            if default_key:
                raise FormatError("duplicate key in comma-separated list property: %s" % default_key)
            for k, sch in fmt.items():
                if sch.get("default_key"):
                    default_key = k
                    if k not in res:
                        res[k] = part
                        break
                    raise FormatError("duplicate key in comma-separated list property: %s" % k)
            if not default_key:
                raise FormatError("value without key, but schema does not define a default key")
        else:
            raise FormatError("missing key in comma-separated list property")
    errors = {}
    for k in sorted(fmt):
        check_prop(res.get(k), fmt[k], "%s.%s" % (path, k) if path else k, errors)
    if errors:
        raise FormatError("format error", errors)
    return res


def print_property_string(data, fmt, skip=()):
    """PVE::JSONSchema::print_property_string: default key first, then required, then sorted."""
    default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
    out = []
    done = set(skip)

    def add(k, isdefault=False):
        if k in done or data.get(k) is None:
            return
        done.add(k)
        v = str(data[k])
        out.append(v if isdefault else "%s=%s" % (k, v))

    if default_key:
        add(default_key, True)
    for k in sorted(data):
        if k in fmt and not fmt[k].get("optional"):
            add(k)
    for k in sorted(data):
        add(k)
    return ",".join(out)


# ---------------------------------------------------------------- Getopt::Long

def getopt(args, props, positional, usage, list_param=None, optional_value=()):
    """Parse argv like PVE::JSONSchema::get_options. Returns {name: str-or-int}.

    props: {name: schema}; positional: names filled from non-option args in order;
    list_param: name that swallows all remaining non-option args (extra-args).
    Raises PVEError (400 ...) with the usage line, like pct.
    """
    import sys

    # PVE's get_options makes every property an option, the positional ones included.
    names = sorted(n for n in props if n != list_param)
    lower = {n.lower(): n for n in names}
    opts = {}
    rest = []
    failed = False
    i = 0
    after_dd = False
    while i < len(args):
        a = args[i]
        i += 1
        if after_dd:
            rest.append(a)
            continue
        if a == "--":
            after_dd = True
            continue
        if a.startswith("-") and a != "-":
            body = a[2:] if a.startswith("--") else a[1:]
            name, eq, val = body.partition("=")
            key = lower.get(name.lower())
            if key is None:
                cands = [n for n in names if n.lower().startswith(name.lower())] if name else []
                if len(cands) == 1:
                    key = cands[0]
                elif len(cands) > 1:
                    sys.stderr.write("Option %s is ambiguous (%s)\n" % (name, ", ".join(cands)))
                    failed = True
                    continue
                else:
                    sys.stderr.write("Unknown option: %s\n" % name.lower())
                    failed = True
                    continue
            sch = props[key]
            if sch.get("type") == "boolean" or key in optional_value:
                if not eq:
                    if i < len(args) and not args[i].startswith("-"):
                        val = args[i]
                        i += 1
                    else:
                        val = ""
                opts[key] = val
                continue
            if not eq:
                if i < len(args) and args[i] != "--":
                    val = args[i]
                    i += 1
                else:
                    sys.stderr.write("Option %s requires an argument\n" % key)
                    failed = True
                    continue
            fmt = sch.get("format")
            if isinstance(fmt, str) and fmt.endswith("-list"):
                opts.setdefault(key, []).append(val)
            else:
                opts[key] = val
        else:
            rest.append(a)
    if failed:
        raise PVEError("unable to parse option", code=400, usage=usage)
    if list_param:
        for n in positional:
            if not rest:
                raise PVEError("not enough arguments", code=400, usage=usage)
            opts[n] = rest.pop(0)
        opts[list_param] = rest
    else:
        for n in positional:
            if not rest:
                if not props[n].get("optional"):
                    raise PVEError("not enough arguments", code=400, usage=usage)
                continue
            opts[n] = rest.pop(0)
        if rest:
            raise PVEError("too many arguments", code=400, usage=usage)
    for k, v in list(opts.items()):
        if k == list_param:
            continue
        sch = props.get(k, {})
        if sch.get("type") == "boolean":
            if v == "":
                opts[k] = "1"
            else:
                b = parse_boolean(v)
                if b is None:
                    raise PVEError("unable to parse boolean option", code=400, usage=usage)
                opts[k] = str(b)
        elif isinstance(v, list):
            opts[k] = ",".join(v)
    return opts


def getopt_with_optional_value(args, props, positional, usage, optional_value=()):
    return getopt(args, props, positional, usage, optional_value=optional_value)


def validate(opts, props, usage, skip=()):
    errors = {}
    for k in sorted(props):
        if k in skip:
            continue
        v = opts.get(k)
        if v is None and props[k].get("optional", True):
            continue
        if isinstance(v, list):
            continue
        check_prop(v, props[k], k, errors)
    if errors:
        raise param_error(errors, usage)


def parse_and_validate(args, props, positional, usage, list_param=None):
    opts = getopt(args, props, positional, usage, list_param)
    validate(opts, props, usage, skip=(list_param,) if list_param else ())
    return opts


def typed(key, value, props):
    """Config value as PVE's JSON API returns it (numbers for integer/number/boolean)."""
    sch = props.get(key)
    if sch is None or value is None:
        return value
    t = sch.get("type")
    try:
        if t in ("integer", "boolean"):
            return int(value)
        if t == "number":
            f = float(value)
            return int(f) if f == int(f) and "." not in str(value) else f
    except ValueError:
        return value
    return value
