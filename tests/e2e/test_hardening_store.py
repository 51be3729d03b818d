# SPDX-License-Identifier: Apache-2.0
"""End to end: no way past a Fail plugin with an undecodable request, and the
store stays true (issue 9, items 1 and 8).

- Undecodable: requests the real containerd decodes (its Go/gogo decoder
  skips an unknown field encoded as a group, reads over-long varint keys and
  lengths, truncates a field number past 32 bits) but crihookd's protobuf-c
  refuses. Each encoding is first sent to containerd directly, to show it
  accepts it. Through crihookd: refused (INVALID_ARGUMENT) when a Fail-policy
  plugin is registered for the hook, and nothing reaches the runtime;
  forwarded, counted, and learnt by the store from the runtime's status
  otherwise (and forgotten when such a Remove succeeds).
- The store stays true: an UpdateContainerResources survives a restart of
  crihookd (rebuilt from the runtime's current spec); after containerd
  restarts, the store is re-synced with what it really has; a slow Update or
  Start that finishes after a Remove does not bring the record back (against
  a scripted runtime that answers OK, as a runtime whose answer was already
  on its way would).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from concurrent import futures

import grpc

import harness
from harness import HookServer, register, V1

API = os.path.join(harness.ROOT, "api")


def load_cri():
    """api/cri.proto compiled for Python."""
    out = tempfile.mkdtemp(prefix="crihook-pb-")
    subprocess.run(["protoc", "--proto_path=" + API, "--python_out=" + out, "cri.proto"],
                   check=True)
    sys.path.insert(0, out)
    import cri_pb2  # noqa: E402  (generated just above)
    return cri_pb2


cri = load_cri()
from google.protobuf import json_format  # noqa: E402


def _varint(n):
    return harness._varint(n)


def _overlong(n, size):
    """`n` as a varint of exactly `size` bytes (padded with 0x80 groups)."""
    out = bytearray()
    for i in range(size):
        out.append((n & 0x7F) | (0x80 if i < size - 1 else 0))
        n >>= 7
    return bytes(out)


def weird(encoding, body, field, value):
    """`body` plus string field `field` = `value` (or, for "group", an
    unknown field 99 as a group), in an encoding Go's decoder takes and
    protobuf-c refuses."""
    value = value.encode()
    if encoding == "group":
        return body + _varint(99 << 3 | 3) + _varint(5 << 3) + b"\x01" + _varint(99 << 3 | 4)
    if encoding == "overlong-key":
        return body + _overlong(field << 3 | 2, 6) + _varint(len(value)) + value
    if encoding == "overlong-length":
        return body + _varint(field << 3 | 2) + _overlong(len(value), 7) + value
    if encoding == "field-number-alias":  # 2^32 + field: Go keeps the low 32 bits
        return body + _varint(((1 << 32) + field) << 3 | 2) + _varint(len(value)) + value
    raise ValueError(encoding)


ENCODINGS = ("group", "overlong-key", "overlong-length", "field-number-alias")


def pod_config(name):
    doc = harness.fixture("pod.json", name=name, uid=str(uuid.uuid4()))
    doc["labels"]["io.kubernetes.pod.name"] = name
    return json_format.ParseDict(doc, cri.PodSandboxConfig())


def ctr_config(sock=None, **extra):
    """The fixture container; with `sock`, its image.image is the image ID the
    containerd there reports, as kubelet sends it."""
    doc = harness.fixture("container.json")
    if sock:
        doc["image"]["image"] = harness.image_id(sock, doc["image"]["user_specified_image"])
    doc.update(extra)
    return json_format.ParseDict(doc, cri.ContainerConfig())


def call(sock, method, request, response_type=None):
    answer = harness.raw_unary(sock, V1 + method, request.SerializeToString(), timeout=60)
    if answer.code != grpc.StatusCode.OK:
        raise AssertionError("%s: %s %s" % (method, answer.code, answer.details))
    return response_type.FromString(answer.body) if response_type else answer


def pods_named(sock, name):
    r = call(sock, "ListPodSandbox", cri.ListPodSandboxRequest(), cri.ListPodSandboxResponse)
    return [p for p in r.items if p.metadata.name == name]


def metric(proxy, name):
    code, text = harness.http_get("/metrics", unix=proxy.admin)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[-1]))
    return 0


def remove_pod(sock, pod_id):
    harness.ctl(sock, "stopp", pod_id, check=False)
    harness.ctl(sock, "rmp", pod_id, check=False)


DENY = {"behaviour": "error:PERMISSION_DENIED:deny all"}
HOOKS = ("PreRunPodSandbox", "PreCreateContainer", "PreStopContainer", "PreRemovePodSandbox")


class Undecodable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = harness.Containerd.shared()

    @classmethod
    def tearDownClass(cls):
        cls.containerd.stop()

    def setUp(self):
        self.work = harness.tmpdir("crihook-und-")
        self.proxy = harness.Crihookd(self.containerd.sock)
        self.hs = HookServer("deny", {h: DENY for h in HOOKS}, self.work)
        self.pods = []

    def tearDown(self):
        for pod_id in self.pods:
            remove_pod(self.containerd.sock, pod_id)
        self.hs.stop()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log()[-3000:])

    def register(self, policy):
        register(self.proxy.hook_dir, "10-deny.json", self.hs.sock, HOOKS, policy=policy)
        harness.wait_for(lambda: self.proxy.plugins()["plugins"], 3, what="plugin registered")

    def run_pod_bytes(self, name, encoding):
        body = cri.RunPodSandboxRequest(config=pod_config(name)).SerializeToString()
        return weird(encoding, body, 2, "")  # runtime_handler "" again

    def test_runtime_decodes_what_crihookd_cannot(self):
        for encoding in ENCODINGS:
            name = "und-direct-" + uuid.uuid4().hex[:6]
            answer = harness.raw_unary(self.containerd.sock, V1 + "RunPodSandbox",
                                       self.run_pod_bytes(name, encoding), timeout=60)
            self.assertEqual(answer.code, grpc.StatusCode.OK, (encoding, answer.details))
            pod_id = cri.RunPodSandboxResponse.FromString(answer.body).pod_sandbox_id
            self.pods.append(pod_id)
            self.assertEqual(len(pods_named(self.containerd.sock, name)), 1, encoding)

    def test_fail_plugin_refuses_run_pod(self):
        self.register("Fail")
        for encoding in ENCODINGS:
            name = "und-fail-" + uuid.uuid4().hex[:6]
            answer = harness.raw_unary(self.proxy.sock, V1 + "RunPodSandbox",
                                       self.run_pod_bytes(name, encoding), timeout=60)
            self.assertEqual(answer.code, grpc.StatusCode.INVALID_ARGUMENT, encoding)
            self.assertIn("does not decode", answer.details)
            self.assertIn("10-deny", answer.details)
            self.assertIn("PreRunPodSandbox", answer.details)
            self.assertEqual(pods_named(self.containerd.sock, name), [], "reached the runtime")
        self.assertEqual(self.hs.calls(), [])
        self.assertEqual(metric(self.proxy,
                                'crihook_undecodable_requests_total{method="RunPodSandbox"}'), 4)

    def test_fail_plugin_refuses_create_stop_remove(self):
        pod_id = call(self.proxy.sock, "RunPodSandbox",
                      cri.RunPodSandboxRequest(config=pod_config("und-" + uuid.uuid4().hex[:6])),
                      cri.RunPodSandboxResponse).pod_sandbox_id
        self.pods.append(pod_id)
        config = pod_config("unused")
        create = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr_config(self.containerd.sock),
                                            sandbox_config=config)
        ctr_id = call(self.proxy.sock, "CreateContainer", create,
                      cri.CreateContainerResponse).container_id
        call(self.proxy.sock, "StartContainer", cri.StartContainerRequest(container_id=ctr_id))
        self.register("Fail")
        cases = [
            ("CreateContainer", create.SerializeToString(), pod_id),
            ("StopContainer", cri.StopContainerRequest(container_id=ctr_id, timeout=1)
             .SerializeToString(), ctr_id),
            ("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id)
             .SerializeToString(), pod_id),
        ]
        for method, body, id_field in cases:
            for encoding in ENCODINGS:
                answer = harness.raw_unary(self.proxy.sock, V1 + method,
                                           weird(encoding, body, 1, id_field), timeout=60)
                self.assertEqual(answer.code, grpc.StatusCode.INVALID_ARGUMENT,
                                 (method, encoding, answer.details))
                self.assertIn("Pre" + method, answer.details)
        listed = call(self.containerd.sock, "ListContainers",
                      cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=pod_id)),
                      cri.ListContainersResponse).containers
        self.assertEqual([(c.id, c.state) for c in listed],
                         [(ctr_id, cri.CONTAINER_RUNNING)], "a refused call reached the runtime")
        self.assertEqual(self.hs.calls(), [])

    def test_ignore_plugin_lets_it_through_and_the_store_learns(self):
        self.register("Ignore")
        name = "und-ign-" + uuid.uuid4().hex[:6]
        answer = harness.raw_unary(self.proxy.sock, V1 + "RunPodSandbox",
                                   self.run_pod_bytes(name, "group"), timeout=60)
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
        pod_id = cri.RunPodSandboxResponse.FromString(answer.body).pod_sandbox_id
        self.pods.append(pod_id)

        def stored(kind, key):
            return [d for d in self.proxy.store(kind) if d["id"] == key]
        harness.wait_for(lambda: stored("pods", pod_id), 5, what="the pod in the store")
        pod = stored("pods", pod_id)[0]["pod"]
        self.assertEqual(pod["pod_meta"]["name"], name)
        self.assertEqual(pod["labels"]["io.kubernetes.pod.name"], name)

        create = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr_config(self.containerd.sock),
                                            sandbox_config=pod_config(name))
        answer = harness.raw_unary(self.proxy.sock, V1 + "CreateContainer",
                                   weird("overlong-key", create.SerializeToString(), 1, pod_id),
                                   timeout=60)
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
        ctr_id = cri.CreateContainerResponse.FromString(answer.body).container_id
        harness.wait_for(lambda: stored("containers", ctr_id), 5, what="the container in the store")
        ctr = stored("containers", ctr_id)[0]
        self.assertEqual(ctr["pod_id"], pod_id)
        self.assertEqual(ctr["container"]["container_envs"]["GREETING"], "hello from crihook")
        self.assertEqual(self.hs.calls(), [])  # no hook could see them
        self.assertEqual(metric(self.proxy,
                                'crihook_undecodable_requests_total{method="CreateContainer"}'), 1)
        self.assertIn("forwarded untouched", self.proxy.read_log())

        # and removed the same way: the store forgets them (the ID read as
        # the runtime reads it)
        remove = cri.RemoveContainerRequest(container_id=ctr_id).SerializeToString()
        answer = harness.raw_unary(self.proxy.sock, V1 + "RemoveContainer",
                                   weird("overlong-length", remove, 1, ctr_id), timeout=60)
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
        self.assertEqual(stored("containers", ctr_id), [])
        call(self.proxy.sock, "StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        remove = cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id).SerializeToString()
        answer = harness.raw_unary(self.proxy.sock, V1 + "RemovePodSandbox",
                                   weird("field-number-alias", remove, 1, pod_id), timeout=60)
        self.assertEqual(answer.code, grpc.StatusCode.OK, answer.details)
        self.assertEqual(pods_named(self.containerd.sock, name), [])
        self.assertEqual(stored("pods", pod_id), [])


class UpdateSurvivesRestart(unittest.TestCase):
    def test_update_then_restart(self):
        containerd = harness.Containerd.shared()
        proxy = harness.Crihookd(containerd.sock)
        pod_id = None
        try:
            pod_id = call(proxy.sock, "RunPodSandbox",
                          cri.RunPodSandboxRequest(config=pod_config("upd-" + uuid.uuid4().hex[:6])),
                          cri.RunPodSandboxResponse).pod_sandbox_id
            config = ctr_config(containerd.sock, linux={"resources": {"cpu_shares": 300,
                                                     "memory_limit_in_bytes": 50331648}})
            ctr_id = call(proxy.sock, "CreateContainer",
                          cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                                     sandbox_config=pod_config("x")),
                          cri.CreateContainerResponse).container_id
            update = cri.UpdateContainerResourcesRequest(
                container_id=ctr_id, linux=cri.LinuxContainerResources(cpu_shares=777))
            update.annotations["crihook.test/updated"] = "yes"
            call(proxy.sock, "UpdateContainerResources", update)

            def resources():
                mine = [d for d in proxy.store("containers") if d["id"] == ctr_id]
                return mine[0]["container"]["container_resources"]
            before = resources()
            self.assertEqual(before["cpu_shares"], 777)
            proxy.kill()
            proxy.restart()
            self.assertEqual(resources(), before)
        finally:
            if pod_id:
                remove_pod(containerd.sock, pod_id)
            self.assertEqual(proxy.stop(), 0, proxy.read_log()[-3000:])
            containerd.stop()


class ResyncAfterContainerdRestart(unittest.TestCase):
    def test_store_follows_the_runtime(self):
        containerd = harness.Containerd()  # its own: it is killed
        proxy = harness.Crihookd(containerd.sock)
        pods = []
        try:
            gone = call(proxy.sock, "RunPodSandbox", cri.RunPodSandboxRequest(
                config=pod_config("rs-gone-" + uuid.uuid4().hex[:6])),
                cri.RunPodSandboxResponse).pod_sandbox_id
            # as if crihookd's RunPodSandbox had been cut off mid-way: the
            # runtime has the pod, the store does not
            lost_name = "rs-lost-" + uuid.uuid4().hex[:6]
            lost = call(containerd.sock, "RunPodSandbox", cri.RunPodSandboxRequest(
                config=pod_config(lost_name)), cri.RunPodSandboxResponse).pod_sandbox_id
            pods.append(lost)
            # ... and one the store has is removed behind its back
            remove_pod(containerd.sock, gone)
            ids = lambda: {d["id"] for d in proxy.store("pods")}
            self.assertEqual(ids(), {gone})
            containerd.kill()
            containerd.restart()
            harness.wait_for(lambda: ids() == {lost}, 20, what="the store re-synced")
            self.assertIn("store re-synced", proxy.read_log())
            pod = [d for d in proxy.store("pods") if d["id"] == lost][0]["pod"]
            self.assertEqual(pod["pod_meta"]["name"], lost_name)
        finally:
            for pod_id in pods:
                remove_pod(containerd.sock, pod_id)
            self.assertEqual(proxy.stop(), 0, proxy.read_log()[-3000:])
            containerd.stop()


class ScriptedRuntime(grpc.GenericRpcHandler):
    """Answers the CRI calls these cases make with OK (lists empty)."""

    ANSWERS = {
        "Version": b"\n\x050.1.0\x12\x04fake\x1a\x011\"\x02v1",
        "RunPodSandbox": cri.RunPodSandboxResponse(pod_sandbox_id="p-1").SerializeToString(),
        "CreateContainer": cri.CreateContainerResponse(container_id="c-1").SerializeToString(),
    }

    def __init__(self, sock):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((self,))
        self.server.add_insecure_port("unix://" + sock)
        self.server.start()

    def service(self, details):
        answer = self.ANSWERS.get(details.method.rsplit("/", 1)[-1], b"")
        return grpc.unary_unary_rpc_method_handler(lambda request, context: answer)

    def stop(self):
        self.server.stop(0).wait()


class LateUpdateAfterRemove(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-late-")
        self.runtime = ScriptedRuntime(os.path.join(self.dir, "rt.sock"))
        self.proxy = harness.Crihookd(os.path.join(self.dir, "rt.sock"))
        self.hs = HookServer("slow", {
            "PreUpdateContainerResources": {"behaviour": "sleep:3"},
            "PreStartContainer": {"behaviour": "sleep:3",
                                  "answer": {"container_annotations": {"started": "yes"}}},
        }, self.dir)
        register(self.proxy.hook_dir, "10-slow.json", self.hs.sock,
                 ["PreUpdateContainerResources", "PreStartContainer"], timeout_ms=5000)
        harness.wait_for(lambda: self.proxy.plugins()["plugins"], 3, what="plugin registered")

    def tearDown(self):
        self.hs.stop()
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log()[-3000:])
        self.runtime.stop()

    def late_call_after_remove(self, method, request):
        sock = self.proxy.sock
        call(sock, "RunPodSandbox", cri.RunPodSandboxRequest(config=pod_config("late")))
        call(sock, "CreateContainer", cri.CreateContainerRequest(
            pod_sandbox_id="p-1", config=ctr_config(), sandbox_config=pod_config("late")))
        self.assertEqual([d["id"] for d in self.proxy.store("containers")], ["c-1"])
        result = {}
        slow = threading.Thread(target=lambda: result.update(a=call(sock, method, request)))
        slow.start()
        harness.wait_for(lambda: self.hs.calls("Pre" + method), 5, what="the slow hook called")
        call(sock, "RemoveContainer", cri.RemoveContainerRequest(container_id="c-1"))
        self.assertTrue(slow.is_alive(), "set-up: the slow call must still be in its hook")
        self.assertEqual(self.proxy.store("containers"), [])
        slow.join(10)
        self.assertIn("a", result, "the slow call did not finish")
        self.assertEqual(self.proxy.store("containers"), [], "the removed record came back")

    def test_update(self):
        self.late_call_after_remove("UpdateContainerResources", cri.UpdateContainerResourcesRequest(
            container_id="c-1", linux=cri.LinuxContainerResources(cpu_shares=777)))

    def test_start(self):
        self.late_call_after_remove("StartContainer", cri.StartContainerRequest(container_id="c-1"))


if __name__ == "__main__":
    harness.main()
