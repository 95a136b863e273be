#!/usr/bin/python3
"""Tests of the lab node itself: it refuses what a PVE node refuses, and the real flow works.

Needs the lab up:  eval "$(lab/labctl up)" && python3 lab/test_lab.py
(or python3 -m unittest -v lab/test_lab.py; the former ends with "lab: N passed, N failed, N skipped")
Without PROVISION_LAB in the environment every test fails with that reason, unless
PROVISION_SKIP_LAB=1 (then they are skipped, visibly).
"""

import json
import os
import stat
import subprocess
import tempfile
import time
import unittest

LAB_UP = os.environ.get("PROVISION_LAB") == "1"
SKIP = os.environ.get("PROVISION_SKIP_LAB") == "1"
NOT_UP = ("the lab is not up: PROVISION_LAB is not set. Run: eval \"$(lab/labctl up)\" "
          "(or set PROVISION_SKIP_LAB=1 to skip the lab tests)")


def need_lab(tc):
    if LAB_UP:
        return
    if SKIP:
        tc.skipTest("PROVISION_SKIP_LAB=1")
    tc.fail(NOT_UP)


def run(*argv, stdin=None, timeout=120):
    return subprocess.run(list(argv), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


def read(path):
    with open(path) as f:
        return f.read()


def nextid():
    r = run("pvesh", "get", "/cluster/nextid", "--output-format", "json")
    assert r.returncode == 0, r.stderr
    return str(int(json.loads(r.stdout)))


def wait_for(what, probe, timeout):
    """Poll probe() until it returns a truthy value; fail with `what` and the last value on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last and last[0]:
            return last[1]
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s (last seen: %r)" % (timeout, what, last))


class Refusals(unittest.TestCase):
    """What a node refuses. One stopped container (created once) serves the stateful cases."""

    vmid = None

    @classmethod
    def setUpClass(cls):
        if not LAB_UP:
            return
        cls.tpl = os.environ["PROVISION_LAB_TEMPLATE"]
        cls.vmid = nextid()
        r = run("pct", "create", cls.vmid, cls.tpl, "--rootfs", "labct:1", "--hostname", "stopped-ct",
                "--net0", "name=eth0,bridge=vmbr0,ip=dhcp")
        assert r.returncode == 0, "setup: pct create failed: %s" % r.stderr

    @classmethod
    def tearDownClass(cls):
        if cls.vmid:
            run("pct", "destroy", cls.vmid, "--force", "1")

    def setUp(self):
        need_lab(self)

    def refused(self, argv, *expect, usage=None):
        r = run(*argv)
        self.assertEqual(r.returncode, 255, "expected exit 255 from %s, got %d\nstdout: %s\nstderr: %s"
                         % (argv, r.returncode, r.stdout, r.stderr))
        for e in expect:
            self.assertIn(e, r.stderr)
        if usage:
            self.assertTrue(r.stderr.rstrip("\n").endswith(usage), r.stderr)
        return r

    def create(self, *opts, vmid="990"):
        return ["pct", "create", vmid, self.tpl, "--rootfs", "labct:1"] + list(opts)

    def test_unknown_option(self):
        self.refused(self.create("--bogus", "1"), "Unknown option: bogus", "400 unable to parse option",
                     usage="pct create <vmid> <ostemplate> [OPTIONS]")

    def test_unknown_feature_key(self):
        self.refused(self.create("--features", "nesting=1,bogus=1"), "400 Parameter verification failed.",
                     "features: invalid format - invalid key in comma-separated list property: bogus")

    def test_bad_ip_in_net0(self):
        self.refused(self.create("--net0", "name=eth0,bridge=vmbr0,ip=notanip"),
                     "net0.ip: invalid format - value does not look like a valid ipv4 network configuration")

    def test_net0_without_name(self):
        self.refused(self.create("--net0", "bridge=vmbr0,ip=dhcp"),
                     "net0.name: property is missing and it is not optional")

    def test_memory_below_minimum(self):
        self.refused(self.create("--memory", "8"), "memory: value must have a minimum value of 16")

    def test_vmid_below_100(self):
        self.refused(self.create(vmid="99"), "vmid: invalid format - value does not look like a valid VM ID")

    def test_bad_hostname(self):
        self.refused(self.create("--hostname", "bad_name!"),
                     "hostname: invalid format - value does not look like a valid DNS name")

    def test_bad_tag(self):
        self.refused(self.create("--tags", "ok;b@d"), "tags: invalid format - invalid characters in tag")

    def test_bad_boolean(self):
        self.refused(self.create("--onboot", "maybe"), "400 unable to parse boolean option")

    def test_rootfs_on_storage_without_rootdir(self):
        self.refused(["pct", "create", "990", self.tpl, "--rootfs", "local:1"],
                     "storage: storage 'local' does not support container directories")

    def test_unknown_storage(self):
        self.refused(["pct", "create", "990", self.tpl, "--rootfs", "nosuch:1"], "storage 'nosuch' does not exist")

    def test_missing_template(self):
        self.refused(["pct", "create", "990", "local:vztmpl/nope_1.0_amd64.tar.zst", "--rootfs", "labct:1"],
                     "can't find file 'local:vztmpl/nope_1.0_amd64.tar.zst'")
        self.assertFalse(os.path.exists(os.path.join(os.environ["PROVISION_LAB_STATE"], "pve/lxc/990.conf")),
                         "a failed create must leave nothing behind")

    def test_keyctl_on_privileged(self):
        self.refused(self.create("--unprivileged", "0", "--features", "keyctl=1"),
                     "keyctl is only supported for unprivileged containers")

    def test_second_create_same_vmid(self):
        self.refused(["pct", "create", self.vmid, self.tpl, "--rootfs", "labct:1"],
                     "CT %s already exists on node '%s'" % (self.vmid, os.environ["PROVISION_LAB_NODE"]))

    def test_unprivileged_is_read_only(self):
        self.refused(["pct", "set", self.vmid, "--unprivileged", "0"],
                     "unable to modify read-only option: 'unprivileged'")

    def test_set_validates_against_schema(self):
        self.refused(["pct", "set", self.vmid, "--cores", "0"], "cores: value must have a minimum value of 1",
                     usage="pct set <vmid> [OPTIONS]")

    def test_resize_grows_but_never_shrinks(self):
        self.assertEqual(run("pct", "resize", self.vmid, "rootfs", "+1G").returncode, 0)
        self.assertIn("size=2G", run("pct", "config", self.vmid).stdout)
        self.refused(["pct", "resize", self.vmid, "rootfs", "1G"], "unable to shrink disk size")

    def test_push_to_stopped(self):
        with tempfile.NamedTemporaryFile() as f:
            self.refused(["pct", "push", self.vmid, f.name, "/root/x"], "can only push files to a running CT")

    def test_exec_on_stopped(self):
        self.refused(["pct", "exec", self.vmid, "--", "true"], "CT %s not running" % self.vmid)

    def test_unknown_vmid(self):
        self.refused(["pct", "config", "999999"], "Configuration file 'nodes/%s/lxc/999999.conf' does not exist"
                     % os.environ["PROVISION_LAB_NODE"])

    def test_nextid_with_taken_vmid(self):
        self.refused(["pvesh", "get", "/cluster/nextid", "--vmid", self.vmid, "--output-format", "json"],
                     "vmid: VM %s already exists" % self.vmid)

    def test_unknown_api_path(self):
        self.refused(["pvesh", "get", "/no/such/path"], "no 'get' handler for '/no/such/path'")

    def test_pveam_unknown_template_and_wrong_storage(self):
        self.refused(["pveam", "download", "local", "nope.tar.zst"], "template: no such template")
        name = self.tpl.split("/", 1)[1]
        self.refused(["pveam", "download", "labct", name], "storage 'labct' does not support templates")

    def test_unknown_subcommand(self):
        self.refused(["pct", "frobnicate"], "ERROR: unknown command 'pct frobnicate'")


class HappyPath(unittest.TestCase):
    """create -> start -> network -> exec -> push -> set while running -> destroy, for real."""

    def setUp(self):
        need_lab(self)

    def test_full_flow(self):
        tpl = os.environ["PROVISION_LAB_TEMPLATE"]
        node = os.environ["PROVISION_LAB_NODE"]
        net = os.environ["PROVISION_LAB_SUBNET"]
        vmid = nextid()
        tmp = tempfile.mkdtemp()
        key = os.path.join(tmp, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-test", "-f", key], check=True)
        pub = read(key + ".pub").strip()
        t0 = time.monotonic()
        try:
            r = run("pct", "create", vmid, tpl, "--rootfs", "labct:4", "--hostname", "lab-happy",
                    "--unprivileged", "1", "--features", "nesting=1,keyctl=1,fuse=1,mknod=1",
                    "--net0", "name=eth0,bridge=vmbr0,ip=dhcp", "--ssh-public-keys", key + ".pub",
                    "--memory", "1024", "--tags", "Provision;lab-test", "--onboot", "0")
            self.assertEqual(r.returncode, 0, r.stderr)
            conf = run("pct", "config", vmid).stdout
            self.assertIn("features: nesting=1,keyctl=1,fuse=1,mknod=1\n", conf)
            self.assertIn("unprivileged: 1\n", conf)
            self.assertIn("tags: lab-test;provision\n", conf)
            self.assertRegex(conf, r"net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11(:[0-9A-F]{2}){3},ip=dhcp,type=veth\n")
            self.assertRegex(conf, r"rootfs: labct:%s/vm-%s-disk-0\.raw,size=4G\n" % (vmid, vmid))
            t_create = time.monotonic() - t0

            self.assertEqual(run("pct", "start", vmid).returncode, 0)
            self.assertEqual(run("pct", "status", vmid).stdout, "status: running\n")
            self.refused_start(vmid)

            def eth0_ipv4():
                r = run("pvesh", "get", "/nodes/%s/lxc/%s/interfaces" % (node, vmid), "--output-format", "json")
                if r.returncode != 0:
                    return (False, r.stderr.strip())
                for i in json.loads(r.stdout):
                    if i.get("name") == "eth0" and i.get("inet"):
                        return (True, i["inet"])
                return (False, r.stdout.strip())
            addr = wait_for("eth0 of CT %s to get an IPv4 address by DHCP from the lab bridge" % vmid, eth0_ipv4, 30)
            t_net = time.monotonic() - t0
            import ipaddress
            self.assertIn(ipaddress.ip_interface(addr).ip, ipaddress.ip_network(net))

            # exec: stdout, stdin and the exit code pass through; keep-env 0 clears the host env
            r = run("pct", "exec", vmid, "--", "sh", "-c", "cat; echo out; echo err >&2; exit 7", stdin="in\n")
            self.assertEqual((r.returncode, r.stdout, r.stderr), (7, "in\nout\n", "err\n"))
            r = run("pct", "exec", vmid, "--keep-env", "0", "--", "sh", "-c", "echo ${PROVISION_LAB:-clean} $PATH")
            self.assertEqual(r.stdout, "clean /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
            self.assertEqual(run("pct", "exec", vmid, "--", "hostname").stdout, "lab-happy\n")
            keys = run("pct", "exec", vmid, "--", "cat", "/root/.ssh/authorized_keys").stdout
            self.assertIn(pub, keys)

            # what the Docker recipe needs: /dev/fuse usable by the CT's root, keyctl, rw proc/sys
            r = run("pct", "exec", vmid, "--", "sh", "-c", "exec 3<>/dev/fuse && echo opened")
            self.assertEqual(r.stdout, "opened\n", r.stderr)
            r = run("pct", "exec", vmid, "--", "perl", "-e", "syscall(250,0,0,0,0,0); print $!+0")
            self.assertNotEqual(r.stdout, "38", "keyctl=1 must let keyctl() through (got ENOSYS)")
            mounts = run("pct", "exec", vmid, "--", "cat", "/proc/mounts").stdout
            opts = {l.split()[1]: l.split()[3].split(",") for l in mounts.splitlines()}
            self.assertIn("rw", opts["/proc"])
            self.assertIn("rw", opts["/sys"])
            self.assertNotIn("/proc/sys", opts, "nesting=1 must not leave /proc/sys read-only")

            # the Debian mirror (and only it) is reachable through the lab's NAT and DNS
            r = run("pct", "exec", vmid, "--", "sh", "-c",
                    "h=$(sed -n 's|^URIs: *[a-z]*://\\([^/:]*\\).*|\\1|p' /etc/apt/sources.list.d/debian.sources | head -1);"
                    " getent hosts $h >/dev/null && timeout 5 bash -c \"echo > /dev/tcp/$h/80\" && echo mirror-ok;"
                    " getent hosts not-the-mirror.example >/dev/null || echo others-blocked")
            self.assertEqual(r.stdout, "mirror-ok\nothers-blocked\n", r.stderr)

            # push: no parent creation, perms and owner applied, content intact
            src = os.path.join(tmp, "script.sh")
            with open(src, "w") as f:
                f.write("#!/bin/sh\necho pushed-ok\n")
            r = run("pct", "push", vmid, src, "/no/such/dir/script.sh")
            self.assertEqual(r.returncode, 255)
            self.assertIn("failed to open /no/such/dir/script.sh for writing: No such file or directory", r.stderr)
            r = run("pct", "push", vmid, src, "/usr/local/bin/script.sh", "--perms", "0750")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(run("pct", "exec", vmid, "--", "stat", "-c", "%a %U:%G", "/usr/local/bin/script.sh").stdout,
                             "750 root:root\n")
            self.assertEqual(run("pct", "exec", vmid, "--", "script.sh").stdout, "pushed-ok\n")
            back = os.path.join(tmp, "back.sh")
            self.assertEqual(run("pct", "pull", vmid, "/usr/local/bin/script.sh", back).returncode, 0)
            self.assertEqual(read(back), read(src))

            # set on a running CT: memory/tags apply now, features become pending
            r = run("pct", "set", vmid, "--memory", "768", "--features", "nesting=1,fuse=1", "--tags", "provision")
            self.assertEqual(r.returncode, 0, r.stderr)
            cur = run("pct", "config", vmid, "--current", "1").stdout
            self.assertIn("memory: 768\n", cur)
            self.assertIn("features: nesting=1,keyctl=1,fuse=1,mknod=1\n", cur)
            self.assertIn("features: nesting=1,fuse=1\n", run("pct", "config", vmid).stdout)
            pend = run("pct", "pending", vmid).stdout
            self.assertIn("cur features: nesting=1,keyctl=1,fuse=1,mknod=1\nnew features: nesting=1,fuse=1\n", pend)
            self.assertIn("cur memory: 768\n", pend)
            items = json.loads(run("pvesh", "get", "/nodes/%s/lxc/%s/pending" % (node, vmid),
                                   "--output-format", "json").stdout)
            feat = [i for i in items if i["key"] == "features"][0]
            self.assertEqual(feat["pending"], "nesting=1,fuse=1")
            res = json.loads(run("pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json").stdout)
            me = [x for x in res if x["vmid"] == int(vmid)][0]
            self.assertEqual((me["id"], me["type"], me["status"], me["tags"], me["node"], me["template"]),
                             ("lxc/%s" % vmid, "lxc", "running", "provision", node, 0))

            # reboot applies pending changes
            self.assertEqual(run("pct", "reboot", vmid).returncode, 0)
            self.assertIn("features: nesting=1,fuse=1\n", run("pct", "config", vmid, "--current", "1").stdout)
            self.assertEqual(run("pct", "pending", vmid).stdout.count("new "), 0)

            r = run("pct", "destroy", vmid)
            self.assertEqual(r.returncode, 255)
            self.assertIn("unable to destroy CT %s - container is running" % vmid, r.stderr)
            t1 = time.monotonic()
            self.assertEqual(run("pct", "destroy", vmid, "--force", "1", "--purge", "1").returncode, 0)
            t_destroy = time.monotonic() - t1
            self.assertNotIn("\n%s " % vmid, run("pct", "list").stdout)
            print("\n  timings: create %.1fs, create+start+network %.1fs, destroy %.1fs"
                  % (t_create, t_net, t_destroy))
        finally:
            run("pct", "destroy", vmid, "--force", "1")

    def refused_start(self, vmid):
        r = run("pct", "start", vmid)
        self.assertEqual(r.returncode, 255)
        self.assertIn("CT %s already running" % vmid, r.stderr)


class InvocationLog(unittest.TestCase):
    def setUp(self):
        need_lab(self)

    def test_every_call_is_logged(self):
        log = os.environ["PROVISION_LAB_LOG"]
        marker = "--vmid=%d" % (900000000 + os.getpid() % 1000000)
        run("pvesh", "get", "/cluster/nextid", marker, "--output-format", "json")
        run("pct", "status", "999999999")
        run("pct", "create", "101", "x", "--password", "s3cret-value")
        recs = [json.loads(l) for l in read(log).splitlines()[-50:]]
        ok = [r for r in recs if r["argv"] == ["pvesh", "get", "/cluster/nextid", marker, "--output-format", "json"]]
        self.assertTrue(ok, "the nextid call is not in %s" % log)
        self.assertEqual(ok[-1]["exit"], 0)
        self.assertIsInstance(ok[-1]["duration_ms"], float)
        self.assertGreater(ok[-1]["duration_ms"], 0)
        self.assertLessEqual(abs(ok[-1]["ts"] - time.time()), 120)
        self.assertEqual(ok[-1]["cwd"], os.getcwd())
        bad = [r for r in recs if r["argv"] == ["pct", "status", "999999999"]]
        self.assertEqual(bad[-1]["exit"], 255)
        self.assertNotIn("s3cret-value", read(log), "passwords must not be logged")
        self.assertEqual(stat.S_IMODE(os.stat(log).st_mode), 0o600)


if __name__ == "__main__":
    import sys
    res = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    # the plain closing line CI reads
    print("lab: %d passed, %d failed, %d skipped" % (res.testsRun - failed - skipped, failed, skipped))
    sys.exit(0 if res.wasSuccessful() else 1)
