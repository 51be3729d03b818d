# SPDX-License-Identifier: Apache-2.0
"""harness.py: what every end-to-end test needs, in one place.

- Containerd: a private containerd from tests/harness/containerd.sh.
  `Containerd.shared()` reuses the one the test runner started for the whole
  suite when it exports CRIHOOK_TEST_CONTAINERD (a socket path); a test that
  kills or restarts its backend starts its own with `Containerd()`.
- Crihookd: the daemon under test, started on a socket in a temp dir, its log
  kept in a file and shown when a test fails.
- raw_unary: a CRI call with raw bytes through Debian's python3-grpcio, so
  the test sees exactly what kubelet would: status code, message, metadata,
  bytes (channel() for other call shapes; pb_* encode and decode by hand).
- ctl(): runs crihookctl; http_get(): one GET on the admin socket.
- HookServer: tests/e2e/hookserver.py as a process; register(): its
  registration file in a hook directory.
- fixture(): a config from tests/e2e/fixtures as a dict; write_json(): a dict
  to a file; pod_files(): a pod and a container config (fresh pod name and
  uid, the caller's labels etc. merged in) written for crihookctl runp/create,
  shaped as kubelet writes them (its io.kubernetes.* labels and annotations,
  log paths, the image by ID with the name in user_specified_image: the ID
  is asked of the first containerd a test starts, image_id()).
- main(): unittest runner that prints "cases: N passed, N failed, N skipped"
  for the suite's summary.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("CRIHOOK_BUILD_DIR", os.path.join(ROOT, "build"))
# crihookd's relay engine in these tests (--relay, read from CRIHOOK_RELAY as
# crihookd reads it; its default is verbatim): where the two engines differ
# on purpose (relay/h2relay.h "Verbatim"), a test asserts each one's way.
RELAY = os.environ.get("CRIHOOK_RELAY") or "verbatim"
CRIHOOKD = os.path.join(BUILD, "daemon", "crihookd")
CRIHOOKCTL = os.path.join(BUILD, "ctl", "crihookctl")
CONTAINERD_SH = os.path.join(ROOT, "tests", "harness", "containerd.sh")
FIXTURES = os.path.join(ROOT, "tests", "e2e", "fixtures")

BUSYBOX = "localhost/crihook/busybox:test"

V1 = "/runtime.v1.RuntimeService/"
V1_IMAGE = "/runtime.v1.ImageService/"
V1ALPHA2 = "/runtime.v1alpha2.RuntimeService/"


def tmpdir(prefix="crihook-"):
    """A short temp dir (unix socket paths are limited to 108 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def wait_for(predicate, timeout=20.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


class Containerd:
    """A private containerd; `shared()` reuses the suite's when there is one."""

    def __init__(self):
        self.dir = tmpdir("crihook-ctd-")
        out = subprocess.run(["bash", CONTAINERD_SH, "start", self.dir],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise RuntimeError("containerd.sh start failed:\n" + out.stderr)
        self.sock = out.stdout.strip().splitlines()[-1]
        self.owned = True
        image_id(self.sock)

    @classmethod
    def shared(cls):
        sock = os.environ.get("CRIHOOK_TEST_CONTAINERD")
        if sock and os.path.exists(sock):
            obj = cls.__new__(cls)
            obj.dir, obj.sock, obj.owned = None, sock, False
            image_id(sock)
            return obj
        return cls()

    def _sh(self, verb):
        subprocess.run(["bash", CONTAINERD_SH, verb, self.dir], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self):
        self._sh("kill")

    def restart(self):
        self._sh("restart")

    def stop(self):
        if self.owned:
            self._sh("stop")


class Crihookd:
    """crihookd in front of `backend`, listening on a fresh socket, with its
    own hook directory and admin socket (unless given)."""

    def __init__(self, backend, *args, env=None, listen=None, wait=True, hook_dir=None,
                 log_mode="w"):
        self.dir = tmpdir("crihook-d-")
        self.sock = listen or os.path.join(self.dir, "crihook.sock")
        self.admin = os.path.join(self.dir, "admin.sock")
        self.hook_dir = hook_dir or os.path.join(self.dir, "hookserver.d")
        self.log_path = os.path.join(self.dir, "crihookd.log")
        self.backend, self.args, self.env = backend, args, env
        self._launch(wait)

    def _launch(self, wait):
        self.log = open(self.log_path, "a")
        cmd = [CRIHOOKD, "--listen", "unix://" + self.sock, "--backend", self.backend,
               "--hook-dir", self.hook_dir, "--admin-socket", "unix://" + self.admin]
        cmd += list(self.args)
        env = self.env
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.terminated = False
        self.serving_mark = self.read_log().count("serving listen=")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        if wait:
            self.wait_serving()

    def restart(self, wait=True):
        """Starts crihookd again with the same sockets, hook dir and log."""
        self._launch(wait)

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def ctl(self, *args, check=True):
        return ctl(self.sock, "--admin", "unix://" + self.admin, *args, check=check)

    def plugins(self):
        return json.loads(self.ctl("plugins", "--json").stdout)

    def store(self, kind):
        return json.loads(self.ctl("store", kind, "--json").stdout)

    def wait_serving(self, timeout=20.0):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("crihookd exited early:\n" + self.read_log())
            return self.read_log().count("serving listen=") > self.serving_mark
        wait_for(up, timeout, what="crihookd to serve")

    def read_log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        if sig == signal.SIGTERM:
            self.terminated = True
        self.proc.send_signal(sig)

    def stop(self, timeout=30.0):
        """SIGTERM (unless the test already sent it) and wait; returns the exit code."""
        if self.proc.poll() is None:
            if not getattr(self, "terminated", False):
                self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("crihookd did not exit on SIGTERM:\n" + self.read_log())
        self.log.close()
        return self.proc.returncode


def channel(sock, options=None):
    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    return grpc.insecure_channel("unix://" + sock, options=opts + list(options or []))


class Answer:
    def __init__(self, code, details, body=None, initial=(), trailing=()):
        self.code, self.details, self.body = code, details, body
        self.initial, self.trailing = tuple(initial or ()), tuple(trailing or ())

    def same_as(self, other):
        return (self.code, self.details, self.body) == (other.code, other.details, other.body)

    def __repr__(self):
        return "Answer(%s, %r, %d bytes)" % (self.code, self.details, len(self.body or b""))


def raw_unary(sock, method, body=b"", timeout=10.0, metadata=None, ch=None):
    own = ch is None
    ch = ch or channel(sock)
    try:
        fn = ch.unary_unary(method)
        try:
            resp, call = fn.with_call(body, timeout=timeout, metadata=metadata)
            return Answer(grpc.StatusCode.OK, call.details() or "", resp,
                          call.initial_metadata(), call.trailing_metadata())
        except grpc.RpcError as e:
            return Answer(e.code(), e.details(), None, e.initial_metadata(), e.trailing_metadata())
    finally:
        if own:
            ch.close()


def http_get(path, unix=None, tcp=None, raw=False):
    """(code, body) of one HTTP/1.0 GET on crihookd's admin socket (a path)
    or its --metrics-address ((host, port)); with raw, the body as bytes,
    not decoded."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(unix)
    else:
        s = socket.create_connection(tcp, timeout=10)
    s.sendall(("GET %s HTTP/1.0\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body if raw else body.decode()


def ctl(endpoint, *args, timeout=60, check=True):
    # The call deadline stays under the process timeout but well above
    # crihookctl's 10 s default: on a loaded 2-core CI machine a
    # RunPodSandbox has been seen to take longer than 10 s.
    cmd = [CRIHOOKCTL, "--endpoint", "unix://" + endpoint, "--timeout", str(max(1, timeout - 10))]
    if args and args[0] == "--admin":
        cmd += list(args[:2])
        args = args[2:]
    cmd += list(args)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), out.returncode, out.stderr))
    return out


class HookServer:
    """tests/e2e/hookserver.py as a separate process on its own socket."""

    SCRIPT = os.path.join(ROOT, "tests", "e2e", "hookserver.py")

    def __init__(self, name, config=None, directory=None):
        self.dir = directory or tmpdir("crihook-hs-")
        self.sock = os.path.join(self.dir, name + ".sock")
        self.config_path = os.path.join(self.dir, name + ".json")
        self.log_path = os.path.join(self.dir, name + ".calls")
        self.set(config or {})
        self.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen([sys.executable, self.SCRIPT, self.sock, self.config_path],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        self.proc.stdout.close()
        assert line == "ready", "hook server did not start"

    def set(self, config):
        config = dict(config)
        config["log"] = self.log_path
        write_atomic(self.config_path, json.dumps(config))

    def calls(self, hook=None):
        try:
            with open(self.log_path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [c for c in lines if hook is None or c["hook"] == hook]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_image_ids = {}


def image_id(sock=None, ref=BUSYBOX):
    """The ID ("sha256:...") of image `ref` as the containerd at `sock` reports
    it (ImageStatus), which kubelet puts in a container's image.image. Every
    test containerd imports the same archives, so the ID is asked once and
    remembered; without `sock`, the remembered one."""
    if ref not in _image_ids:
        if sock is None:
            raise RuntimeError("image_id(%s): no containerd asked yet" % ref)
        answer = raw_unary(sock, V1_IMAGE + "ImageStatus", pb_bytes(1, pb_bytes(1, ref)))
        if answer.code != grpc.StatusCode.OK:
            raise RuntimeError("ImageStatus %s: %s %s" % (ref, answer.code, answer.details))
        image = [v for f, _, v in pb_fields(answer.body) if f == 1]
        ids = [v.decode() for f, _, v in pb_fields(image[0] if image else b"") if f == 1]
        if not ids:
            raise RuntimeError("ImageStatus %s: the runtime does not have it" % ref)
        _image_ids[ref] = ids[0]
    return _image_ids[ref]


def fixture(file_name, **metadata):
    """tests/e2e/fixtures/`file_name` as a dict, `metadata` merged into its "metadata"."""
    with open(os.path.join(FIXTURES, file_name)) as f:
        data = json.load(f)
    data["metadata"].update(metadata)
    return data


def write_json(directory, name, data):
    """Writes `data` to `directory`/`name` as JSON; returns the path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    return path


def _merge(doc, extra):
    """Each key of `extra` into `doc`: a dict into the dict already there, else set."""
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value


def pod_files(directory, name=None, prefix="e2e-", labels=None, annotations=None, linux=None,
              container=None):
    """Writes the fixture pod and container configs into `directory` as
    NAME-pod.json and NAME-ctr.json; returns (pod_path, ctr_path). The pod
    gets a fresh uid and `name` (default `prefix` and 8 random hex digits);
    `labels`, `annotations` and `linux` are merged into the pod's own, and
    each key of `container` into the container config (a dict into the dict
    already there)."""
    name = name or prefix + uuid.uuid4().hex[:8]
    uid = str(uuid.uuid4())
    pod = fixture("pod.json", name=name, uid=uid)
    ns = pod["metadata"]["namespace"]
    pod["labels"].update({"io.kubernetes.pod.name": name, "io.kubernetes.pod.uid": uid})
    pod["log_directory"] = os.path.join(os.path.dirname(pod["log_directory"]), "%s_%s_%s" % (ns, name, uid))
    _merge(pod, {"labels": labels or {}, "annotations": annotations or {}, "linux": linux or {}})
    ctr = fixture("container.json")
    ctr["image"]["image"] = image_id(None, ctr["image"]["user_specified_image"])
    ctr["labels"].update({"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns,
                          "io.kubernetes.pod.uid": uid})
    _merge(ctr, container)
    return (write_json(directory, name + "-pod.json", pod),
            write_json(directory, name + "-ctr.json", ctr))


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def register(hook_dir, file_name, endpoint, hooks, policy="Ignore", timeout_ms=None):
    """Drops a registration file into `hook_dir` (atomically)."""
    os.makedirs(hook_dir, exist_ok=True)
    doc = {"remote-endpoint": endpoint, "failure-policy": policy, "runtime-hooks": list(hooks)}
    if timeout_ms is not None:
        doc["timeout-ms"] = timeout_ms
    write_atomic(os.path.join(hook_dir, file_name), json.dumps(doc))


# ---- raw HTTP/2, for requests no client library would send ----

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def hpack_literal(name, value):
    """HPACK literal header field without indexing, new name (RFC 7541
    6.2.2); str or bytes, each shorter than 127 bytes."""
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def h2_frame(kind, flags, stream, payload):
    """One HTTP/2 frame (RFC 9113 4.1)."""
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) +
            struct.pack(">I", stream) + payload)


def grpc_headers(path, *extra):
    """The HEADERS block of a gRPC call to `path`, plus (name, value) pairs."""
    return b"".join(hpack_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers")) + tuple(extra))


def send_raw(sock_path, data, read_for=2.0):
    """Writes `data` on a fresh connection to `sock_path`; returns what came
    back within `read_for` seconds of quiet (or until the peer closed)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(data)
    s.settimeout(read_for)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return got


# ---- minimal protobuf wire encoding for the few messages built by hand ----

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_bytes(field, data):
    """A length-delimited field (string, bytes or embedded message)."""
    if isinstance(data, str):
        data = data.encode()
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def pb_varint(field, n):
    return _varint(field << 3) + _varint(n)


def pb_fields(data):
    """Decodes one message level into a list of (field, wiretype, value)."""
    out, i = [], 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            val, i = data[i:i + n], i + n
        elif wt == 1:
            val, i = data[i:i + 8], i + 8
        elif wt == 5:
            val, i = data[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type %d" % wt)
        out.append((field, wt, val))
    return out


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def main():
    """unittest main that ends with the suite's 'N passed, N failed' line."""
    result = unittest.main(exit=False, verbosity=2).result
    bad = [t for t, _ in result.failures + result.errors] + list(result.unexpectedSuccesses)
    # A failed setUpClass/tearDownClass is reported as an error of its own
    # (an _ErrorHolder), not one of the tests run: it counts as a failure,
    # but takes no pass away.
    fixture = [t for t in bad if isinstance(t, unittest.suite._ErrorHolder)]
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - (len(bad) - len(fixture)) - skipped)
    failed = len(bad)
    print("cases: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or result.testsRun == 0 else 0)
