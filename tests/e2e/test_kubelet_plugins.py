# SPDX-License-Identifier: Apache-2.0
"""End to end: the four example plugins under a real kubelet (v1.28.7).

Owned by the kubelet tests (harness: tests/e2e/kubelet.py); it checks what
examples/README.md and sdk/README.md promise an operator, with
kubelet, not a hand-written client, making the CRI calls. Skipped, with the
places looked at, when no kubelet binary is found.

One private containerd (kubelet kills pods it does not know), crihookd in
front of it, and crihook-qos-cgroup, crihook-env-inject, crihook-audit-log
and crihook-cpuset-pin from the build directory, started as the READMEs say
and registered with hookserver.d.example's files, copied with only the
socket path changed (each plugin runs on a socket of the test's, with
--socket; the rules files are copies of the example ones). Then one kubelet
on crihookd's socket, in namespace "default" (the example env-inject rule
matches it), runs these static pods at once:

- web (label app=web, 100m CPU requested): env-inject's three example rules
  (namespace+label, image name *busybox*, every container) put their env
  vars inside the container and the rule's annotation on it; audit-log writes
  its start line, and its stop lines once the manifest is removed;
- plain (same resources, no class): kubelet's own cpu.shares and
  oom_score_adj, the baseline of the classes;
- gold / bronze (labelled crihook.io/qos-class, same resources, a second of
  busy CPU): qos-cgroup's cpu.shares and oom_score_adj as the README computes
  them from kubelet's, the class annotated on the container, the container
  still in kubelet's pod cgroup /kubepods/burstable/pod<uid>, and kubelet's
  /stats/summary showing the pod's CPU and memory (what moving pods broke);
- pinned (annotated crihook.io/cpuset: "0"): the container's cpuset cgroup
  and its Cpus_allowed_list are CPU 0;
- toomany (annotated crihook.io/cpuset: "0-4095"): cpuset-pin refuses it with
  failure-policy Fail, kubelet logs the plugin's message and shows the
  container waiting in CreateContainerError; the runtime never gets it.

Teardown stops kubelet (the harness removes its pods, logs and cgroups),
the plugins (each must exit 0 on SIGTERM with no sanitizer report) and
crihookd.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import unittest

import harness
import kubelet
from kubelet import Kubelet, container, state_of, statuses

HAVE_KUBELET, WHY = kubelet.available()
EXAMPLES_BIN = os.path.join(harness.BUILD, "examples")
EXAMPLES = os.path.join(harness.ROOT, "hookserver.d.example")
CLASS = "crihook.io/qos-class"
CPUSET = "crihook.io/cpuset"
CGROUP_ROOT = "/sys/fs/cgroup"
NAMESPACE = "default"  # the namespace of the example env-inject rule
REQUESTS = {"requests": {"cpu": "100m", "memory": "32Mi"}}  # Burstable, cpu_shares 102
BUSY = "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done; exec sleep 3600"
TOO_MANY = "0-4095"


def online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        return f.read().strip()


class Plugin:
    """An example plugin binary on a socket of the test's, as its README
    starts it; its output in a log file."""

    def __init__(self, name, work, *args, env=None):
        self.name = name
        self.binary = os.path.join(EXAMPLES_BIN, name, "crihook-" + name)
        self.sock = os.path.join(work, name + ".sock")
        self.log_path = os.path.join(work, name + ".log")
        full_env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
        full_env.update(env or {})
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([self.binary, "--socket", self.sock] + list(args),
                                         stdout=log, stderr=subprocess.STDOUT, env=full_env)
        try:
            harness.wait_for(self.listening, 20, 0.05, name + " to listen")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited early (%d):\n%s" % (self.name, self.proc.returncode,
                                                                self.read_log()))
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(self.sock)
                return True
            except OSError:
                return False

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def register(self, hook_dir, file_name):
        """hookserver.d.example/FILE_NAME into `hook_dir`, with only its
        remote-endpoint changed to this plugin's socket."""
        with open(os.path.join(EXAMPLES, file_name)) as f:
            doc = json.load(f)
        doc["remote-endpoint"] = "unix://" + self.sock
        harness.write_atomic(os.path.join(hook_dir, file_name), json.dumps(doc))

    def stop(self):
        """SIGTERM and wait; an error unless it exits 0 without a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "%s did not exit on SIGTERM:\n%s" % (self.name, self.read_log()[-3000:])
        log = self.read_log()
        if self.proc.returncode != 0 or "Sanitizer" in log:
            return "%s exit %d:\n%s" % (self.name, self.proc.returncode, log[-3000:])
        return None


def harness_wait(fetch, what, timeout=60, explain=None):
    """Waits until fetch() returns something else than None and returns it."""
    seen = {}

    def check():
        seen["v"] = fetch()
        return seen["v"] is not None
    try:
        harness.wait_for(check, timeout, 0.5, what)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, explain() if explain else "")) from None
    return seen["v"]


@unittest.skipUnless(HAVE_KUBELET, WHY)
class ExamplePluginsUnderKubelet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = cls.proxy = cls.kl = None
        cls.plugins = []
        try:
            cls.containerd = harness.Containerd()
            cls.proxy = harness.Crihookd(cls.containerd.sock, "--log-level", "debug")
            cls.work = harness.tmpdir("crihook-klp-")
            cls.start_plugins()
            cls.kl = Kubelet(cls.proxy.sock, cls.containerd.sock, namespace=NAMESPACE)
            cls.add_pods()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_plugins(cls):
        """Each plugin as its README starts it, registered with the example's file."""
        rules = {}
        for name in ("qos-cgroup", "env-inject"):
            rules[name] = os.path.join(cls.work, name + ".rules.json")
            shutil.copy(os.path.join(EXAMPLES, name + ".rules.json"), rules[name])
        cls.audit_path = os.path.join(cls.work, "audit", "audit.log")
        os.makedirs(cls.proxy.hook_dir, exist_ok=True)
        for file_name, name, args, env in (
                ("10-qos-cgroup.json", "qos-cgroup", ["--rules", rules["qos-cgroup"]], None),
                # NODE_NAME as a DaemonSet sets it from spec.nodeName
                ("20-env-inject.json", "env-inject", ["--rules", rules["env-inject"]],
                 {"NODE_NAME": kubelet.NODE}),
                ("30-audit-log.json", "audit-log", ["--log", cls.audit_path], None),
                ("40-cpuset-pin.json", "cpuset-pin", [], None)):
            cls.plugins.append(Plugin(name, cls.work, *args, env=env))
            cls.plugins[-1].register(cls.proxy.hook_dir, file_name)
        harness.wait_for(lambda: len(cls.proxy.plugins()["plugins"]) == 4, 10, 0.1,
                         "the four example plugins registered")

    @classmethod
    def add_pods(cls):
        kl = cls.kl
        sleeper = ["sleep", "3600"]
        kl.add_pod("web", [container("main", sleeper, resources=REQUESTS)], labels={"app": "web"})
        kl.add_pod("plain", [container("main", sleeper, resources=REQUESTS)])
        for cls_name in ("gold", "bronze"):
            kl.add_pod(cls_name, [container("main", ["sh", "-c", BUSY], resources=REQUESTS)],
                       labels={CLASS: cls_name})
        kl.add_pod("pinned", [container("main", sleeper)], annotations={CPUSET: "0"})
        kl.add_pod("toomany", [container("main", sleeper)], annotations={CPUSET: TOO_MANY})

    @classmethod
    def tearDownClass(cls):
        problems = []
        if cls.kl:
            cls.kl.stop()
        for plugin in cls.plugins:
            problems.append(plugin.stop())
        if cls.proxy:
            code = cls.proxy.stop()
            if code != 0:
                problems.append("crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:]))
        if cls.containerd:
            cls.containerd.stop()
        if getattr(cls, "work", None):
            shutil.rmtree(cls.work, ignore_errors=True)
        problems = [p for p in problems if p]
        assert not problems, "\n".join(problems)

    # ---- helpers ----

    def running(self, name):
        """The containerStatus of container main of pod `name`, once it runs."""
        return statuses(self.kl.wait_running(name, 90))["main"]

    def inspect(self, status):
        out = self.kl.cri("inspect", kubelet.cid(status), endpoint=self.kl.runtime)
        return json.loads(out.stdout)

    def cgroups(self, status):
        """{controller: path} of the container's main process, from the host."""
        pid = self.inspect(status)["info"]["pid"]
        paths = {}
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for ctrl in controllers.split(","):
                    paths[ctrl] = path
        return pid, paths

    def cgroup_file(self, status, controller, name):
        _, paths = self.cgroups(status)
        with open(os.path.join(CGROUP_ROOT, controller, paths[controller].lstrip("/"), name)) as f:
            return f.read().strip()

    def env_in(self, status):
        out = self.kl.exec_in(status, "env")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def audit_lines(self):
        try:
            with open(self.audit_path) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return []

    def audit_of(self, pod_uid):
        return [e for e in self.audit_lines() if e.get("pod_uid") == pod_uid]

    # ---- env-inject and audit-log ----

    def test_env_inject_rules_and_audit_lines(self):
        st = self.running("web")
        env = self.env_in(st)
        # rule 1 (namespace default, label app=web), rule 2 (image name
        # *busybox*), rule 3 (every container), ${NODE_NAME} from the plugin's env
        self.assertEqual(env.get("HTTP_PROXY"), "http://proxy:3128")
        self.assertEqual(env.get("NO_PROXY"), "localhost,.svc,.cluster.local")
        self.assertEqual(env.get("NODE_NAME"), kubelet.NODE)
        self.assertEqual(env.get("CRIHOOK_NODE"), kubelet.NODE)
        annotations = self.inspect(st)["status"]["annotations"]
        self.assertEqual(annotations.get("example.com/proxied"), "true")
        self.assertEqual(annotations.get("example.com/env-injected-on"), kubelet.NODE)
        # a pod without the label gets the image and catch-all rules only
        plain = self.env_in(self.running("plain"))
        self.assertEqual(plain.get("NODE_NAME"), kubelet.NODE)
        self.assertNotIn("HTTP_PROXY", plain)

        pod_uid = self.kl.pod("web")["metadata"]["uid"]
        who = {"pod": "%s/%s" % (NAMESPACE, self.kl.full_name("web")), "pod_uid": pod_uid}
        start = {"hook": "PostStartContainer", "container": "main",
                 "container_id": kubelet.cid(st)}
        start.update(who)
        harness_wait(lambda: self.audit_of(pod_uid) or None, "audit line of web's start", 10)
        first = self.audit_of(pod_uid)[0]
        self.assertRegex(first.pop("time"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(first, start)

        self.kl.remove_pod("web")  # kubelet stops the container, then the pod

        def stopped():
            hooks = [e["hook"] for e in self.audit_of(pod_uid)]
            return hooks if "PostStopPodSandbox" in hooks else None
        hooks = harness_wait(stopped, "audit lines of web's stop", 60,
                             lambda: "audit log:\n%s" % self.audit_lines())
        # in the order of first appearance; PostRemoveContainer comes at once
        # or at kubelet's GC (timing), which may also stop the sandbox again
        first_seen = [h for i, h in enumerate(hooks)
                      if h not in hooks[:i] and h != "PostRemoveContainer"]
        self.assertEqual(first_seen,
                         ["PostStartContainer", "PostStopContainer", "PostStopPodSandbox"])
        for e in self.audit_of(pod_uid):
            self.assertEqual(e["pod"], who["pod"])
            if e["hook"] != "PostStopPodSandbox":
                self.assertEqual((e["container"], e["container_id"]), ("main", kubelet.cid(st)))
            else:
                self.assertNotIn("container", e)

    # ---- cpuset-pin ----

    def test_cpuset_pin_pins_the_annotated_pod(self):
        st = self.running("pinned")
        self.assertEqual(self.cgroup_file(st, "cpuset", "cpuset.cpus"), "0")
        inside = self.kl.exec_in(st, "grep", "Cpus_allowed_list", "/proc/self/status")
        self.assertEqual(inside.split(), ["Cpus_allowed_list:", "0"])
        # the pod as kubelet runs it: the annotation on the pod, not the container
        self.assertNotIn(CPUSET, self.inspect(st)["status"]["annotations"])

    def test_cpuset_pin_refusal_keeps_the_pod_from_running(self):
        message = ("plugin 40-cpuset-pin failed on PreCreateContainer (failure-policy Fail): "
                   "INVALID_ARGUMENT: pod annotation crihook.io/cpuset: cpuset %s asks for CPUs "
                   "this node does not have (online: %s)" % (TOO_MANY, online_cpus()))
        kl = self.kl
        line = kl.wait_log(r"[^\n]*CreateContainerError[^\n]*%s[^\n]*" % re.escape(message), 90)
        self.assertIn(kl.full_name("toomany"), line.group(0))  # the line names the pod

        def refused(pod):
            s = statuses(pod or {}).get("main")
            return bool(s) and state_of(s) == "waiting:CreateContainerError"
        pod = kl.wait_pod("toomany", refused, 60, "toomany waiting in CreateContainerError")
        waiting = statuses(pod)["main"]
        self.assertIn(message, waiting["state"]["waiting"]["message"])
        self.assertEqual(waiting["restartCount"], 0)
        self.assertNotIn("containerID", waiting)
        # the sandbox is there, no container ever reached the runtime
        self.running("pinned")  # by now kubelet has had its chances
        sandboxes = [p for p in kl.cri_pods() if p["metadata"]["name"] == kl.full_name("toomany")]
        self.assertTrue(sandboxes)
        for sandbox in sandboxes:
            self.assertEqual(kl.cri_containers(sandbox["id"]), [])
        self.assertEqual(state_of(statuses(kl.pod("toomany"))["main"]),
                         "waiting:CreateContainerError")

    # ---- qos-cgroup ----

    def test_qos_classes_in_kubelets_pod_cgroup(self):
        plain = self.running("plain")
        base_shares = int(self.cgroup_file(plain, "cpu", "cpu.shares"))
        base_oom = self.oom_score_adj(plain)
        self.assertEqual(base_shares, 102)  # kubelet's for 100m
        self.assertGreater(base_oom, 500)  # kubelet's for a small Burstable pod
        self.assertNotIn(CLASS, self.inspect(plain)["status"]["annotations"])
        # the README's example rules: gold doubles the shares (at least 1024)
        # and caps oom_score_adj at 500; bronze halves them and raises it to 1000
        want = {"gold": (max(2 * base_shares, 1024), min(base_oom, 500)),
                "bronze": (round(base_shares * 0.5), max(base_oom, 1000))}
        for name, (shares, oom) in want.items():
            with self.subTest(cls=name):
                st = self.running(name)
                pod = self.kl.pod(name)
                self.assertEqual(pod["status"].get("qosClass"), "Burstable")  # kubelet's own
                # still in the pod cgroup kubelet made, for every controller, and
                # kubelet's stats still see the pod (both lost when pods were moved)
                _, paths = self.cgroups(st)
                own = "/kubepods/burstable/pod%s/%s" % (pod["metadata"]["uid"], kubelet.cid(st))
                for ctrl in ("cpu", "cpuacct", "memory", "cpuset", "pids"):
                    self.assertEqual(paths.get(ctrl), own, ctrl)
                harness_wait(lambda: self.usage(name), "kubelet's stats of " + name, 60,
                             lambda: json.dumps(self.kl.pod_stats(name))[:3000])
                # the class's weight and OOM preference on the container, its name on
                # it (read after kubelet's syncs since the start: it did not reset them)
                self.assertEqual(int(self.cgroup_file(st, "cpu", "cpu.shares")), shares)
                self.assertEqual(self.oom_score_adj(st), oom)
                self.assertEqual(self.inspect(st)["status"]["annotations"].get(CLASS), name)
                # the pod cgroup's own weight stays kubelet's (its containers' requests)
                pod_cgroup = os.path.join(CGROUP_ROOT, "cpu", os.path.dirname(own).lstrip("/"))
                with open(os.path.join(pod_cgroup, "cpu.shares")) as f:
                    self.assertEqual(int(f.read()), base_shares)

    def oom_score_adj(self, status):
        pid, _ = self.cgroups(status)
        with open("/proc/%d/oom_score_adj" % pid) as f:
            return int(f.read())

    def usage(self, name):
        """Whether /stats/summary has non-zero CPU and memory for pod `name`
        and its container, once it has them (None before)."""
        p = self.kl.pod_stats(name)
        ctrs = [c for c in (p or {}).get("containers") or [] if c["name"] == "main"]
        if not p or not ctrs:
            return None
        got = {}
        for who, s in (("pod", p), ("container", ctrs[0])):
            got[who + " cpu"] = (s.get("cpu") or {}).get("usageCoreNanoSeconds", 0) > 0
            got[who + " memory"] = (s.get("memory") or {}).get("workingSetBytes", 0) > 0
        return got if all(got.values()) else None


if __name__ == "__main__":
    harness.main()
