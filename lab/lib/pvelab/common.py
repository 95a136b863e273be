"""Shared plumbing of the lab node: state paths, PVE-style errors, invocation log, locks.

The four commands (pct, pveam, pvesm, pvesh) and labctl all import this. It never
talks to LXC itself (see lxc.py) and never prints anything but errors.
"""

import errno
import fcntl
import json
import os
import socket
import sys
import time

DEFAULT_STATE = "/var/lib/provision-lab"
DEFAULT_CACHE = "/var/cache/provision-lab"
LAB_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
# The real parameter schemas of `pct create` / `pct set` (generated from the PVE 9.x sources),
# vendored in lab/pve-schema/ (see its README). release.py narrows them per release.
SCHEMA_DIR = os.path.join(LAB_DIR, "pve-schema")

# PVE's own idea of "root inside an unprivileged container": uid/gid 0 -> 100000.
ID_BASE = 100000
ID_RANGE = 65536


def state_dir():
    return os.environ.get("PROVISION_LAB_STATE") or DEFAULT_STATE


def cache_dir():
    return os.environ.get("PROVISION_LAB_CACHE") or DEFAULT_CACHE


def sp(*parts):
    """Path under the state dir."""
    return os.path.join(state_dir(), *parts)


def node_name():
    """The machine's short host name; a member of the lab cluster is the node its state names."""
    cfg = lab_config()
    if cfg and cfg.get("member_of"):
        return cfg["node"]
    return socket.gethostname().split(".")[0]


def lab_config():
    """The facts `labctl up` recorded (bridge, subnet, ...). None when the lab is down."""
    try:
        with open(sp("lab.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def require_lab():
    cfg = lab_config()
    if cfg is None:
        raise PVEError("lab node is not up (no %s) - run 'lab/labctl up' first" % sp("lab.json"))
    return cfg


class PVEError(Exception):
    """An error printed the way PVE's CLI prints a die()/PVE::Exception.

    code: HTTP-like code (400 for parameter errors, prefixed to the message like PVE).
    errors: {param: message} printed one per line (PVE's "Parameter verification failed.").
    usage: the short usage line appended for parameter errors.
    exit: process exit status (pct/pvesh/pveam/pvesm die with 255).
    """

    def __init__(self, msg, code=None, errors=None, usage=None, exit=255):
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.errors = errors or {}
        self.usage = usage
        self.exit = exit

    def render(self):
        msg = self.msg
        if self.code:
            msg = "%s %s" % (self.code, msg)
        if not msg.endswith("\n"):
            msg += "\n"
        for k in sorted(self.errors):
            msg += "%s: %s\n" % (k, self.errors[k].rstrip("\n"))
        if self.usage:
            msg += self.usage
            if not msg.endswith("\n"):
                msg += "\n"
        return msg


def param_error(errors, usage=None):
    return PVEError("Parameter verification failed.", code=400, errors=errors, usage=usage)


# ---------------------------------------------------------------- invocation log

def log_path():
    return os.environ.get("PROVISION_LAB_LOG") or sp("invocations.jsonl")


SECRET_OPTS = ("password",)


def redact_argv(argv):
    """Replace the value of --password in the logged argv (PVE shows it in ps; we don't keep it)."""
    out = []
    hide_next = False
    for a in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        stripped = a.lstrip("-")
        if a.startswith("-") and a != "--":
            name, eq, _ = stripped.partition("=")
            if name.lower() in SECRET_OPTS:
                if eq:
                    out.append(a.split("=", 1)[0] + "=***")
                    continue
                hide_next = True
        out.append(a)
    return out


def write_log(argv, exit_code, started, cwd):
    path = log_path()
    rec = {
        "ts": round(started, 6),
        "argv": redact_argv(argv),
        "exit": exit_code,
        "duration_ms": round((time.time() - started) * 1000.0, 3),
        "cwd": cwd,
        "pid": os.getpid(),
    }
    line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    try:
        d = os.path.dirname(path)
        if d and not os.path.isdir(d):
            os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:  # the log must never change the command's outcome
        sys.stderr.write("provision-lab: cannot write invocation log %s: %s\n" % (path, e))


def process_started():
    """This process's start as Unix time (clock-tick resolution), from /proc: the logged
    duration then covers the interpreter's start and imports too, as a node's Perl start is part
    of what a caller waits for. None when /proc cannot tell."""
    try:
        with open("/proc/self/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        ticks = int(rest[19])  # field 22, starttime (fields after the comm start at 3)
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        now = time.time()
        return now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def run_main(prog, func, argv=None):
    """Run a command's main(args) -> exit code, print PVE-style errors, log the call."""
    argv = list(sys.argv[1:] if argv is None else argv)
    started = process_started() or time.time()
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    code = 0
    try:
        code = func(argv) or 0
    except PVEError as e:
        sys.stdout.flush()
        sys.stderr.write(e.render())
        code = e.exit
    except KeyboardInterrupt:
        sys.stderr.write("interrupted by signal\n")
        code = 255
    except BrokenPipeError:
        code = 141
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 255)
    except Exception:  # a bug of the lab: say so, exit like a die()
        import traceback
        sys.stderr.write("provision-lab internal error (not PVE behaviour):\n" + traceback.format_exc())
        code = 255
    finally:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        write_log([prog] + argv, code, started, cwd)
    if code == 141:
        os._exit(code)
    sys.exit(code)


# ---------------------------------------------------------------- locks

LOCK_DIR = "/run/lock/lxc"


class ConfigLock:
    """flock on /run/lock/lxc/pve-config-VMID.lock, PVE's own path (lock_config, 10 s timeout):
    scripts that take PVE's lock take the lab's."""

    def __init__(self, vmid, timeout=10.0):
        self.path = os.path.join(LOCK_DIR, "pve-config-%s.lock" % vmid)
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise PVEError("can't lock file '%s' - got timeout" % self.path)
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return False


def atomic_write(path, data, mode=0o644):
    if isinstance(data, str):
        data = data.encode()
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
