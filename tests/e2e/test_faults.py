# SPDX-License-Identifier: Apache-2.0
"""End to end: bad input and broken backends cost a log line, never the node.

A missing backend, a backend killed mid-call and brought back, a backend that
accepts connections but never speaks HTTP/2, garbage and truncated messages
on the listen socket, a client that vanishes mid-call, and the listen
socket's own safety rules (live owner, stale file, mode).
"""

import os
import signal
import random
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest

import grpc

import harness
from fake_backend import FakeBackend
from harness import H2_PREFACE, grpc_headers, h2_frame, send_raw

HERE = os.path.dirname(os.path.abspath(__file__))


def start_fake_process(sock):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_backend.py"), sock],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.stdout.close()
    return proc


def truncated_grpc_request(path):
    body = b"\x00" + struct.pack(">I", 100) + b"only ten b"  # says 100 bytes, has 10
    return (H2_PREFACE + h2_frame(4, 0, 0, b"") + h2_frame(1, 0x4, 1, grpc_headers(path)) +
            h2_frame(0, 0x1, 1, body))


class FaultsWithFake(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-flt-")
        self.backend_sock = os.path.join(self.dir, "fake.sock")
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            code = self.proxy.stop()
            self.assertEqual(code, 0, self.proxy.read_log())

    def echo(self, timeout=5.0):
        return harness.raw_unary(self.proxy.sock, "/fake.Svc/Echo", b"ping", timeout)

    def test_missing_backend_fails_fast_then_recovers(self):
        self.proxy = harness.Crihookd(self.backend_sock)
        start = time.monotonic()
        answer = self.echo(timeout=30)
        self.assertEqual(answer.code, grpc.StatusCode.UNAVAILABLE)
        self.assertLess(time.monotonic() - start, 2.0)
        fake = FakeBackend(self.backend_sock)
        try:
            harness.wait_for(lambda: self.echo().code == grpc.StatusCode.OK, 5,
                             what="crihookd to reach the new backend")
        finally:
            fake.stop()

    def test_backend_killed_mid_call_then_restarted(self):
        proc = start_fake_process(self.backend_sock)
        self.proxy = harness.Crihookd(self.backend_sock)
        self.assertEqual(self.echo().code, grpc.StatusCode.OK)
        ch = harness.channel(self.proxy.sock)
        slow = ch.unary_unary("/fake.Svc/Slow").future(b"", timeout=60)
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as caught:
            slow.result(timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(self.echo(timeout=30).code, grpc.StatusCode.UNAVAILABLE)
        os.unlink(self.backend_sock)
        proc = start_fake_process(self.backend_sock)
        try:
            harness.wait_for(lambda: self.echo().code == grpc.StatusCode.OK, 5,
                             what="crihookd to reconnect")
        finally:
            proc.kill()
            proc.wait()
            ch.close()

    def test_backend_that_never_speaks(self):
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute.bind(self.backend_sock)
        mute.listen(64)
        try:
            self.proxy = harness.Crihookd(self.backend_sock)
            start = time.monotonic()
            answer = self.echo(timeout=30)
            self.assertNotEqual(answer.code, grpc.StatusCode.OK)
            self.assertLess(time.monotonic() - start, 5.0, "held until the deadline")
        finally:
            mute.close()

    def test_garbage_and_truncated_messages_on_the_listen_socket(self):
        fake = FakeBackend(self.backend_sock)
        try:
            self.proxy = harness.Crihookd(self.backend_sock)
            rng = random.Random(7)
            for size in (1, 24, 1000, 100000):
                send_raw(self.proxy.sock, bytes(rng.getrandbits(8) for _ in range(size)), 0.5)
            version = ("method", "/runtime.v1.RuntimeService/Version")
            seen = fake.events.count(version)  # crihookd's own start-up probe
            reply = send_raw(self.proxy.sock,
                             truncated_grpc_request("/runtime.v1.RuntimeService/Version"))
            self.assertTrue(reply, "no answer at all to a truncated message")
            if harness.RELAY == "verbatim":
                # its headers went on as they came; its message did not: the
                # relay answers (its own words, unencoded) and resets the
                # backend's stream, so no handler runs on half a message
                self.assertIn(b"ended inside a message", reply)
            else:
                self.assertEqual(fake.events.count(version), seen,
                                 "a truncated request reached the backend")
            send_raw(self.proxy.sock, truncated_grpc_request("/fake.Svc/Sum"))
            self.assertEqual(self.echo().body, b"ping")
            self.assertIsNone(self.proxy.proc.poll())
        finally:
            fake.stop()

    def test_client_vanishes_mid_call(self):
        fake = FakeBackend(self.backend_sock)
        try:
            self.proxy = harness.Crihookd(self.backend_sock)
            code = ("import grpc; ch = grpc.insecure_channel('unix://%s');"
                    "ch.unary_unary('/fake.Svc/Slow')(b'', timeout=60)" % self.proxy.sock)
            client = subprocess.Popen([sys.executable, "-c", code])
            self.assertTrue(fake.started.wait(5))
            client.kill()
            client.wait()
            self.assertTrue(fake.cancelled.wait(5), "backend call outlived its client")
            self.assertEqual(self.echo().body, b"ping")
        finally:
            fake.stop()


class ListenSocket(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-lsn-")
        self.backend_sock = os.path.join(self.dir, "fake.sock")
        self.fake = FakeBackend(self.backend_sock)

    def tearDown(self):
        self.fake.stop()

    def test_creates_directory_and_sets_mode(self):
        listen = os.path.join(self.dir, "a", "b", "crihook.sock")
        proxy = harness.Crihookd(self.backend_sock, listen=listen)
        try:
            mode = stat.S_IMODE(os.stat(listen).st_mode)
            self.assertEqual(mode, 0o660)
            self.assertTrue(stat.S_ISSOCK(os.stat(listen).st_mode))
        finally:
            self.assertEqual(proxy.stop(), 0)
        self.assertFalse(os.path.exists(listen), "socket left behind after SIGTERM")

    def test_replaces_a_stale_socket(self):
        listen = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(listen)
        s.close()  # the file stays, nobody listens
        proxy = harness.Crihookd(self.backend_sock, listen=listen)
        try:
            self.assertEqual(harness.raw_unary(listen, "/fake.Svc/Echo", b"a").body, b"a")
        finally:
            self.assertEqual(proxy.stop(), 0)

    def test_refuses_a_live_socket(self):
        first = harness.Crihookd(self.backend_sock)
        try:
            second = harness.Crihookd(self.backend_sock, listen=first.sock, wait=False)
            self.assertEqual(second.proc.wait(10), 1)
            self.assertIn("another process is serving", second.read_log())
            second.log.close()
            self.assertEqual(harness.raw_unary(first.sock, "/fake.Svc/Echo", b"a").body, b"a")
        finally:
            self.assertEqual(first.stop(), 0)

    def test_refuses_a_regular_file(self):
        listen = os.path.join(self.dir, "file.sock")
        open(listen, "w").close()
        proxy = harness.Crihookd(self.backend_sock, listen=listen, wait=False)
        self.assertEqual(proxy.proc.wait(10), 1)
        self.assertIn("not a socket", proxy.read_log())
        proxy.log.close()
        self.assertTrue(os.path.isfile(listen))


class AutoDetection(unittest.TestCase):
    PATHS = ["/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock",
             "/run/crio/crio.sock", "/run/cri-dockerd.sock"]

    def test_nothing_answers_waits_and_lists_every_path(self):
        # No runtime yet (a node's boot): crihookd keeps probing, logging
        # every path and what it said, instead of exiting (issue 12;
        # test_rollout_boot.py shows it serving once containerd comes up).
        if any(os.path.exists(p) for p in self.PATHS):
            self.skipTest("a runtime socket exists on this machine")
        proxy = harness.Crihookd("auto", wait=False)
        harness.wait_for(lambda: proxy.proc.poll() is None and
                         "waiting for a CRI runtime round=2" in proxy.read_log(),
                         20, 0.1, "two probing rounds:\n" + proxy.read_log())
        log = proxy.read_log()
        for path in self.PATHS:
            self.assertIn(path + " (no such file)", log)
        # SIGTERM while waiting ends it (the default action: killed by the
        # signal, which systemd counts as a clean stop).
        self.assertIn(proxy.stop(), (0, -signal.SIGTERM))


if __name__ == "__main__":
    harness.main()
