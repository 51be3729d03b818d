# SPDX-License-Identifier: Apache-2.0
"""End to end: clients that never read their answers cannot take the node's
memory (relay/h2relay.h, "Flow control").

N raw HTTP/2 clients each send a ListContainers call whose answer (from a
fake backend) is several MiB, and never read a byte (nor send a
WINDOW_UPDATE). The relay takes from the backend only what the client's
window lets it pass on, so each such stream holds at most one stream window
and a bounded write queue in crihookd; the backend is held back by flow
control. crihookd's RSS (VmRSS) is printed before and with the clients, and
must stay under its value before plus BOUND_MIB; a client that reads keeps
getting its big answers meanwhile, and no call is refused or cut.
"""

import os
import socket
import time
import unittest

import grpc

import fake_backend
import harness
from fake_backend import FakeBackend
from harness import H2_PREFACE, grpc_headers, h2_frame, http_get

LIST = "/runtime.v1.RuntimeService/ListContainers"
VERSION = "/runtime.v1.RuntimeService/Version"
CLIENTS = 40
ANSWER = 12 << 20  # answers of 12 MiB: 480 MiB for all the clients
BOUND_MIB = 32  # 40 streams x (64 KiB window + write queue), ASan's overhead included


class BigLists(fake_backend._Handler):
    """The fake backend, with ListContainers answering x-size bytes."""

    def service(self, details):
        if details.method == LIST:
            self.fake.record(("method", details.method))
            return grpc.unary_unary_rpc_method_handler(self.big)
        return super().service(details)


def call_without_reading(path, method, size):
    """A connection that makes one call and never reads (nor acks)."""
    headers = grpc_headers(method, ("x-size", str(size)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(H2_PREFACE + h2_frame(4, 0, 0, b"") + h2_frame(1, 0x4, 1, headers) +
              h2_frame(0, 0x1, 1, b"\x00\x00\x00\x00\x00"))
    return s


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def metric(body, prefix):
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(prefix))


class UnreadAnswers(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-mem-")
        self.backend = FakeBackend(os.path.join(self.dir, "fake.sock"), handler=BigLists)
        # ASan keeps freed memory in a quarantine (256 MiB by default), which
        # would hide what crihookd itself holds.
        asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1") + ":quarantine_size_mb=16"
        self.proxy = harness.Crihookd("unix://" + self.backend.sock, env={"ASAN_OPTIONS": asan})
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.backend.stop()

    def big_call(self, ch):
        return harness.raw_unary(self.proxy.sock, LIST, metadata=[("x-size", str(ANSWER))], ch=ch)

    def test_unread_answers_are_bounded(self):
        pid = self.proxy.proc.pid
        ch = harness.channel(self.proxy.sock)
        for _ in range(3):  # warm up: the reader's own answers, grpc's buffers
            self.assertEqual(self.big_call(ch).code, grpc.StatusCode.OK)
        before = rss_mib(pid)
        for _ in range(CLIENTS):
            self.socks.append(call_without_reading(self.proxy.sock, LIST, ANSWER))
        asked = lambda: sum(1 for e in self.backend.events if e == ("method", LIST))
        harness.wait_for(lambda: asked() >= CLIENTS + 3, 60, what="the backend to see every call")
        time.sleep(2)  # the answers reach crihookd
        during = rss_mib(pid)
        print("crihookd VmRSS: %.0f MiB before, %.0f MiB with %d clients not reading %d MiB "
              "answers (%d MiB in all)" % (before, during, CLIENTS, ANSWER >> 20,
                                          CLIENTS * ANSWER >> 20))
        self.assertEqual(harness.raw_unary(self.proxy.sock, VERSION, ch=ch).code,
                         grpc.StatusCode.OK)
        self.assertLess(during, before + BOUND_MIB, self.proxy.read_log()[-3000:])
        # a reader's big calls keep working beside the stalled ones
        for _ in range(2):
            self.assertEqual(self.big_call(ch).code, grpc.StatusCode.OK)
        body = http_get("/metrics", unix=self.proxy.admin)[1]
        refused = metric(body, 'crihook_cri_calls_total{method="%s",code="RESOURCE_EXHAUSTED"}'
                         % LIST)
        self.assertEqual(refused, 0, body)
        self.assertEqual(len(self.socks), CLIENTS)
        for s in self.socks:  # still open: stalled, not cut
            s.setblocking(False)
            try:
                self.assertNotEqual(s.recv(1, socket.MSG_PEEK), b"", "a stalled client was cut")
            except BlockingIOError:
                pass
        print("crihookd VmRSS after the reader's calls: %.0f MiB" % rss_mib(pid))
        ch.close()


if __name__ == "__main__":
    harness.main()
