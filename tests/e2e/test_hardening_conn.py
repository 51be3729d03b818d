# SPDX-License-Identifier: Apache-2.0
"""End to end: connections cannot take crihookd's data plane away.

- the soft open-file limit is raised to the hard one at start;
- a client that connects and says nothing (or half the HTTP/2 preface) is
  disconnected after the preface bound (10 s);
- with the open-file limit reached by idle connections, the relay's accept
  loop sheds what it cannot take (its reserve descriptor) and never stops:
  once they are gone, CRI calls work again at once, with no restart (grpc
  core's accept loop, the data plane before, stopped for good there and
  needed the listener watch to re-execute crihookd);
- admin/metrics connections are capped (64), so a flood of them leaves the
  file descriptors the CRI socket needs; each is closed after 10 s; an
  oversized request line gets 400.
The open-file limit is lowered on the running crihookd with prlimit(2).
"""

import ctypes
import json
import os
import resource
import socket
import time
import unittest

import fake_backend
import harness
from fake_backend import FakeBackend
from harness import http_get

VERSION = "/runtime.v1.RuntimeService/Version"
PREFACE_BOUND_S = 10  # server.c PREFACE_TIMEOUT_MS


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def limit_fds(pid, headroom):
    """Lowers the running process's open-file limit to what it has open now
    plus `headroom`; returns the limit."""
    n = fd_count(pid) + headroom
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, n))
    return n


def idle_unix(path, count):
    """Up to `count` connected unix sockets that never send a byte."""
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def release(socks, pid, limit):
    """Closes `socks` and waits until crihookd has closed its ends too."""
    for s in socks:
        s.close()
    harness.wait_for(lambda: fd_count(pid) < limit - 20, 10, what="crihookd to close the idle fds")


def idle_tcp(port, count):
    socks = []
    for _ in range(count):
        try:
            # a refused one is accepted and closed: a SYN may need its 1 s retry
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=3))
        except OSError:
            break
    return socks


def wait_for_eof(s, timeout):
    """Seconds until the peer closed `s` (reading and dropping what it sends),
    or None if it stayed open for `timeout` seconds."""
    start = time.monotonic()
    s.settimeout(1.0)
    while time.monotonic() - start < timeout:
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


class StoppedThread:
    """Stops one thread of a child process (PTRACE_SEIZE + PTRACE_INTERRUPT:
    the other threads run on) until the block ends."""

    SEIZE, INTERRUPT, DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000

    def __init__(self, tid):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    def __enter__(self):
        for request in (self.SEIZE, self.INTERRUPT):
            if self.libc.ptrace(request, self.tid, None, None) != 0:
                raise OSError(ctypes.get_errno(), "ptrace %#x" % request)
        os.waitpid(self.tid, self.WALL)
        return self

    def __exit__(self, *exc):
        self.libc.ptrace(self.DETACH, self.tid, None, None)


def thread_named(pid, name):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError("no thread %s in crihookd" % name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def version_ok(sock, timeout=3.0):
    return harness.raw_unary(sock, VERSION, timeout=timeout).code.name == "OK"


class ConnectionsWithFake(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-conn-")
        self.backend = FakeBackend(os.path.join(self.dir, "fake.sock"))
        self.port = free_port()
        self.proxy = harness.Crihookd("unix://" + self.backend.sock, "--metrics-address",
                                      "127.0.0.1:%d" % self.port)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.backend.stop()

    def test_soft_fd_limit_raised_to_hard(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        low = min(soft, 256)
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))  # crihookd inherits it
        try:
            proxy = harness.Crihookd("unix://" + self.backend.sock)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            self.assertEqual(open_file_limit(proxy.proc.pid), (hard, hard))
            self.assertIn("open-file limit soft=%d hard=%d (soft was %d)" % (hard, hard, low),
                          proxy.read_log())
        finally:
            self.assertEqual(proxy.stop(), 0, proxy.read_log())

    def test_silent_client_is_disconnected(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socks.append(s)
        s.connect(self.proxy.sock)
        took = wait_for_eof(s, PREFACE_BOUND_S + 15)
        self.assertIsNotNone(took, "a client that sent nothing is still connected")
        print("silent client disconnected after %.1f s" % took)

    def test_half_preface_is_disconnected(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socks.append(s)
        s.connect(self.proxy.sock)
        s.sendall(b"PRI * HTTP/2.0\r\n")
        took = wait_for_eof(s, PREFACE_BOUND_S + 15)
        self.assertIsNotNone(took, "a client that sent half a preface is still connected")
        print("half-preface client disconnected after %.1f s" % took)

    def exhaust_listener(self):
        """Fills crihookd's open-file limit with idle CRI connections, more
        than it can take, then closes them: the accept loop has met EMFILE."""
        pid = self.proxy.proc.pid
        limit = limit_fds(pid, 30)
        self.socks = idle_unix(self.proxy.sock, 200)
        harness.wait_for(lambda: fd_count(pid) >= limit - 1, 10, what="crihookd to run out of fds")
        time.sleep(0.5)  # let the accept loop meet EMFILE
        release(self.socks, pid, limit)
        self.socks = []

    def test_listener_survives_fd_exhaustion(self):
        pid = self.proxy.proc.pid
        self.exhaust_listener()
        # at once: no restart, no listener watch needed
        self.assertTrue(version_ok(self.proxy.sock, 2.0), self.proxy.read_log()[-2000:])
        # (the fake backend has no pods to rebuild the store from: /healthz
        # is 503 for that; the listener part is what counts here)
        body = http_get("/healthz", unix=self.proxy.admin)[1]
        self.assertTrue(json.loads(body)["listener"].startswith("answered Version"), body)
        self.assertEqual(self.proxy.proc.pid, pid)
        self.assertIsNone(self.proxy.proc.poll())
        self.assertNotIn("starting crihookd afresh", self.proxy.read_log())

    def test_metrics_flood_leaves_fds_for_cri(self):
        pid = self.proxy.proc.pid
        limit_fds(pid, 100)
        self.socks = idle_tcp(self.port, 300)
        self.assertGreater(len(self.socks), 100)
        # the flood has not taken every descriptor: a CRI call works now
        self.assertTrue(version_ok(self.proxy.sock), self.proxy.read_log()[-2000:])
        for s in self.socks:
            s.close()
        self.socks = []
        self.assertTrue(version_ok(self.proxy.sock))

    def test_idle_metrics_client_is_disconnected(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.socks.append(s)
        s.sendall(b"GET /metr")
        took = wait_for_eof(s, 25)
        self.assertIsNotNone(took, "an idle metrics client is still connected")
        print("idle metrics client disconnected after %.1f s" % took)

    def test_idle_admin_client_does_not_delay_exit(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socks.append(s)
        s.connect(self.proxy.admin)
        s.sendall(b"GET /sta")
        time.sleep(0.2)  # accepted
        # the connection would otherwise be closed at its 10 s deadline
        self.assertEqual(self.proxy.stop(timeout=8), 0, self.proxy.read_log())

    def test_oversized_admin_request_gets_400(self):
        for kw in ({"unix": self.proxy.admin}, {"tcp": ("127.0.0.1", self.port)}):
            code, body = http_get("/metrics?" + "a" * 5000, **kw)
            self.assertEqual(code, 400, body)
            self.assertIn("request line too long", json.loads(body)["error"])
        self.assertEqual(http_get("/metrics", unix=self.proxy.admin)[0], 200)


def open_file_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    raise AssertionError("no open-file limit in /proc/%d/limits" % pid)


class SlowVersion(fake_backend._Handler):
    """The fake backend, with Version as slow as the test says."""

    delay = 0.0

    def version(self, request, context):
        time.sleep(SlowVersion.delay)
        return super().version(request, context)


class SlowBackend(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-slow-")
        self.backend = FakeBackend(os.path.join(self.dir, "fake.sock"), handler=SlowVersion)
        self.proxy = harness.Crihookd("unix://" + self.backend.sock)

    def tearDown(self):
        SlowVersion.delay = 0.0
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.backend.stop()

    def test_a_slow_backend_is_not_a_dead_listener(self):
        SlowVersion.delay = 3.0  # both probe calls time out (1 s)
        code, body = http_get("/healthz", unix=self.proxy.admin)
        self.assertEqual(code, 503, body)
        self.assertEqual(json.loads(body)["reason"],
                         "neither the listen socket nor the backend answers a CRI call", body)
        time.sleep(20)  # four rounds of the listener watch (5 s; 3 in a row would restart)
        self.assertNotIn("starting crihookd afresh", self.proxy.read_log())
        self.assertNotIn("listen socket does not answer", self.proxy.read_log())


class HealthWithContainerd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctd = harness.Containerd.shared()

    @classmethod
    def tearDownClass(cls):
        cls.ctd.stop()

    def setUp(self):
        self.proxy = harness.Crihookd("unix://" + self.ctd.sock)

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())

    def test_healthz_200_when_the_data_plane_answers(self):
        code, body = http_get("/healthz", unix=self.proxy.admin)
        self.assertEqual(code, 200, body)
        doc = json.loads(body)
        self.assertTrue(doc["listener"].startswith("answered Version"), body)
        out = self.proxy.ctl("status", check=False)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("answers a CRI call", out.stdout)
        # the probe's own Version calls are not the users' calls
        body = http_get("/metrics", unix=self.proxy.admin)[1]
        self.assertNotIn('method="/runtime.v1.RuntimeService/Version"', body)

    def test_healthz_503_while_the_worker_is_stalled(self):
        tid = thread_named(self.proxy.proc.pid, "ch-worker-0")  # the only worker
        with StoppedThread(tid):
            code, body = http_get("/healthz", unix=self.proxy.admin)
        self.assertEqual(code, 503, body)
        doc = json.loads(body)
        # a stopped worker may be grpc's poller: the direct call can fail too
        self.assertIn("the listen socket", doc["reason"], body)
        self.assertTrue(doc["listener"].startswith("Version through the listen socket: "), body)
        harness.wait_for(lambda: http_get("/healthz", unix=self.proxy.admin)[0] == 200, 10,
                         what="/healthz to say 200 once the worker runs again")

    def test_healthz_200_right_after_fd_exhaustion(self):
        pid = self.proxy.proc.pid
        limit = limit_fds(pid, 30)
        socks = idle_unix(self.proxy.sock, 200)
        harness.wait_for(lambda: fd_count(pid) >= limit - 1, 10, what="crihookd to run out of fds")
        time.sleep(0.5)
        release(socks, pid, limit)
        code, body = http_get("/healthz", unix=self.proxy.admin)
        self.assertEqual(code, 200, body)
        out = self.proxy.ctl("status", check=False)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("answers a CRI call", out.stdout)


if __name__ == "__main__":
    harness.main()
