# SPDX-License-Identifier: Apache-2.0
"""End to end: the example plugins built on libcrihook, and the SDK itself.

crihook-env-inject and crihook-audit-log run from the build directory as
separate processes on sockets in a temp dir, registered in crihookd's hook
directory, in front of the harness's containerd. Effects are checked from
the runtime's side (env inside the container, annotations in its status)
or in the audit log file. The SDK's own behaviour is checked on the same
binaries: SIGTERM exits 0 and removes the socket, a live socket is not
taken over, a bad socket path is refused in words, a callback's failure
reaches the CRI client (kubelet) with failure-policy Fail, an unknown
method answers UNIMPLEMENTED, CRIHOOK_PLUGIN_LOG=debug logs each call.

With the sanitizer build, every plugin must also exit 0 on SIGTERM without
a sanitizer report (LeakSanitizer runs at exit).
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
import uuid

import grpc

import harness
from harness import register

EXAMPLES = os.path.join(harness.BUILD, "examples")
ENV_INJECT = os.path.join(EXAMPLES, "env-inject", "crihook-env-inject")
AUDIT_LOG = os.path.join(EXAMPLES, "audit-log", "crihook-audit-log")
HOOK_SERVICE = "/runtime.v1alpha1.RuntimeHookService/"
POST_HOOKS = ["PostStartContainer", "PostStopContainer", "PostRemoveContainer",
              "PostStopPodSandbox"]


def connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


_stderr_dir = []


def stderr_dir():
    if not _stderr_dir:
        _stderr_dir.append(harness.tmpdir("crihook-exlog-"))
    return _stderr_dir[0]


class Plugin:
    """One example plugin process; its stderr kept in a file."""

    def __init__(self, binary, sock, *args, wait=True, env=None):
        self.sock = sock
        self.err_path = os.path.join(stderr_dir(), uuid.uuid4().hex[:8] + ".stderr")
        self.err = open(self.err_path, "w")
        full_env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
        full_env.update(env or {"CRIHOOK_PLUGIN_LOG": "debug"})
        self.proc = subprocess.Popen([binary, "--socket", sock] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=full_env)
        if wait:
            self.wait_serving()

    def wait_serving(self):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("plugin exited %d:\n%s" % (self.proc.returncode, self.stderr()))
            return connectable(self.sock)
        harness.wait_for(up, 10, what="plugin on " + self.sock)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def wait(self, timeout=10):
        try:
            code = self.proc.wait(timeout)
        finally:
            self.err.close()
        return code

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("plugin did not exit on SIGTERM:\n" + self.stderr())


class PluginCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = harness.Containerd.shared()
        cls.proxy = harness.Crihookd(cls.containerd.sock, "--log-level", "debug")
        cls.work = harness.tmpdir("crihook-ex-")

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.containerd.stop()
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def setUp(self):
        self.pods, self.plugins = [], []
        hook_dir = self.proxy.hook_dir
        for name in os.listdir(hook_dir) if os.path.isdir(hook_dir) else []:
            os.unlink(os.path.join(hook_dir, name))
        self.wait_plugins(0)

    def tearDown(self):
        for pod_id in self.pods:
            harness.ctl(self.containerd.sock, "stopp", pod_id, check=False)
            harness.ctl(self.containerd.sock, "rmp", pod_id, check=False)
        for p in self.plugins:
            code = p.stop()
            err = p.stderr()
            self.assertEqual(code, 0, "plugin exit %d:\n%s" % (code, err[-4000:]))
            self.assertNotIn("Sanitizer", err)
            self.assertFalse(os.path.exists(p.sock), "socket left behind: " + p.sock)

    # ---- helpers ----

    def path(self, name):
        return os.path.join(self.work, "%s-%s" % (uuid.uuid4().hex[:6], name))

    def plugin(self, binary, *args, **kw):
        p = Plugin(binary, self.path(os.path.basename(binary) + ".sock"), *args, **kw)
        self.plugins.append(p)
        return p

    def wait_plugins(self, count, timeout=5):
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == count, timeout,
                         what="%d plugins registered" % count)

    def ctl(self, *args, check=True):
        return harness.ctl(self.proxy.sock, *args, check=check)

    def run_pod(self, labels=None):
        pod_path, ctr_path = harness.pod_files(self.work, prefix="ex-", labels=labels)
        with open(pod_path) as f:
            pod = json.load(f)
        pod_id = self.ctl("runp", pod_path).stdout.strip()
        self.pods.append(pod_id)
        return pod, pod_id, pod_path, ctr_path

    def run_container(self, labels=None):
        pod, pod_id, pod_path, ctr_path = self.run_pod(labels)
        ctr_id = self.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        return pod, pod_id, ctr_id

    def env_in(self, ctr_id):
        out = self.ctl("exec-sync", ctr_id, "--", "env").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def write_rules(path, rules):
    harness.write_atomic(path, json.dumps({"rules": rules}))


class EnvInject(PluginCase):
    RULES = [
        {"match": {"namespace": "crihook-e2e", "labels": {"app": "crihook-e2e"},
                   "image": "*crihook/busybox*"},
         "envs": {"HTTP_PROXY": "http://proxy:3128", "ON_NODE": "node=${NODE_NAME}"},
         "annotations": {"crihook.test/env-inject": "rule-0 on ${NODE_NAME}"}},
        {"match": {"namespace": "some-other-namespace"}, "envs": {"WRONG_NAMESPACE": "1"}},
        {"match": {"labels": {"app": "crihook-e2e", "tier": "db"}}, "envs": {"WRONG_LABELS": "1"}},
        {"match": {"image": "*nginx*"}, "envs": {"WRONG_IMAGE": "1"}},
        {"envs": {"EVERYONE": "yes", "HTTP_PROXY": "http://later-rule-wins:3128"}},
    ]

    def start(self, rules, policy="Ignore"):
        self.rules_path = self.path("rules.json")
        write_rules(self.rules_path, rules)
        p = self.plugin(ENV_INJECT, "--rules", self.rules_path)
        register(self.proxy.hook_dir, "20-env-inject.json", p.sock, ["PreCreateContainer"],
                 policy=policy, timeout_ms=2000)
        self.wait_plugins(1)
        return p

    def test_matching_rules_inject_env_and_annotations(self):
        p = self.start(self.RULES)
        _, _, ctr_id = self.run_container()
        env = self.env_in(ctr_id)
        node = socket.gethostname()
        self.assertEqual(env.get("ON_NODE"), "node=" + node)
        self.assertEqual(env.get("EVERYONE"), "yes")
        self.assertEqual(env.get("HTTP_PROXY"), "http://later-rule-wins:3128")  # in order
        self.assertEqual(env.get("GREETING"), "hello from crihook")  # the container's own
        for absent in ("WRONG_NAMESPACE", "WRONG_LABELS", "WRONG_IMAGE"):
            self.assertNotIn(absent, env)
        status = json.dumps(json.loads(self.ctl("inspect", ctr_id).stdout))
        self.assertIn('"crihook.test/env-inject": "rule-0 on %s"' % node, status)
        self.assertRegex(p.stderr(), r"hook=PreCreateContainer pod=crihook-e2e/ex-\w+ "
                                     r"container=crihook-e2e-ctr status=OK ms=[0-9.]+")
        plugin = self.proxy.plugins()["plugins"][0]
        self.assertIn("PreCreateContainer", json.dumps(plugin))

    def test_image_rule_matches_kubelet_shaped_request_and_after_a_restart(self):
        # kubelet sends the image ID in image.image and the name the pod spec
        # gave in user_specified_image; a rule on the name must fire, one on
        # the ID form must not, and the store keeps both across a restart
        self.start([{"match": {"image": "*crihook/busybox*"}, "envs": {"BY_NAME": "1"}},
                    {"match": {"image": "sha256:*"}, "envs": {"BY_ID": "1"}}])
        pod, pod_id, pod_path, ctr_path = self.run_pod()
        with open(ctr_path) as f:
            image = json.load(f)["image"]
        self.assertEqual(image["image"], harness.image_id())
        self.assertTrue(image["image"].startswith("sha256:"), image)
        ctr_id = self.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        env = self.env_in(ctr_id)
        self.assertEqual(env.get("BY_NAME"), "1")
        self.assertNotIn("BY_ID", env)
        want = {"container_image": harness.BUSYBOX, "container_image_id": image["image"]}

        def stored():
            ctr = [c for c in self.proxy.store("containers") if c["id"] == ctr_id][0]
            return {k: ctr["container"].get(k) for k in want}
        self.assertEqual(stored(), want)
        self.proxy.kill()  # SIGKILL: the store is rebuilt from containerd
        self.proxy.restart()
        self.assertEqual(stored(), want)

    def test_rules_file_change_is_read_again(self):
        self.start([{"envs": {"VERSION_OF_RULES": "1"}}])
        _, _, first = self.run_container()
        self.assertEqual(self.env_in(first).get("VERSION_OF_RULES"), "1")
        write_rules(self.rules_path, [{"envs": {"VERSION_OF_RULES": "2"}}])
        _, _, second = self.run_container()
        self.assertEqual(self.env_in(second).get("VERSION_OF_RULES"), "2")

    def test_broken_rules_fail_create_with_the_file_named(self):
        p = self.start([{"envs": {"FINE": "1"}}], policy="Fail")
        pod, pod_id, pod_path, ctr_path = self.run_pod()
        harness.write_atomic(self.rules_path, '{"rules": [ {"envs": ')
        out = self.ctl("create", pod_id, ctr_path, pod_path, check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("plugin 20-env-inject failed on PreCreateContainer", out.stderr)
        self.assertIn("INVALID_ARGUMENT", out.stderr)
        self.assertIn("rules file %s" % self.rules_path, out.stderr)
        self.assertRegex(p.stderr(), r"hook=PreCreateContainer .*status=INVALID_ARGUMENT")
        stats = json.dumps(self.proxy.plugins())
        self.assertIn("rules file", stats)  # last error, as crihookctl plugins shows it
        # fixed again: the next create goes through
        write_rules(self.rules_path, [{"envs": {"FIXED": "1"}}])
        ctr_id = self.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
        self.ctl("start", ctr_id)
        self.assertEqual(self.env_in(ctr_id).get("FIXED"), "1")


class AuditLog(PluginCase):
    def start(self, *args):
        self.log_path = self.path("audit.log")
        p = self.plugin(AUDIT_LOG, "--log", self.log_path, *args)
        register(self.proxy.hook_dir, "30-audit-log.json", p.sock, POST_HOOKS)
        self.wait_plugins(1)
        return p

    def lifecycle(self):
        """A pod with one container through start, stop, rm, stopp, rmp."""
        pod, pod_id, ctr_id = self.run_container()
        self.ctl("stop", "-t", "0", ctr_id)
        self.ctl("rm", ctr_id)
        self.ctl("stopp", pod_id)
        self.ctl("rmp", pod_id)
        self.pods.remove(pod_id)
        return pod, ctr_id

    def lines(self, path):
        try:
            with open(path) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return []

    def test_one_line_per_lifecycle_event(self):
        self.start()
        pod, ctr_id = self.lifecycle()
        harness.wait_for(lambda: len(self.lines(self.log_path)) >= 4, 5, what="4 audit lines")
        time.sleep(0.2)
        events = self.lines(self.log_path)
        self.assertEqual([e["hook"] for e in events], POST_HOOKS)
        meta = pod["metadata"]
        for e in events:
            self.assertEqual(e["pod"], "%s/%s" % (meta["namespace"], meta["name"]))
            self.assertEqual(e["pod_uid"], meta["uid"])
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        for e in events[:3]:
            self.assertEqual(e["container"], "crihook-e2e-ctr")
            self.assertEqual(e["container_id"], ctr_id)
        self.assertNotIn("container", events[3])  # a pod event

    def test_rotation_by_size(self):
        max_bytes = 600  # two or three lines a file
        self.start("--max-bytes", str(max_bytes))
        self.lifecycle()
        last_pod, _ = self.lifecycle()
        old = self.log_path + ".1"
        last = "%s/%s" % (last_pod["metadata"]["namespace"], last_pod["metadata"]["name"])

        def last_event_logged():
            events = self.lines(self.log_path)
            return events and events[-1]["hook"] == "PostStopPodSandbox" and \
                events[-1]["pod"] == last
        harness.wait_for(last_event_logged, 5, what="the last event logged")
        self.assertTrue(os.path.exists(old), "no rotation to " + old)
        self.assertFalse(os.path.exists(self.log_path + ".2"))  # one old file kept
        for path in (self.log_path, old):
            self.assertLessEqual(os.path.getsize(path), max_bytes, path)
            self.assertGreater(len(self.lines(path)), 0, path)


class Sdk(PluginCase):
    def audit(self, sock=None, wait=True):
        sock = sock or self.path("audit.sock")
        return Plugin(AUDIT_LOG, sock, "--log", self.path("audit.log"), wait=wait)

    def test_sigterm_exits_zero_and_removes_socket(self):
        p = self.audit()
        self.assertEqual(oct(os.stat(p.sock).st_mode & 0o777), "0o660")
        self.assertEqual(p.stop(), 0, p.stderr())
        self.assertFalse(os.path.exists(p.sock))
        self.assertNotIn("Sanitizer", p.stderr())

    def test_second_plugin_refuses_a_live_socket(self):
        first = self.plugin(AUDIT_LOG, "--log", self.path("audit.log"))
        second = self.audit(first.sock, wait=False)
        self.assertEqual(second.wait(), 1)
        self.assertIn("cannot listen on %s: another process is serving on this socket"
                      % first.sock, second.stderr())
        self.assertTrue(connectable(first.sock), "the first plugin lost its socket")

    def test_stale_socket_is_replaced_and_directory_created(self):
        sock = os.path.join(self.path("dir"), "nested", "audit.sock")
        os.makedirs(os.path.dirname(os.path.dirname(sock)))
        os.makedirs(os.path.dirname(sock))
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock)
        stale.close()  # the file stays, nobody listens
        p = Plugin(AUDIT_LOG, sock, "--log", self.path("audit.log"))
        self.plugins.append(p)
        self.assertTrue(connectable(sock))
        deeper = os.path.join(self.path("fresh"), "a", "b", "audit.sock")
        q = Plugin(AUDIT_LOG, deeper, "--log", self.path("audit.log"))
        self.plugins.append(q)

    def test_unusable_path_is_refused_in_words(self):
        for path, reason in (("/proc/self/no/such/audit.sock", "cannot create directory"),
                             (os.path.join(self.work, "x" * 120 + ".sock"), "longer than"),
                             ("/etc/hostname/audit.sock", "Not a directory")):
            with self.subTest(path=path):
                p = self.audit(path, wait=False)
                self.assertEqual(p.wait(), 1)
                self.assertIn("cannot listen on %s: " % path, p.stderr())
                self.assertIn(reason, p.stderr())

    def test_unknown_and_unimplemented_methods(self):
        p = self.plugin(AUDIT_LOG, "--log", self.path("audit.log"))
        answer = harness.raw_unary(p.sock, HOOK_SERVICE + "NoSuchHook", b"")
        self.assertEqual(answer.code, grpc.StatusCode.UNIMPLEMENTED)
        answer = harness.raw_unary(p.sock, HOOK_SERVICE + "PreCreateContainerHook", b"")
        self.assertEqual(answer.code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("PreCreateContainer", answer.details)
        answer = harness.raw_unary(p.sock, HOOK_SERVICE + "PostStartContainerHook", b"\xff\xff")
        self.assertEqual(answer.code, grpc.StatusCode.INVALID_ARGUMENT)
        answer = harness.raw_unary(p.sock, HOOK_SERVICE + "PostStartContainerHook", b"")
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)

    def test_sigterm_while_calls_arrive(self):
        p = self.audit()
        answers = []

        def caller():
            ch = harness.channel(p.sock)
            while True:
                a = harness.raw_unary(p.sock, HOOK_SERVICE + "PostStartContainerHook", b"", ch=ch)
                answers.append(a.code)
                if a.code != grpc.StatusCode.OK:
                    break
            ch.close()

        threads = [threading.Thread(target=caller) for _ in range(4)]
        for t in threads:
            t.start()
        harness.wait_for(lambda: len(answers) > 20, 5, what="calls answered")
        p.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(10)
        self.assertEqual(p.wait(), 0, p.stderr())
        self.assertFalse(os.path.exists(p.sock))
        self.assertNotIn("Sanitizer", p.stderr())


if __name__ == "__main__":
    harness.main()
