# SPDX-License-Identifier: Apache-2.0
"""fake_backend.py: a gRPC server with exactly known behaviour, to check that
crihookd relays every call shape, status, metadata and cancel faithfully.

It serves any method path through one generic handler (raw bytes in and
out). The method's last path element chooses the behaviour:
  Echo          unary: returns the request; echoes x-* request metadata as
                initial metadata and adds trailer x-trailer: done
  Fail          unary: aborts with the code named by request metadata
                x-code (default NOT_FOUND) and message x-message;
                Python's grpc answers such errors trailers-only
  Slow          unary: sleeps x-sleep seconds (default 30) unless
                cancelled; records whether it saw the cancel
  Deadline      unary: returns the time remaining as seen by the server
  Big           unary: returns x-size bytes
  Count         server streaming: x-count messages "0","1",..., x-gap
                seconds apart
  Sum           client streaming: returns the concatenated messages
  Bidi          bidi streaming: echoes each message as it comes
  Version       answers like a CRI runtime (so crihookd's probe succeeds)
Everything it saw is kept in `events` for the test to read.
"""

import threading
import time
from concurrent import futures

import grpc


def _md(context):
    return {k: v for k, v in context.invocation_metadata()}


class FakeBackend:
    def __init__(self, sock, max_msg=64 << 20, handler=None):
        """`handler`: a subclass of _Handler that changes some methods."""
        self.sock = sock
        self.events = []
        self.cancelled = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16),
            options=[("grpc.max_receive_message_length", max_msg),
                     ("grpc.max_send_message_length", max_msg),
                     ("grpc.max_metadata_size", 1 << 20)])
        self.server.add_generic_rpc_handlers(((handler or _Handler)(self),))
        self.server.add_insecure_port("unix://" + sock)
        self.server.start()

    def record(self, what):
        with self.lock:
            self.events.append(what)

    def stop(self):
        self.server.stop(0).wait()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, fake):
        self.fake = fake

    def service(self, details):
        name = details.method.rsplit("/", 1)[-1]
        self.fake.record(("method", details.method))
        f = self.fake
        unary = {
            "Echo": self.echo, "Fail": self.fail, "Slow": self.slow,
            "Deadline": self.deadline, "Big": self.big, "Version": self.version,
        }
        if name in unary:
            return grpc.unary_unary_rpc_method_handler(unary[name])
        if name == "Count":
            return grpc.unary_stream_rpc_method_handler(self.count)
        if name == "Sum":
            return grpc.stream_unary_rpc_method_handler(self.sum)
        if name == "Bidi":
            return grpc.stream_stream_rpc_method_handler(self.bidi)
        f.record(("unknown", details.method))
        return None

    def echo(self, request, context):
        md = _md(context)
        self.fake.record(("metadata", md))
        context.send_initial_metadata([(k, v) for k, v in md.items() if k.startswith("x-")])
        context.set_trailing_metadata([("x-trailer", "done")])
        return request

    def fail(self, request, context):
        md = _md(context)
        code = getattr(grpc.StatusCode, md.get("x-code", "NOT_FOUND"))
        context.abort(code, md.get("x-message", "fake failure") + ": ünïcode ✓")

    def slow(self, request, context):
        self.fake.started.set()
        seconds = float(_md(context).get("x-sleep", "30"))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not context.is_active():
                self.fake.cancelled.set()
                self.fake.record(("cancelled", "Slow"))
                return b""
            time.sleep(0.01)
        return b"slept"

    def deadline(self, request, context):
        remaining = context.time_remaining()
        return ("%.3f" % remaining).encode() if remaining is not None else b"none"

    def big(self, request, context):
        return b"x" * int(_md(context).get("x-size", "1024"))

    def version(self, request, context):
        # VersionResponse{version="0.1.0", runtime_name="fake", runtime_version="1"}
        return b"\n\x050.1.0\x12\x04fake\x1a\x011\"\x02v1"

    def count(self, request, context):
        md = _md(context)
        gap = float(md.get("x-gap", "0"))
        for i in range(int(md.get("x-count", "3"))):
            if i and gap:
                time.sleep(gap)
            yield str(i).encode()
        context.set_trailing_metadata([("x-trailer", "counted")])

    def sum(self, request_iterator, context):
        return b"".join(request_iterator)

    def bidi(self, request_iterator, context):
        for msg in request_iterator:
            yield b"echo:" + msg


if __name__ == "__main__":
    # Standalone, for tests that need to SIGKILL the backend: serves on the
    # socket given as argv[1] until killed.
    import sys
    fake = FakeBackend(sys.argv[1])
    print("ready", flush=True)
    threading.Event().wait()
