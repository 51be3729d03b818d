# SPDX-License-Identifier: Apache-2.0
"""End to end: relay/'s HTTP/2 relay (crihook-h2relay, libuv + nghttp2) on
its own, with the engine CRIHOOK_H2RELAY_ENGINE names (terminate by default;
meson runs it as e2e-h2relay and, with verbatim, as e2e-h2relay-verbatim).

Against fake_backend.py (known behaviour, records the metadata it saw) and a
real containerd: answers through the relay agree with direct ones; the
backend sees the client's user-agent and metadata unchanged; a trailers-only
error stays trailers-only on the wire (raw HTTP/2 client); streaming is
relayed message by message; cancels reach the backend; a lost backend gives
UNAVAILABLE; a client that stops reading a large answer leaves the relay's
memory bounded while another connection keeps working, and so does a backend
that stops reading a large request; 250 concurrent
streams on one connection; the interception seam (a scripted owner in
crihook-h2relay) holds a request whole and forwards it rewritten, with the
client's own headers, at once or later from a timer, refuses one (nothing
reaches the backend), drops one whose client left while it was held, holds
the answer whole and shows it before the client gets it, with the
backend's headers, trailers and a trailers-only error unchanged, and
refuses a request or an answer over its bound with RESOURCE_EXHAUSTED;
RST_STREAM codes
pass both ways (a raw recording backend); a connection that is not HTTP/2
is closed alone; a client header block that does not decode ends its
connection with GOAWAY(COMPRESSION_ERROR), and a backend that breaks HTTP/2
gets the open call UNAVAILABLE, as a lost one does; client DATA stalled on
the backend's connection window and fed once it opens gets the relay's own
answer at once (a request ending inside a message, --max-msg-size). The accept side: a silent client, half a preface, or the
magic without its SETTINGS is closed after the preface bound; a connection
with no open stream gets GOAWAY(NO_ERROR) and is closed after the idle bound
while one with a long call open is not; connection N+1 over the cap is
closed at once while the first N work; with the open-file limit used up by
idle clients (and libuv's own reserve descriptor taken away, as another
thread of crihookd would), new connections are closed at once and, once the
idle clients are gone, a Version call works at once, no restart. Every relay
must exit 0 on SIGTERM (ASan's leak check runs at exit).
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import grpc
import hpack

import harness
from fake_backend import FakeBackend
from test_hardening_conn import fd_count, idle_unix, limit_fds, release, wait_for_eof
from h2raw import (ACK, ENGINE, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS,
                   RST_STREAM, SETTINGS, SETTINGS_HEADER_TABLE_SIZE, VERSION, WINDOW_UPDATE,
                   H2Client, Relay, block_frames,
                   frames, grpc_msg, preface, raw_call, request_headers, stream_frames)

EVENTS = "/containerd.services.events.v1.Events/"


def handled(fake, method):
    """How many calls of `method` the backend saw; for a refused call the
    terminating engine sends nothing at all, the verbatim one (which passes
    the client's header blocks in order, h2relay.h) only its headers and a
    RST_STREAM: no handler runs on it (Echo's handler records its metadata)."""
    if ENGINE == "verbatim":
        return sum(1 for kind, _ in fake.events if kind == "metadata")
    return fake.events.count(("method", method))


class H2RelayFake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = harness.tmpdir("crihook-h2r-")
        cls.backend_sock = os.path.join(cls.dir, "fake.sock")
        cls.fake = FakeBackend(cls.backend_sock)
        cls.relay = Relay(cls.backend_sock, cls.dir)
        cls.ch = harness.channel(cls.relay.sock, [("grpc.max_metadata_size", 1 << 20)])
        cls.direct = harness.channel(cls.backend_sock, [("grpc.max_metadata_size", 1 << 20)])

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.direct.close()
        cls.relay.stop()
        cls.fake.stop()

    def both(self, method, body=b"", metadata=None):
        through = harness.raw_unary(None, method, body, 10, metadata, ch=self.ch)
        direct = harness.raw_unary(None, method, body, 10, metadata, ch=self.direct)
        return through, direct

    def test_unary_answers_agree_with_direct(self):
        md = [("x-request-id", "abc-123"), ("x-bin-bin", b"\x00\x01\xff")]
        for method, body, meta in (("/fake.Svc/Echo", b"hello \x00 world", md),
                                   ("/fake.Svc/Version", b"", None),
                                   ("/fake.Svc/Big", b"", [("x-size", str(3 << 20))]),
                                   ("/fake.Svc/Fail", b"", [("x-code", "PERMISSION_DENIED")])):
            through, direct = self.both(method, body, meta)
            self.assertTrue(through.same_as(direct), (method, through, direct))
            self.assertEqual(through.initial, direct.initial, method)
            self.assertEqual(through.trailing, direct.trailing, method)
        self.assertEqual(through.code, grpc.StatusCode.PERMISSION_DENIED)

    def test_backend_sees_user_agent_and_metadata_unchanged(self):
        md = [("x-one", "1"), ("x-two", "two words"), ("x-bin-bin", b"\xfe\x00")]
        seen = []
        for ch in (self.ch, self.direct):
            before = len(self.fake.events)
            harness.raw_unary(None, "/fake.Svc/Echo", b"m", 10, md, ch=ch)
            seen.append([e[1] for e in self.fake.events[before:] if e[0] == "metadata"][0])
        self.assertEqual(seen[0], seen[1])
        self.assertIn("grpc-python", seen[0]["user-agent"])
        self.assertEqual(seen[0]["x-two"], "two words")
        self.assertEqual(seen[0]["x-bin-bin"], b"\xfe\x00")

    def test_header_block_over_64k_passes(self):
        md = [("x-l%d" % i, "v" * (10 << 10)) for i in range(10)]  # 100 KiB of metadata
        through, direct = self.both("/fake.Svc/Echo", b"m", md)
        self.assertEqual(through.code, grpc.StatusCode.OK, through.details)
        self.assertEqual(through.initial, direct.initial)

    def test_trailers_only_stays_trailers_only(self):
        req = preface() + raw_call(1, "/fake.Svc/Fail", b"", ("x-code", "NOT_FOUND"))
        for sock in (self.backend_sock, self.relay.sock):
            got = stream_frames(harness.send_raw(sock, req, read_for=2.0), 1)
            self.assertEqual(len(got), 1, (sock, got))
            kind, flags, _ = got[0]
            self.assertEqual(kind, HEADERS)
            self.assertTrue(flags & END_STREAM, sock)

    def test_server_streaming_each_message(self):
        call = self.ch.unary_stream("/fake.Svc/Count")(
            b"", metadata=[("x-count", "4"), ("x-gap", "0.3")], timeout=10)
        self.assertEqual(next(call), b"0")
        self.assertEqual(list(call), [b"1", b"2", b"3"])
        self.assertIn(("x-trailer", "counted"), call.trailing_metadata())

    def test_client_and_bidi_streaming(self):
        total = self.ch.stream_unary("/fake.Svc/Sum")(iter([b"a", b"bc", b"d" * 100000]))
        self.assertEqual(total, b"abc" + b"d" * 100000)
        echoed = list(self.ch.stream_stream("/fake.Svc/Bidi")(iter([b"x", b"y"])))
        self.assertEqual(echoed, [b"echo:x", b"echo:y"])

    def test_cancel_reaches_backend(self):
        self.fake.cancelled.clear()
        self.fake.started.clear()
        fut = self.ch.unary_unary("/fake.Svc/Slow").future(b"", metadata=[("x-sleep", "20")])
        self.assertTrue(self.fake.started.wait(10))
        fut.cancel()
        self.assertTrue(self.fake.cancelled.wait(10), "the backend never saw the cancel")

    def test_client_hangup_reaches_backend(self):
        self.fake.cancelled.clear()
        self.fake.started.clear()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.relay.sock)
        s.sendall(preface() + raw_call(1, "/fake.Svc/Slow", b"", ("x-sleep", "20")))
        self.assertTrue(self.fake.started.wait(10))
        s.close()
        self.assertTrue(self.fake.cancelled.wait(10), "the backend never saw the hang-up")

    def test_deadline_reaches_backend(self):
        answer = harness.raw_unary(None, "/fake.Svc/Deadline", b"", 5, ch=self.ch)
        self.assertNotEqual(answer.body, b"none")  # grpc-timeout went through
        self.assertTrue(0 < float(answer.body) < 6, answer.body)  # grpc rounds it up

    def test_stalled_reader_bounded_and_others_flow(self):
        size = 48 << 20
        harness.raw_unary(None, "/fake.Svc/Big", b"", 10, [("x-size", str(1 << 20))], ch=self.ch)
        before = self.relay.rss_kib()
        seen = len(self.fake.events)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.relay.sock)
        # a huge window, then never read: only the relay's own bound holds it
        s.sendall(preface(window=(1 << 31) - 1) +
                  raw_call(1, "/fake.Svc/Big", b"", ("x-size", str(size))))
        harness.wait_for(lambda: ("method", "/fake.Svc/Big") in self.fake.events[seen:],
                         what="the backend to get the call")
        time.sleep(3)  # let the backend push what flow control allows
        other = harness.raw_unary(self.relay.sock, "/fake.Svc/Echo", b"still", 10)
        self.assertEqual(other.body, b"still")
        grown = self.relay.rss_kib() - before
        s.close()
        print("stalled reader of a %d MiB answer: relay RSS grew %d KiB" % (size >> 20, grown),
              file=sys.stderr)
        self.assertLess(grown, 16 << 10, "relay grew %d KiB holding a %d-byte answer" % (grown, size))

    def test_250_concurrent_streams_on_one_connection(self):
        n = 250
        ids = [1 + 2 * i for i in range(n)]
        heads = b"".join(harness.h2_frame(HEADERS, END_HEADERS, sid,
                                          harness.grpc_headers("/fake.Svc/Echo")) for sid in ids)
        bodies = b"".join(harness.h2_frame(DATA, END_STREAM, sid, grpc_msg(b"s%d" % sid))
                          for sid in ids)
        got = frames(harness.send_raw(self.relay.sock, preface() + heads + bodies, read_for=5.0))
        for sid in ids:
            mine = [(k, f, p) for k, f, s, p in got if s == sid and k in (DATA, HEADERS)]
            data = b"".join(p for k, _, p in mine if k == DATA)
            self.assertEqual(data, grpc_msg(b"s%d" % sid), sid)
            self.assertTrue(mine and mine[-1][0] == HEADERS and mine[-1][1] & END_STREAM, sid)
        # and the same through a grpc client, all in flight at once
        futs = [self.ch.unary_unary("/fake.Svc/Echo").future(b"f%d" % i) for i in range(n)]
        self.assertEqual([f.result(timeout=30) for f in futs], [b"f%d" % i for i in range(n)])


class H2RelaySeamAndLoss(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-h2r-")
        self.backend_sock = os.path.join(self.dir, "fake.sock")

    def held_relay(self, **kw):
        fake = FakeBackend(self.backend_sock)
        relay = Relay(self.backend_sock, self.dir, hold=["/fake.Svc/Echo", "/fake.Svc/Fail"], **kw)
        return fake, relay

    def test_held_request_whole_then_forwarded_rewritten(self):
        fake, relay = self.held_relay()
        try:
            body = bytes(range(256)) * 800  # 200 KiB: more than one window
            ch = harness.channel(relay.sock)
            got = harness.raw_unary(None, "/fake.Svc/Echo", body, ch=ch,
                                    metadata=[("x-kubelet", "v1.28")])
            self.assertEqual(got.body, b"seen:" + body)  # the owner's body reached the backend
            self.assertEqual(relay.proc.stdout.readline().split(),
                             ["held", "/fake.Svc/Echo", str(len(body) + 5),
                              grpc_msg(body)[:16].hex()])
            self.assertEqual(relay.proc.stdout.readline().split(),
                             ["answer", "/fake.Svc/Echo", "0", str(len(body) + 10)])
            # the client's headers went as sent, the backend's came back as sent
            md = [e for e in fake.events if e[0] == "metadata"][-1][1]
            self.assertEqual(md["x-kubelet"], "v1.28")
            self.assertTrue(md["user-agent"].startswith("grpc-python"), md["user-agent"])
            self.assertIn(("x-kubelet", "v1.28"), got.initial)
            self.assertIn(("x-trailer", "done"), got.trailing)
            # not intercepted: no seam call
            self.assertEqual(harness.raw_unary(None, "/fake.Svc/Version", b"", ch=ch).code,
                             grpc.StatusCode.OK)
            ch.close()
            relay.proc.send_signal(2)
            self.assertEqual(relay.proc.stdout.read(), "")  # no other seam call
        finally:
            relay.stop()
            fake.stop()

    def test_forward_later_refuse_and_client_gone(self):
        fake, relay = self.held_relay()
        try:
            ch = harness.channel(relay.sock)
            later = harness.raw_unary(None, "/fake.Svc/Echo", b"later please", ch=ch)
            self.assertEqual(later.body, b"seen:later please")
            refused = harness.raw_unary(None, "/fake.Svc/Echo", b"refuse this", ch=ch)
            self.assertEqual(refused.code, grpc.StatusCode.FAILED_PRECONDITION)
            self.assertEqual(refused.details, "refused by the seam")
            # a client that resets its stream while the request is held: never forwarded
            rst = harness.h2_frame(RST_STREAM, 0, 1, struct.pack(">I", 8))
            harness.send_raw(relay.sock, preface() + raw_call(1, "/fake.Svc/Echo", b"later gone")
                             + rst, read_for=0.5)
            kinds = [relay.proc.stdout.readline().split()[0] for _ in range(5)]
            self.assertEqual(kinds, ["held", "answer", "held", "held", "gone"])
            time.sleep(0.2)  # past the 30 ms timer
            self.assertEqual(handled(fake, "/fake.Svc/Echo"), 1)
            # the connection and the relay are fine
            self.assertEqual(harness.raw_unary(None, "/fake.Svc/Echo", b"x", ch=ch).body, b"seen:x")
            ch.close()
        finally:
            relay.stop()
            fake.stop()

    def test_credit_stays_right_after_many_rewritten_requests(self):
        # Each held request reaches the backend 5 bytes longer ("seen:"): the
        # verbatim engine hands out the backend's connection credit itself, so
        # 400 of them, then requests that need the whole window, must neither
        # overrun the backend (FLOW_CONTROL_ERROR) nor starve the client.
        fake, relay = self.held_relay()
        try:
            ch = harness.channel(relay.sock)
            echo = ch.unary_unary("/fake.Svc/Echo")
            for i in range(400):
                self.assertEqual(echo(b"%04d" % i + b"e" * 4000, timeout=10)[:9], b"seen:%04d" % i)
            chunks = [bytes([i]) * 65536 for i in range(32)]  # 2 MiB, not held
            summed = ch.stream_unary("/fake.Svc/Sum")(iter(chunks), timeout=30)
            self.assertEqual(summed, b"".join(chunks))
            big = bytes(range(256)) * 1200
            self.assertEqual(echo(big, timeout=10), b"seen:" + big)
            ch.close()
        finally:
            relay.stop()
            fake.stop()

    def test_held_answer_trailers_only_stays_trailers_only(self):
        fake, relay = self.held_relay()
        try:
            req = preface() + raw_call(1, "/fake.Svc/Fail", b"", ("x-code", "NOT_FOUND"))
            got = stream_frames(harness.send_raw(relay.sock, req, read_for=2.0), 1)
            self.assertEqual([(k, f & END_STREAM) for k, f, _ in got], [(HEADERS, END_STREAM)])
            self.assertEqual(relay.proc.stdout.readline().split()[0], "held")
            self.assertEqual(relay.proc.stdout.readline().split(),
                             ["answer", "/fake.Svc/Fail", "5", "0"])
        finally:
            relay.stop()
            fake.stop()

    def test_held_body_over_limit_is_resource_exhausted(self):
        fake, relay = self.held_relay(max_held=100000)
        try:
            ch = harness.channel(relay.sock)
            big = harness.raw_unary(None, "/fake.Svc/Echo", b"b" * 200000, ch=ch)
            self.assertEqual(big.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(big.details, "request larger than the relay holds")
            small = harness.raw_unary(None, "/fake.Svc/Echo", b"s" * 1000, ch=ch)
            self.assertEqual(small.body, b"seen:" + b"s" * 1000)  # same connection, still fine
            self.assertEqual(relay.proc.stdout.readline().split()[:3],
                             ["held", "/fake.Svc/Echo", "1005"])
            self.assertEqual(handled(fake, "/fake.Svc/Echo"), 1)
            # an answer over the bound: the backend answered, the client is told
            over = harness.raw_unary(None, "/fake.Svc/Echo", b"a" * 99994, ch=ch)
            self.assertEqual(over.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(over.details, "crihookd: answer larger than the relay holds")
            ch.close()
        finally:
            relay.stop()
            fake.stop()

    def test_no_backend_is_unavailable_trailers_only(self):
        relay = Relay(os.path.join(self.dir, "nobody.sock"), self.dir)
        try:
            answer = harness.raw_unary(relay.sock, "/fake.Svc/Echo", b"x")
            self.assertEqual(answer.code, grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(answer.details, "backend connection lost")
            got = stream_frames(harness.send_raw(relay.sock, preface() +
                                                 raw_call(1, "/fake.Svc/Echo", b"x")), 1)
            self.assertEqual([(k, f & END_STREAM) for k, f, _ in got], [(HEADERS, END_STREAM)])
        finally:
            relay.stop()

    def test_backend_lost_mid_call_then_back(self):
        fake = subprocess.Popen(["/usr/bin/python3", "fake_backend.py", self.backend_sock],
                                stdout=subprocess.PIPE, text=True)
        self.assertEqual(fake.stdout.readline().strip(), "ready")
        relay = Relay(self.backend_sock, self.dir)
        ch = harness.channel(relay.sock)
        try:
            fut = ch.unary_unary("/fake.Svc/Slow").future(b"", metadata=[("x-sleep", "20")])
            time.sleep(0.5)
            fake.kill()
            fake.wait()
            fake.stdout.close()
            self.assertEqual(fut.exception(timeout=10).code(), grpc.StatusCode.UNAVAILABLE)
            fake = subprocess.Popen(["/usr/bin/python3", "fake_backend.py", self.backend_sock],
                                    stdout=subprocess.PIPE, text=True)
            self.assertEqual(fake.stdout.readline().strip(), "ready")
            # same client connection: the next stream connects anew
            self.assertEqual(harness.raw_unary(None, "/fake.Svc/Echo", b"back", ch=ch).body, b"back")
        finally:
            ch.close()
            fake.kill()
            fake.wait()
            fake.stdout.close()
            relay.stop()


class RawBackend:
    """A raw HTTP/2 server that records every frame it receives and answers
    each request HEADERS with RST_STREAM(rst_code) if given, else with a
    trailers-only OK (with answer_at_end: each stream at its END_STREAM). It
    gives no flow-control credit beyond the initial windows unless told
    (window_update). With stall_first, its first connection never reads;
    with broken_first, its first answer breaks HTTP/2 (a CONTINUATION of no
    header block)."""

    def __init__(self, path, rst_code=None, stall_first=False, settings_delay=0,
                 rst_after_answer=False, broken_first=False, answer_at_end=False, settings=b""):
        self.frames, self.rst_code, self.stall = [], rst_code, stall_first
        self.settings = settings  # the payload of its first SETTINGS
        self.broken, self.answer_at_end = broken_first, answer_at_end
        self.settings_delay, self.rst_after_answer = settings_delay, rst_after_answer
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            stall, self.stall = self.stall, False
            time.sleep(self.settings_delay)
            try:
                conn.sendall(harness.h2_frame(SETTINGS, 0, 0, self.settings))
            except OSError:  # the relay has closed it already
                continue
            if not stall:
                threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def answer(self, conn, sid):
        if self.broken:  # once: a CONTINUATION of no header block
            self.broken = False
            conn.sendall(harness.h2_frame(CONTINUATION, END_HEADERS, sid, b"\x88"))
            return
        if self.rst_code is not None:
            conn.sendall(harness.h2_frame(RST_STREAM, 0, sid, struct.pack(">I", self.rst_code)))
            return
        block = b"".join(harness.hpack_literal(k, v) for k, v in (
            (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")))
        conn.sendall(harness.h2_frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
        if self.rst_after_answer:  # as a gRPC server does to a request still open
            conn.sendall(harness.h2_frame(RST_STREAM, 0, sid, struct.pack(">I", 0)))

    def serve(self, conn):
        try:
            self.read_frames(conn)
        except OSError:  # the relay has closed it
            pass

    def read_frames(self, conn):
        buf = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
            if buf.startswith(harness.H2_PREFACE):
                buf = buf[len(harness.H2_PREFACE):]
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = 9 + int.from_bytes(buf[:3], "big")
                frame, buf = frames(buf[:n])[0], buf[n:]
                self.frames.append(frame)
                at_end = frame[0] in (HEADERS, DATA) and frame[1] & END_STREAM
                if at_end if self.answer_at_end else frame[0] == HEADERS:
                    self.answer(conn, frame[2])

    def window_update(self, n):
        """Gives the relay n bytes of connection credit (the only WINDOW_UPDATE
        this backend ever sends) on its latest connection."""
        self.conns[-1].sendall(harness.h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", n)))

    def close(self):
        self.listener.close()
        for conn in self.conns:
            conn.close()


class H2RelayRaw(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-h2r-")
        self.backend_sock = os.path.join(self.dir, "raw.sock")

    def test_client_header_block_that_does_not_decode_ends_with_goaway(self):
        # RFC 9113 5.4.1: a connection error ends with GOAWAY and its code.
        # Two blocks neither engine decodes: an indexed field 0 (RFC 7541
        # 6.1) and a field over nghttp2's 64 KiB bound (README "Limits"),
        # the latter in HEADERS + CONTINUATION. The client gets
        # GOAWAY(COMPRESSION_ERROR), then the close; a new connection works.
        # The verbatim engine used to close without a GOAWAY.
        big = hpack.Encoder().encode(request_headers("/x.Y/Z", ("x-large", "v" * (200 << 10))),
                                     huffman=False)
        backend = RawBackend(self.backend_sock)
        relay = Relay(self.backend_sock, self.dir)
        try:
            for what, block in (("indexed field 0", b"\x80"),
                                ("a 200 KiB field", big)):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(relay.sock)
                s.sendall(preface() + block_frames(1, block, True))
                data = read_to_eof(s, 10)
                s.close()
                self.assertIsNotNone(data, "%s: the connection is still open" % what)
                goaway = [p for k, _, sid, p in frames(data) if k == GOAWAY and sid == 0]
                self.assertEqual([struct.unpack(">I", p[4:8])[0] for p in goaway], [9], what)
                self.assertEqual(call_status(relay.sock), [b"0"], what)
        finally:
            relay.stop()
            backend.close()

    def test_table_size_the_backend_sets_binds_the_clients_next_block(self):
        # RFC 7541 4.2: a backend that announces HEADER_TABLE_SIZE 64 lowers
        # the table the client's encoder may keep, from the client's ACK of
        # that SETTINGS on, and the client's next header block must say so
        # first (a table size update). The verbatim engine passes the
        # backend's SETTINGS to the client and reads the client's blocks
        # with its own decoder (relay/hpack_decode.c): a block that starts
        # with the update is a call like any other and reaches the backend
        # as it was sent; one that does not ends the connection with
        # GOAWAY(COMPRESSION_ERROR), as nghttp2's decoder did.
        if ENGINE != "verbatim":
            self.skipTest("the terminating engine sends the client SETTINGS of its own")
        table_64 = struct.pack(">HI", SETTINGS_HEADER_TABLE_SIZE, 64)
        backend = RawBackend(self.backend_sock, settings=table_64)
        relay = Relay(self.backend_sock, self.dir)
        try:
            for says_so in (True, False):
                enc = hpack.Encoder()
                if says_so:
                    enc.header_table_size = 64  # its next block starts with the update
                block = enc.encode(request_headers("/x.Y/Z"))
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(relay.sock)
                try:
                    s.sendall(preface())
                    self.assertIn(table_64, read_settings(s))
                    s.sendall(harness.h2_frame(SETTINGS, ACK, 0, b"") + block_frames(1, block, False)
                              + harness.h2_frame(DATA, END_STREAM, 1, grpc_msg(b"")))
                    if says_so:
                        last = read_answer(s, 1)[-1]
                        self.assertEqual(last[0], HEADERS)
                        self.assertIn(("grpc-status", "0"), hpack.Decoder().decode(last[2]))
                        self.assertTrue(any(k == HEADERS and p == block
                                            for k, _, _, p in backend.frames), "not as sent")
                    else:
                        data = read_to_eof(s, 10)
                        self.assertIsNotNone(data, "the connection is still open")
                        goaway = [p for k, _, sid, p in frames(data) if k == GOAWAY and sid == 0]
                        self.assertEqual([struct.unpack(">I", p[4:8])[0] for p in goaway], [9])
                finally:
                    s.close()
        finally:
            relay.stop()
            backend.close()

    def test_backend_protocol_error_answers_unavailable(self):
        # A backend that breaks HTTP/2 (a CONTINUATION of no header block)
        # while a call is open: the call ends with UNAVAILABLE, as for a lost
        # backend, and the next connection is served by a new backend
        # connection. The verbatim engine used to close the client's
        # connection without a word.
        backend = RawBackend(self.backend_sock, broken_first=True)
        relay = Relay(self.backend_sock, self.dir)
        client = H2Client(relay.sock)
        try:
            st = client.call(request_headers("/x.Y/Z"))
            st.wait_closed()
            self.assertEqual(grpc_status(st), [b"14"], st.events)
            self.assertEqual(call_status(relay.sock), [b"0"])
        finally:
            client.close()
            relay.stop()
            backend.close()

    def test_stalled_client_bytes_fed_later_get_their_answer_at_once(self):
        # Client DATA the backend has no connection credit for waits in the
        # verbatim relay until the backend's WINDOW_UPDATE. What the relay
        # writes to the client while it feeds those bytes (here its own
        # INTERNAL for a request that ends inside a message) must go out at
        # once: it used to wait for the next read of either side, and with a
        # backend that has nothing more to say the call hung.
        # The stall: a held call's rewritten body ("seen:" + the message,
        # forwarded 30 ms later) takes backend credit the client was already
        # given back (40 KiB of the backend's 64), so the client has more
        # credit than the backend: of its three DATA frames (40 KiB, all in
        # one read: a last frame split over two reads is left to the
        # backend to judge) the second and third wait.
        backend = RawBackend(self.backend_sock, answer_at_end=True)
        relay = Relay(self.backend_sock, self.dir, hold=["/fake.Svc/Echo"],
                      extra=["--max-msg-size", str(4 << 20)])
        client = H2Client(relay.sock)
        try:
            held = client.call(request_headers("/fake.Svc/Echo"),
                               [grpc_msg(b"later" + b"x" * 40000)])
            self.assertEqual(relay.proc.stdout.readline().split()[:2], ["held", "/fake.Svc/Echo"])
            held.wait_closed()  # forwarded whole (the backend answers at its end)
            # one message announced at 1 MiB, cut short
            body = struct.pack(">BI", 0, 1 << 20) + b"u" * (2 * 16384 + 8000 - 5)
            up = client.call(request_headers("/x.Y/Up"),
                             [body[i:i + 16384] for i in range(0, len(body), 16384)])
            time.sleep(0.5)  # the relay has passed what the backend's window allows
            backend.window_update(1 << 20)
            up.wait_closed(timeout=5)
            self.assertEqual(grpc_status(up), [b"13"], up.events)
        finally:
            client.close()
            relay.stop()
            backend.close()

    def test_backend_rst_stream_reaches_client(self):
        backend = RawBackend(self.backend_sock, rst_code=11)
        relay = Relay(self.backend_sock, self.dir)
        try:
            got = harness.send_raw(relay.sock, preface() + raw_call(1, "/x.Y/Z", b"q"))
            rst = [p for k, _, sid, p in frames(got) if k == RST_STREAM and sid == 1]
            self.assertEqual(rst, [struct.pack(">I", 11)])
        finally:
            relay.stop()
            backend.close()

    def test_client_rst_stream_reaches_backend(self):
        backend = RawBackend(self.backend_sock)
        relay = Relay(self.backend_sock, self.dir)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(relay.sock)
            s.sendall(preface() + harness.h2_frame(HEADERS, END_HEADERS, 1,
                                                   harness.grpc_headers("/x.Y/Z")) +
                      harness.h2_frame(DATA, 0, 1, grpc_msg(b"part")))
            harness.wait_for(lambda: any(f[0] == DATA for f in backend.frames),
                             what="the request DATA at the backend")
            s.sendall(harness.h2_frame(RST_STREAM, 0, 1, struct.pack(">I", 2)))
            harness.wait_for(lambda: any(f[0] == RST_STREAM for f in backend.frames),
                             what="the RST_STREAM at the backend")
            sid = [f[2] for f in backend.frames if f[0] == HEADERS][0]
            self.assertIn((RST_STREAM, 0, sid, struct.pack(">I", 2)), backend.frames)
            self.assertIn((DATA, 0, sid, grpc_msg(b"part")), backend.frames)
        finally:
            s.close()
            relay.stop()
            backend.close()

    def test_backend_that_does_not_read_bounded_and_others_flow(self):
        backend = RawBackend(self.backend_sock, stall_first=True)
        relay = Relay(self.backend_sock, self.dir)
        ch = harness.channel(relay.sock)
        try:
            before = relay.rss_kib()
            sent = []

            def messages():
                for i in range(48):
                    sent.append(i)
                    yield b"m" * (1 << 20)
            fut = ch.stream_unary("/x.Y/Upload").future(messages(), timeout=60)
            time.sleep(3)  # let the client push what flow control allows
            grown = relay.rss_kib() - before
            print("backend not reading a 48 MiB request: relay RSS grew %d KiB, client got "
                  "%d of 48 messages out" % (grown, len(sent)), file=sys.stderr)
            got = frames(harness.send_raw(relay.sock, preface() + raw_call(1, "/x.Y/Z", b"")))
            self.assertIn((HEADERS, END_HEADERS | END_STREAM, 1),
                          [(k, f, sid) for k, f, sid, _ in got if k == HEADERS])
            fut.cancel()
            self.assertLess(grown, 16 << 10)
            self.assertLess(len(sent), 48)
        finally:
            ch.close()
            relay.stop()
            backend.close()

    def test_nothing_reaches_the_client_before_the_servers_settings(self):
        # A held call whose whole request comes before the backend has said
        # anything: the relay must not write a frame (a WINDOW_UPDATE for the
        # held bytes) before the server's first SETTINGS, which a client takes
        # as a protocol error (crihookctl sent GOAWAY and hung). In verbatim
        # mode the client's SETTINGS reach the backend with HEADER_TABLE_SIZE 0.
        backend = RawBackend(self.backend_sock, settings_delay=0.3)
        relay = Relay(self.backend_sock, self.dir, hold=["/fake.Svc/Echo"])
        try:
            # "later": the owner forwards from a timer, after the read that held it
            call = raw_call(1, "/fake.Svc/Echo", b"later" + b"x" * 495)
            got = harness.send_raw(relay.sock, preface() + call, read_for=1.5)
            kinds = [(k, f) for k, f, _, _ in frames(got)]
            self.assertTrue(kinds, "no answer at all")
            self.assertEqual(kinds[0], (SETTINGS, 0), kinds)
            held = relay.proc.stdout.readline().split()
            self.assertEqual(held[:3], ["held", "/fake.Svc/Echo", "505"])
            if ENGINE == "verbatim":
                settings = [p for k, f, _, p in backend.frames if k == SETTINGS and not f & 1]
                self.assertIn(struct.pack(">HI", 1, 0), settings[0])
        finally:
            relay.stop()
            backend.close()

    def test_answer_before_the_held_request_is_forwarded(self):
        # A backend that answers a call at its headers (an unknown method)
        # and then resets the stream, while the owner still holds the request
        # ("later": forwarded from a timer). The verbatim engine has passed
        # the headers on at once: it keeps that answer until the owner has
        # decided and drops the reset (the answer is whole); the terminating
        # engine opens the backend's stream only at the forward. Either way
        # the client gets the answer, not a reset (the verbatim engine used
        # to pass the reset on, one call in 1500 in e2e-log_metrics_hardening).
        backend = RawBackend(self.backend_sock, rst_after_answer=True)
        relay = Relay(self.backend_sock, self.dir, hold=["/fake.Svc/Echo"])
        try:
            call = raw_call(1, "/fake.Svc/Echo", b"later, please")
            got = stream_frames(harness.send_raw(relay.sock, preface() + call, read_for=1.5), 1)
            self.assertEqual([(k, f & END_STREAM) for k, f, _ in got], [(HEADERS, END_STREAM)])
            resets = [f for f in frames(harness.send_raw(relay.sock, preface() + call,
                                                         read_for=1.5))
                      if f[0] == RST_STREAM]
            self.assertEqual(resets, [])
        finally:
            relay.stop()
            backend.close()

    def test_garbage_closes_only_that_connection(self):
        fake = FakeBackend(self.backend_sock)
        relay = Relay(self.backend_sock, self.dir)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(relay.sock)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            while s.recv(65536):  # the relay closes it (a timeout fails the test)
                pass
            s.close()
            self.assertEqual(harness.raw_unary(relay.sock, "/fake.Svc/Echo", b"ok").body, b"ok")
        finally:
            relay.stop()
            fake.stop()


def read_to_eof(s, timeout):
    """Everything the peer sends until it closes `s`, or None if it is still
    open after `timeout` seconds."""
    data, end = b"", time.monotonic() + timeout
    s.settimeout(0.5)
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def grpc_status(st):
    """Every grpc-status an h2raw Stream received (in its header blocks)."""
    return [v for block, _ in st.header_blocks() for k, v in block if k == b"grpc-status"]


def call_status(sock):
    """grpc-status of one call to /x.Y/Z on a new connection to `sock`."""
    client = H2Client(sock)
    try:
        st = client.call(request_headers("/x.Y/Z"))
        st.wait_closed()
        return grpc_status(st)
    finally:
        client.close()


def read_until(s, found, what, timeout=10):
    """Reads `s` until found(bytes so far) is not None and returns that; fails
    with `what` if the peer closes or `timeout` seconds pass first."""
    data, end = b"", time.monotonic() + timeout
    s.settimeout(1.0)
    while time.monotonic() < end:
        got = found(data)
        if got is not None:
            return got
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    raise AssertionError("%s: %r" % (what, frames(data)))


def read_settings(s):
    """The payload of the first SETTINGS (not an ACK) the peer sends on `s`."""
    def found(data):
        return next((p for k, f, _, p in frames(data) if k == SETTINGS and not f & ACK), None)
    return read_until(s, found, "no SETTINGS")


def read_answer(s, sid):
    """Reads until stream `sid` ends (HEADERS or DATA with END_STREAM)."""
    def found(data):
        got = stream_frames(data, sid)
        return got if got and got[-1][1] & END_STREAM else None
    return read_until(s, found, "stream %d did not end" % sid)


class H2RelayAccept(unittest.TestCase):
    """The accept side of relay/h2relay.c, with short bounds."""

    def setUp(self):
        self.dir = harness.tmpdir("crihook-h2r-")
        self.fake = FakeBackend(os.path.join(self.dir, "fake.sock"))
        self.addCleanup(self.fake.stop)
        self.socks = []
        self.addCleanup(lambda: [s.close() for s in self.socks])

    def start(self, *extra):
        relay = Relay(self.fake.sock, self.dir, extra=extra)
        self.addCleanup(relay.stop)
        return relay

    def connect(self, relay, send=b""):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socks.append(s)
        s.connect(relay.sock)
        if send:
            s.sendall(send)
        return s

    def test_silent_and_half_preface_clients_closed_after_preface_bound(self):
        relay = self.start("--preface-timeout-ms", "500")
        good = self.connect(relay, preface())
        bad = [self.connect(relay), self.connect(relay, b"PRI * HTTP/2.0\r\n"),
               self.connect(relay, harness.H2_PREFACE)]  # the magic, no SETTINGS
        for s, what in zip(bad, ("nothing", "half the magic", "the magic only")):
            self.assertIsNotNone(wait_for_eof(s, 20), "a client that sent %s is still open" % what)
        # the client that sent its preface in time is served
        good.sendall(raw_call(1, "/fake.Svc/Echo", b"in time"))
        got = read_answer(good, 1)
        self.assertEqual(b"".join(p for k, _, p in got if k == DATA), grpc_msg(b"in time"))
        self.assertIn(" closed_preface=3 ", relay.stop())

    def test_idle_connection_gets_goaway_while_open_stream_keeps_its_own(self):
        relay = self.start("--idle-ms", "1000")
        ch = harness.channel(relay.sock)
        self.addCleanup(ch.close)
        slow = ch.unary_unary("/fake.Svc/Slow").future(b"", metadata=[("x-sleep", "4")],
                                                        timeout=30)
        idle = self.connect(relay, preface())
        used = self.connect(relay, preface() + raw_call(1, "/fake.Svc/Echo", b"once"))
        read_answer(used, 1)
        for s, last in ((idle, 0), (used, 1)):
            data = read_to_eof(s, 20)
            self.assertIsNotNone(data, "an idle connection is still open")
            goaway = [p for k, _, sid, p in frames(data) if k == GOAWAY and sid == 0]
            self.assertEqual(goaway, [struct.pack(">II", last, 0)])  # NO_ERROR
        # the call open all along (4 s > the idle bound) was not cut short
        self.assertEqual(slow.result(timeout=30), b"slept")
        counters = relay.stop()
        self.assertRegex(counters, r" closed_idle=[2-9] ")

    def test_connection_over_cap_closed_at_once_first_ones_work(self):
        relay = self.start("--max-conns", "3", "--preface-timeout-ms", "600000")
        first = []
        for i in range(3):
            s = self.connect(relay, preface() + raw_call(1, "/fake.Svc/Echo", b"c%d" % i))
            read_answer(s, 1)
            first.append(s)
        over = self.connect(relay)
        self.assertIsNotNone(wait_for_eof(over, 5), "connection 4 of 3 is still open")
        for i, s in enumerate(first):  # the first three still work
            s.sendall(raw_call(3, "/fake.Svc/Echo", b"again%d" % i))
            got = read_answer(s, 3)
            self.assertEqual(b"".join(p for k, _, p in got if k == DATA), grpc_msg(b"again%d" % i))
        first[0].close()  # a place frees up
        harness.wait_for(lambda: harness.raw_unary(relay.sock, "/fake.Svc/Echo", b"x",
                                                   timeout=3).body == b"x",
                         10, what="a new connection to be served once one closed")
        self.assertIn(" refused_over_cap=1 ", relay.stop())

    def exhaust_then_release(self, relay):
        pid = relay.proc.pid
        limit = limit_fds(pid, 30)
        socks = idle_unix(relay.sock, 200)
        self.socks += socks
        harness.wait_for(lambda: fd_count(pid) >= limit - 1, 10, what="the relay to run out of fds")
        late = self.connect(relay)  # no descriptor for it: accepted and closed at once
        self.assertIsNotNone(wait_for_eof(late, 10), "a connection over the fd limit is left open")
        release(socks, pid, limit)
        # served at once, with no restart
        answer = harness.raw_unary(relay.sock, VERSION, timeout=5)
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
        self.assertIsNone(relay.proc.poll())

    def test_fd_exhaustion_then_served_at_once(self):
        relay = self.start("--preface-timeout-ms", "600000")
        self.exhaust_then_release(relay)
        relay.stop()

    def test_fd_exhaustion_without_libuv_reserve(self):
        # libuv 1.44 then calls back with EMFILE and accepts again at once,
        # forever, unless the relay frees a descriptor (its own reserve)
        relay = self.start("--preface-timeout-ms", "600000", "--fault", "steal-uv-reserve")
        self.exhaust_then_release(relay)
        counters = relay.stop()
        self.assertNotIn(" accept_errors=0 ", counters)
        self.assertNotIn(" shed=0", counters)


class H2RelayContainerd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = harness.tmpdir("crihook-h2r-")
        cls.containerd = harness.Containerd.shared()
        cls.relay = Relay(cls.containerd.sock, cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        cls.containerd.stop()

    def test_version_and_list_containers_identical(self):
        for method in (harness.V1 + "Version", harness.V1 + "ListContainers",
                       harness.V1 + "ListPodSandbox", harness.V1ALPHA2 + "Version"):
            through = harness.raw_unary(self.relay.sock, method)
            direct = harness.raw_unary(self.containerd.sock, method)
            self.assertEqual(through.code, grpc.StatusCode.OK, (method, through.details))
            self.assertTrue(through.same_as(direct), (method, through, direct))

    def test_events_subscribe_streams(self):
        ns = [("containerd-namespace", "k8s.io")]
        ch = harness.channel(self.relay.sock)
        call = ch.unary_stream(EVENTS + "Subscribe")(b"", metadata=ns, timeout=30)
        topic = "/crihook/h2relay/%d" % os.getpid()
        event = harness.pb_bytes(1, "types.crihook.test/x") + harness.pb_bytes(2, b"hi")
        got = []
        reader = threading.Thread(target=lambda: got.append(next(call)))
        reader.start()
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:  # publish until the subscriber sees one
            answer = harness.raw_unary(self.containerd.sock, EVENTS + "Publish",
                                       harness.pb_bytes(1, topic) + harness.pb_bytes(2, event),
                                       metadata=ns)
            self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
            reader.join(0.3)
        call.cancel()
        reader.join(5)
        ch.close()
        self.assertTrue(got, "no event came through the relay")
        self.assertIn(topic.encode(), got[0])


if __name__ == "__main__":
    harness.main()
