# SPDX-License-Identifier: Apache-2.0
"""Rolling crihook over a node: good, failing and hanging releases, the kubelet
switch on three kinds of node, and the uninstall (issue 12).

The DaemonSet's own install.sh (read from the manifest's ConfigMap) runs as
the pod would, with the pod's environment (the crihookd-config ConfigMap's
keys, socket paths pointing into a temp dir), on a fake host root: the
directory the pod sees as /host (CRIHOOK_HOST_ROOT). The bundle is the
image's /opt/crihook, taken from the archive the build makes (`ninja image`).
The runtime is a real containerd.

No systemd runs on these machines: tests/e2e/stub_systemd/systemctl stands
in for it (see its docstring: units, drop-ins and environment files are read
with systemd's precedence, ExecStart runs as a real process, enable makes
the .wants link). crihookd therefore really serves as the "host service",
and kubelet / k3s are small stand-in processes whose command line is what
systemd would have built from their unit files -- which is what the switch
script checks through /proc/<MainPID>/cmdline, as on a node.

"Nothing touched kubelet" is checked from the stand-in's record of systemctl
calls; "kubelet keeps running" needs no test beyond that and the drop-in's
dependencies (tests/e2e/test_deploy.py: Wants=/After= only), since with
systemd only a Requires=/BindsTo= dependency stops kubelet with crihookd.
"""

import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import unittest

import harness
import test_image

STUB_DIR = os.path.join(harness.ROOT, "tests", "e2e", "stub_systemd")
VERSION = test_image.project_version()


def install_script():
    docs = test_image.manifest_docs()
    cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] ==
          "crihookd-install"][0]
    return cm["data"]["install.sh"]


def config_map():
    docs = test_image.manifest_docs()
    return [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] ==
            "crihookd-config"][0]["data"]


def extract_bundle(dest):
    """/opt/crihook of the image the build made, into dest."""
    test_image.build_image()
    layout = test_image.Layout(test_image.ARCHIVE)
    try:
        for m in layout.rootfs.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            if not name.startswith("opt/crihook/") or m.isdir():
                continue
            path = os.path.join(dest, name[len("opt/crihook/"):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, path)
            else:
                with open(path, "wb") as f:
                    f.write(layout.rootfs.extractfile(m).read())
                os.chmod(path, m.mode & 0o777)
    finally:
        layout.close()


def tree(root):
    """{relative path: what it is} for everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISSOCK(st.st_mode):
                out[rel] = "socket"
            else:
                with open(p, "rb") as f:
                    out[rel] = "%o %s" % (stat.S_IMODE(st.st_mode),
                                          hashlib.sha256(f.read()).hexdigest()[:16])
    return out


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def read(path):
    with open(path) as f:
        return f.read()


# A process standing in for kubelet or k3s: it only stays up, so that its
# /proc/<pid>/cmdline shows the arguments systemd (the stub) started it with.
STAND_IN = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile :; do sleep 1; done\n"


class Rollout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = harness.tmpdir("crihook-roll-")
        cls.pods, cls.private, cls.containerd = [], None, None
        cls.stub_state = os.path.join(cls.dir, "stub")
        try:
            cls.set_up_node()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def set_up_node(cls):
        cls.root = os.path.join(cls.dir, "root")
        cls.bundle = os.path.join(cls.dir, "bundle")
        cls.run_dir = os.path.join(cls.dir, "r")
        cls.stub_state = os.path.join(cls.dir, "stub")
        cls.systemd_run = os.path.join(cls.dir, "systemd-run")
        for d in (cls.stub_state, os.path.join(cls.systemd_run, "system"), cls.run_dir,
                  os.path.join(cls.root, "etc/systemd/system/multi-user.target.wants"),
                  # What every node has (and keeps after an uninstall).
                  os.path.join(cls.root, "opt"), os.path.join(cls.root, "usr/local/bin"),
                  os.path.join(cls.root, "usr/bin"), os.path.join(cls.root, "etc/default"),
                  os.path.join(cls.root, "lib/systemd/system"),
                  os.path.join(cls.root, "var/lib")):
            os.makedirs(d)
        # /run/systemd/private: a listening socket, as systemd's is.
        cls.private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.private.bind(os.path.join(cls.systemd_run, "private"))
        cls.private.listen(1)
        cls.script = os.path.join(cls.dir, "install.sh")
        write(cls.script, install_script(), 0o755)
        extract_bundle(cls.bundle)
        cls.containerd = harness.Containerd.shared()
        cls.listen = os.path.join(cls.run_dir, "crihook.sock")
        cls.admin = os.path.join(cls.run_dir, "admin.sock")
        cls.before = tree(cls.root)

    @classmethod
    def tearDownClass(cls):
        for p in cls.pods:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        if os.path.isdir(cls.stub_state):
            for unit in ("crihookd.service", "kubelet.service", "k3s.service"):
                cls.systemctl("stop", unit)
        if cls.private:
            cls.private.close()
        if cls.containerd:
            cls.containerd.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- helpers ----

    @classmethod
    def env(cls, state, **extra):
        env = dict(os.environ)
        env.update(config_map())  # the pod's envFrom
        env.update({
            "CRIHOOK_LISTEN": "unix://" + cls.listen,
            "CRIHOOK_ADMIN_SOCKET": "unix://" + cls.admin,
            "CRIHOOK_BACKEND": "unix://" + cls.containerd.sock,
            "CRIHOOK_HOOK_DIR": os.path.join(cls.dir, "hooks"),
            "CRIHOOK_HOST_ROOT": cls.root, "CRIHOOK_POD_STATE": state,
            "CRIHOOK_SYSTEMD_RUN": cls.systemd_run, "STUB_SYSTEMD_STATE": cls.stub_state,
            "CRIHOOK_TRIAL_TIMEOUT": "8", "CRIHOOK_READY_TIMEOUT": "15",
            "PATH": STUB_DIR + ":" + os.environ["PATH"],
        })
        env.update(extra)
        return env

    @classmethod
    def systemctl(cls, *args):
        return subprocess.run([os.path.join(STUB_DIR, "systemctl")] + list(args),
                              env=cls.env(cls.dir), stdout=subprocess.PIPE, text=True).stdout

    @classmethod
    def pid(cls, unit):
        return int(cls.systemctl("show", "-p", "MainPID", "--value", unit))

    def calls(self):
        try:
            return read(os.path.join(self.stub_state, "calls")).splitlines()
        except FileNotFoundError:
            return []

    def make_bundle(self, name, crihookd_script=None):
        """A copy of the image's bundle, its crihookd replaced by a script."""
        d = os.path.join(self.dir, name)
        shutil.copytree(self.bundle, d, symlinks=True)
        if crihookd_script:
            os.rename(os.path.join(d, "sbin", "crihookd"), os.path.join(d, "sbin", "crihookd.real"))
            write(os.path.join(d, "sbin", "crihookd"), crihookd_script, 0o755)
        return d

    def pod(self, bundle, name, **extra):
        """install.sh as the DaemonSet's container runs it; returns (process, state, log)."""
        state = os.path.join(self.dir, "pod-" + name)
        log_path = os.path.join(self.dir, name + ".log")
        log = open(log_path, "w")
        p = subprocess.Popen(["sh", self.script], env=self.env(state, CRIHOOK_BUNDLE=bundle,
                                                               **extra),
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.pods.append(p)
        return p, state, log_path

    def ready(self, bundle, state):
        """The DaemonSet's readiness probe for that pod."""
        return subprocess.run(["sh", self.script, "ready"], env=self.env(state, CRIHOOK_BUNDLE=bundle),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT).returncode == 0

    def wait_log(self, proc, log_path, needle, timeout=60):
        def seen():
            return needle in read(log_path) or proc.poll() is not None
        harness.wait_for(seen, timeout, 0.2, "%r in install.sh's log" % needle)
        return read(log_path)

    def serving(self):
        return harness.ctl(self.listen, "version", check=False).returncode == 0

    def host_release(self):
        return read(os.path.join(self.root, "opt/crihook/.release")).strip()

    def assert_good_release_untouched(self, pid, release, units):
        self.assertEqual(self.pid("crihookd.service"), pid, "the running crihookd was replaced")
        self.assertTrue(self.serving(), "the previous crihookd does not serve")
        self.assertEqual(self.host_release(), release)
        self.assertEqual(tree(os.path.join(self.root, "etc/systemd/system")), units)
        self.assertFalse([c for c in self.calls() if "kubelet" in c], self.calls())

    def install_good(self):
        p, state, log = self.pod(self.bundle, "good")
        text = self.wait_log(p, log, "is ready at")
        self.assertIsNone(p.poll(), text)
        return p, state, text

    def assert_same_tree(self, before):
        now = tree(self.root)
        diff = {k: (before.get(k), now.get(k)) for k in set(before) | set(now)
                if before.get(k) != now.get(k)}
        self.assertEqual(diff, {})

    # ---- 1: a good release installs; 2-4: bad ones do not take over ----

    def test_1_install(self):
        p, state, text = self.install_good()
        self.assertIn("trial passed", text)
        self.assertTrue(self.serving())
        self.assertTrue(self.ready(self.bundle, state), text)
        self.assertIn("restart --no-block crihookd.service", self.calls())
        units = os.path.join(self.root, "etc/systemd/system")
        self.assertTrue(os.path.islink(os.path.join(units, "multi-user.target.wants",
                                                    "crihookd.service")))
        conf = read(os.path.join(units, "crihookd.service.d", "30-crihook-config.conf"))
        self.assertIn('Environment="CRIHOOK_LISTEN=unix://%s"' % self.listen, conf)
        self.assertIn('Environment="CRIHOOK_LOG_LEVEL=info"', conf)
        # The node's crihookctl: a wrapper finding the bundle's libraries.
        wrapper = read(os.path.join(self.root, "usr/local/bin/crihookctl"))
        self.assertIn("LD_LIBRARY_PATH=/opt/crihook/lib exec /opt/crihook/bin/crihookctl", wrapper)
        for script in ("crihook-switch-kubelet", "crihook-uninstall"):
            self.assertTrue(os.access(os.path.join(self.root, "opt/crihook/sbin", script), os.X_OK))
        # A second pod of the same release (a pod restart): no restart of crihookd.
        pid = self.pid("crihookd.service")
        p.terminate()
        p2, state2, log2 = self.pod(self.bundle, "good-again")
        self.wait_log(p2, log2, "is ready at")
        self.assertEqual(self.pid("crihookd.service"), pid)
        self.assertTrue(self.ready(self.bundle, state2))

    def bad_release(self, name, script):
        pid, release = self.pid("crihookd.service"), self.host_release()
        units = tree(os.path.join(self.root, "etc/systemd/system"))
        bundle = self.make_bundle(name, script)
        p, state, log = self.pod(bundle, name)
        p.wait(60)
        text = read(log)
        self.assertEqual(p.returncode, 1, text)
        self.assertIn("the trial crihookd did not answer Version", text)
        self.assertIn("the host is", text)
        self.assertFalse(self.ready(bundle, state), "the pod of a bad release turned Ready")
        self.assert_good_release_untouched(pid, release, units)
        self.assertFalse(os.path.exists(os.path.join(self.root, "opt/crihook.new")))
        return text

    def test_2_release_that_exits_1(self):
        text = self.bad_release("exits", "#!/bin/sh\necho 'bad release: cannot start' >&2\nexit 1\n")
        self.assertIn("bad release: cannot start", text)

    def test_3_release_that_hangs(self):
        self.bad_release("hangs", "#!/bin/sh\nexec sleep 1000\n")

    def test_4_release_failing_only_on_the_host_is_rolled_back(self):
        # Passes the trial (answers on the trial's socket), but exits 1 as the
        # host service: the switch happens, the service never becomes ready,
        # install.sh puts the previous bundle back by itself.
        script = ('#!/bin/sh\ncase "$*" in *"/t.sock"*) exec "$0.real" "$@" ;; esac\n'
                  "echo 'bad release: fails on this host' >&2\nexit 1\n")
        pid, release = self.pid("crihookd.service"), self.host_release()
        units = tree(os.path.join(self.root, "etc/systemd/system"))
        bundle = self.make_bundle("hostfail", script)
        p, state, log = self.pod(bundle, "hostfail")
        text = self.wait_log(p, log, "this pod stays not Ready", 120)
        self.assertIsNone(p.poll(), text)  # no crash loop: it stays, not Ready
        self.assertIn("trial passed", text)
        self.assertIn("rolling back to the previous release (%s)" % release, text)
        self.assertIn("rolled back", text)
        self.assertFalse(self.ready(bundle, state))
        self.assertNotEqual(self.pid("crihookd.service"), pid)  # restarted twice
        self.assertTrue(self.serving())
        self.assertEqual(self.host_release(), release)
        self.assertEqual(tree(os.path.join(self.root, "etc/systemd/system")), units)
        failed = read(os.path.join(self.root, "opt/crihook.failed")).strip()
        self.assertNotEqual(failed, release)
        self.assertFalse([c for c in self.calls() if "kubelet" in c], self.calls())
        p.terminate()
        # The same release again (the pod restarted): not tried a second time.
        pid = self.pid("crihookd.service")
        p2, _, log2 = self.pod(bundle, "hostfail-again")
        text = self.wait_log(p2, log2, "not trying it")
        self.assertIn("failed on this node before", text)
        self.assertEqual(self.pid("crihookd.service"), pid)

    def test_5_no_systemd(self):
        empty = os.path.join(self.dir, "no-systemd")
        os.makedirs(empty)
        before = tree(self.root)
        p, state, log = self.pod(self.bundle, "nosystemd", CRIHOOK_SYSTEMD_RUN=empty)
        text = self.wait_log(p, log, "NOT installed here")
        self.assertIn("crihook.io/no-systemd=true", text)
        self.assertIsNone(p.poll(), "install.sh must stay (not Ready), not crash-loop")
        self.assertFalse(self.ready(self.bundle, state))
        self.assert_same_tree(before)

    # ---- 6: the kubelet switch on three kinds of node ----

    def switch(self, *args):
        out = subprocess.run([os.path.join(self.root, "opt/crihook/sbin/crihook-switch-kubelet")]
                             + list(args), env=self.env(self.dir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        return out.returncode, out.stdout

    def endpoint_of(self, unit):
        """What the running stand-in got on its command line (as kubelet would)."""
        with open("/proc/%d/cmdline" % self.pid(unit), "rb") as f:
            args = f.read().decode().split("\0")
        flags = [a.split("=", 1)[1] for a in args if a.startswith("--container-runtime-endpoint=")]
        return flags[-1] if flags else None

    def kubelet_node(self, env_file=None, config=None):
        """kubeadm's kubelet unit and drop-in (as the deb/rpm packages ship them)."""
        r = self.root
        write(os.path.join(r, "usr/bin/kubelet"), STAND_IN, 0o755)
        write(os.path.join(r, "lib/systemd/system/kubelet.service"),
              "[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n")
        dropin = ("[Service]\n"
                  'Environment="KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf"\n'
                  'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
                  "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
                  "EnvironmentFile=-/etc/default/kubelet\n"
                  "ExecStart=\n"
                  "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
                  "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n")
        write(os.path.join(r, "lib/systemd/system/kubelet.service.d/10-kubeadm.conf"), dropin)
        if env_file is not None:
            write(os.path.join(r, "etc/default/kubelet"), env_file)
        write(os.path.join(r, "var/lib/kubelet/config.yaml"),
              "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
              + (config or ""))
        self.systemctl("daemon-reload")
        self.systemctl("restart", "kubelet.service")

    def remove_kubelet_node(self):
        self.systemctl("stop", "kubelet.service")
        for p in ("usr/bin/kubelet", "lib/systemd/system/kubelet.service",
                  "lib/systemd/system/kubelet.service.d", "etc/default/kubelet",
                  "var/lib/kubelet"):
            p = os.path.join(self.root, p)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)

    def check_switch_round_trip(self, unit, files):
        """on -> the process uses crihookd; off -> every file as it was."""
        originals = {f: read(os.path.join(self.root, f)) if os.path.exists(
            os.path.join(self.root, f)) else None for f in files}
        before = tree(self.root)
        rc, out = self.switch("on")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.endpoint_of(unit), "unix://" + self.listen, out)
        self.assertIn("uses crihookd", out)
        rc, out = self.switch("status")
        self.assertEqual(rc, 0, out)
        rc, out = self.switch("off")
        self.assertEqual(rc, 0, out)
        self.assertNotEqual(self.endpoint_of(unit), "unix://" + self.listen)
        for f, text in originals.items():
            now = os.path.join(self.root, f)
            self.assertEqual(read(now) if os.path.exists(now) else None, text, f)
        self.assert_same_tree(before)
        self.assertNotEqual(self.switch("status")[0], 0)

    def test_6a_switch_packaged_kubelet_with_extra_args_file(self):
        # The deb package's /etc/default/kubelet: an empty KUBELET_EXTRA_ARGS
        # that would override the drop-in's Environment=.
        self.kubelet_node(env_file="# packaged\nKUBELET_EXTRA_ARGS=\n")
        try:
            self.assertIsNone(self.endpoint_of("kubelet.service"))
            # The drop-in alone (the former manual step) does nothing here:
            # the env file's empty assignment wins over its Environment=.
            dropin = os.path.join(self.root, "etc/systemd/system/kubelet.service.d/10-crihook.conf")
            shutil.copy(os.path.join(self.root, "opt/crihook/lib/systemd/system/kubelet.service.d",
                                     "10-crihook.conf"), write(dropin, "") or dropin)
            self.systemctl("restart", "kubelet.service")
            self.assertIsNone(self.endpoint_of("kubelet.service"))
            shutil.rmtree(os.path.dirname(dropin))
            self.systemctl("restart", "kubelet.service")
            self.check_switch_round_trip("kubelet.service", ["etc/default/kubelet"])
        finally:
            self.remove_kubelet_node()

    def test_6b_switch_kubelet_with_extra_args_and_an_endpoint(self):
        self.kubelet_node(env_file='KUBELET_EXTRA_ARGS="--v=2 --container-runtime-endpoint='
                                   'unix:///run/containerd/containerd.sock"\n')
        try:
            self.assertEqual(self.endpoint_of("kubelet.service"),
                             "unix:///run/containerd/containerd.sock")
            self.check_switch_round_trip("kubelet.service", ["etc/default/kubelet"])
        finally:
            self.remove_kubelet_node()

    def test_6c_switch_kubelet_with_kubelet_configuration(self):
        self.kubelet_node(config="containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n")
        try:
            rc, out = self.switch("status")
            self.assertNotEqual(rc, 0)
            self.assertIn("containerRuntimeEndpoint in /var/lib/kubelet/config.yaml", out)
            self.check_switch_round_trip("kubelet.service", [])
        finally:
            self.remove_kubelet_node()

    def k3s_node(self, config, flags=""):
        write(os.path.join(self.root, "usr/local/bin/k3s"), STAND_IN, 0o755)
        write(os.path.join(self.root, "etc/systemd/system/k3s.service"),
              "[Service]\nExecStart=/usr/local/bin/k3s server%s\n" % flags)
        if config is not None:
            write(os.path.join(self.root, "etc/rancher/k3s/config.yaml"), config)
        self.systemctl("restart", "k3s.service")

    def remove_k3s_node(self):
        self.systemctl("stop", "k3s.service")
        for p in ("usr/local/bin/k3s", "etc/systemd/system/k3s.service", "etc/rancher"):
            p = os.path.join(self.root, p)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)

    def test_6d_switch_k3s(self):
        self.k3s_node('write-kubeconfig-mode: "0644"\n')
        try:
            self.assertIn("k3s's embedded containerd", self.switch("status")[1])
            rc, out = self.switch("on")
            self.assertEqual(rc, 0, out)
            self.assertIn("container-runtime-endpoint: unix://" + self.listen,
                          read(os.path.join(self.root, "etc/rancher/k3s/config.yaml")))
            self.assertIn("unix://%s (/etc/rancher/k3s/config.yaml" % self.listen,
                          self.switch("status")[1])
            self.assertIn("restart k3s.service", self.calls())
            rc, out = self.switch("off")
            self.assertEqual(rc, 0, out)
            self.assertEqual(read(os.path.join(self.root, "etc/rancher/k3s/config.yaml")),
                             'write-kubeconfig-mode: "0644"\n')
        finally:
            self.remove_k3s_node()

    def test_6e_switch_k3s_without_config_file_and_with_flag(self):
        before = tree(self.root)
        self.k3s_node(None)
        try:
            rc, out = self.switch("on")
            self.assertEqual(rc, 0, out)
            rc, out = self.switch("off")
            self.assertEqual(rc, 0, out)
            self.assertFalse(os.path.exists(os.path.join(self.root, "etc/rancher")))
        finally:
            self.remove_k3s_node()
        self.assert_same_tree(before)
        # k3s's unit passes the flag itself: the config file would not win.
        self.k3s_node(None, " --container-runtime-endpoint unix:///run/other.sock")
        try:
            rc, out = self.switch("on")
            self.assertEqual(rc, 1, out)
            self.assertIn("passes --container-runtime-endpoint itself", out)
        finally:
            self.remove_k3s_node()

    def test_6f_switch_without_kubelet_or_k3s(self):
        rc, out = self.switch("on")
        self.assertEqual(rc, 1, out)
        self.assertIn("neither kubelet.service nor k3s.service", out)

    # ---- 7: settings come from the ConfigMap (the pod's environment) ----

    def host_env(self):
        with open("/proc/%d/environ" % self.pid("crihookd.service"), "rb") as f:
            return dict(e.split("=", 1) for e in f.read().decode().split("\0") if "=" in e)

    def test_7_settings_from_the_config_map(self):
        p, state, log = self.pod(self.bundle, "debug", CRIHOOK_LOG_LEVEL="debug")
        text = self.wait_log(p, log, "is ready at")
        self.assertIn("switching the host's crihookd", text)  # a new release: new settings
        self.assertTrue(self.ready(self.bundle, state))
        self.assertEqual(self.host_env()["CRIHOOK_LOG_LEVEL"], "debug")
        self.assertEqual(self.host_env()["CRIHOOK_LISTEN"], "unix://" + self.listen)
        # /etc/default/crihookd on the node still wins (EnvironmentFile=).
        default = os.path.join(self.root, "etc/default/crihookd")
        write(default, "CRIHOOK_LOG_LEVEL=warn\n")
        try:
            self.systemctl("restart", "crihookd.service")
            self.assertEqual(self.host_env()["CRIHOOK_LOG_LEVEL"], "warn")
            self.wait_ready(state)
        finally:
            os.unlink(default)
            self.systemctl("restart", "crihookd.service")
        self.wait_ready(state)
        # The probe follows the host service: down -> not Ready.
        self.systemctl("stop", "crihookd.service")
        self.assertFalse(self.ready(self.bundle, state))
        self.systemctl("start", "crihookd.service")
        self.wait_ready(state)

    def wait_ready(self, state):
        try:
            harness.wait_for(lambda: self.ready(self.bundle, state), 30, 0.2, "ready again")
        except AssertionError as e:
            log = read(os.path.join(self.stub_state, "crihookd.service.log"))[-3000:]
            raise AssertionError("%s; crihookd's output:\n%s" % (e, log))

    # ---- 8, 9: uninstall leaves nothing behind ----

    def test_8_uninstall_while_kubelet_runs(self):
        self.kubelet_node(env_file="KUBELET_EXTRA_ARGS=\n")
        self.assertEqual(self.switch("on")[0], 0)
        self.assertTrue(self.pid("crihookd.service"))
        n_calls = len(self.calls())
        out = subprocess.run([os.path.join(self.root, "opt/crihook/sbin/crihook-uninstall")],
                             env=self.env(self.dir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        uninstall_calls = self.calls()[n_calls:]
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("is switched to crihookd: switching it back first", out.stdout)
        self.assertIn("disable --now crihookd.service", uninstall_calls)
        self.assertEqual(uninstall_calls[-1], "daemon-reload")
        # kubelet back on its runtime, crihookd stopped, its sockets gone.
        self.assertIsNone(self.endpoint_of("kubelet.service"))
        self.assertEqual(self.pid("crihookd.service"), 0)
        self.assertFalse(os.path.exists(self.listen))
        self.assertEqual(read(os.path.join(self.root, "etc/default/kubelet")),
                         "KUBELET_EXTRA_ARGS=\n")
        self.remove_kubelet_node()
        self.assert_same_tree(self.before)

    def test_9_uninstall_while_kubelet_is_stopped(self):
        # Installed again (test_8 removed it all), switched, kubelet stopped:
        # still switched back, and left stopped.
        self.install_good()
        self.kubelet_node(env_file="KUBELET_EXTRA_ARGS=\n")
        self.assertEqual(self.switch("on")[0], 0)
        self.systemctl("stop", "kubelet.service")
        out = subprocess.run([os.path.join(self.root, "opt/crihook/sbin/crihook-uninstall")],
                             env=self.env(self.dir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("is switched to crihookd: switching it back first", out.stdout)
        self.assertEqual(self.pid("kubelet.service"), 0)
        self.assertFalse(os.path.exists(os.path.join(self.root,
                                                     "etc/systemd/system/kubelet.service.d")))
        self.assertEqual(read(os.path.join(self.root, "etc/default/kubelet")),
                         "KUBELET_EXTRA_ARGS=\n")
        self.assertEqual(self.pid("crihookd.service"), 0)
        self.remove_kubelet_node()
        self.assert_same_tree(self.before)


if __name__ == "__main__":
    harness.main()
