"""Worker tasks as pct/pveam run them from the CLI (pve-common RESTEnvironment::fork_worker, sync).

The worker's output passes through; when it dies, the CLI prints the error message (newlines
turned into spaces) on stderr - the task log gets `TASK ERROR: <msg>`, the terminal only <msg>.
The exit status is then up to the command: create/start/stop/destroy... have `$upid_exit`
(255 on a failed task); push, pull, resize, template and `pveam download` do not and exit 0.
"""

import sys

from .common import PVEError


def run(fn, upid_exit=False):
    try:
        fn()
    except PVEError as e:
        sys.stdout.flush()
        msg = e.render().rstrip("\n").replace("\n", " ")
        sys.stderr.write(msg + "\n")
        return 255 if upid_exit else 0
    except OSError as e:
        sys.stdout.flush()
        sys.stderr.write("%s\n" % e)
        return 255 if upid_exit else 0
    return 0
