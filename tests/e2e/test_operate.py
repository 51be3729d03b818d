# SPDX-License-Identifier: Apache-2.0
"""End to end: what an operator sees of crihookd on a node.

- /healthz and `crihookctl status` with a real containerd: ready; the
  runtime killed (503, status exits 1 and says why); the runtime back (ready
  again, and crihook_backend_connects_total counted the reconnect);
- a store rebuild that failed at start because the runtime was down is
  retried: /healthz turns ready by itself once the runtime is back, and the
  store then holds the pod made before crihookd started;
- --metrics-address: /metrics and /healthz over TCP, everything else 403;
- --metrics off: no call series are recorded;
- --log-format json: every log line is one JSON object with fields;
- sd_notify: READY=1 once serving, STOPPING=1 on SIGTERM.
"""

import json
import os
import socket
import subprocess
import time
import unittest

import harness
from harness import V1, http_get


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def run_pod(sock, directory):
    pod_path, _ = harness.pod_files(directory, prefix="operate-")
    return harness.ctl(sock, "runp", pod_path).stdout.strip()


class Health(unittest.TestCase):
    """The runtime goes away and comes back, with crihookd in front."""

    @classmethod
    def setUpClass(cls):
        cls.ctd = harness.Containerd()  # private: this test kills it

    @classmethod
    def tearDownClass(cls):
        cls.ctd.stop()

    def setUp(self):
        self.port = free_port()
        self.proxy = harness.Crihookd("unix://" + self.ctd.sock, "--metrics-address",
                                      "127.0.0.1:%d" % self.port)
        self.admin = self.proxy.admin

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())

    def status(self):
        out = self.proxy.ctl("status", "--json", check=False)
        return out.returncode, json.loads(out.stdout)

    def test_ready_down_and_back(self):
        code, body = http_get("/healthz", unix=self.admin)
        self.assertEqual(code, 200, body)
        self.assertTrue(json.loads(body)["ready"])
        rc, st = self.status()
        self.assertEqual(rc, 0)
        self.assertTrue(st["ready"])
        self.assertEqual(st["backend"]["path"], self.ctd.sock)
        self.assertEqual(st["backend"]["chosen_by"], "set by flag or environment")
        self.assertEqual(st["backend"]["runtime_name"], "containerd")
        self.assertTrue(st["backend"]["answers"])
        self.assertEqual(st["listen"], self.proxy.sock)
        self.assertTrue(st["store"]["rebuilt"])
        self.assertGreaterEqual(st["uptime_seconds"], 0)
        human = self.proxy.ctl("status").stdout
        self.assertIn("ready:     yes", human)
        self.assertIn("containerd", human)
        harness.wait_for(lambda: metric(http_get("/metrics", unix=self.admin)[1],
                                        "crihook_backend_connected") == 1, 5, what="connected")
        connects = metric(http_get("/metrics", unix=self.admin)[1], "crihook_backend_connects_total")
        self.assertGreaterEqual(connects, 1)

        self.ctd.kill()
        code, body = http_get("/healthz", unix=self.admin)
        self.assertEqual(code, 503, body)
        self.assertFalse(json.loads(body)["ready"])
        self.assertEqual(http_get("/healthz", tcp=("127.0.0.1", self.port))[0], 503)
        rc, st = self.status()
        self.assertEqual(rc, 1, "status must exit 1 when not ready")
        self.assertFalse(st["backend"]["answers"])
        self.assertIn("DOES NOT ANSWER", self.proxy.ctl("status", check=False).stdout)
        harness.wait_for(lambda: metric(http_get("/metrics", unix=self.admin)[1],
                                        "crihook_backend_connected") == 0, 5, what="disconnected")

        self.ctd.restart()
        harness.wait_for(lambda: http_get("/healthz", unix=self.admin)[0] == 200, 20,
                         what="ready again")
        harness.wait_for(lambda: metric(http_get("/metrics", unix=self.admin)[1],
                                        "crihook_backend_connects_total") >= connects + 1, 5,
                         what="the reconnect to be counted")
        answer = harness.raw_unary(self.proxy.sock, V1 + "Version")
        self.assertEqual(answer.code.name, "OK")

    def test_metrics_address_serves_only_metrics_and_healthz(self):
        harness.raw_unary(self.proxy.sock, V1 + "Version")
        code, body = http_get("/metrics", tcp=("127.0.0.1", self.port))
        self.assertEqual(code, 200)
        self.assertIn('crihook_cri_calls_total{method="/runtime.v1.RuntimeService/Version",'
                      'code="OK"}', body)
        self.assertEqual(http_get("/healthz", tcp=("127.0.0.1", self.port))[0], 200)
        for path in ("/plugins", "/store/pods", "/status"):
            self.assertEqual(http_get(path, tcp=("127.0.0.1", self.port))[0], 403, path)
        self.assertEqual(http_get("/nope", unix=self.admin)[0], 404)


class RebuildRetry(unittest.TestCase):
    def test_store_rebuilt_once_runtime_returns(self):
        ctd = harness.Containerd()
        d = harness.tmpdir("crihook-op-")
        proxy = None
        try:
            pod_id = run_pod(ctd.sock, d)  # made directly on the runtime
            ctd.kill()
            proxy = harness.Crihookd("unix://" + ctd.sock)
            self.assertIn("store not rebuilt", proxy.read_log())
            code, body = http_get("/healthz", unix=proxy.admin)
            self.assertEqual(code, 503)
            self.assertIn("not rebuilt", json.loads(body)["store"])
            ctd.restart()
            harness.wait_for(lambda: http_get("/healthz", unix=proxy.admin)[0] == 200, 20,
                             what="ready after the retry")
            self.assertIn(pod_id, [p["id"] for p in proxy.store("pods")])
            self.assertIn("store rebuilt from the backend on retry", proxy.read_log())
        finally:  # containerd stops whatever crihookd's exit says
            code = proxy.stop() if proxy else 0
            ctd.stop()
        self.assertEqual(code, 0, proxy.read_log())


class Options(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctd = harness.Containerd.shared()

    @classmethod
    def tearDownClass(cls):
        cls.ctd.stop()  # only stops a containerd of its own (no shared one)

    def test_metrics_off_records_no_calls(self):
        proxy = harness.Crihookd("unix://" + self.ctd.sock, "--metrics", "off")
        try:
            harness.raw_unary(proxy.sock, V1 + "Version")
            body = http_get("/metrics", unix=proxy.admin)[1]
            self.assertNotIn("crihook_cri_calls_total{", body)
            self.assertEqual(metric(body, "crihook_store_rebuilt"), 1)
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.read_log())

    def test_metrics_on_every_address(self):
        port = free_port()
        proxy = harness.Crihookd("unix://" + self.ctd.sock, "--metrics-address", ":%d" % port)
        try:
            self.assertIn("metrics served over HTTP address=* port=%d" % port, proxy.read_log())
            code, body = http_get("/healthz", tcp=("127.0.0.1", port))
            self.assertEqual(code, 200, body)
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.read_log())

    def test_json_logs(self):
        proxy = harness.Crihookd("unix://" + self.ctd.sock, "--log-format", "json")
        self.assertEqual(proxy.stop(), 0, proxy.read_log())
        lines = [line for line in proxy.read_log().splitlines() if line.strip()]
        self.assertGreater(len(lines), 2)
        records = [json.loads(line) for line in lines]  # each line is one object
        for r in records:
            self.assertEqual(set(r) >= {"time", "level", "component", "msg"}, True, r)
        serving = [r for r in records if r["msg"].startswith("serving ")]
        self.assertEqual(len(serving), 1, records)
        self.assertEqual(serving[0]["listen"], proxy.sock)
        self.assertEqual(serving[0]["level"], "info")
        self.assertEqual(serving[0]["component"], "main")

    def test_bad_option_values_are_refused(self):
        for args in (["--log-format", "xml"], ["--metrics", "maybe"],
                     ["--metrics-address", "9464"], ["--metrics-address", "127.0.0.1:99999"]):
            out = subprocess.run([harness.CRIHOOKD] + args, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=10)
            self.assertEqual(out.returncode, 2, args)
            self.assertIn(args[0], out.stderr)

    def test_sd_notify(self):
        d = harness.tmpdir("crihook-nt-")
        abstract = "crihook-notify-%d" % os.getpid()
        # a path, as systemd gives, and an abstract name ("@...")
        for bind_to, env_value in ((os.path.join(d, "notify.sock"),) * 2,
                                   ("\0" + abstract, "@" + abstract)):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(bind_to)
            s.settimeout(20)
            proxy = harness.Crihookd("unix://" + self.ctd.sock, env={"NOTIFY_SOCKET": env_value})
            try:
                self.assertIn("READY=1", s.recv(4096).decode())
            finally:
                self.assertEqual(proxy.stop(), 0, proxy.read_log())
            self.assertIn("STOPPING=1", s.recv(4096).decode())
            s.close()


if __name__ == "__main__":
    harness.main()
