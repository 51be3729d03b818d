# SPDX-License-Identifier: Apache-2.0
"""End to end: one hook call is recorded once, and the metrics, the
per-plugin stats (`crihookctl plugins`) and the live trace agree on it.

crihookd in front of the fake backend; three Ignore-policy plugins on
PreStartContainer: one that answers well, one whose answer fails the value
rules (an env key with '='), one whose socket does not exist. A few
StartContainer calls go through while `crihookctl trace --json` watches.
For every plugin, the hook-call counts by result in /metrics, the calls and
failures of `crihookctl plugins --json` and the results in the trace must
be the same numbers (before observe/outcome.h, the refused answer counted
as ok in the metrics, as an error in the trace and as a failure in the
stats).
"""

import collections
import json
import os
import re
import signal
import subprocess
import unittest

import grpc

import harness
from fake_backend import FakeBackend
from harness import V1, HookServer, pb_bytes, register

CALLS = 3
HOOK = "PreStartContainer"


def hook_results(body, plugin):
    """{result: count} of crihook_hook_calls_total for plugin and HOOK."""
    out = {}
    for line in body.splitlines():
        m = re.match(r'^crihook_hook_calls_total\{(.*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels["plugin"] == plugin and labels["hook"] == HOOK:
            out[labels["result"]] = int(float(m.group(2)))
    return out


class HookOutcome(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-out-")
        self.fake = FakeBackend(os.path.join(self.dir, "fake.sock"))
        self.proxy = harness.Crihookd(self.fake.sock)
        self.servers = []
        self.tracer = None

    def tearDown(self):
        if self.tracer and self.tracer.poll() is None:
            self.tracer.kill()
            self.tracer.wait()
        for s in self.servers:
            s.stop()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.fake.stop()

    def trace(self):
        self.trace_path = os.path.join(self.dir, "trace.out")
        out = open(self.trace_path, "w")
        attached = self.proxy.read_log().count("trace watcher attached")
        self.tracer = subprocess.Popen([harness.CRIHOOKCTL, "--admin", "unix://" + self.proxy.admin,
                                        "trace", "--json", "--method", "StartContainer"],
                                       stdout=out, stderr=subprocess.PIPE, text=True)
        out.close()
        harness.wait_for(lambda: self.proxy.read_log().count("trace watcher attached") > attached,
                         10, what="trace watcher")

    def events(self):
        with open(self.trace_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_metrics_stats_and_trace_agree(self):
        ok = HookServer("ok", {}, self.dir)
        bad = HookServer("bad", {HOOK: {"answer": {"container_envs": {"A=B": "x"}}}}, self.dir)
        self.servers += [ok, bad]
        register(self.proxy.hook_dir, "10-ok.json", ok.sock, [HOOK])
        register(self.proxy.hook_dir, "20-bad-answer.json", bad.sock, [HOOK])
        register(self.proxy.hook_dir, "30-no-socket.json",
                 os.path.join(self.dir, "nobody-listens.sock"), [HOOK])
        harness.wait_for(lambda: len(self.proxy.plugins()["plugins"]) == 3, 5, what="plugins")
        self.trace()
        ch = harness.channel(self.proxy.sock)
        for _ in range(CALLS):  # every plugin fails under Ignore: the call goes on
            answer = harness.raw_unary(None, V1 + "StartContainer", pb_bytes(1, "c1"), ch=ch)
            self.assertEqual(answer.code, grpc.StatusCode.UNIMPLEMENTED, answer)
        ch.close()
        harness.wait_for(lambda: len(self.events()) >= CALLS, 10, what="the trace")
        self.tracer.send_signal(signal.SIGINT)
        self.tracer.communicate(timeout=10)

        metrics = harness.http_get("/metrics", unix=self.proxy.admin)[1]
        stats = {p["name"]: p for p in self.proxy.plugins()["plugins"]}
        traced = collections.defaultdict(collections.Counter)
        for ev in self.events():
            for h in ev.get("hooks", []):
                self.assertEqual(h["hook"], HOOK)
                traced[h["plugin"]][h["result"]] += 1

        expected = {"10-ok": "ok", "20-bad-answer": "bad_answer", "30-no-socket": "error"}
        for plugin, result in expected.items():
            counts = hook_results(metrics, plugin)
            self.assertEqual(counts[result], CALLS, (plugin, counts))
            failures = sum(n for r, n in counts.items() if r != "ok")
            self.assertEqual(stats[plugin]["calls"], sum(counts.values()), (plugin, stats[plugin]))
            self.assertEqual(stats[plugin]["failures"], failures, (plugin, stats[plugin]))
            self.assertEqual(dict(traced[plugin]), {r: n for r, n in counts.items() if n},
                             (plugin, traced[plugin], counts))
        self.assertIn("contains '='", stats["20-bad-answer"]["last_error"])
        self.assertIn("UNAVAILABLE", stats["30-no-socket"]["last_error"])
        self.assertEqual(stats["10-ok"]["last_error"], "")


if __name__ == "__main__":
    harness.main()
