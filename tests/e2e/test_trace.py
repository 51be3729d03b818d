# SPDX-License-Identifier: Apache-2.0
"""End to end: `crihookctl trace` shows the CRI calls passing through crihookd.

crihookd in front of the real containerd, a real hook server (hookserver.py)
on PreCreateContainer that adds one env var and changes another; four
`crihookctl trace` processes (everything as JSON, a --pod filter, a --method
filter, the human format) follow a pod and container lifecycle run through
crihookd. The trace must name the pod and container, carry the status and
latency, and list the hook with the changes its answer made; the filters
must keep what they should and nothing else. A second case, against the
fake backend, checks refused filters, a missing admin socket, and that a
stopping crihookd ends the streams (and exits 0, leak-free).
"""

import json
import os
import signal
import subprocess
import unittest
import uuid

import harness
from fake_backend import FakeBackend
from harness import HookServer, register


class Tracer:
    """`crihookctl trace ARGS` in the background, its output in a file."""

    def __init__(self, proxy, *args):
        self.out_path = os.path.join(proxy.dir, "trace-%s.out" % uuid.uuid4().hex[:6])
        self.out = open(self.out_path, "w")
        cmd = [harness.CRIHOOKCTL, "--admin", "unix://" + proxy.admin, "trace"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.PIPE, text=True)

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def events(self):
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def stop(self):
        """SIGINT, as a person would; returns (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=10)
        self.out.close()
        return self.proc.returncode, err


def wait_attached(proxy, count):
    harness.wait_for(lambda: proxy.read_log().count("trace watcher attached") >= count, 10,
                     what="%d trace watchers attached" % count)


class TraceLifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = harness.Containerd.shared()
        cls.proxy = harness.Crihookd(cls.containerd.sock)
        cls.work = harness.tmpdir("crihook-tr-")
        cls.hook = HookServer("envs", {"PreCreateContainer": {"answer": {
            "container_envs": {"TRACE_ME": "yes", "GREETING": "traced"}}}}, cls.work)
        register(cls.proxy.hook_dir, "10-envs.json", cls.hook.sock, ["PreCreateContainer"])
        harness.wait_for(lambda: len(cls.proxy.plugins()["plugins"]) == 1, 5, what="plugin")

    @classmethod
    def tearDownClass(cls):
        cls.hook.stop()
        code = cls.proxy.stop()
        cls.containerd.stop()
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def ctl(self, *args):
        return harness.ctl(self.proxy.sock, *args).stdout.strip()

    def run_lifecycle(self, name):
        pod_path, ctr_path = harness.pod_files(self.work, name)
        self.ctl("version")
        pod_id = self.ctl("runp", pod_path)
        try:
            ctr_id = self.ctl("create", pod_id, ctr_path, pod_path)
            self.ctl("start", ctr_id)
            env = self.ctl("exec-sync", ctr_id, "--", "env")
            self.assertIn("TRACE_ME=yes", env)
            self.ctl("stop", ctr_id)
            self.ctl("rm", ctr_id)
        finally:
            self.ctl("stopp", pod_id)
            self.ctl("rmp", pod_id)
        return pod_id, ctr_id

    def test_lifecycle_with_filters(self):
        name = "tr-" + uuid.uuid4().hex[:8]
        pod = "crihook-e2e/" + name
        attached = self.proxy.read_log().count("trace watcher attached")
        everything = Tracer(self.proxy, "--json")
        by_pod = Tracer(self.proxy, "--pod", name, "--json")
        by_method = Tracer(self.proxy, "--method", "^Create(Container)?$", "--json")
        human = Tracer(self.proxy)
        tracers = [everything, by_pod, by_method, human]
        try:
            wait_attached(self.proxy, attached + 4)
            pod_id, ctr_id = self.run_lifecycle(name)
            harness.wait_for(lambda: "RemovePodSandbox" in everything.text() and
                             "RemovePodSandbox" in by_pod.text() and
                             "RemovePodSandbox" in human.text(), 10, what="the trace")
        finally:
            results = [t.stop() for t in tracers]
        for code, err in results:
            self.assertEqual(code, 0, err)

        events = everything.events()
        by_method_name = {}
        for ev in events:
            by_method_name.setdefault(ev["method"].rsplit("/", 1)[-1], []).append(ev)

        # a hooked call: pod and container named, status, latency, the hook and its changes
        create = [ev for ev in by_method_name["CreateContainer"] if ev.get("pod") == pod]
        self.assertEqual(len(create), 1, events)
        create = create[0]
        self.assertEqual(create["method"], "/runtime.v1.RuntimeService/CreateContainer")
        self.assertEqual(create["pod_id"], pod_id)
        self.assertEqual(create["container"], "crihook-e2e-ctr")
        self.assertEqual(create["container_id"], ctr_id)
        self.assertEqual(create["code"], "OK")
        self.assertGreater(create["latency_ms"], 0)
        self.assertRegex(create["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(len(create["hooks"]), 1, create)
        hook = create["hooks"][0]
        self.assertEqual((hook["plugin"], hook["hook"], hook["result"]),
                         ("10-envs", "PreCreateContainer", "ok"))
        self.assertGreater(hook["latency_ms"], 0)
        self.assertIn("env+TRACE_ME=yes", hook["changes"])
        self.assertIn("env[GREETING] hello from crihook->traced", hook["changes"])

        # calls that carry only IDs are named from the store; unhooked calls list no hooks
        run = [ev for ev in by_method_name["RunPodSandbox"] if ev.get("pod_id") == pod_id]
        self.assertEqual(run[0]["pod"], pod)
        self.assertNotIn("hooks", run[0])
        for method in ("StartContainer", "StopContainer", "RemoveContainer"):
            ev = [e for e in by_method_name[method] if e.get("container_id") == ctr_id]
            self.assertEqual(len(ev), 1, method)
            self.assertEqual((ev[0]["pod"], ev[0]["container"], ev[0]["code"]),
                             (pod, "crihook-e2e-ctr", "OK"), method)
        for method in ("StopPodSandbox", "RemovePodSandbox"):
            ev = [e for e in by_method_name[method] if e.get("pod_id") == pod_id]
            self.assertEqual(ev[0]["pod"], pod, method)

        # calls that are not decoded: present, unnamed
        version = by_method_name["Version"]
        self.assertTrue(version)
        self.assertNotIn("pod", version[0])
        self.assertIn("ExecSync", by_method_name)

        # --pod: every call of this pod, nothing else
        pod_methods = [ev["method"].rsplit("/", 1)[-1] for ev in by_pod.events()]
        self.assertEqual(pod_methods, ["RunPodSandbox", "CreateContainer", "StartContainer",
                                       "StopContainer", "RemoveContainer", "StopPodSandbox",
                                       "RemovePodSandbox"])
        self.assertTrue(all(ev.get("pod") == pod for ev in by_pod.events()))

        # --method: the regex matches the short name; only CreateContainer here
        method_names = {ev["method"] for ev in by_method.events()}
        self.assertEqual(method_names, {"/runtime.v1.RuntimeService/CreateContainer"})

        # the human format
        lines = human.text().splitlines()
        create_line = [l for l in lines if " CreateContainer pod=%s " % pod in l]
        self.assertEqual(len(create_line), 1, lines)
        self.assertRegex(create_line[0],
                         r"^\d\d:\d\d:\d\d\.\d{3} CreateContainer pod=%s container=crihook-e2e-ctr"
                         r" OK [\d.]+ms hooks: 10-envs:PreCreateContainer ok [\d.]+ms \(.*"
                         r"env\+TRACE_ME=yes" % pod)
        self.assertTrue(any(" Version OK " in l for l in lines), lines)


class TraceEdges(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-tre-")
        self.backend = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend)
        self.proxy = harness.Crihookd(self.backend)

    def tearDown(self):
        self.proxy.stop()
        self.fake.stop()

    def test_refused_filters_and_missing_socket(self):
        bad = self.proxy.ctl("trace", "--method", "((", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("HTTP 400", bad.stderr)
        self.assertIn('method filter "(("', bad.stderr)
        gone = harness.ctl(self.proxy.sock, "--admin", "unix://" + self.dir + "/none.sock",
                           "trace", check=False)
        self.assertEqual(gone.returncode, 1)
        self.assertIn("is crihookd running?", gone.stderr)
        usage = self.proxy.ctl("trace", "extra", check=False)
        self.assertEqual(usage.returncode, 2)

    def test_other_services_and_errors_and_shutdown(self):
        tracer = Tracer(self.proxy, "--json")
        wait_attached(self.proxy, 1)
        harness.raw_unary(self.proxy.sock, "/fake.Svc/Echo", b"x")
        harness.raw_unary(self.proxy.sock, "/fake.Svc/Fail", b"",
                          metadata=[("x-code", "NOT_FOUND"), ("x-message", "no such \"thing\"")])
        harness.wait_for(lambda: "Fail" in tracer.text(), 5, what="the Fail call traced")
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())  # ends the stream
        code, err = tracer.stop()
        self.assertEqual(code, 1)
        self.assertIn("crihookd ended the trace", err)
        events = tracer.events()
        self.assertEqual([e["method"] for e in events], ["/fake.Svc/Echo", "/fake.Svc/Fail"])
        self.assertEqual(events[1]["code"], "NOT_FOUND")
        self.assertTrue(events[1]["message"].startswith('no such "thing"'), events[1])
        self.assertIn('trace watcher detached reason="crihookd is stopping"',
                      self.proxy.read_log())


if __name__ == "__main__":
    harness.main()
