"""End to end: the example plugins crihook-qos-cgroup and crihook-cpuset-pin.

Both binaries run from the build directory, each on its own socket,
registered in crihookd's hook directory as hookserver.d.example registers
them; crihookd sits in front of the harness's containerd. Effects are
checked from the runtime's side: the pod's runtime spec (cgroupsPath), the
cgroup directories on the host, /proc/self/cgroup and cpuset.cpus inside the
container; refusals through crihookctl's error message.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import unittest
import uuid

import grpc

import harness
from harness import V1, pb_bytes, pb_varint, register

QOS = os.path.join(harness.BUILD, "plugins", "examples", "qos-cgroup", "crihook-qos-cgroup")
PIN = os.path.join(harness.BUILD, "plugins", "examples", "cpuset-pin", "crihook-cpuset-pin")
EXAMPLES = os.path.join(harness.ROOT, "hookserver.d.example")
CLASS = "crihook.io/qos-class"
CPUSET = "crihook.io/cpuset"
CGROUP_ROOT = "/sys/fs/cgroup"


def online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        return f.read().strip()


class Plugin:
    """An example plugin binary on its own socket, its output in a log file."""

    def __init__(self, binary, name, args, directory):
        self.name = name
        self.sock = os.path.join(directory, name + ".sock")
        self.log_path = os.path.join(directory, name + ".log")
        with open(self.log_path, "w") as log:
            env = dict(os.environ, CRIHOOK_PLUGIN_LOG="debug")
            self.proc = subprocess.Popen([binary, "--socket", self.sock] + list(args),
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        harness.wait_for(self.listening, 20, what=name + " to listen")

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited early (%d):\n%s" % (self.name, self.proc.returncode,
                                                                self.read_log()))
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM and wait; returns the exit code (sanitizers make leaks non-zero)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(self.name + " did not exit on SIGTERM:\n" + self.read_log())
        return self.proc.returncode


def run_binary(binary, *args):
    return subprocess.run([binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)


class ExampleCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = harness.Containerd.shared()
        cls.proxy = harness.Crihookd(cls.containerd.sock, "--log-level", "debug")
        cls.work = harness.tmpdir("crihook-ex-")

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.containerd.stop()
        remove_empty_cgroups("crihook")
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def setUp(self):
        self.pods, self.plugins = [], []
        self.clear_hook_dir()

    def tearDown(self):
        for pod_id in self.pods:
            harness.ctl(self.containerd.sock, "stopp", pod_id, check=False)
            harness.ctl(self.containerd.sock, "rmp", pod_id, check=False)
        self.clear_hook_dir()
        for p in self.plugins:
            code = p.stop()
            self.assertEqual(code, 0, "%s exit %d:\n%s" % (p.name, code, p.read_log()[-5000:]))

    # ---- helpers ----

    def clear_hook_dir(self):
        hook_dir = self.proxy.hook_dir
        for name in os.listdir(hook_dir) if os.path.isdir(hook_dir) else []:
            os.unlink(os.path.join(hook_dir, name))
        self.wait_plugins(0)

    def wait_plugins(self, count, timeout=5):
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == count, timeout,
                         what="%d plugins registered" % count)

    def plugin(self, binary, name, args):
        p = Plugin(binary, name + "-" + uuid.uuid4().hex[:6], args, self.work)
        self.plugins.append(p)
        return p

    def ctl(self, *args, check=True):
        return harness.ctl(self.proxy.sock, *args, check=check)

    def pod_files(self, labels=None, annotations=None, ctr_annotations=None, cgroup_parent=None):
        return harness.pod_files(self.work, prefix="ex-", labels=labels, annotations=annotations,
                                 linux=cgroup_parent and {"cgroup_parent": cgroup_parent},
                                 container={"annotations": ctr_annotations or {}})

    def run_pod(self, check=True, **kw):
        pod_path, ctr_path = self.pod_files(**kw)
        out = self.ctl("runp", pod_path, check=check)
        if out.returncode == 0:
            self.pods.append(out.stdout.strip())
        return out, pod_path, ctr_path

    def run_container(self, **kw):
        out, pod_path, ctr_path = self.run_pod(**kw)
        pod_id = out.stdout.strip()
        ctr_id = self.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        return pod_id, ctr_id

    def cgroups_path(self, pod_id):
        info = json.loads(self.ctl("inspectp", pod_id).stdout)["info"]
        return info["runtimeSpec"]["linux"].get("cgroupsPath", "")

    def exec(self, ctr_id, *cmd):
        return self.ctl("exec-sync", ctr_id, "--", *cmd).stdout.strip()


def remove_empty_cgroups(top):
    """rmdir the cgroup directories `top`/* and `top` the pods left behind
    (only empty ones can go: a live cgroup elsewhere is never touched)."""
    for controller in os.listdir(CGROUP_ROOT):
        base = os.path.join(CGROUP_ROOT, controller, top)
        if not os.path.isdir(base):
            continue
        for name in os.listdir(base):
            if os.path.isdir(os.path.join(base, name)):
                try:
                    os.rmdir(os.path.join(base, name))
                except OSError:
                    pass
        try:
            os.rmdir(base)
        except OSError:
            pass


class QosCgroup(ExampleCase):
    def start_qos(self, rules_text=None, policy="Fail"):
        """crihook-qos-cgroup on a copy of the example rules (or `rules_text`),
        registered as hookserver.d.example/10-qos-cgroup.json registers it."""
        rules = os.path.join(self.work, "qos-%s.rules.json" % uuid.uuid4().hex[:6])
        if rules_text is None:
            shutil.copy(os.path.join(EXAMPLES, "qos-cgroup.rules.json"), rules)
        else:
            harness.write_atomic(rules, rules_text)
        p = self.plugin(QOS, "qos-cgroup", ["--rules", rules])
        with open(os.path.join(EXAMPLES, "10-qos-cgroup.json")) as f:
            example = json.load(f)
        register(self.proxy.hook_dir, "10-qos-cgroup.json", p.sock, example["runtime-hooks"],
                 policy=policy)
        self.wait_plugins(1)
        return p, rules

    def assert_parent(self, pod_id, parent):
        self.assertEqual(self.cgroups_path(pod_id), parent + "/" + pod_id)
        for controller in ("cpu", "memory", "cpuset"):
            path = os.path.join(CGROUP_ROOT, controller, parent.lstrip("/"), pod_id)
            self.assertTrue(os.path.isdir(path), "no cgroup " + path)

    def assert_unchanged(self, pod_id):
        info = json.loads(self.ctl("inspectp", pod_id).stdout)["info"]
        self.assertNotIn("crihook", info["runtimeSpec"]["linux"].get("cgroupsPath", ""))
        self.assertNotIn("cgroup_parent", info["config"].get("linux", {}))

    def test_gold_label_places_pod_and_its_containers(self):
        self.start_qos()
        pod_id, ctr_id = self.run_container(labels={CLASS: "gold"})
        self.assert_parent(pod_id, "/crihook/gold")
        info = json.loads(self.ctl("inspectp", pod_id).stdout)["info"]
        self.assertEqual(info["config"]["linux"]["cgroup_parent"], "/crihook/gold")
        cgroups = self.exec(ctr_id, "cat", "/proc/self/cgroup")
        self.assertIn(":cpu:/crihook/gold/" + ctr_id, cgroups)
        self.assertIn(":memory:/crihook/gold/" + ctr_id, cgroups)

    def test_annotation_and_label_precedence(self):
        self.start_qos()
        out, _, _ = self.run_pod(annotations={CLASS: "silver"})
        self.assert_parent(out.stdout.strip(), "/crihook/silver")
        out, _, _ = self.run_pod(labels={CLASS: "gold"}, annotations={CLASS: "silver"})
        self.assert_parent(out.stdout.strip(), "/crihook/gold")  # the label wins

    def test_no_class_or_unknown_class_is_unchanged(self):
        self.start_qos()
        out, _, _ = self.run_pod()
        self.assert_unchanged(out.stdout.strip())
        out, _, _ = self.run_pod(labels={CLASS: "tin"})
        self.assert_unchanged(out.stdout.strip())
        out, _, _ = self.run_pod(cgroup_parent="/crihook/own")  # the pod's own stays
        self.assert_parent(out.stdout.strip(), "/crihook/own")

    def test_rules_reread_when_the_file_changes(self):
        p, rules = self.start_qos()
        harness.write_atomic(rules, json.dumps({
            "label": CLASS, "classes": {"platinum": "/crihook/platinum"},
            "default": "/crihook/default"}))
        out, _, _ = self.run_pod(labels={CLASS: "platinum"})
        self.assert_parent(out.stdout.strip(), "/crihook/platinum")
        out, _, _ = self.run_pod(labels={CLASS: "gold"})  # no longer a class: the default
        self.assert_parent(out.stdout.strip(), "/crihook/default")
        out, _, _ = self.run_pod(annotations={CLASS: "platinum"})  # no annotation key now
        self.assert_parent(out.stdout.strip(), "/crihook/default")
        self.assertEqual(p.read_log().count("rules loaded from " + rules), 2, p.read_log())

    def test_rules_that_do_not_load_are_refused(self):
        p, rules = self.start_qos()
        harness.write_atomic(rules, '{"label": "%s", "classes": {"gold": ' % CLASS)
        for _ in range(2):
            out, _, _ = self.run_pod(check=False, labels={CLASS: "gold"})
            self.assertNotEqual(out.returncode, 0)
            for part in ("10-qos-cgroup", "PreRunPodSandbox", "INVALID_ARGUMENT",
                         "rules file %s does not parse" % rules, "line 1"):
                self.assertIn(part, out.stderr)
        harness.write_atomic(rules, json.dumps({"label": CLASS, "classes": {"gold": "gold.slice"}}))
        out, _, _ = self.run_pod(check=False)
        self.assertIn("rules file %s: class \"gold\": cgroup parent \"gold.slice\" is not a "
                      "cgroupfs path" % rules, out.stderr)
        os.unlink(rules)
        out, _, _ = self.run_pod(check=False)
        self.assertIn("rules file %s: No such file or directory" % rules, out.stderr)
        shutil.copy(os.path.join(EXAMPLES, "qos-cgroup.rules.json"), rules)  # fixed: works again
        out, _, _ = self.run_pod(labels={CLASS: "gold"})
        self.assert_parent(out.stdout.strip(), "/crihook/gold")
        log = p.read_log()
        own = [line for line in log.splitlines() if line.startswith("crihook-qos-cgroup: ")]
        self.assertEqual(sum("does not parse" in line for line in own), 1, log)  # once a version
        self.assertEqual(sum("not a cgroupfs path" in line for line in own), 1, log)

    def test_bad_start(self):
        out = run_binary(QOS, "--socket", os.path.join(self.work, "never.sock"))
        self.assertEqual(out.returncode, 2)
        self.assertIn("--rules is required", out.stderr)
        missing = os.path.join(self.work, "missing.rules.json")
        out = run_binary(QOS, "--socket", os.path.join(self.work, "never.sock"), "--rules", missing)
        self.assertEqual(out.returncode, 1)
        self.assertIn("rules file %s: No such file or directory" % missing, out.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.work, "never.sock")))


class CpusetPin(ExampleCase):
    def start_pin(self, online=None):
        """crihook-cpuset-pin, registered as hookserver.d.example/40-cpuset-pin.json
        registers it; `online` fakes the node's CPUs."""
        args = []
        if online is not None:
            path = os.path.join(self.work, "online-%s" % uuid.uuid4().hex[:6])
            with open(path, "w") as f:
                f.write(online + "\n")
            args = ["--cpus-online", path]
        p = self.plugin(PIN, "cpuset-pin", args)
        with open(os.path.join(EXAMPLES, "40-cpuset-pin.json")) as f:
            example = json.load(f)
        register(self.proxy.hook_dir, "40-cpuset-pin.json", p.sock, example["runtime-hooks"],
                 policy=example["failure-policy"])
        self.wait_plugins(1)
        return p

    def cpus(self, ctr_id):
        return self.exec(ctr_id, "cat", "/sys/fs/cgroup/cpuset/cpuset.cpus")

    def update(self, sock, ctr_id, cpus, shares=0):
        """A raw UpdateContainerResources: linux (2) { cpu_shares 3, cpuset_cpus 6 }."""
        linux = pb_bytes(6, cpus) + (pb_varint(3, shares) if shares else b"")
        answer = harness.raw_unary(sock, V1 + "UpdateContainerResources",
                                   pb_bytes(1, ctr_id) + pb_bytes(2, linux))
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)

    def test_pins_annotated_containers_only(self):
        self.start_pin()
        pod_id, ctr_id = self.run_container(ctr_annotations={CPUSET: "0"})
        self.assertEqual(self.cpus(ctr_id), "0")
        status = json.loads(self.ctl("inspect", ctr_id).stdout)
        self.assertEqual(status["info"]["runtimeSpec"]["linux"]["resources"]["cpu"]["cpus"], "0")
        _, plain = self.run_container()
        with open(os.path.join(CGROUP_ROOT, "cpuset", "cpuset.cpus")) as f:
            node = f.read().strip()
        self.assertEqual(self.cpus(plain), node)

    def test_refuses_cpus_the_node_lacks(self):
        self.start_pin(online="0")
        out, pod_path, ctr_path = self.run_pod()
        pod_id = out.stdout.strip()
        for value, message in (
                ("0-1", "cpuset 0-1 asks for CPUs this node does not have (online: 0)"),
                ("0-63", "cpuset 0-63 asks for CPUs this node does not have (online: 0)"),
                ("zero", 'annotation crihook.io/cpuset: "zero" is not a CPU list'),
                ("3-1", "range 3-1 goes backwards")):
            with self.subTest(value=value):
                _, ctr = self.pod_files(ctr_annotations={CPUSET: value})
                out = self.ctl("create", pod_id, ctr, pod_path, check=False)
                self.assertNotEqual(out.returncode, 0)
                for part in ("40-cpuset-pin", "PreCreateContainer", "INVALID_ARGUMENT", message):
                    self.assertIn(part, out.stderr)
        ps = self.ctl("ps", "-a", "--pod", pod_id).stdout
        self.assertEqual(ps.count("crihook-e2e-ctr"), 0, ps)  # nothing reached the runtime
        _, ctr = self.pod_files(ctr_annotations={CPUSET: "0"})
        ctr_id = self.ctl("create", pod_id, ctr, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        self.assertEqual(self.cpus(ctr_id), "0")

    def test_update_repins(self):
        if online_cpus() in ("0", ""):
            self.skipTest("needs a node with at least two CPUs")
        self.start_pin()
        _, ctr_id = self.run_container(ctr_annotations={CPUSET: "0"})
        self.update(self.containerd.sock, ctr_id, "0-1")  # behind crihookd's back
        self.assertEqual(self.cpus(ctr_id), "0-1")
        self.update(self.proxy.sock, ctr_id, "0-1", shares=512)  # through it: pinned again
        self.assertEqual(self.cpus(ctr_id), "0")
        self.assertEqual(self.exec(ctr_id, "cat", "/sys/fs/cgroup/cpu/cpu.shares"), "512")
        _, plain = self.run_container()
        self.update(self.proxy.sock, plain, "1")  # no annotation: the update as asked
        self.assertEqual(self.cpus(plain), "1")

    def test_bad_start(self):
        missing = os.path.join(self.work, "no-online")
        out = run_binary(PIN, "--socket", os.path.join(self.work, "never.sock"),
                         "--cpus-online", missing)
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot read %s: No such file or directory" % missing, out.stderr)
        out = run_binary(PIN, "--help")
        self.assertEqual(out.returncode, 0)
        self.assertIn("--cpus-online", out.stdout)


if __name__ == "__main__":
    harness.main()
