# SPDX-License-Identifier: Apache-2.0
"""End to end: the example plugins crihook-qos-cgroup and crihook-cpuset-pin.

Both binaries run from the build directory, each on its own socket,
registered in crihookd's hook directory as hookserver.d.example registers
them; crihookd sits in front of the harness's containerd. Requests are
shaped as kubelet's (annotations on the pod only, a pod cgroup parent of
kubelet's form, kubelet's cpu_shares and oom_score_adj). Effects are checked
from the runtime's side: the pod's runtime spec (cgroupsPath), the
container's cgroup directory and cpu.shares on the host, its process's
oom_score_adj, /proc/self/cgroup and cpuset.cpus inside the container;
refusals through crihookctl's error message.
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

QOS = os.path.join(harness.BUILD, "examples", "qos-cgroup", "crihook-qos-cgroup")
PIN = os.path.join(harness.BUILD, "examples", "cpuset-pin", "crihook-cpuset-pin")
EXAMPLES = os.path.join(harness.ROOT, "hookserver.d.example")
CLASS = "crihook.io/qos-class"
CPUSET = "crihook.io/cpuset"
CGROUP_ROOT = "/sys/fs/cgroup"
KUBEPODS = "crihook-e2e-kubepods"  # stands for kubelet's /kubepods in the pods' cgroup parents


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
        remove_empty_cgroups(KUBEPODS)
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
    """rmdir the cgroup directories under `top` and `top` itself that the pods
    left behind, deepest first (only empty ones can go: a live cgroup is never
    touched)."""
    for controller in os.listdir(CGROUP_ROOT):
        base = os.path.join(CGROUP_ROOT, controller, top)
        for dirpath, _, _ in (os.walk(base, topdown=False) if os.path.isdir(base) else []):
            try:
                os.rmdir(dirpath)
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

    def kubelet_pod(self, labels=None, annotations=None, check=True):
        """A Burstable pod as kubelet (cgroupfs driver) sends it: its cgroup
        parent is its own pod cgroup (under KUBEPODS, not the node's real
        /kubepods), the container asks for 100m CPU (cpu_shares 102) and some
        memory (oom_score_adj 968). Returns (runp's result, pod path, container
        path, the pod's cgroup parent)."""
        pod_path, ctr_path = self.pod_files(labels=labels, annotations=annotations)
        with open(pod_path) as f:
            pod = json.load(f)
        parent = "/%s/burstable/pod%s" % (KUBEPODS, pod["metadata"]["uid"])
        pod["linux"]["cgroup_parent"] = parent
        harness.write_json(self.work, os.path.basename(pod_path), pod)
        with open(ctr_path) as f:
            ctr = json.load(f)
        ctr["linux"]["resources"] = {"cpu_period": 100000, "cpu_shares": 102,
                                     "memory_limit_in_bytes": 268435456, "oom_score_adj": 968}
        harness.write_json(self.work, os.path.basename(ctr_path), ctr)
        out = self.ctl("runp", pod_path, check=check)
        if out.returncode == 0:
            self.pods.append(out.stdout.strip())
        return out, pod_path, ctr_path, parent

    def kubelet_container(self, **kw):
        out, pod_path, ctr_path, parent = self.kubelet_pod(**kw)
        pod_id = out.stdout.strip()
        ctr_id = self.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        return pod_id, ctr_id, parent

    def assert_resources(self, pod_id, ctr_id, parent, shares, oom, cls):
        """The container's cgroup is under the pod's cgroup parent as kubelet
        gave it; its cpu.shares and its process's oom_score_adj are the ones
        wanted; its annotation names the class (or is absent)."""
        self.assertEqual(self.cgroups_path(pod_id), parent + "/" + pod_id)
        cgroups = self.exec(ctr_id, "cat", "/proc/self/cgroup")
        self.assertIn(":cpu:%s/%s\n" % (parent, ctr_id), cgroups + "\n")
        self.assertIn(":memory:%s/%s\n" % (parent, ctr_id), cgroups + "\n")
        with open(os.path.join(CGROUP_ROOT, "cpu", parent.lstrip("/"), ctr_id,
                               "cpu.shares")) as f:
            self.assertEqual(f.read().strip(), str(shares))
        status = json.loads(self.ctl("inspect", ctr_id).stdout)
        with open("/proc/%d/oom_score_adj" % status["info"]["pid"]) as f:
            self.assertEqual(f.read().strip(), str(oom))
        self.assertEqual(status["status"]["annotations"].get(CLASS), cls)

    def test_gold_label_weighs_the_container_in_the_pods_own_cgroup(self):
        self.start_qos()
        pod_id, ctr_id, parent = self.kubelet_container(labels={CLASS: "gold"})
        # gold: cpu_shares 102 x 2, raised to 1024; oom_score_adj 968 capped at 500
        self.assert_resources(pod_id, ctr_id, parent, 1024, 500, "gold")
        info = json.loads(self.ctl("inspectp", pod_id).stdout)["info"]
        self.assertEqual(info["config"]["linux"]["cgroup_parent"], parent)  # as kubelet asked

    def test_bronze_annotation_and_label_precedence(self):
        self.start_qos()
        pod_id, ctr_id, parent = self.kubelet_container(annotations={CLASS: "bronze"})
        self.assert_resources(pod_id, ctr_id, parent, 51, 1000, "bronze")
        pod_id, ctr_id, parent = self.kubelet_container(labels={CLASS: "gold"},
                                                        annotations={CLASS: "bronze"})
        self.assert_resources(pod_id, ctr_id, parent, 1024, 500, "gold")  # the label wins

    def test_no_class_or_unknown_class_is_unchanged(self):
        self.start_qos()
        for labels in ({}, {CLASS: "tin"}):
            with self.subTest(labels=labels):
                pod_id, ctr_id, parent = self.kubelet_container(labels=labels)
                self.assert_resources(pod_id, ctr_id, parent, 102, 968, None)

    def test_update_keeps_the_class(self):
        self.start_qos()
        pod_id, ctr_id, parent = self.kubelet_container(labels={CLASS: "gold"})
        # kubelet resizes the container to 1 CPU (cpu_shares 1024): gold doubles it
        linux = pb_varint(1, 100000) + pb_varint(3, 1024) + pb_varint(4, 268435456)
        shares = os.path.join(CGROUP_ROOT, "cpu", parent.lstrip("/"), ctr_id, "cpu.shares")
        for update, want in ((linux, "2048"),
                             # kubelet's CPU manager moves only the CPUs: shares stay
                             (pb_bytes(6, "0"), "2048")):
            answer = harness.raw_unary(self.proxy.sock, V1 + "UpdateContainerResources",
                                       pb_bytes(1, ctr_id) + pb_bytes(2, update))
            self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
            with open(shares) as f:
                self.assertEqual(f.read().strip(), want)

    def test_rules_reread_when_the_file_changes(self):
        p, rules = self.start_qos()
        harness.write_atomic(rules, json.dumps({
            "label": CLASS, "classes": {"platinum": {"cpu_shares": {"factor": 3}},
                                        "plain": {}},
            "default": "plain"}))
        pod_id, ctr_id, parent = self.kubelet_container(labels={CLASS: "platinum"})
        self.assert_resources(pod_id, ctr_id, parent, 306, 968, "platinum")
        pod_id, ctr_id, parent = self.kubelet_container(labels={CLASS: "gold"})  # the default
        self.assert_resources(pod_id, ctr_id, parent, 102, 968, "plain")
        self.assertEqual(p.read_log().count("rules loaded from " + rules), 2, p.read_log())

    def test_rules_that_do_not_load_are_refused(self):
        p, rules = self.start_qos()
        out, pod_path, ctr_path, _ = self.kubelet_pod(labels={CLASS: "gold"})
        pod_id = out.stdout.strip()

        def create():
            return self.ctl("create", pod_id, ctr_path, pod_path, check=False)
        harness.write_atomic(rules, '{"label": "%s", "classes": {"gold": ' % CLASS)
        for _ in range(2):
            out = create()
            self.assertNotEqual(out.returncode, 0)
            for part in ("10-qos-cgroup", "PreCreateContainer", "INVALID_ARGUMENT",
                         "rules file %s does not parse" % rules, "line 1"):
                self.assertIn(part, out.stderr)
        harness.write_atomic(rules, json.dumps({"label": CLASS, "classes": {"gold": "/crihook"}}))
        out = create()
        self.assertIn("rules file %s: class \"gold\" must be an object" % rules, out.stderr)
        os.unlink(rules)
        out = create()
        self.assertIn("rules file %s: No such file or directory" % rules, out.stderr)
        shutil.copy(os.path.join(EXAMPLES, "qos-cgroup.rules.json"), rules)  # fixed: works again
        ctr_id = create().stdout.strip()
        self.ctl("start", ctr_id)
        status = json.loads(self.ctl("inspect", ctr_id).stdout)
        self.assertEqual(status["status"]["annotations"].get(CLASS), "gold")
        log = p.read_log()
        own = [line for line in log.splitlines() if line.startswith("crihook-qos-cgroup: ")]
        self.assertEqual(sum("does not parse" in line for line in own), 1, log)  # once a version
        self.assertEqual(sum("must be an object" in line for line in own), 1, log)

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
            path = self.online_path = os.path.join(self.work, "online-%s" % uuid.uuid4().hex[:6])
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

    def test_pins_the_containers_of_an_annotated_pod(self):
        # as kubelet runs a pod: the annotation is on the pod only
        self.start_pin()
        pod_id, ctr_id = self.run_container(annotations={CPUSET: "0"})
        self.assertEqual(self.cpus(ctr_id), "0")
        status = json.loads(self.ctl("inspect", ctr_id).stdout)
        self.assertEqual(status["info"]["runtimeSpec"]["linux"]["resources"]["cpu"]["cpus"], "0")
        self.assertNotIn(CPUSET, status["info"]["config"].get("annotations", {}))
        _, plain = self.run_container()
        with open(os.path.join(CGROUP_ROOT, "cpuset", "cpuset.cpus")) as f:
            node = f.read().strip()
        self.assertEqual(self.cpus(plain), node)

    def test_container_annotation_overrides_the_pods(self):
        if online_cpus() in ("0", ""):
            self.skipTest("needs a node with at least two CPUs")
        self.start_pin()
        _, ctr_id = self.run_container(annotations={CPUSET: "0"}, ctr_annotations={CPUSET: "1"})
        self.assertEqual(self.cpus(ctr_id), "1")
        _, ctr_id = self.run_container(ctr_annotations={CPUSET: "1"})  # a container alone
        self.assertEqual(self.cpus(ctr_id), "1")

    def test_refuses_cpus_the_node_lacks(self):
        # the annotation on the pod only, as kubelet runs it: its CreateContainer
        # is refused and nothing reaches the runtime
        self.start_pin(online="0")
        for value, message in (
                ("0-1", "pod annotation crihook.io/cpuset: cpuset 0-1 asks for CPUs this node "
                        "does not have (online: 0)"),
                ("0-63", "cpuset 0-63 asks for CPUs this node does not have (online: 0)"),
                ("zero", 'pod annotation crihook.io/cpuset: "zero" is not a CPU list'),
                ("3-1", "range 3-1 goes backwards")):
            with self.subTest(value=value):
                out, pod_path, ctr_path = self.run_pod(annotations={CPUSET: value})
                pod_id = out.stdout.strip()
                out = self.ctl("create", pod_id, ctr_path, pod_path, check=False)
                self.assertNotEqual(out.returncode, 0)
                for part in ("40-cpuset-pin", "PreCreateContainer", "INVALID_ARGUMENT", message):
                    self.assertIn(part, out.stderr)
                ps = self.ctl("ps", "-a", "--pod", pod_id).stdout
                self.assertEqual(ps.count("crihook-e2e-ctr"), 0, ps)  # nothing reached the runtime
        out, pod_path, _ = self.run_pod(annotations={CPUSET: "0-1"})
        _, ctr = self.pod_files(ctr_annotations={CPUSET: "zero"})  # the container's own wins
        out = self.ctl("create", out.stdout.strip(), ctr, pod_path, check=False)
        self.assertIn('container annotation crihook.io/cpuset: "zero" is not a CPU list',
                      out.stderr)
        out, pod_path, ctr = self.run_pod(annotations={CPUSET: "0"})  # a CPU the node has
        ctr_id = self.ctl("create", out.stdout.strip(), ctr, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        self.assertEqual(self.cpus(ctr_id), "0")

    def test_refusals_name_the_pod_in_crihookds_log(self):
        # "hook rejected the call" names the pod namespace/name, for a call that
        # carries the pod's config (CreateContainer) and one that carries only
        # the container's ID (UpdateContainerResources)
        self.start_pin(online="0")
        out, pod_path, ctr_path = self.run_pod(annotations={CPUSET: "0-1"})
        with open(pod_path) as f:
            name = json.load(f)["metadata"]["name"]
        self.ctl("create", out.stdout.strip(), ctr_path, pod_path, check=False)
        pod = "pod=crihook-e2e/%s" % name
        self.assertIn("hook rejected the call plugin=40-cpuset-pin hook=PreCreateContainer "
                      "%s container=crihook-e2e-ctr cause=" % pod, self.proxy.read_log())
        pod_id, ctr_id = self.run_container(annotations={CPUSET: "0"})
        with open(self.online_path, "w") as f:
            f.write("1\n")  # CPU 0 went offline
        answer = harness.raw_unary(self.proxy.sock, V1 + "UpdateContainerResources",
                                   pb_bytes(1, ctr_id) + pb_bytes(2, pb_varint(3, 512)))
        self.assertEqual(answer.code, grpc.StatusCode.INVALID_ARGUMENT, answer.details)
        status = json.loads(self.ctl("inspectp", pod_id).stdout)["status"]
        line = [l for l in self.proxy.read_log().splitlines()
                if "hook=PreUpdateContainerResources" in l and "rejected" in l]
        self.assertEqual(len(line), 1, self.proxy.read_log()[-3000:])
        self.assertIn("pod=crihook-e2e/%s container=%s cause=" % (status["metadata"]["name"],
                                                                  ctr_id), line[0])
        self.assertNotIn(pod_id, line[0])

    def test_update_repins(self):
        if online_cpus() in ("0", ""):
            self.skipTest("needs a node with at least two CPUs")
        self.start_pin()
        _, ctr_id = self.run_container(annotations={CPUSET: "0"})
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
