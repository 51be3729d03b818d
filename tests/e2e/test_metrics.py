# SPDX-License-Identifier: Apache-2.0
"""End to end: GET /metrics on the admin socket counts what the test did.

CRI calls per method and status code with latency histograms, hook calls per
plugin and result, Fail-policy rejections, registry and store gauges; the
numbers are checked against the calls this test makes.
"""

import os
import re
import unittest

import grpc

import harness
from fake_backend import FakeBackend
from harness import V1, HookServer, pb_bytes, register


def scrape(admin):
    code, body = harness.http_get("/metrics", unix=admin)
    assert code == 200, code
    return body


def value(body, name, **labels):
    """The sample `name{labels}`; labels must all match (others may exist)."""
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


class Metrics(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-met-")
        self.backend = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend)
        self.proxy = harness.Crihookd(self.backend)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.fake.stop()

    def test_calls_hooks_and_gauges(self):
        ch = harness.channel(self.proxy.sock)
        for _ in range(7):
            harness.raw_unary(None, "/fake.Svc/Echo", b"x", ch=ch)
        for _ in range(3):
            harness.raw_unary(None, "/fake.Svc/Fail", b"", ch=ch, metadata=[("x-code", "NOT_FOUND")])
        ok = HookServer("ok", {}, self.dir)
        bad = HookServer("bad", {"PreStartContainer": {"behaviour": "error:INTERNAL:no"}}, self.dir)
        self.servers += [ok, bad]
        register(self.proxy.hook_dir, "10-ok.json", ok.sock, ["PreStartContainer"])
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == 1, 3, what="plugin")
        start = V1 + "StartContainer"
        for _ in range(2):  # hook OK, then the fake backend answers UNIMPLEMENTED
            answer = harness.raw_unary(None, start, pb_bytes(1, "c1"), ch=ch)
            self.assertEqual(answer.code, grpc.StatusCode.UNIMPLEMENTED)
        register(self.proxy.hook_dir, "20-bad.json", bad.sock, ["PreStartContainer"], policy="Fail")
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == 2, 3, what="plugins")
        rejected = harness.raw_unary(None, start, pb_bytes(1, "c1"), ch=ch)
        self.assertIn("plugin 20-bad", rejected.details)
        ch.close()

        body = scrape(self.proxy.admin)
        # methods outside the CRI table share method="unknown"
        self.assertEqual(value(body, "crihook_cri_calls_total", method="unknown", code="OK"), 7)
        self.assertEqual(value(body, "crihook_cri_calls_total", method="unknown",
                               code="NOT_FOUND"), 3)
        self.assertEqual(value(body, "crihook_cri_calls_total", method=start,
                               code="UNIMPLEMENTED"), 2)
        self.assertEqual(value(body, "crihook_cri_call_duration_seconds_count",
                               method="unknown"), 10)
        self.assertEqual(value(body, "crihook_cri_call_duration_seconds_bucket",
                               method="unknown", le="+Inf"), 10)
        self.assertEqual(value(body, "crihook_hook_calls_total", plugin="10-ok",
                               hook="PreStartContainer", result="ok"), 3)
        self.assertEqual(value(body, "crihook_hook_calls_total", plugin="20-bad",
                               hook="PreStartContainer", result="error"), 1)
        self.assertEqual(value(body, "crihook_hook_rejections_total", plugin="20-bad",
                               hook="PreStartContainer"), 1)
        self.assertEqual(value(body, "crihook_plugins"), 2)
        self.assertEqual(value(body, "crihook_store_pods"), 0)
        self.assertGreaterEqual(value(body, "crihook_registry_generation"), 2)


if __name__ == "__main__":
    harness.main()
