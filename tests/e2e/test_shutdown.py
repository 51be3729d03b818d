# SPDX-License-Identifier: Apache-2.0
"""End to end: SIGTERM drains.

In-flight unary calls finish, new calls are refused, open streams are ended
with UNAVAILABLE, calls that outlive the grace period are cancelled (and the
backend sees the cancel), the socket is removed and the exit code is 0.
"""

import os
import signal
import time
import unittest

import grpc

import harness
from fake_backend import FakeBackend


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-sd-")
        self.backend_sock = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend_sock)

    def tearDown(self):
        self.fake.stop()

    def test_in_flight_calls_finish(self):
        proxy = harness.Crihookd(self.backend_sock)
        ch = harness.channel(proxy.sock)
        slow = ch.unary_unary("/fake.Svc/Slow")
        calls = [slow.future(b"", timeout=20, metadata=[("x-sleep", "1.0")]) for _ in range(5)]
        self.assertTrue(self.fake.started.wait(5))
        time.sleep(0.2)
        proxy.signal(signal.SIGTERM)
        start = time.monotonic()
        self.assertEqual([c.result() for c in calls], [b"slept"] * 5)
        self.assertEqual(proxy.stop(), 0, proxy.read_log())
        self.assertLess(time.monotonic() - start, 5.0)
        self.assertFalse(os.path.exists(proxy.sock))
        ch.close()
        late = harness.raw_unary(proxy.sock, "/fake.Svc/Echo", b"late", 2)
        self.assertEqual(late.code, grpc.StatusCode.UNAVAILABLE)

    def test_open_stream_is_ended_cleanly(self):
        proxy = harness.Crihookd(self.backend_sock)
        ch = harness.channel(proxy.sock)
        stream = ch.unary_stream("/fake.Svc/Count")(
            b"", timeout=60, metadata=[("x-count", "100000"), ("x-gap", "0.05")])
        self.assertEqual(next(stream), b"0")
        proxy.signal(signal.SIGTERM)
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as caught:
            for _ in stream:
                pass
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("shutting down", caught.exception.details())
        self.assertEqual(proxy.stop(), 0, proxy.read_log())
        self.assertLess(time.monotonic() - start, 3.0)
        ch.close()

    def test_grace_period_is_bounded(self):
        proxy = harness.Crihookd(self.backend_sock, "--shutdown-grace", "500")
        ch = harness.channel(proxy.sock)
        call = ch.unary_unary("/fake.Svc/Slow").future(b"", timeout=60)
        self.assertTrue(self.fake.started.wait(5))
        proxy.signal(signal.SIGTERM)
        start = time.monotonic()
        self.assertEqual(proxy.stop(), 0, proxy.read_log())
        self.assertLess(time.monotonic() - start, 4.0)
        with self.assertRaises(grpc.RpcError):
            call.result(timeout=5)
        self.assertTrue(self.fake.cancelled.wait(5), "backend call not cancelled")
        self.assertIn("grace period", proxy.read_log())
        ch.close()


if __name__ == "__main__":
    harness.main()
