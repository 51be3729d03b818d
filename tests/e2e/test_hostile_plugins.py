# SPDX-License-Identifier: Apache-2.0
"""End to end: hook answers that are huge or absurd are refused, and never
hold the data plane (issue 9, items 4 and 5).

crihookd in front of the harness's containerd; hook servers that answer on
purpose what no plugin should: 100k labels, 100k envs, a ~16 MiB answer
(RawHookServer below, which sends bytes built by hand), and values that
cannot be right (cgroup_parent ../../../etc, cpu_shares -5, cpu_quota
-2^62, an env key with '=', a NUL in a value; hookserver.py). Each is a
failed hook naming the plugin and the cause; the failure policy applies:
Fail refuses the CRI call, Ignore lets it through without the answer.
While a huge answer is handled, unhooked Version calls keep completing.
"""

import os
import threading
import time
import unittest
from concurrent import futures

import grpc

import harness
from harness import V1, HookServer, pb_bytes, register

SERVICE = "/runtime.v1alpha1.RuntimeHookService/"


def entries(field, count, value_size=8):
    """`count` map entries KEY_i=<value> of map field `field`, encoded."""
    value = "v" * value_size
    return b"".join(pb_bytes(field, pb_bytes(1, "KEY_%d" % i) + pb_bytes(2, value))
                    for i in range(count))


class RawHookServer:
    """A hook server in this process that answers each hook with fixed
    bytes (or an empty answer), after counting the call."""

    def __init__(self, sock, answers):
        self.answers = answers
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_send_message_length", 64 << 20)])
        self.server.add_generic_rpc_handlers((self,))
        self.server.add_insecure_port("unix://" + sock)
        self.server.start()

    def service(self, details):
        hook = details.method[len(SERVICE):-len("Hook")]

        def handle(request, context):
            self.calls += 1
            return self.answers.get(hook, b"")

        return grpc.unary_unary_rpc_method_handler(handle)

    def stop(self):
        self.server.stop(None)


class HostileCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = harness.Containerd.shared()
        cls.proxy = harness.Crihookd(cls.containerd.sock)
        cls.work = harness.tmpdir("crihook-hp-")

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.containerd.stop()
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def setUp(self):
        self.pods, self.servers = [], []

    def tearDown(self):
        for name in os.listdir(self.proxy.hook_dir) if os.path.isdir(self.proxy.hook_dir) else []:
            os.unlink(os.path.join(self.proxy.hook_dir, name))
        self.wait_plugins(0)
        for s in self.servers:
            s.stop()
        for pod_id in self.pods:
            harness.ctl(self.containerd.sock, "stopp", pod_id, check=False)
            harness.ctl(self.containerd.sock, "rmp", pod_id, check=False)

    def wait_plugins(self, count, timeout=5):
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == count, timeout,
                         what="%d plugins registered" % count)

    def plug(self, name, hooks, policy, answers=None, config=None):
        """A raw (answers: bytes per hook) or hookserver.py (config) server
        registered as `name`."""
        if answers is not None:
            sock = os.path.join(self.work, name + ".sock")
            self.servers.append(RawHookServer(sock, answers))
        else:
            server = HookServer(name, config, self.work)
            self.servers.append(server)
            sock = server.sock
        register(self.proxy.hook_dir, name + ".json", sock, hooks, policy=policy,
                 timeout_ms=30000)
        self.wait_plugins(1)

    def ctl(self, *args, check=True):
        return harness.ctl(self.proxy.sock, *args, check=check)

    def wait_log(self, text):
        """Waits for `text` in the log (a writer thread writes it, log.h)."""
        harness.wait_for(lambda: text in self.proxy.read_log(), 5, what=repr(text))

    def run_pod(self, check=False):
        pod_path, ctr_path = harness.pod_files(self.work, prefix="hp-")
        out = self.ctl("runp", pod_path, check=check)
        if out.returncode == 0:
            self.pods.append(out.stdout.strip())
        return out, pod_path, ctr_path


class HugeAnswers(HostileCase):
    """Answers beyond the bounds fail the hook at once, and Version calls
    (no hook) flow while crihookd reads and refuses them."""

    def refused_while_version_flows(self, name, hook, answer, policy="Fail"):
        self.plug(name, [hook], policy, answers={hook: answer})
        stop, latencies, errors = threading.Event(), [], []

        def versions():
            with harness.channel(self.proxy.sock) as ch:
                call = ch.unary_unary(V1 + "Version")
                while not stop.is_set():
                    start = time.monotonic()
                    try:
                        call(b"", timeout=10)
                        latencies.append(time.monotonic() - start)
                    except grpc.RpcError as e:
                        errors.append(e)

        thread = threading.Thread(target=versions)
        thread.start()
        start = time.monotonic()
        try:
            out, pod_path, ctr_path = self.run_pod()
            if hook != "PreRunPodSandbox":
                self.assertEqual(out.returncode, 0, out.stderr)
                out = self.ctl("create", out.stdout.strip(), ctr_path, pod_path, check=False)
        finally:
            took = time.monotonic() - start
            stop.set()
            thread.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(latencies), 0, "no Version call completed")
        print("\n# %s (%d bytes): call answered in %.0f ms; %d Version calls meanwhile, "
              "slowest %.1f ms" % (name, len(answer), took * 1e3, len(latencies),
                                   max(latencies) * 1e3))
        return out

    def test_100k_labels_refused(self):
        out = self.refused_while_version_flows("labels-100k", "PreRunPodSandbox",
                                               entries(1, 100000))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("plugin labels-100k failed on PreRunPodSandbox", out.stderr)
        self.assertIn("labels has more than 10000 entries", out.stderr)

    def test_100k_envs_ignored(self):
        out = self.refused_while_version_flows("envs-100k", "PreCreateContainer",
                                               entries(4, 100000), policy="Ignore")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.wait_log("hook failed, ignored plugin=envs-100k hook=PreCreateContainer")
        self.assertIn("container_envs has more than 10000 entries", self.proxy.read_log())

    def test_16mib_answer_refused(self):
        answer = pb_bytes(3, "/" + "x" * (16 * 1024 * 1024 - 100))  # cgroup_parent
        out = self.refused_while_version_flows("answer-16m", "PreRunPodSandbox", answer)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("plugin answer-16m failed on PreRunPodSandbox", out.stderr)
        self.assertIn("RESOURCE_EXHAUSTED", out.stderr)
        self.assertIn("4194304", out.stderr)  # the bound

    def test_answer_within_the_bounds_is_merged(self):
        self.plug("labels-9000", ["PreRunPodSandbox"], "Fail",
                  answers={"PreRunPodSandbox": entries(1, 9000)})
        start = time.monotonic()
        out, _, _ = self.run_pod()
        took = time.monotonic() - start
        self.assertEqual(out.returncode, 0, out.stderr)
        print("\n# 9000 labels merged: RunPodSandbox took %.0f ms" % (took * 1e3))
        status = harness.ctl(self.containerd.sock, "inspectp",
                             out.stdout.strip()).stdout
        self.assertIn('"KEY_8999"', status)


class AbsurdAnswers(HostileCase):
    """Values that cannot be right: a failed hook naming the plugin, the
    field and the value."""

    POD_CASES = {
        "cgroup-dots": ({"cgroup_parent": "../../../etc"},
                        'cgroup_parent \\"../../../etc\\" is not an absolute path'),
        "shares": ({"resources": {"cpu_shares": -5}},
                   "resources.cpu_shares -5 is out of range"),
        "quota": ({"resources": {"cpu_quota": str(-2 ** 62)}},
                  "resources.cpu_quota -4611686018427387904 is out of range"),
        "label-nul": ({"labels": {"team": "a\u0000b"}},
                      'labels[\\"team\\"] value contains a NUL byte'),
    }
    CTR_CASES = {
        "env-eq": ({"container_envs": {"A=B": "c"}}, "container_envs key \\\"A=B\\\" contains '='"),
        "env-nul": ({"container_envs": {"FOO": "x\u0000y"}},
                    'container_envs[\\"FOO\\"] value contains a NUL byte'),
    }

    def test_fail_policy_refuses_each(self):
        for name, (answer, cause) in self.POD_CASES.items():
            with self.subTest(name=name):
                self.plug(name, ["PreRunPodSandbox"], "Fail",
                          config={"PreRunPodSandbox": {"answer": answer}})
                out, _, _ = self.run_pod()
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("plugin %s failed on PreRunPodSandbox" % name, out.stderr)
                self.assertIn(cause.replace('\\"', '"'), out.stderr.replace('\\"', '"'))
                self.tearDown()
                self.setUp()
        for name, (answer, cause) in self.CTR_CASES.items():
            with self.subTest(name=name):
                self.plug(name, ["PreCreateContainer"], "Fail",
                          config={"PreCreateContainer": {"answer": answer}})
                out, pod_path, ctr_path = self.run_pod()
                self.assertEqual(out.returncode, 0, out.stderr)
                out = self.ctl("create", out.stdout.strip(), ctr_path, pod_path, check=False)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("plugin %s failed on PreCreateContainer" % name, out.stderr)
                self.assertIn(cause.replace('\\"', '"'), out.stderr.replace('\\"', '"'))
                self.tearDown()
                self.setUp()

    def test_ignore_policy_skips_the_answer(self):
        self.plug("shares-ignored", ["PreRunPodSandbox"], "Ignore",
                  config={"PreRunPodSandbox": {"answer": {
                      "labels": {"added": "yes"}, "resources": {"cpu_shares": -5}}}})
        out, _, _ = self.run_pod()
        self.assertEqual(out.returncode, 0, out.stderr)
        status = harness.ctl(self.containerd.sock, "inspectp",
                             out.stdout.strip()).stdout
        self.assertNotIn('"added"', status, "a refused answer was partly applied")
        self.wait_log("hook failed, ignored plugin=shares-ignored hook=PreRunPodSandbox")
        self.assertIn("resources.cpu_shares -5 is out of range", self.proxy.read_log())


if __name__ == "__main__":
    harness.main()
