# SPDX-License-Identifier: Apache-2.0
"""End to end: the CRI data plane relays unhooked calls verbatim (issue 11's
"How it is tested"). The same cases run against the standalone relay
(tests/bench/crihook-h2relay) and against crihookd, with a raw HTTP/2 client
and a raw recording backend on both sides (h2raw.py), so the test sees the
wire itself: header lists in order, each DATA payload, trailers, resets.

- Byte for byte: each call is made directly to the backend and through the
  proxy. The backend must record the same request header list (same names,
  values and order: user-agent, grpc-timeout, grpc-accept-encoding, custom
  and binary metadata), the same DATA bytes and the same end; the client
  must receive the same response header list, DATA bytes and trailers in
  the same shape. What may differ: the relay passes everything through,
  so nothing; crihookd may set :authority for its backend (an intermediary
  may, RFC 9113 8.3.1), so :authority is left out of its comparison.
  Connection-specific headers (connection, keep-alive, ...) cannot differ:
  they are malformed in HTTP/2 and no case sends them. DATA frame
  boundaries may differ (an intermediary may re-frame DATA); the bytes may
  not. Calls: Version, ListContainers (a 300 KiB answer over several
  windows), an unknown method, a v1alpha2 path (a 100 KiB request), a
  containerd service path, and a call whose header blocks need
  CONTINUATION frames both ways.
- Hooked calls too (StopContainer, StopPodSandbox, RemoveContainer; no
  plugin registered): crihookd holds, decodes and records them, yet the
  runtime receives kubelet's header list and bytes unchanged (its
  user-agent, grpc-timeout, metadata; a compressed request still
  compressed), and the client the runtime's answer as sent; and when a
  Pre hook changes one (UpdateContainerResources' cpu_shares), the runtime
  gets the re-encoded message under kubelet's header list. Before, these
  went through a grpc core stage: grpc-c user-agent, decompressed.
- A trailers-only error (one HEADERS with END_STREAM carrying grpc-status)
  stays trailers-only.
- A gzip-compressed request (grpc-encoding: gzip, flag 1 in the message
  prefix) reaches the backend unchanged; a compressed answer comes back
  unchanged.
- A client that stops reading a 48 MiB answer (4 MiB messages) mid-stream (stops reading its
  socket, having advertised 2 GiB windows), and a backend that stops reading
  a 24 MiB request stream after 1 MiB (withholds that stream's window): the
  proxy's RSS growth and the bytes between sender and reader are printed and
  stay bounded (backpressure reaches the sender), and other connections keep
  flowing; once the backend reads again the request completes byte for byte.
- 1,000 concurrent streams on one connection: the backend answers only once
  all 1,000 are open at once, and every answer is right.
- RST_STREAM(CANCEL) from the client at each stage of a call (after
  request HEADERS, mid-request DATA, request ended but unanswered, after
  response HEADERS, mid-response DATA) reaches the backend as RST_STREAM
  (CANCEL), and the connection keeps serving. The proxy must exit 0 at the
  end (ASan's leak check runs at exit).

The same cases against crihookd's former grpc core data plane failed 7 of
8 (pseudo-headers reordered, grpc-c user-agent, requests decompressed,
grpc-accept-encoding added, ~12 MiB held per stalled stream).
"""

import base64
import gzip
import os
import struct
import sys
import time
import unittest

import harness
from h2raw import (ENGINE, CANCEL, CONTINUATION, GOAWAY, VERSION_RESPONSE, H2Client, RecordingBackend, Relay,
                   grpc_msg, hlist, request_headers, response_headers, rss_kib, summary)

V1, V1ALPHA2, V1_IMAGE = harness.V1, harness.V1ALPHA2, harness.V1_IMAGE
CONTAINERS = "/containerd.services.containers.v1.Containers/"
OK_TRAILERS = hlist([("grpc-status", "0")])


def _ok(body, *extra_headers, trailers=OK_TRAILERS, frame=None):
    """A scripted answer: response headers, one message (DATA frames of
    `frame` bytes each if given), trailers."""
    msg = grpc_msg(body)
    frame = frame or len(msg)
    return (response_headers(*extra_headers), [msg[i:i + frame] for i in range(0, len(msg), frame)],
            trailers)


def _trailers_only(code, message):
    return (response_headers(("grpc-status", str(code)), ("grpc-message", message)), None, None)


COMPRESSED_BODY = b"compressed request " * 500
COMPRESSED_ANSWER = b"compressed answer " * 700

# What the backend answers, by the request's x-answer header.
ANSWERS = {
    "version": _ok(VERSION_RESPONSE),
    "list": _ok(bytes(range(256)) * 1200, ("x-resp", "list"), frame=10000,
                trailers=hlist([("grpc-status", "0"), ("grpc-message", ""),
                                ("x-trailer", "t1"), ("x-trailer-bin", "AAH/")])),
    "unimplemented": _trailers_only(12, "unknown method NoSuchMethod for service "
                                    "runtime.v1.RuntimeService"),
    "not-found": _trailers_only(5, "container \"abc\" not found: %E2%9C%93"),
    "v1alpha2": _ok(b"\x0a\x02id"),
    "containerd": _ok(b"\x0a\x04ctr1" * 3, ("x-containerd", "yes")),
    "large-md": _ok(b"big headers", *[("x-resp-%d" % i, "r" * 8000) for i in range(8)],
                    trailers=hlist([("grpc-status", "0")] +
                                   [("x-tr-%d" % i, "t" * 8000) for i in range(4)])),
    "gzip": (response_headers(("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")),
             [grpc_msg(gzip.compress(COMPRESSED_ANSWER, mtime=0), compressed=True)],
             OK_TRAILERS),
}


def answer_script(backend, conn, st, phase):
    """x-script answer: once the request ended, the answer named by x-answer."""
    if phase != "end":
        return
    headers, data, trailers = ANSWERS[st.header("x-answer").decode()]
    conn.send_headers(st, headers, end_stream=data is None)
    for chunk in data or ():
        conn.send_data(st, chunk)
    if trailers is not None:
        conn.send_headers(st, trailers, end_stream=True)


def echo_script(backend, conn, st, phase):
    """x-script echo: the request DATA back as it was, then OK."""
    if phase == "end":
        conn.send_headers(st, response_headers())
        conn.send_data(st, st.data())
        conn.send_headers(st, OK_TRAILERS, end_stream=True)


def goaway_script(backend, conn, st, phase):
    """x-script goaway: echo, then a GOAWAY(NO_ERROR) naming this stream as
    the last, with the connection left open (as a server that drains, or
    grpc core's idle timeout, does)."""
    echo_script(backend, conn, st, phase)
    if phase == "end":
        conn._frame(GOAWAY, 0, 0, struct.pack(">II", st.sid, 0))


MSG = 4 << 20  # largest message in the big cases (under crihookd's --max-msg-size)


def messages(size, byte=b"b"):
    """`size` bytes as gRPC messages of at most MSG bytes."""
    return b"".join(grpc_msg(byte * min(MSG, size - i)) for i in range(0, size, MSG))


def big_script(backend, conn, st, phase):
    """x-script big: x-size bytes as messages of at most MSG bytes."""
    if phase == "end":
        conn.send_headers(st, response_headers())
        conn.send_data(st, messages(int(st.header("x-size"))))
        conn.send_headers(st, OK_TRAILERS, end_stream=True)


def stall_script(backend, conn, st, phase):
    """x-script stall: stops giving the stream's window back after 1 MiB (a
    server that stops reading the request); release_window() lets it read
    on; then answers with the size received."""
    if phase == "headers":
        st.hold_after = 1 << 20
    else:
        conn.send_headers(st, response_headers())
        conn.send_data(st, grpc_msg(str(len(st.data())).encode()))
        conn.send_headers(st, OK_TRAILERS, end_stream=True)


def gather_script(backend, conn, st, phase):
    """x-script gather: answers nothing until x-gather-n requests of the same
    x-gather group have ended while all open, then echoes each."""
    if phase != "end":
        return
    with backend.lock:
        group = backend.groups.setdefault(st.header("x-gather"), [])
        group.append((conn, st))
        ready = len(group) == int(st.header("x-gather-n"))
    if ready:
        for c, s in group:
            echo_script(backend, c, s, "end")


def stage_script(backend, conn, st, phase):
    """x-script stage: a call to be cancelled; answers as far as x-stage says
    (response-headers, response-data) and then holds the stream open."""
    stage = st.header("x-stage")
    if phase == "end" and stage in (b"response-headers", b"response-data"):
        conn.send_headers(st, response_headers())
        if stage == b"response-data":
            conn.send_data(st, grpc_msg(b"first part of an answer") + b"\x00\x00")


SCRIPTS = {"answer": answer_script, "echo": echo_script, "big": big_script,
           "stall": stall_script, "gather": gather_script, "stage": stage_script,
           "goaway": goaway_script}


class DataplaneCases:
    """The cases; a subclass starts the proxy in start_proxy() (setting
    cls.proxy_sock) and stops it in stop_proxy() (failing unless it exits 0)."""

    MAY_DIFFER = frozenset()  # request header names a proxy may change
    VERBATIM = False  # the proxy runs the relay's verbatim engine (relay/h2relay.h)

    @classmethod
    def setUpClass(cls):
        cls.dir = harness.tmpdir("crihook-dp-")
        cls.backend_sock = os.path.join(cls.dir, "backend.sock")
        cls.backend = RecordingBackend(cls.backend_sock)
        cls.backend.scripts.update(SCRIPTS)
        cls.backend.groups = {}
        cls.start_proxy()
        cls.clients = []

    @classmethod
    def tearDownClass(cls):
        for client in cls.clients:
            client.close()
        try:
            cls.stop_proxy()
        finally:
            cls.backend.stop()

    def client(self, sock=None):
        c = H2Client(sock or self.proxy_sock)
        self.clients.append(c)
        return c

    def case_id(self, name):
        return "%s-%s-%d" % (self.id().rsplit(".", 1)[-1], name, time.monotonic_ns())

    # ---- byte for byte ----

    def exchange(self, sock, case, path, extra, body_frames, authority="localhost"):
        """One call on a fresh connection to `sock`: (client's stream,
        backend's stream). The x-case header is the same direct and through
        the proxy; the backend's copy is the latest with it."""
        before = len(self.backend.with_case(case))
        client = self.client(sock)
        st = client.call(request_headers(path, ("x-case", case), *extra, authority=authority),
                         body_frames)
        st.wait_closed()
        harness.wait_for(lambda: len(self.backend.with_case(case)) > before,
                         what="the backend to record " + case)
        got = self.backend.with_case(case)[before]
        got.wait_closed()
        client.close()
        return st, got

    def assert_same_call(self, path, answer, body_frames=(grpc_msg(b""),), extra=(),
                         authority="localhost"):
        case = self.case_id(answer)
        extra = (("grpc-timeout", "9999847u"), ("grpc-accept-encoding", "identity,deflate,gzip"),
                 ("x-script", "answer"), ("x-answer", answer),
                 ("x-request-id", "req-%s" % case),
                 ("x-bin-bin", base64.b64encode(b"\x00\x01\xfe\xff").rstrip(b"="))) + tuple(extra)
        d_client, d_backend = self.exchange(self.backend_sock, case, path, extra, body_frames,
                                            authority)
        p_client, p_backend = self.exchange(self.proxy_sock, case, path, extra, body_frames,
                                            authority)
        what = "%s (%s)" % (path, answer)

        def strip(headers):
            return [(k, v) for k, v in headers if k.decode() not in self.MAY_DIFFER]
        # what the backend received
        self.assertEqual(strip(p_backend.headers), strip(d_backend.headers), what)
        for name in self.MAY_DIFFER:
            self.assertIsNotNone(p_backend.header(name), (what, name))
        self.assertEqual(p_backend.data(), d_backend.data(), what)
        self.assertEqual(p_backend.data(), b"".join(body_frames), what)
        self.assertEqual(p_backend.trailers, d_backend.trailers, what)
        self.assertEqual(p_backend.trailers, None, what)
        self.assertTrue(p_backend.remote_ended and p_backend.reset is None,
                        (what, summary(p_backend.events)))
        # what the client received back: same blocks, same shape, same bytes
        self.assertEqual(p_client.header_blocks(), d_client.header_blocks(), what)
        self.assertEqual(p_client.data(), d_client.data(), what)
        self.assertEqual(p_client.reset, None, what)
        headers, data, trailers = ANSWERS[answer]  # the direct answer is the script's
        self.assertEqual(d_client.header_blocks(),
                         [(headers, data is None)] + ([(trailers, True)] if trailers else []), what)
        self.assertEqual(p_client.data(), b"".join(data or ()), what)
        return p_client, p_backend

    def test_byte_for_byte_unhooked_calls(self):
        self.assert_same_call(V1 + "Version", "version",
                              [grpc_msg(b"\x0a\x06v1.0.0")])
        self.assert_same_call(V1 + "ListContainers", "list",
                              [grpc_msg(b"\x0a\x04\x1a\x02\x08\x01")])
        self.assert_same_call(V1 + "NoSuchMethod", "unimplemented")
        big = grpc_msg(os.urandom(100000))  # more than a window, in 7 DATA frames
        self.assert_same_call(V1ALPHA2 + "ListPodSandbox", "v1alpha2",
                              [big[i:i + 16000] for i in range(0, len(big), 16000)])
        self.assert_same_call(CONTAINERS + "List", "containerd",
                              extra=[("containerd-namespace", "k8s.io")])
        # kubelet 1.28's grpc-go puts the socket's path in :authority, which
        # nghttp2's own request checks refuse (PROTOCOL_ERROR): the relay
        # leaves judging requests to the runtime
        self.assert_same_call(V1 + "Version", "version", [grpc_msg(b"\x0a\x06v1.0.0")],
                              authority="/run/containerd/containerd.sock")

    def test_byte_for_byte_hooked_calls(self):
        self.assert_same_call(V1 + "StopContainer", "list", [grpc_msg(b"\x0a\x03abc")])
        self.assert_same_call(V1 + "StopPodSandbox", "not-found",
                              [grpc_msg(b"\x0a\x0bpod-2f6c1e9")])
        msg = grpc_msg(gzip.compress(b"\x0a\x03xyz", mtime=0), compressed=True)
        _, backend = self.assert_same_call(V1 + "RemoveContainer", "gzip", [msg],
                                           extra=[("grpc-encoding", "gzip")])
        self.assertEqual(backend.data()[0], 1)  # still compressed

    def test_header_blocks_over_a_frame_use_continuation(self):
        # ~105 KiB once HPACK-encoded: 7 frames of 16 KiB (nghttp2 1.52 in
        # Debian 12 ends the connection beyond 8 CONTINUATION frames)
        md = [("x-large-%d" % i, "v" * 10000) for i in range(12)]
        client, backend = self.assert_same_call(V1_IMAGE + "ImageFsInfo", "large-md", extra=md)
        for name, value in md:
            self.assertEqual(backend.header(name), value.encode())
        self.assertEqual(client.header_blocks()[0][0][-1], (b"x-resp-7", b"r" * 8000))
        self.assertEqual(client.trailers[-1], (b"x-tr-3", b"t" * 8000))
        self.assertGreater(backend.conn.frames_in[CONTINUATION], 0)
        self.assertGreater(client.conn.frames_in[CONTINUATION], 0)

    def test_trailers_only_error_stays_trailers_only(self):
        client, _ = self.assert_same_call(V1 + "ContainerStatus", "not-found",
                                          [grpc_msg(b"\x0a\x03abc")])
        self.assertEqual(len(client.events), 1, summary(client.events))
        kind, headers, end = client.events[0]
        self.assertEqual((kind, end), ("headers", True))
        self.assertIn((b"grpc-status", b"5"), headers)
        self.assertIn((b":status", b"200"), headers)

    def test_compressed_request_and_answer_unchanged(self):
        msg = grpc_msg(gzip.compress(COMPRESSED_BODY, mtime=0), compressed=True)
        client, backend = self.assert_same_call(
            V1 + "ListPodSandbox", "gzip", [msg[:100], msg[100:]],
            extra=[("grpc-encoding", "gzip")])
        self.assertEqual(backend.header("grpc-encoding"), b"gzip")
        got = backend.data()
        self.assertEqual(got[0], 1)  # still flagged compressed
        self.assertEqual(gzip.decompress(got[5:]), COMPRESSED_BODY)
        answer = client.data()
        self.assertEqual(answer[0], 1)
        self.assertEqual(gzip.decompress(answer[5:]), COMPRESSED_ANSWER)
        self.assertIn((b"grpc-encoding", b"gzip"), client.headers)

    # ---- memory and backpressure ----

    def echo_on(self, client, text):
        st = client.call(request_headers(V1 + "Echo", ("x-script", "echo"),
                                         ("x-case", self.case_id("echo"))), [grpc_msg(text)])
        st.wait_closed()
        self.assertEqual(st.data(), grpc_msg(text), summary(st.events))
        self.assertEqual(st.trailers, OK_TRAILERS)
        return st

    def big_on(self, client, size):
        st = client.call(request_headers(V1 + "Big", ("x-script", "big"), ("x-size", str(size)),
                                         ("x-case", self.case_id("big"))), [grpc_msg(b"")])
        st.wait_closed(60)
        self.assertEqual(st.data(), messages(size), summary(st.events))
        return st

    def test_client_that_stops_reading(self):
        size = 48 << 20
        warm = self.client()
        self.big_on(warm, 1 << 20)  # the proxy's buffers for one answer exist already
        before = rss_kib(self.proxy_pid)
        case = self.case_id("stalled")
        # huge windows: only the proxy's own bounds hold what it does not deliver
        reader = H2Client(self.proxy_sock, window=(1 << 31) - 1)
        self.clients.append(reader)
        st = reader.call(request_headers(V1 + "Big", ("x-script", "big"), ("x-size", str(size)),
                                         ("x-case", case)), [grpc_msg(b"")])
        st.wait(lambda s: s.received >= 1 << 20, 60, "the first MiB of the answer")
        reader.pause_reading()  # mid-stream
        got = self.backend.find(case)
        time.sleep(3)  # let the backend push what flow control allows
        grown = rss_kib(self.proxy_pid) - before
        sent = len(messages(size)) - got.conn.unsent(got)
        in_flight = sent - st.received
        print("client stopped reading a %d MiB answer after %d KiB: proxy RSS grew %d KiB; "
              "the backend sent %d KiB, %d KiB between them (proxy and socket buffers)" %
              (size >> 20, st.received >> 10, grown, sent >> 10, in_flight >> 10),
              file=sys.stderr)
        self.big_on(warm, 1 << 20)  # another connection flows meanwhile
        self.echo_on(self.client(), b"still flowing")
        reader.close()
        self.assertLess(grown, 16 << 10)
        if not self.VERBATIM:  # the proxy's own window stops the backend
            self.assertLess(in_flight, 4 << 20, "backpressure did not reach the backend")
        # verbatim: the backend sees the client's own window, as directly, and
        # is stopped by its socket (RSS above: the proxy does not buffer it)
        # the hang-up ends the backend stream (reset, or its connection closed)
        harness.wait_for(lambda: got.reset is not None or got.conn.closed.is_set(),
                         what="the backend stream to end after the client left")

    def test_backend_that_stops_reading(self):
        size = 24 << 20
        other = self.client()
        self.echo_on(other, b"warm")
        before = rss_kib(self.proxy_pid)
        case = self.case_id("upload")
        up = self.client()
        msg = b"".join(grpc_msg(os.urandom(MSG)) for _ in range(size // MSG))
        st = up.call(request_headers(V1 + "Upload", ("x-script", "stall"), ("x-case", case)),
                     [msg])
        got = self.backend.find(case)
        got.wait(lambda s: s.hold_window, 60, "the backend to read 1 MiB and stop")
        time.sleep(3)  # let the client push what flow control allows
        grown = rss_kib(self.proxy_pid) - before
        sent = len(msg) - up.unsent(st)
        in_flight = sent - got.received
        print("backend stopped reading a %d MiB request after %d KiB: proxy RSS grew %d KiB; "
              "the client sent %d KiB, %d KiB between them (proxy and socket buffers)" %
              (size >> 20, got.received >> 10, grown, sent >> 10, in_flight >> 10),
              file=sys.stderr)
        self.echo_on(other, b"another connection flows")
        self.echo_on(up, b"the same connection flows")  # kubelet has only one
        self.assertLess(grown, 16 << 10)
        self.assertLess(in_flight, 4 << 20, "backpressure did not reach the client")
        got.conn.release_window(got)  # the backend reads again: everything arrives
        st.wait_closed(60)
        self.assertEqual(st.data(), grpc_msg(str(len(msg)).encode()), summary(st.events))
        self.assertTrue(got.data() == msg, "the request arrived altered")

    def test_stream_left_unread_leaves_its_connection_flowing(self):
        # kubelet makes every call over one connection: a stream whose reader
        # stops crediting it must not stop the others (the relay's connection
        # window is larger than a stream's, h2relay.h).
        client = self.client()
        case = self.case_id("held")
        st = client.call(request_headers(V1 + "Big", ("x-script", "big"),
                                         ("x-size", str(8 << 20)), ("x-case", case)),
                         [grpc_msg(b"")])
        st.hold_window = True  # the stream's window is never credited again
        st.wait(lambda s: s.received >= 32 << 10, 60, "the start of the answer")
        time.sleep(1)
        for i in range(3):
            self.echo_on(client, b"beside a stalled stream %d" % i)
        self.big_on(client, 1 << 20)

    def test_backend_goaway_moves_new_calls_to_a_new_connection(self):
        # A backend that says GOAWAY finishes what it has; the client's next
        # call on the same connection goes to a new backend connection (the
        # client never sees the GOAWAY). The verbatim engine passes the GOAWAY
        # on, as the backend would directly: the client's next connection
        # gets a backend connection of its own.
        client = self.client()
        before = len(self.backend.conns)
        st = client.call(request_headers(V1 + "Echo", ("x-script", "goaway"),
                                         ("x-case", self.case_id("goaway"))),
                         [grpc_msg(b"last on the old connection")])
        st.wait_closed()
        self.assertEqual(st.trailers, OK_TRAILERS, summary(st.events))
        time.sleep(0.2)  # the GOAWAY has reached the proxy
        if self.VERBATIM:
            harness.wait_for(lambda: client.goaway is not None, what="the GOAWAY passed on")
            client = self.client()
        for i in range(3):
            self.echo_on(client, b"after the backend's GOAWAY %d" % i)
        self.assertGreater(len(self.backend.conns), before)
        if not self.VERBATIM:
            self.assertIsNone(client.goaway, "the client saw the backend's GOAWAY")

    # ---- concurrency ----

    def test_1000_concurrent_streams_on_one_connection(self):
        n = 1000
        client = self.client()
        group = self.case_id("gather")
        streams = [client.open(request_headers(V1 + "Gather", ("x-script", "gather"),
                                               ("x-gather", group), ("x-gather-n", str(n)),
                                               ("x-case", "%s-%d" % (group, i))))
                   for i in range(n)]
        for i, st in enumerate(streams):
            client.send_data(st, grpc_msg(b"stream %d" % i), end_stream=True)
        deadline = time.monotonic() + 60
        for i, st in enumerate(streams):
            try:
                st.wait_closed(max(0.1, deadline - time.monotonic()))
            except AssertionError:
                raise AssertionError("stream %d unanswered; the backend had %d of %d open" %
                                     (i, len(self.backend.groups.get(group.encode(), ())), n))
            self.assertEqual(st.headers, response_headers(), i)
            self.assertEqual(st.data(), grpc_msg(b"stream %d" % i), i)
            self.assertEqual(st.trailers, OK_TRAILERS, i)
            self.assertIsNone(st.reset, i)
        self.assertIsNone(client.goaway)

    # ---- cancellation ----

    def test_cancel_at_every_stage_reaches_backend(self):
        client = self.client()
        for stage in ("request-headers", "request-data", "request-ended", "response-headers",
                      "response-data"):
            case = self.case_id(stage)
            st = client.open(request_headers(V1 + "Cancelled", ("x-script", "stage"),
                                             ("x-stage", stage), ("x-case", case)))
            if stage != "request-headers":
                client.send_data(st, grpc_msg(b"part of a request"),
                                 end_stream=stage != "request-data")
            got = self.backend.find(case, sender=client)
            if stage == "request-data":
                got.wait(lambda s: s.data(), what="the request DATA at the backend")
            elif stage != "request-headers":
                got.wait(lambda s: s.remote_ended, what="the request's end at the backend")
            if stage == "response-headers":
                st.wait(lambda s: s.headers, what="the response headers")
            elif stage == "response-data":
                st.wait(lambda s: s.data(), what="the response DATA")
            client.rst(st, CANCEL)
            got.wait(lambda s: s.reset is not None, what="the cancel at the backend (%s)" % stage)
            self.assertEqual(got.reset, ("received", CANCEL), stage)
            self.assertEqual(got.events[-1], ("rst", CANCEL), stage)
        # the connection still serves
        self.echo_on(client, b"after five cancels")
        self.assertIsNone(client.goaway)
        self.assertFalse(client.closed.is_set(), client.error)


class RelayDataplane(DataplaneCases, unittest.TestCase):
    """The standalone relay (relay/ on its own)."""

    VERBATIM = ENGINE == "verbatim"

    @classmethod
    def start_proxy(cls):
        cls.relay = Relay(cls.backend_sock, cls.dir)
        cls.proxy_sock, cls.proxy_pid = cls.relay.sock, cls.relay.proc.pid

    @classmethod
    def stop_proxy(cls):
        cls.relay.stop()


class CrihookdDataplane(DataplaneCases, unittest.TestCase):
    """crihookd in front of the same recording backend."""

    MAY_DIFFER = frozenset()  # the relay passes :authority too
    FLAGS = ()
    VERBATIM = harness.RELAY == "verbatim"

    @classmethod
    def start_proxy(cls):
        cls.crihookd = harness.Crihookd(cls.backend_sock, *cls.FLAGS)
        cls.proxy_sock, cls.proxy_pid = cls.crihookd.sock, cls.crihookd.proc.pid

    @classmethod
    def stop_proxy(cls):
        code = cls.crihookd.stop()
        assert code == 0, "crihookd exit code %d:\n%s" % (code, cls.crihookd.read_log())


    def test_hooked_trailers_only_error_stays_trailers_only(self):
        """StopContainer is intercepted (a hooked method, no plugin
        registered: its answer is held for the store): the runtime's
        trailers-only error reaches the client as one HEADERS frame too."""
        case = self.case_id("not-found")
        extra = (("x-script", "answer"), ("x-answer", "not-found"))
        client, backend = self.exchange(self.proxy_sock, case, V1 + "StopContainer", extra,
                                        [grpc_msg(b"\x0a\x03abc")])
        self.assertEqual(len(client.events), 1, summary(client.events))
        kind, headers, end = client.events[0]
        self.assertEqual((kind, end), ("headers", True))
        self.assertIn((b"grpc-status", b"5"), headers)


    def test_hooked_call_a_plugin_changes_keeps_kubelets_headers(self):
        """A Pre hook changes UpdateContainerResources' cpu_shares: the runtime
        gets the re-encoded message, yet kubelet's header list unchanged,
        and the client the runtime's answer as sent."""
        hook = harness.HookServer("shares", {"PreUpdateContainerResources": {
            "answer": {"container_resources": {"cpu_shares": 2048}}}}, self.dir)
        self.addCleanup(hook.stop)
        harness.register(self.crihookd.hook_dir, "10-shares.json", hook.sock,
                         ["PreUpdateContainerResources"], policy="Fail")
        self.addCleanup(os.unlink, os.path.join(self.crihookd.hook_dir, "10-shares.json"))
        harness.wait_for(lambda: len(self.crihookd.plugins()["plugins"]) == 1, 10,
                         what="the plugin registered")
        request = b"\x0a\x06c0ffee" + b"\x12\x02\x18\x02"  # container_id, linux{cpu_shares: 2}
        case = self.case_id("changed")
        extra = (("grpc-timeout", "9999847u"), ("x-script", "answer"), ("x-answer", "list"),
                 ("x-request-id", "req-%s" % case))
        path = V1 + "UpdateContainerResources"
        d_client, d_backend = self.exchange(self.backend_sock, case, path, extra,
                                            [grpc_msg(request)])
        p_client, p_backend = self.exchange(self.proxy_sock, case, path, extra,
                                            [grpc_msg(request)])
        self.assertEqual(p_backend.headers, d_backend.headers)  # kubelet's, in order
        self.assertEqual(d_backend.data(), grpc_msg(request))
        changed = p_backend.data()
        self.assertIn(b"\x18\x80\x10", changed)  # cpu_shares 2048, the plugin's
        self.assertNotIn(b"\x18\x02", changed)
        self.assertIn(b"c0ffee", changed)
        self.assertEqual(len(hook.calls("PreUpdateContainerResources")), 1)
        self.assertEqual(p_client.header_blocks(), d_client.header_blocks())
        self.assertEqual(p_client.data(), d_client.data())


class CrihookdTwoLoops(CrihookdDataplane):
    """The same with two relay loops accepting on one socket (--workers 2):
    each connection lives on one of them; under TSan this is the test that
    sees the loops side by side."""

    FLAGS = ("--workers", "2")


if __name__ == "__main__":
    harness.main()
