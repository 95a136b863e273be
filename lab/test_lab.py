#!/usr/bin/python3
"""Tests of the lab node itself: it refuses what a PVE node refuses, and the real flow works.

Needs the lab up:  eval "$(lab/labctl up)" && python3 lab/test_lab.py
(or python3 -m unittest -v lab/test_lab.py; the former ends with "lab: N passed, N failed, N skipped")
Without PROVISION_LAB in the environment every test fails with that reason, unless
PROVISION_SKIP_LAB=1 (then they are skipped, visibly).
"""

import json
import os
import re
import shlex
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


def run(*argv, stdin=None, timeout=120, release=None):
    env = None
    if release:
        env = dict(os.environ, PROVISION_LAB_RELEASE=release)
    return subprocess.run(list(argv), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=env)


LAB = os.path.dirname(os.path.realpath(__file__))
RELEASE = os.environ.get("PROVISION_LAB_RELEASE", "9.2")


def labctl(*args):
    r = subprocess.run([os.path.join(LAB, "labctl")] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, "labctl %s: %s" % (" ".join(args), r.stderr)
    return r


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

    def test_mount_point_sources_are_checked_like_pve(self):
        self.refused(self.create("--mp0", "/nonexistent-lab-dir,mp=/x"),
                     "mp0: bind mount source path '/nonexistent-lab-dir' does not exist")
        self.refused(self.create("--mp0", "labct:1,mp=/a/../b"), "invalid path")
        self.refused(self.create("--mp0", "local:1,mp=/x"), "does not support container directories")
        self.refused(self.create("--mp0", "labct:1"), "mp")

    def test_a_mount_point_set_on_a_stopped_ct_is_allocated_and_kept_as_unused_when_detached(self):
        v = self.vmid
        r = run("pct", "set", v, "--mp0", "labct:1,mp=/data,ro=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        vol = "labct:%s/vm-%s-disk-1.raw" % (v, v)
        self.assertIn("mp0: %s,mp=/data,ro=1,size=1G\n" % vol, run("pct", "config", v).stdout)
        r = run("pct", "set", v, "--delete", "mp0")
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = run("pct", "config", v).stdout
        self.assertNotIn("mp0:", cfg)
        self.assertIn("unused0: %s\n" % vol, cfg)

    def test_move_volume_to_another_ct_is_checked_and_renames_like_pve(self):
        a = nextid()
        r = run("pct", "create", a, self.tpl, "--rootfs", "labct:1", "--mp0", "labct:1,mp=/keep")
        self.assertEqual(r.returncode, 0, r.stderr)
        b = nextid()
        try:
            r = run("pct", "create", b, self.tpl, "--rootfs", "labct:1", "--mp0", "/tmp,mp=/tmp2")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.refused(["pct", "move-volume", a, "rootfs", "--target-vmid", b], "Cannot move to/from 'rootfs'")
            self.refused(["pct", "move-volume", a, "mp0"], "either needs to be set")
            self.refused(["pct", "move-volume", a, "mp0", "--target-vmid", "999999"], "could not find CT 999999")
            self.refused(["pct", "move-volume", a, "mp0", "--target-vmid", b],
                         "Target volume key 'mp0' is already in use for container '%s'" % b)
            self.refused(["pct", "move-volume", b, "mp0", "--target-vmid", a, "--target-volume", "mp1"],
                         "Cannot move a bindmount or device mount to another container")
            old = "labct:%s/vm-%s-disk-1.raw" % (a, a)
            with open(os.path.join(os.environ["PROVISION_LAB_STATE"], "storage", "labct", "images", a,
                                   "vm-%s-disk-1.raw" % a, "marker"), "w") as f:
                f.write("kept")
            r = run("pct", "move-volume", a, "mp0", "--target-vmid", b, "--target-volume", "mp1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn(old, run("pct", "config", a).stdout)
            new = "labct:%s/vm-%s-disk-1.raw" % (b, b)
            self.assertIn("mp1: %s,mp=/keep,size=1G\n" % new, run("pct", "config", b).stdout)
            self.assertEqual(read(os.path.join(os.environ["PROVISION_LAB_STATE"], "storage", "labct", "images",
                                               b, "vm-%s-disk-1.raw" % b, "marker")), "kept")
            # pct destroy of the old container leaves the volume it no longer names.
            self.assertEqual(run("pct", "destroy", a).returncode, 0)
            a = None
            self.assertIn("mp1: %s" % new, run("pct", "config", b).stdout)
        finally:
            for v in (a, b):
                if v:
                    run("pct", "destroy", v, "--force", "1")
    def test_raw_lxc_keys_are_refused_by_pct_set_and_kept_in_the_config(self):
        v = self.vmid
        self.refused(["pct", "set", v, "--lxc.cgroup2.devices.allow", "c 1:3 rwm"], "Unknown option")
        path = "/etc/pve/lxc/%s.conf" % v
        lines = "lxc.cgroup2.devices.allow: c 1:3 rwm\nlxc.mount.entry: /dev/null dev/x none bind,optional,create=file\n"
        with open(path, "a") as f:
            f.write(lines)
        self.assertTrue(run("pct", "config", v).stdout.endswith(lines))
        # A later `pct set` writes the file again: the raw lines stay, after the sorted keys.
        r = run("pct", "set", v, "--cores", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(read(path).endswith(lines), read(path))

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
        before = re.search(r"size=(\d+)G", run("pct", "config", self.vmid).stdout).group(1)
        self.assertEqual(run("pct", "resize", self.vmid, "rootfs", "+1G").returncode, 0)
        self.assertIn("size=%dG" % (int(before) + 1), run("pct", "config", self.vmid).stdout)
        self.refused(["pct", "resize", self.vmid, "rootfs", "1G"], "unable to shrink disk size")

    def test_resize_task_failure_exits_0(self):
        conf = run("pct", "config", self.vmid).stdout
        labctl("storage", "labct", "failing")
        try:
            r = run("pct", "resize", self.vmid, "rootfs", "+1G")
        finally:
            labctl("storage", "labct", "online")
        self.assertEqual(r.returncode, 0, "a failed resize task exits 0 on PVE")
        self.assertIn("resizing volume 'labct:%s/vm-%s-disk-0.raw' on storage 'labct' failed" % (self.vmid, self.vmid),
                      r.stderr)
        self.assertEqual(run("pct", "config", self.vmid).stdout, conf, "a failed resize must not change the config")

    def test_resize_on_an_offline_storage_fails_before_the_task(self):
        labctl("storage", "labct", "offline")
        try:
            self.refused(["pct", "resize", self.vmid, "rootfs", "+1G"], "unable to activate storage 'labct'")
        finally:
            labctl("storage", "labct", "online")

    def test_push_to_stopped(self):
        with tempfile.NamedTemporaryFile() as f:
            self.refused(["pct", "push", self.vmid, f.name, "/root/x"], "can only push files to a running CT")

    def test_exec_on_stopped(self):
        self.refused(["pct", "exec", self.vmid, "--", "true"], "container '%s' not running!" % self.vmid)

    def test_pull_from_stopped(self):
        # pct.pm dies without a newline here, so Perl names its own source line
        self.refused(["pct", "pull", self.vmid, "/etc/hostname", "/tmp/x"],
                     "can only pull files from a running VM at /usr/share/perl5/PVE/CLI/pct.pm line ")

    def test_resize_to_the_same_size(self):
        size = re.search(r"size=(\w+)", run("pct", "config", self.vmid).stdout).group(1)
        self.refused(["pct", "resize", self.vmid, "rootfs", size], "disk is already at specified size")
        self.refused(["pct", "resize", self.vmid, "rootfs", "+0"], "disk is already at specified size")

    def test_interfaces_of_a_stopped_ct_is_null(self):
        # PVE::LXC::get_interfaces returns nothing when the CT has no PID: exit 0, JSON null
        r = run("pvesh", "get", "/nodes/%s/lxc/%s/interfaces" % (os.environ["PROVISION_LAB_NODE"], self.vmid),
                "--output-format", "json")
        self.assertEqual((r.returncode, r.stdout), (0, "null\n"), r.stderr)

    def test_description_is_percent_encoded(self):
        r = run("pct", "set", self.vmid, "--description", "50% done: yes\nline %41")
        self.assertEqual(r.returncode, 0, r.stderr)
        conf = read(os.path.join(os.environ["PROVISION_LAB_STATE"], "pve/lxc/%s.conf" % self.vmid))
        self.assertTrue(conf.startswith("#50%25 done%3A yes\n#line %2541\n"), conf)
        self.assertIn("description: 50%25 done%3A yes%0Aline %2541\n", run("pct", "config", self.vmid).stdout)
        items = json.loads(run("pvesh", "get", "/nodes/%s/lxc/%s/config" % (os.environ["PROVISION_LAB_NODE"],
                                                                            self.vmid), "--output-format", "json").stdout)
        self.assertEqual(items["description"], "50% done: yes\nline %41")

    def test_ssh_keys_are_checked_line_by_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".pub") as f:
            f.write("# a comment line is not a key for ssh-keygen -l\n")
            f.flush()
            self.refused(self.create("--ssh-public-keys", f.name), "SSH public key validation error")
        with tempfile.NamedTemporaryFile("w", suffix=".pub") as f:
            f.write("ssh-ed25519 AAAAnotakey lab\n")
            f.flush()
            self.refused(self.create("--ssh-public-keys", f.name), "SSH public key validation error")

    def test_unknown_vmid(self):
        self.refused(["pct", "config", "999999"], "Configuration file 'nodes/%s/lxc/999999.conf' does not exist"
                     % os.environ["PROVISION_LAB_NODE"])

    def test_nextid_with_taken_vmid(self):
        self.refused(["pvesh", "get", "/cluster/nextid", "--vmid", self.vmid, "--output-format", "json"],
                     "vmid: VM %s already exists" % self.vmid)

    def test_unknown_api_path(self):
        r = run("pvesh", "get", "/no/such/path")
        self.assertEqual((r.returncode, r.stderr), (1, "No 'get' handler defined for '/no/such/path'\n"))

    def test_pveam_download_failures_exit_0(self):
        r = run("pveam", "download", "local", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst")
        self.assertEqual(r.returncode, 0, "a failed download task exits 0 on PVE")
        self.assertIn("download failed: command 'wget", r.stderr)
        self.assertIn("reaches only the Debian mirror", r.stderr)
        self.assertNotIn("ubuntu-24.04", run("pveam", "list", "local").stdout)
        name = os.environ["PROVISION_LAB_TEMPLATE_DEBIAN13"].split("/", 1)[1]
        run("pveam", "remove", os.environ["PROVISION_LAB_TEMPLATE_DEBIAN13"])
        labctl("storage", "local", "failing")
        try:
            r = run("pveam", "download", "local", name)
        finally:
            labctl("storage", "local", "online")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("on storage 'local' failed", r.stderr)
        self.assertNotIn(name, run("pveam", "list", "local").stdout)
        r = run("pveam", "download", "local", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("download of 'lab-index://images/system/%s'" % name, r.stdout)
        self.assertIn("local:vztmpl/" + name, run("pveam", "list", "local").stdout)

    def test_pvesm_offline_storage_is_inactive(self):
        labctl("storage", "local-zfs", "offline")
        try:
            r = run("pvesm", "status")
            js = json.loads(run("pvesh", "get", "/nodes/%s/storage" % os.environ["PROVISION_LAB_NODE"],
                                "--output-format", "json").stdout)
        finally:
            labctl("storage", "local-zfs", "online")
        self.assertEqual(r.returncode, 0)
        self.assertIn("could not activate storage 'local-zfs', zfs error: cannot import 'rpool': no such pool "
                      "available\n", r.stderr)
        row = [l.split() for l in r.stdout.splitlines() if l.startswith("local-zfs ")][0]
        self.assertEqual(row, ["local-zfs", "zfspool", "inactive", "0", "0", "0", "0.00%"])
        z = [x for x in js if x["storage"] == "local-zfs"][0]
        self.assertEqual((z["active"], z["total"], z["type"]), (0, 0, "zfspool"))

    def test_pveam_unknown_template_and_wrong_storage(self):
        self.refused(["pveam", "download", "local", "nope.tar.zst"], "template: no such template")
        name = self.tpl.split("/", 1)[1]
        self.refused(["pveam", "download", "labct", name], "storage 'labct' does not support templates")

    def test_unknown_subcommand(self):
        self.refused(["pct", "frobnicate"], "ERROR: unknown command 'pct frobnicate'")


# ------------------------------------------------------------------ per-release behaviour
# Expectations are written from /work-independent facts of pve-releases.md (the tables in
# lab/README.md), not computed by the lab's own release.py: a wrong lab table fails here.
ALL = ["7.4", "8.0", "8.1", "8.2", "8.3", "8.4", "9.0", "9.1", "9.2", "9.2-latest"]
CONTAINER = {"7.4": "4.4-3", "8.0": "5.0.3", "8.1": "5.0.8", "8.2": "5.0.11", "8.3": "5.2.2", "8.4": "5.2.6",
             "9.0": "6.0.9", "9.1": "6.0.18", "9.2": "6.1.10", "9.2-latest": "6.1.10"}
MANAGER = {"7.4": "7.4-3", "8.0": "8.0.3", "8.1": "8.1.3", "8.2": "8.2.2", "8.3": "8.3.0", "8.4": "8.4.0",
           "9.0": "9.0.3", "9.1": "9.1.1", "9.2": "9.2.2", "9.2-latest": "9.2.11"}
ZFS = {"7.4": "2.1.9", "8.0": "2.1.12", "8.1": "2.2.0", "8.2": "2.2.3", "8.3": "2.2.6", "8.4": "2.2.7",
       "9.0": "2.3.3", "9.1": "2.3.4", "9.2": "2.4.0", "9.2-latest": "2.4.0"}
KEEP_ENV_FROM = "8.2"  # pve-container 5.0.9
UNITS_HEADER_FROM = "9.1"  # libpve-storage-perl 9.0.14
ARCH_COLUMN = {"9.2-latest"}  # pve-manager 9.2.7
PERCENT_FROM = "8.3"  # libpve-common-perl 8.2.2
UNPRIV_DEFAULT_FROM = "9.0"  # pve-container 6.0.6
INTERFACES_FROM = "8.1"  # pve-container 5.0.8


def at_least(r, first):
    return ALL.index(r) >= ALL.index(first)


def fake_template(tmp, name, files):
    """A marker-only rootfs (just the files PVE's guest detection reads), packed like a template.
    Labelled as what it is: it cannot boot; it exercises `pct create`'s guest-version check."""
    root = os.path.join(tmp, name + ".d")
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    for d in ("etc/network", "etc/ssh", "etc/systemd/system", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    out = os.path.join(tmp, "lab-test-%s_amd64.tar.zst" % name)
    subprocess.run(["tar", "--zstd", "-C", root, "--numeric-owner", "-cf", out, "."], check=True)
    return out


def ubuntu(v):
    return {"etc/os-release": 'NAME="Ubuntu"\nVERSION_ID="%s"\nID=ubuntu\n' % v,
            "etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=%s\nDISTRIB_CODENAME=lab\n" % v,
            "etc/debian_version": "bookworm/sid\n"}


def debian(v):
    return {"etc/os-release": 'NAME="Debian GNU/Linux"\nID=debian\n', "etc/debian_version": v + "\n"}


class ReleaseMatrix(unittest.TestCase):
    """Every release's differences, switching the release per command (PROVISION_LAB_RELEASE)."""

    @classmethod
    def setUpClass(cls):
        if not LAB_UP:
            return
        cls.tmp = tempfile.mkdtemp(prefix="lab-test-")
        os.chmod(cls.tmp, 0o755)  # the CT's root (uid 100000) extracts the templates
        cls.node = os.environ["PROVISION_LAB_NODE"]

    def setUp(self):
        need_lab(self)

    def test_pveversion_and_api_version(self):
        for r in ALL:
            with self.subTest(release=r):
                rid = 8 if r.startswith("7.") else 16
                line = run("pveversion", release=r).stdout
                self.assertRegex(line, r"^pve-manager/%s/[0-9a-f]{%d} \(running kernel: [0-9.]+-\d+-pve\)\n$"
                                 % (re.escape(MANAGER[r]), rid))
                v = run("pveversion", "-v", release=r).stdout.splitlines()
                self.assertTrue(v[0].startswith("proxmox-ve: "), v)
                self.assertRegex(v[1], r"^pve-manager: %s \(running version: %s/[0-9a-f]{%d}\)$"
                                 % (re.escape(MANAGER[r]), re.escape(MANAGER[r]), rid))
                self.assertIn("pve-container: %s" % CONTAINER[r], v)
                self.assertTrue(any(x.startswith("zfsutils-linux: %s" % ZFS[r]) for x in v), v)
                names = [x.split(":")[0] for x in v[3:]]
                self.assertEqual(names, sorted(names), "packages after the kernel are sorted by name")
                api = json.loads(run("pvesh", "get", "/version", "--output-format", "json", release=r).stdout)
                self.assertEqual((api["version"], api["release"]), (MANAGER[r], r.split("-")[0]))
                self.assertRegex(api["repoid"], r"^[0-9a-f]{%d}$" % rid)

    def test_keep_env(self):
        for r in ALL:
            with self.subTest(release=r):
                res = run("pct", "exec", "999999", "--keep-env", "0", "--", "true", release=r)
                self.assertEqual(res.returncode, 255)
                if at_least(r, KEEP_ENV_FROM):
                    self.assertIn("Configuration file 'nodes/%s/lxc/999999.conf' does not exist" % self.node,
                                  res.stderr)
                else:
                    self.assertEqual(res.stderr, "Unknown option: keep-env\n400 unable to parse option\n"
                                     "pct exec <vmid> [<extra-args>] [OPTIONS]\n")

    def test_options_added_later_are_unknown_before(self):
        cases = [(["--dev0", "/dev/null"], "8.1", "Unknown option: dev0"),
                 (["--entrypoint", "/sbin/init"], "9.1", "Unknown option: entrypoint"),
                 (["--env", "A=1"], "9.1", "Unknown option: env"),
                 (["--net0", "name=eth0,bridge=vmbr0,host-managed=1"], "9.1",
                  "net0: invalid format - invalid key in comma-separated list property: host-managed"),
                 (["--mp0", "labct:1,mp=/srv,idmap=u:0:100000:65536"], "9.2",
                  "mp0: invalid format - invalid key in comma-separated list property: idmap"),
                 (["--mp0", "labct:1,mp=/srv,keepattrs=1"], "9.2",
                  "mp0: invalid format - invalid key in comma-separated list property: keepattrs")]
        for r in ALL:
            for opts, since, refusal in cases:
                with self.subTest(release=r, opts=opts):
                    res = run("pct", "create", "990", "local:vztmpl/nope_1_amd64.tar.zst", "--rootfs", "labct:1",
                              *opts, release=r)
                    self.assertEqual(res.returncode, 255)
                    if at_least(r, since):
                        self.assertIn("can't find file 'local:vztmpl/nope_1_amd64.tar.zst'", res.stderr)
                    else:
                        self.assertIn(refusal, res.stderr)

    def test_pvesm_status_header(self):
        for r in ALL:
            with self.subTest(release=r):
                head = run("pvesm", "status", release=r).stdout.splitlines()[0].split()
                if at_least(r, UNITS_HEADER_FROM):
                    self.assertEqual(head, ["Name", "Type", "Status", "Total", "(KiB)", "Used", "(KiB)",
                                            "Available", "(KiB)", "%"])
                else:
                    self.assertEqual(head, ["Name", "Type", "Status", "Total", "Used", "Available", "%"])
        types = {l.split()[0]: l.split()[1] for l in run("pvesm", "status").stdout.splitlines()[1:]}
        self.assertEqual(types, {"labct": "dir", "local": "dir", "local-lvm": "lvmthin", "local-zfs": "zfspool"})

    def test_pveam_available_columns(self):
        for r in ALL:
            with self.subTest(release=r):
                lines = run("pveam", "available", release=r).stdout.splitlines()
                names = [l.split()[1] for l in lines]
                self.assertIn("ubuntu-24.04-standard_24.04-2_amd64.tar.zst", names)
                self.assertIn("ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst", names)
                self.assertTrue(any(n.startswith("debian-13-standard_13.") for n in names), names)
                self.assertEqual(names, sorted(names))
                for l in lines:
                    if r in ARCH_COLUMN:
                        self.assertRegex(l, r"^system {10}\S+ +amd64$")
                        self.assertEqual(l.rindex(" amd64") + 1, 15 + 1 + 60 + 1)  # %-15s %-60s %s
                    else:
                        self.assertRegex(l, r"^system {10}\S+$")

    def test_74_with_updates_has_the_pve7_backports_but_no_keep_env(self):
        """7.4-latest (pve-container 4.4-7): Debian <= 13.0 and Ubuntu 24.04 were backported to the
        PVE 7 line; --keep-env never was."""
        out = run("pveversion", "-v", release="7.4-latest").stdout
        self.assertIn("pve-container: 4.4-7\n", out)
        self.assertIn("pve-manager: 7.4-20 ", out)
        res = run("pct", "exec", "999999", "--keep-env", "0", "--", "true", release="7.4-latest")
        self.assertEqual(res.returncode, 255)
        self.assertIn("Unknown option: keep-env", res.stderr)
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
        from pvelab import release as rel
        self.assertIsNone(rel.check_debian("12.15", "7.4-latest"))
        self.assertIsNone(rel.check_ubuntu("24.04", "7.4-latest"))
        with self.assertRaises(Exception):
            rel.check_debian("12.15", "7.4")
        with self.assertRaises(Exception):
            rel.check_ubuntu("24.04", "7.4")

    def test_nextid_is_an_integer(self):
        r = run("pvesh", "get", "/cluster/nextid", "--output-format", "json")
        self.assertRegex(r.stdout, r"^\d+\n$")
        r = run("pvesh", "get", "/cluster/nextid")
        self.assertRegex(r.stdout, r"^\d+\n$")

    def test_interfaces_path_exists_from_81(self):
        for r in ALL:
            with self.subTest(release=r):
                path = "/nodes/%s/lxc/999999/interfaces" % self.node
                res = run("pvesh", "get", path, release=r)
                if at_least(r, INTERFACES_FROM):
                    self.assertEqual(res.returncode, 255)
                    self.assertIn("999999.conf' does not exist", res.stderr)
                else:
                    self.assertEqual((res.returncode, res.stderr), (1, "No 'get' handler defined for '%s'\n" % path))

    def test_guest_versions(self):
        """pct create refuses guests its pve-container does not know; nothing is left behind."""
        refuse_old = "unsupported Ubuntu version '%s'"
        cases = [  # (files, first release accepting, refusal before, refusal after or None)
            (ubuntu("24.04"), "8.3", refuse_old % "24.04"),
            (ubuntu("26.04"), "9.1", refuse_old % "26.04"),
            (ubuntu("26.10"), "9.1", refuse_old % "26.10"),  # 9.1: unknown but newer -> a warning
            (ubuntu("22.04"), "7.4", None),
            (debian("12.15"), "8.0", "unsupported debian version '12.15'"),
            (debian("13.2"), "9.1", "unsupported debian version '13.2'"),
            (debian("trixie/sid"), "8.0", "unable to parse version info 'trixie/sid'"),
        ]
        never = [(ubuntu("13.04"), "9.1", "unsupported ancient Ubuntu version '13.04'", refuse_old % "13.04"),
                 (debian("3.1"), "9.1", "Container Debian version '3' is too old", "unsupported debian version '3.1'")]
        state = os.environ["PROVISION_LAB_STATE"]
        for i, (files, first, before) in enumerate(cases):
            tpl = fake_template(self.tmp, "case%d" % i, files)
            i_first = ALL.index(first)
            # the oldest release, both sides of the boundary, and the default (creates cost time)
            for r in sorted({ALL[0], ALL[max(i_first - 1, 0)], first, "9.2"}, key=ALL.index):
                accept = at_least(r, first)
                with self.subTest(release=r, guest=files.get("etc/lsb-release") or files["etc/debian_version"]):
                    res = run("pct", "create", "990", tpl, "--rootfs", "labct:1", "--unprivileged", "1", release=r)
                    if accept:
                        self.assertEqual(res.returncode, 0, res.stderr)
                        self.assertEqual(run("pct", "destroy", "990").returncode, 0)
                    else:
                        self.assertEqual(res.returncode, 255, res.stderr)
                        self.assertEqual(res.stderr.strip().splitlines()[-1], before)
                        self.assertFalse(os.path.exists(os.path.join(state, "pve/lxc/990.conf")))
                        self.assertFalse(os.path.exists(os.path.join(state, "storage/labct/images/990")))
        for i, (files, new_from, new_msg, old_msg) in enumerate(never):
            tpl = fake_template(self.tmp, "never%d" % i, files)
            for r in ("7.4", "9.0", "9.1", "9.2"):
                with self.subTest(release=r, never=i):
                    res = run("pct", "create", "990", tpl, "--rootfs", "labct:1", "--unprivileged", "1", release=r)
                    self.assertEqual(res.returncode, 255)
                    self.assertEqual(res.stderr.strip().splitlines()[-1],
                                     new_msg if at_least(r, new_from) else old_msg)
        res = run("pct", "create", "990", fake_template(self.tmp, "warn", ubuntu("26.10")), "--rootfs", "labct:1",
                  release="9.1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("WARN: The container's Ubuntu version '26.10' is not in the known version list.", res.stderr)
        run("pct", "destroy", "990")

    def test_unprivileged_default_and_description_per_release(self):
        tpl = fake_template(self.tmp, "plain", debian("12.15"))
        for r in ["8.0", "8.2", "8.3", "9.0"]:
            with self.subTest(release=r):
                res = run("pct", "create", "990", tpl, "--rootfs", "labct:1", release=r)
                try:
                    self.assertEqual(res.returncode, 0, res.stderr)
                    conf = run("pct", "config", "990", release=r).stdout
                    if at_least(r, UNPRIV_DEFAULT_FROM):
                        self.assertIn("unprivileged: 1\n", conf)
                    else:
                        self.assertNotIn("unprivileged", conf)
                    self.assertEqual(run("pct", "set", "990", "--description", "100%", release=r).returncode, 0)
                    first = read(os.path.join(os.environ["PROVISION_LAB_STATE"], "pve/lxc/990.conf")).split("\n")[0]
                    self.assertEqual(first, "#100%25" if at_least(r, PERCENT_FROM) else "#100%")
                finally:
                    run("pct", "destroy", "990")

    def test_volumes_on_zfspool_and_lvmthin(self):
        tpl = fake_template(self.tmp, "vols", debian("12.15"))
        for sid, vol in (("local-zfs", "local-zfs:subvol-990-disk-0"), ("local-lvm", "local-lvm:vm-990-disk-0")):
            with self.subTest(storage=sid):
                res = run("pct", "create", "990", tpl, "--rootfs", "%s:2" % sid)
                try:
                    self.assertEqual(res.returncode, 0, res.stderr)
                    self.assertIn("rootfs: %s,size=2G\n" % vol, run("pct", "config", "990").stdout)
                    self.assertIn(vol, run("pvesm", "list", sid).stdout)
                finally:
                    run("pct", "destroy", "990")
                self.assertNotIn(vol, run("pvesm", "list", sid).stdout)


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
            ifs = json.loads(run("pvesh", "get", "/nodes/%s/lxc/%s/interfaces" % (node, vmid),
                                 "--output-format", "json").stdout)
            eth0 = [i for i in ifs if i["name"] == "eth0"][0]
            self.assertEqual(eth0["hwaddr"], eth0["hardware-address"])
            self.assertRegex(run("pct", "config", vmid).stdout, r"hwaddr=%s" % eth0["hwaddr"].upper())
            self.assertIn({"ip-address-type": "inet", "ip-address": addr.split("/")[0],
                           "prefix": int(addr.split("/")[1])}, eth0["ip-addresses"])
            lo = [i for i in ifs if i["name"] == "lo"][0]
            self.assertEqual((lo["inet"], lo["hwaddr"]), ("127.0.0.1/8", "00:00:00:00:00:00"))
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
            # a failed push task exits 0 on PVE (no $upid_exit); the error is on stderr
            r = run("pct", "push", vmid, src, "/no/such/dir/script.sh")
            self.assertEqual((r.returncode, r.stderr),
                             (0, "failed to create file: /no/such/dir/script.sh: No such file or directory\n"))
            r = run("pct", "push", vmid, os.path.join(tmp, "nope"), "/root/x")
            self.assertEqual((r.returncode, r.stderr), (0, "failed to open %s for reading\n" % os.path.join(tmp, "nope")))
            r = run("pct", "push", vmid, src, "/root/x", "--user", "nosuchuser")
            self.assertEqual((r.returncode, r.stderr), (0, "failed to get uid for: nosuchuser\n"))
            # a read-only and a full destination, made inside the CT (its own mount namespace)
            r = run("pct", "exec", vmid, "--", "sh", "-c", "mkdir -p /mnt/ro /mnt/full && "
                    "mount -t tmpfs -o ro,size=1m lab-ro /mnt/ro && mount -t tmpfs -o size=64k lab-full /mnt/full")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run("pct", "push", vmid, src, "/mnt/ro/x")
            self.assertEqual((r.returncode, r.stderr), (0, "failed to create file: /mnt/ro/x: Read-only file system\n"))
            big = os.path.join(tmp, "big")
            with open(big, "wb") as f:
                f.write(b"x" * (1 << 20))
            r = run("pct", "push", vmid, big, "/mnt/full/big")
            # pct does not check File::Copy's result: the file is silently truncated, exit 0
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            self.assertLess(int(run("pct", "exec", vmid, "--", "stat", "-c", "%s", "/mnt/full/big").stdout), 1 << 20)
            r = run("pct", "pull", vmid, "/no/such/file", os.path.join(tmp, "pulled"))
            self.assertEqual((r.returncode, r.stderr), (0, "failed to open /no/such/file: No such file or directory\n"))
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


class Vzdump(unittest.TestCase):
    """vzdump --mode stop of a running CT, then pct create from that archive in vztmpl."""

    def setUp(self):
        need_lab(self)
        self.made = []
        self.files = []

    def tearDown(self):
        for v in self.made:
            run("pct", "destroy", v, "--force", "1", "--purge", "1")
        for f in self.files:
            if os.path.exists(f):
                os.unlink(f)
        labctl("mirror", "open")

    def create(self, tpl, start=True):
        vmid = nextid()
        r = run("pct", "create", vmid, tpl, "--rootfs", "labct:2", "--hostname", "vz%s" % vmid,
                "--net0", "name=eth0,bridge=vmbr0,ip=dhcp", "--start", "1" if start else "0", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.made.append(vmid)
        return vmid

    def ct_read(self, vmid, path):
        r = run("pct", "exec", vmid, "--", "cat", path)
        return r.stdout if r.returncode == 0 else None

    def test_stop_mode_archive_and_create_from_it(self):
        src = self.create(os.environ["PROVISION_LAB_TEMPLATE"])
        r = run("pct", "exec", src, "--", "sh", "-c",
                "echo built > /opt/marker && chown 1000:1000 /opt/marker && echo junk > /tmp/junk")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = tempfile.mkdtemp(prefix="vzdump-test.")
        r = run("vzdump", src, "--mode", "stop", "--compress", "zstd", "--dumpdir", d, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("INFO: backup mode: stop", r.stderr)
        self.assertIn("INFO: stopping virtual guest", r.stderr)
        self.assertIn("INFO: Backup job finished successfully", r.stderr)
        m = re.search(r"INFO: creating vzdump archive '([^']+)'", r.stderr)
        self.assertTrue(m, r.stderr)
        arch = m.group(1)
        self.assertRegex(os.path.basename(arch), r"^vzdump-lxc-%s-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$" % src)
        self.assertEqual(sorted(os.listdir(d)), [os.path.basename(arch)], "no temporary file left")
        self.assertEqual(run("pct", "status", src).stdout.strip(), "status: running", "restarted after the dump")
        listing = run("tar", "--zstd", "-tvf", arch, "--numeric-owner", timeout=120).stdout.splitlines()
        self.assertTrue(listing[0].endswith("./etc/vzdump/pct.conf"), listing[0])
        owners = {l.split()[5]: l.split()[1] for l in listing if len(l.split()) >= 6}
        self.assertEqual(owners.get("./etc/passwd"), "0/0", "ownership is unshifted (as the CT sees it)")
        self.assertEqual(owners.get("./opt/marker"), "1000/1000")
        self.assertNotIn("./tmp/junk", owners, "/tmp/?* is excluded by default")
        # into the template storage, then create from it like from any template
        name = "lab-test-vzdump-%s_amd64.tar.zst" % src
        dst = os.path.join(os.environ["PROVISION_LAB_STATE"], "storage/local/template/cache", name)
        os.rename(arch, dst)
        os.rmdir(d)
        self.files.append(dst)
        new = self.create("local:vztmpl/" + name)
        self.assertEqual(self.ct_read(new, "/opt/marker"), "built\n")
        self.assertIn("hostname: vz%s" % src, self.ct_read(new, "/etc/vzdump/pct.conf") or "",
                      "a template create does not remove etc/vzdump/pct.conf (only a restore does)")
        self.assertNotEqual(self.ct_read(new, "/etc/ssh/ssh_host_ed25519_key.pub"),
                            self.ct_read(src, "/etc/ssh/ssh_host_ed25519_key.pub"), "new SSH host keys at create")
        mid_new, mid_src = self.ct_read(new, "/etc/machine-id"), self.ct_read(src, "/etc/machine-id")
        self.assertTrue(mid_new and mid_new.strip(), "systemd made a machine-id at first boot")
        self.assertNotEqual(mid_new, mid_src)

    def test_refusals_and_job_errors(self):
        r = run("vzdump", "100", "--dumpdir", "/tmp", "--storage", "local")
        self.assertEqual(r.returncode, 255)
        self.assertIn("cannot use options 'storage' and 'dumpdir' at the same time", r.stderr)
        r = run("vzdump", "999999998", "--mode", "stop", "--dumpdir", "/tmp")
        self.assertEqual(r.returncode, 255)
        self.assertIn("ERROR: Backup of VM 999999998 failed - unable to find VM 999999998", r.stderr)
        self.assertIn("INFO: Backup job finished with errors", r.stderr)
        r = run("vzdump", "100", "--storage", "labct")
        self.assertEqual(r.returncode, 255)
        self.assertIn("storage 'labct' does not support backups", r.stderr)

    def test_mirror_closed_and_open(self):
        vmid = self.create(os.environ["PROVISION_LAB_TEMPLATE"])
        probe = "apt-get -o Acquire::Retries=0 -o Acquire::http::Timeout=20 update 2>&1; echo rc=$?"
        labctl("mirror", "closed", os.environ.get("PROVISION_LAB_SUBNET", "10.199.77.0/24"))
        r = run("pct", "exec", vmid, "--", "sh", "-c", probe, timeout=120)
        self.assertTrue(re.search(r"Could not connect|unreachable|Failed to fetch", r.stdout), r.stdout)
        labctl("mirror", "open")
        r = run("pct", "exec", vmid, "--", "sh", "-c", probe, timeout=180)
        self.assertNotRegex(r.stdout, r"Could not connect|unreachable", r.stdout)


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


class Cluster(unittest.TestCase):
    """The lab cluster (`labctl up --nodes 3`, beside the single-node lab): members answer as their
    own nodes through their own sshd; VMIDs are unique cluster-wide; pct refuses another node's
    guest as PVE does; pvesh proxies /nodes/OTHER; node-down/node-up; migrate."""

    @classmethod
    def setUpClass(cls):
        if not LAB_UP:
            return
        r = subprocess.run([os.path.join(LAB, "labctl"), "up", "--nodes", "3"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        assert r.returncode == 0, "labctl up --nodes 3: %s" % r.stderr
        cls.env = {}
        for name in ("pve1", "pve2", "pve3"):
            out = labctl("env", "--node", name).stdout
            env = dict(os.environ)
            for line in out.splitlines():
                k, v = line[len("export "):].split("=", 1)
                env[k] = shlex.split(v)[0].replace("$PATH", os.environ["PATH"]) if k == "PATH" else shlex.split(v)[0]
            cls.env[name] = env
        cls.root = cls.env["pve1"]["PROVISION_PVE_ROOT"]
        cls.tmp = tempfile.mkdtemp(prefix="lab-test-")
        os.chmod(cls.tmp, 0o755)
        cls.tpl = fake_template(cls.tmp, "cluster-debian-12.2", debian("12.2"))

    def setUp(self):
        need_lab(self)

    def on(self, node, *argv, timeout=120):
        return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=self.env[node])

    def ssh(self, ip, alias, *argv):
        """As PVE's node-to-node SSH: root's key, host key checked against the cluster's file."""
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=" + alias,
               "-o", "UserKnownHostsFile=" + os.path.join(self.root, "etc/pve/priv/known_hosts"),
               "-o", "GlobalKnownHostsFile=none", "-i", os.path.join(self.root, "root/.ssh/id_ed25519"),
               "root@" + ip, "--"] + list(argv)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)

    def create(self, node, vmid=None):
        vmid = vmid or str(int(json.loads(self.on(node, "pvesh", "get", "/cluster/nextid",
                                                   "--output-format", "json").stdout)))
        r = self.on(node, "pct", "create", vmid, self.tpl, "--rootfs", "labct:1", "--hostname", "cl%s" % vmid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.destroy, vmid)
        return vmid

    def destroy(self, vmid):
        for n in ("pve1", "pve2", "pve3"):
            self.on(n, "pct", "destroy", vmid, "--force", "1")

    def status(self, node):
        r = self.on(node, "pvesh", "get", "/cluster/status", "--output-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_cluster_status_names_members_addresses_and_quorum(self):
        st = self.status("pve2")
        cl = [e for e in st if e["type"] == "cluster"]
        self.assertEqual((cl[0]["nodes"], cl[0]["quorate"]), (3, 1))
        nodes = {e["name"]: e for e in st if e["type"] == "node"}
        self.assertEqual(sorted(nodes), ["pve1", "pve2", "pve3"])
        self.assertEqual([nodes[n]["local"] for n in ("pve1", "pve2", "pve3")], [0, 1, 0])
        self.assertEqual(nodes["pve3"]["ip"], "127.0.10.3")
        self.assertTrue(all(e["online"] == 1 for e in nodes.values()))

    def test_each_member_answers_through_its_own_sshd_with_the_cluster_trust(self):
        for i, n in enumerate(("pve1", "pve2", "pve3"), 1):
            r = self.ssh("127.0.10.%d" % i, n, "pvesh", "get", "/cluster/status", "--output-format", "json")
            self.assertEqual(r.returncode, 0, r.stderr)
            local = [e["name"] for e in json.loads(r.stdout) if e.get("local") == 1]
            self.assertEqual(local, [n])
        # the host key of pve2 is not pve1's: a wrong alias fails the strict check
        r = self.ssh("127.0.10.2", "pve1", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("host key", r.stderr.lower())

    def test_a_vmid_exists_once_in_the_cluster(self):
        vmid = self.create("pve1")
        r = self.on("pve2", "pct", "create", vmid, self.tpl, "--rootfs", "labct:1")
        self.assertEqual(r.returncode, 255)
        self.assertIn("CT %s already exists on node 'pve1'" % vmid, r.stderr)
        nxt = self.on("pve3", "pvesh", "get", "/cluster/nextid", "--output-format", "json").stdout
        self.assertNotEqual(str(int(json.loads(nxt))), vmid)
        r = self.on("pve3", "pvesh", "get", "/cluster/nextid", "--vmid", vmid)
        self.assertEqual(r.returncode, 255)
        self.assertIn("vmid: VM %s already exists" % vmid, r.stderr)

    def test_concurrent_creates_of_one_vmid_on_two_members_one_wins(self):
        vmid = str(int(json.loads(self.on("pve1", "pvesh", "get", "/cluster/nextid", "--output-format", "json").stdout)))
        self.addCleanup(self.destroy, vmid)
        procs = [subprocess.Popen(["pct", "create", vmid, self.tpl, "--rootfs", "labct:1"], env=self.env[n],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in ("pve1", "pve2")]
        res = [(p.returncode, p.communicate(timeout=120)[1]) for p in procs]
        res = [(p.returncode, e) for p, (_, e) in zip(procs, res)]
        self.assertEqual(sorted(c for c, _ in res), [0, 255], res)
        self.assertIn("already exists on node", [e for c, e in res if c == 255][0])
        confs = [n for n in ("pve1", "pve2", "pve3")
                 if os.path.exists(os.path.join(self.root, "etc/pve/nodes", n, "lxc", vmid + ".conf"))]
        self.assertEqual(len(confs), 1, confs)

    def test_pct_refuses_another_nodes_guest_as_pve_does(self):
        vmid = self.create("pve1")
        for cmd in (["config", vmid], ["start", vmid], ["destroy", vmid]):
            r = self.on("pve2", "pct", *cmd)
            self.assertEqual(r.returncode, 255, cmd)
            self.assertIn("Configuration file 'nodes/pve2/lxc/%s.conf' does not exist" % vmid, r.stderr)
        self.assertNotIn("\n%s " % vmid, self.on("pve2", "pct", "list").stdout)
        self.assertEqual(self.on("pve1", "pct", "config", vmid).returncode, 0)

    def test_pvesh_proxies_other_nodes_and_lists_the_whole_cluster(self):
        vmid = self.create("pve1")
        r = self.on("pve3", "pvesh", "get", "/nodes/pve1/lxc/%s/config" % vmid, "--output-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["hostname"], "cl" + vmid)
        log = os.path.join(self.root, "..", "members", "pve1", "invocations.jsonl")
        self.assertIn("--noproxy", read(log).splitlines()[-1], "the proxied call ran on pve1")
        res = json.loads(self.on("pve2", "pvesh", "get", "/cluster/resources", "--output-format", "json").stdout)
        vm = [e for e in res if e.get("vmid") == int(vmid)]
        self.assertEqual([(e["node"], e["name"]) for e in vm], [("pve1", "cl" + vmid)])
        st = {(e["node"], e["storage"]): e for e in res if e["type"] == "storage"}
        for n in ("pve1", "pve2", "pve3"):
            self.assertEqual(st[(n, "labshared")]["shared"], 1)
            self.assertEqual(st[(n, "labct")]["shared"], 0)
        self.assertEqual(sorted(e["node"] for e in res if e["type"] == "node"), ["pve1", "pve2", "pve3"])

    def test_node_down_and_up(self):
        vmid = self.create("pve3")
        self.addCleanup(labctl, "node-up", "pve3")
        labctl("node-down", "pve3")
        nodes = {e["name"]: e for e in self.status("pve1") if e["type"] == "node"}
        self.assertEqual(nodes["pve3"]["online"], 0)
        self.assertEqual([e["quorate"] for e in self.status("pve1") if e["type"] == "cluster"], [1])
        r = self.on("pve1", "pvesh", "get", "/nodes/pve3/lxc", "--output-format", "json")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("proxy handler failed", r.stderr)
        self.assertNotEqual(self.ssh("127.0.10.3", "pve3", "true").returncode, 0)
        res = json.loads(self.on("pve1", "pvesh", "get", "/cluster/resources", "--output-format", "json").stdout)
        self.assertEqual([e["status"] for e in res if e.get("vmid") == int(vmid)], ["unknown"])
        self.assertEqual([e["status"] for e in res if e.get("type") == "node" and e["node"] == "pve3"], ["offline"])
        labctl("node-up", "pve3")
        r = self.on("pve1", "pvesh", "get", "/nodes/pve3/lxc", "--output-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([e["vmid"] for e in json.loads(r.stdout)], [int(vmid)])

    def test_migrate_moves_config_and_volume(self):
        vmid = self.create("pve1")
        labctl("migrate", vmid, "pve2")
        self.assertEqual(self.on("pve1", "pct", "config", vmid).returncode, 255)
        r = self.on("pve2", "pct", "config", vmid)
        self.assertEqual(r.returncode, 0, r.stderr)
        vol = re.search(r"rootfs: (labct:[^,]+)", r.stdout).group(1)
        p = self.on("pve2", "pvesm", "path", vol)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isdir(p.stdout.strip()), p.stdout)


if __name__ == "__main__":
    import sys
    res = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    # a test with failing subtests appears once per subtest in res.failures: count tests
    failed_ids = {t.id().split(" ")[0] for t, _ in res.failures + res.errors}
    failed = len(failed_ids) + len(res.unexpectedSuccesses)
    skipped = len({t.id() for t, _ in res.skipped})
    # the plain closing line CI reads
    print("lab: %d passed, %d failed, %d skipped" % (res.testsRun - failed - skipped, failed, skipped))
    sys.exit(0 if res.wasSuccessful() else 1)
