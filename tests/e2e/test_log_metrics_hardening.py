# SPDX-License-Identifier: Apache-2.0
"""End to end: the scrape and the log stay well-formed whatever the input,
and logging never blocks a call (issue 9, items 6 and 7).

crihookd in front of the fake backend (fake_backend.py). Metrics: a client
sends thousands of invented method names and paths with a quote or a
newline, a plugin's file name has a quote, a backslash, a newline and a
byte that is not UTF-8; the scrape is read by a strict parser of the
Prometheus text format (parse_exposition below) and its series stay
bounded; a removed plugin's series go. Logging: crihookd's stderr is a
pipe nobody reads while thousands of calls each log a line (a failing
Ignore plugin): every call completes, and the scrape counts the dropped
lines; a registration file whose endpoint holds a newline yields one line.
"""

import math
import os
import re
import subprocess
import time
import unittest

import grpc

import harness
from fake_backend import FakeBackend
from harness import (V1, H2_PREFACE, HookServer, grpc_headers, h2_frame, pb_bytes, register,
                     send_raw)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"


def parse_labels(text):
    """{name: value} of 'a="x",b="y"'; a bad escape or shape raises."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(LABEL_NAME + '="').match(text, i)
        if not m:
            raise ValueError("bad label at %r" % text[i:])
        name, i, value = m.group(0)[:-2], m.end(), []
        while True:
            c = text[i]
            if c == '"':
                break
            if c == "\n":
                raise ValueError("raw newline in a label value")
            if c == "\\":
                esc = text[i + 1]
                if esc not in '\\"n':
                    raise ValueError("bad escape \\%s" % esc)
                value.append("\n" if esc == "n" else esc)
                i += 2
                continue
            value.append(c)
            i += 1
        if name in labels:
            raise ValueError("label %s twice" % name)
        labels[name] = "".join(value)
        i += 1
        if i < len(text):
            if text[i] != ",":
                raise ValueError("expected ',' at %r" % text[i:])
            i += 1
    return labels


def parse_exposition(body):
    """[(name, labels, value)] of a text-format exposition (bytes), strictly:
    UTF-8, HELP/TYPE before their samples, every sample of a declared
    family, well-formed labels and values, no sample twice (the format's
    own rules; empty lines are allowed)."""
    text = body.decode("utf-8")  # raises on invalid UTF-8
    assert text.endswith("\n"), "no final newline"
    types, samples, seen = {}, [], set()
    for line in text[:-1].split("\n"):
        if line == "":  # "empty lines are ignored"
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert re.fullmatch(NAME, parts[2]), line
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert parts[2] not in types, "TYPE twice: " + line
                types[parts[2]] = parts[3]
            continue
        m = re.fullmatch("(" + NAME + r")(?:\{(.*)\})? (\S+)", line)
        assert m, "bad sample line %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or types.get(family) == "histogram", "undeclared " + name
        v = float(value)
        assert not math.isnan(v) or value == "NaN", line
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "sample twice: " + line
        seen.add(key)
        samples.append((name, labels, v))
    return samples


def scrape(proxy):
    code, body = harness.http_get("/metrics", unix=proxy.admin, raw=True)
    assert code == 200, (code, body[:200])
    return parse_exposition(body)


def raw_call(sock_path, path):
    """One gRPC call with `path` (bytes) as :path, written as raw HTTP/2, so
    that no client library cleans it; returns what came back."""
    return send_raw(sock_path, H2_PREFACE + h2_frame(4, 0, 0, b"") +
                    h2_frame(1, 0x4, 1, grpc_headers(path)) +
                    h2_frame(0, 0x1, 1, b"\x00\x00\x00\x00\x00"), read_for=1.0)


class MetricsWellFormed(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-lmh-")
        self.backend = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend)
        self.proxy = harness.Crihookd(self.backend)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log()[-3000:])
        self.fake.stop()

    def plugin_count(self):
        return [v for name, _, v in scrape(self.proxy) if name == "crihook_plugins"][0]

    def test_invented_methods_share_one_series(self):
        with harness.channel(self.proxy.sock) as ch:
            for i in range(2000):
                harness.raw_unary(None, "/x.Svc/Method%d" % i, b"", ch=ch)
            harness.raw_unary(None, V1 + "Version", b"", ch=ch)
        for path in (b'/x.Svc/Quo"te', b"/x.Svc/New\nline} 1\nfake_series 1",
                     b'/runtime.v1.RuntimeService/Version"', b"/x.Svc/\xff\xfe"):
            raw_call(self.proxy.sock, path)
        samples = scrape(self.proxy)
        methods = {labels["method"] for name, labels, _ in samples
                   if name == "crihook_cri_calls_total"}
        print("\n# method label values after 2004 invented methods: %s" % sorted(methods))
        self.assertEqual(methods, {"unknown", V1 + "Version"})
        unknown = sum(v for name, labels, v in samples
                      if name == "crihook_cri_calls_total" and labels["method"] == "unknown")
        self.assertGreaterEqual(unknown, 2000)
        self.assertFalse([s for s in samples if s[0] == "fake_series"])

    def test_odd_plugin_names_are_escaped_and_removed_plugins_go(self):
        ok = HookServer("ok", {}, self.dir)
        self.servers.append(ok)
        odd = b'odd"q\\b\nn\xff'
        register(self.proxy.hook_dir, "placeholder.json", ok.sock, ["PreStartContainer"])
        os.rename(os.path.join(self.proxy.hook_dir, "placeholder.json"),
                  os.path.join(self.proxy.hook_dir.encode(), odd + b".json"))
        harness.wait_for(lambda: self.plugin_count() == 1, 5, what="plugin")
        with harness.channel(self.proxy.sock) as ch:
            harness.raw_unary(None, V1 + "StartContainer", pb_bytes(1, "c1"), ch=ch)
        samples = scrape(self.proxy)
        plugins = {labels["plugin"] for name, labels, _ in samples
                   if name == "crihook_hook_calls_total"}
        self.assertEqual(plugins, {odd.decode("utf-8", "replace")})
        os.unlink(os.path.join(self.proxy.hook_dir.encode(), odd + b".json"))
        harness.wait_for(lambda: self.plugin_count() == 0, 5, what="no plugin")
        samples = scrape(self.proxy)
        self.assertFalse([s for s in samples if "plugin" in s[1]], "a removed plugin's series")


class LogNeverBlocks(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-lnb-")
        self.backend = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend)

    def tearDown(self):
        self.fake.stop()

    def test_calls_flow_with_stderr_on_a_pipe_nobody_reads(self):
        sock, admin = os.path.join(self.dir, "crihook.sock"), os.path.join(self.dir, "admin.sock")
        hook_dir = os.path.join(self.dir, "hookserver.d")
        register(hook_dir, "10-absent.json", os.path.join(self.dir, "nobody.sock"),
                 ["PreStartContainer"], policy="Ignore")
        proc = subprocess.Popen(
            [harness.CRIHOOKD, "--listen", "unix://" + sock, "--backend", self.backend,
             "--hook-dir", hook_dir, "--admin-socket", "unix://" + admin,
             "--log-level", "debug"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # never read
        try:
            harness.wait_for(lambda: os.path.exists(sock) and harness.raw_unary(
                sock, V1 + "Version", timeout=1).code == grpc.StatusCode.OK, 20,
                what="crihookd to serve")
            start, codes = time.monotonic(), {}
            with harness.channel(sock) as ch:
                for i in range(3000):
                    method = "StartContainer" if i % 2 else "Version"
                    code = harness.raw_unary(None, V1 + method, pb_bytes(1, "c%d" % i), ch=ch,
                                             timeout=10).code
                    codes[code] = codes.get(code, 0) + 1
            took = time.monotonic() - start
            # StartContainer: the fake backend answers UNIMPLEMENTED after the hook
            self.assertEqual(codes, {grpc.StatusCode.OK: 1500,
                                     grpc.StatusCode.UNIMPLEMENTED: 1500})

            class Proxy:  # what scrape() needs
                pass
            p = Proxy()
            p.admin = admin
            dropped = [v for name, _, v in scrape(p) if name == "crihook_log_dropped_total"][0]
            print("\n# 3000 calls in %.1f s with stderr stuck; %d log lines dropped"
                  % (took, dropped))
            self.assertGreater(dropped, 0)
        finally:
            proc.terminate()
            proc.wait(30)  # exits although its last lines cannot be written
            proc.stdout.close()

    def test_a_newline_in_a_registration_field_stays_in_one_line(self):
        proxy = harness.Crihookd(self.backend)
        try:
            forged = "/run/x.sock\n2026-01-01T00:00:00.000Z error main: forged line"
            register(proxy.hook_dir, "10-forger.json", forged, ["PreStartContainer"])
            harness.wait_for(lambda: "plugin added name=10-forger" in proxy.read_log(), 5,
                             what="the plugin's log line")
        finally:
            self.assertEqual(proxy.stop(), 0)
        lines = proxy.read_log().splitlines()
        self.assertFalse([line for line in lines if line.startswith("2026-01-01")], lines)
        added = [line for line in lines if "plugin added name=10-forger" in line]
        self.assertEqual(len(added), 1)
        self.assertIn("endpoint=/run/x.sock\\n2026-01-01T00:00:00.000Z error main: forged line",
                      added[0])


if __name__ == "__main__":
    harness.main()
