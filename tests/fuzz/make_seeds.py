# SPDX-License-Identifier: Apache-2.0
"""make_seeds.py: writes the seed corpora of tests/fuzz/corpus/ that are
built rather than copied (run it with Debian's /usr/bin/python3 after changing
it; the output is committed, so the build never needs it):

  /usr/bin/python3 tests/fuzz/make_seeds.py

- plugin_parse: the registration files of hookserver.d.example, and a few
  that are wrong in the ways operators get them wrong;
- merge: a hook byte and a hook server's answer, as hookserver.py and the
  example plugins answer (labels, annotations, cgroup parent, resources,
  envs); with-request-*: the request to merge into is in the input too;
- views: a method byte and kubelet-shaped CRI requests (kubelet's labels and
  annotations, the image ID in image.image, its name in user_specified_image);
- pbjson: configs as crihookctl reads them (containerd's real verbose info,
  containerd-1.6-*-verbose-info.json, was captured from containerd 1.6.20
  and is kept as it came);
- admin_http: requests of curl, crihookctl and Prometheus;
- h2relay_backend: what an HTTP/2 backend answers the relay's two calls
  (streams 1 and 3; tests/e2e/harness.py's h2_frame and hpack_literal);
- h2verbatim_backend: the same, for the verbatim engine, and answers that
  engine reads in its own way (fuzz_h2relay_backend.c built with
  H2R_FUZZ_VERBATIM): a dynamic table it refuses, SETTINGS it rewrites,
  DATA for streams it forgot, credit, GOAWAY, held answers;
- h2verbatim: corpus/h2relay/ (handwritten, copied) and what a client
  sends the verbatim engine (fuzz_h2verbatim.c): hooked calls with
  CONTINUATION, padding, resets, credit, HEADER_TABLE_SIZE, PING, GOAWAY,
  a dynamic table of its own, streams its scripted backend answers each
  way (by stream id);
- hpack_decode: header blocks for relay/hpack_decode.c (RFC 7541's
  examples, gRPC calls as kubelet encodes them, a table size change).
The byte before a merge answer and a views request chooses the hook or the
method (fuzz_merge.c, fuzz_views.c say which). Needs protoc (Debian's
protobuf-compiler) and python3-protobuf, as the end-to-end tests do.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
POD_UID = "8f6a4c3e-2b1d-4e5f-9a8b-7c6d5e4f3a2b"
IMAGE_ID = "sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6"
CTR_ID = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
POD_ID = "2a9c3b4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"


def protos():
    out = tempfile.mkdtemp(prefix="crihook-seeds-")
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "api"), "--python_out=" + out,
                    "cri.proto", "hook.proto"], check=True)
    sys.path.insert(0, out)
    import cri_pb2  # noqa: E402  (generated just above)
    import hook_pb2  # noqa: E402
    return cri_pb2, hook_pb2


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


POD_CONFIG = {
    "metadata": {"name": "web-7c5b9d", "uid": POD_UID, "namespace": "shop", "attempt": 0},
    "hostname": "web-7c5b9d",
    "log_directory": "/var/log/pods/shop_web-7c5b9d_" + POD_UID,
    "dns_config": {"servers": ["10.96.0.10"], "options": ["ndots:5"],
                   "searches": ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]},
    "port_mappings": [{"protocol": "TCP", "container_port": 8080}],
    "labels": {"app": "web", "pod-template-hash": "7c5b9d", "io.kubernetes.pod.name": "web-7c5b9d",
               "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": POD_UID},
    "annotations": {"kubernetes.io/config.seen": "2024-05-02T10:11:12.345678901Z",
                    "kubernetes.io/config.source": "api"},
    "linux": {"cgroup_parent": "/kubepods/burstable/pod" + POD_UID,
              "security_context": {"namespace_options": {"pid": "CONTAINER"},
                                   "seccomp": {"profile_type": "RuntimeDefault"}},
              "overhead": {},
              "resources": {"cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512,
                            "memory_limit_in_bytes": 268435456}},
}

CONTAINER_CONFIG = {
    "metadata": {"name": "web", "attempt": 0},
    "image": {"image": IMAGE_ID, "user_specified_image": "docker.io/library/nginx:1.25"},
    "command": ["nginx"], "args": ["-g", "daemon off;"], "working_dir": "/usr/share/nginx",
    "envs": [{"key": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"},
             {"key": "KUBERNETES_SERVICE_PORT", "value": "443"},
             {"key": "GOMAXPROCS", "value": "1"}],
    "mounts": [{"container_path": "/var/run/secrets/kubernetes.io/serviceaccount",
                "host_path": "/var/lib/kubelet/pods/" + POD_UID +
                "/volumes/kubernetes.io~projected/kube-api-access-x2v9q", "readonly": True}],
    "labels": {"io.kubernetes.container.name": "web", "io.kubernetes.pod.name": "web-7c5b9d",
               "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": POD_UID},
    "annotations": {"io.kubernetes.container.hash": "3d5e8a1f",
                    "io.kubernetes.container.restartCount": "0",
                    "io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
    "log_path": "web/0.log",
    "linux": {"resources": {"cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512,
                            "memory_limit_in_bytes": 268435456, "oom_score_adj": 968,
                            "hugepage_limits": [{"page_size": "2MB", "limit": 0}],
                            "unified": {"memory.high": "201326592"}},
              "security_context": {"namespace_options": {"pid": "CONTAINER"},
                                   "run_as_user": {"value": 101},
                                   "masked_paths": ["/proc/kcore"], "readonly_paths": ["/proc/sys"]}},
}

UPDATE = {"container_id": CTR_ID,
          "linux": {"cpu_period": 100000, "cpu_quota": 80000, "cpu_shares": 819,
                    "memory_limit_in_bytes": 536870912},
          "annotations": {"io.kubernetes.container.hash": "3d5e8a1f"}}


def plugin_parse_seeds():
    for name in sorted(os.listdir(os.path.join(ROOT, "hookserver.d.example"))):
        if name.endswith(".json") and not name.endswith(".rules.json"):
            shutil.copy(os.path.join(ROOT, "hookserver.d.example", name),
                        os.path.join(CORPUS, "plugin_parse", "example-" + name))
    docs = {
        "fail-policy.json": {"remote-endpoint": "/run/crihook/plugins/deny.sock",
                             "failure-policy": "Fail",
                             "runtime-hooks": ["PreRunPodSandbox", "PreCreateContainer",
                                               "PreStartContainer", "PostStartContainer",
                                               "PreUpdateContainerResources", "PreStopContainer",
                                               "PostStopContainer", "PostRemoveContainer",
                                               "PostStopPodSandbox", "PreRemovePodSandbox"],
                             "timeout-ms": 120000},
        "koordinator-extra-keys.json": {"remote-endpoint": "unix:///var/run/koordlet/koordlet.sock",
                                        "failure-policy": "Ignore",
                                        "runtime-hooks": ["PreRunPodSandbox"],
                                        "priority": 10, "labels": {"a": "b"}},
        "bad-policy.json": {"remote-endpoint": "/run/x.sock", "failure-policy": "fail",
                            "runtime-hooks": ["PreRunPodSandbox"]},
        "bad-hook.json": {"remote-endpoint": "/run/x.sock", "runtime-hooks": ["PreRunPod", 7]},
        "bad-timeout.json": {"remote-endpoint": "/run/x.sock", "runtime-hooks": ["PreStopContainer"],
                             "timeout-ms": 0},
        "tcp-endpoint.json": {"remote-endpoint": "tcp://127.0.0.1:9000",
                              "runtime-hooks": ["PreStopContainer"]},
        "no-hooks.json": {"remote-endpoint": "/run/x.sock", "runtime-hooks": []},
    }
    for name, doc in docs.items():
        write("plugin_parse", name, json.dumps(doc, indent=2) + "\n")
    write("plugin_parse", "not-json.json", '{"remote-endpoint": "/run/x.sock",\n')
    write("plugin_parse", "named-file", "..data/10-odd name.json\0" +
          json.dumps({"remote-endpoint": "/run/x.sock", "runtime-hooks": ["PreRunPodSandbox"]}))


def merge_seeds(hook):
    pod = hook.PodSandboxHookResponse(
        labels={"qos.crihook.io/class": "burstable", "app": "web-patched"},
        annotations={"crihook.io/qos-cgroup": "applied"},
        cgroup_parent="/kubepods/burstable/qos-high",
        resources=hook.LinuxContainerResources(cpu_shares=1024, cpu_quota=200000,
                                               unified={"memory.high": "max"}))
    write("merge", "pre-run-pod-qos", b"\x00" + pod.SerializeToString(deterministic=True))
    ctr = hook.ContainerResourceHookResponse(
        container_annotations={"crihook.io/env-injected": "true"},
        container_envs={"GOMAXPROCS": "2", "CRIHOOK_INJECTED": "1", "TZ": "UTC"},
        container_resources=hook.LinuxContainerResources(
            cpuset_cpus="0-1", cpuset_mems="0", oom_score_adj=-998,
            hugepage_limits=[hook.HugepageLimit(page_size="2MB", limit=1 << 30)],
            unified={"memory.high": "402653184", "cpu.weight": "79"}),
        pod_cgroup_parent="/kubepods/burstable/pod" + POD_UID + "-pinned")
    for kind, name in ((1, "pre-create-container-env"), (2, "pre-update-resources"),
                       (3, "pre-start-container-cpuset")):
        write("merge", name, bytes([kind]) + ctr.SerializeToString(deterministic=True))
    empty = hook.ContainerResourceHookResponse()
    write("merge", "pre-create-container-empty-answer", b"\x01" + empty.SerializeToString(deterministic=True))
    shares = hook.ContainerResourceHookResponse(
        container_resources=hook.LinuxContainerResources(cpu_shares=777, cpu_period=100000))
    write("merge", "pre-update-cpu-shares", b"\x02" + shares.SerializeToString(deterministic=True))


def merge_seeds_with_requests(cri, hook):
    """The same answers, with the request in the input (bit 2 of the first
    byte, then its length in two bytes): kubelet's, and a stored record."""
    from google.protobuf import json_format
    pod = json_format.ParseDict(POD_CONFIG, cri.PodSandboxConfig())
    ctr = json_format.ParseDict(CONTAINER_CONFIG, cri.ContainerConfig())
    create = cri.CreateContainerRequest(pod_sandbox_id=POD_ID, config=ctr, sandbox_config=pod)
    update = json_format.ParseDict(UPDATE, cri.UpdateContainerResourcesRequest())
    record = hook.ContainerResourceHookRequest(
        pod_meta=hook.PodSandboxMetadata(name="web-7c5b9d", uid=POD_UID, namespace="shop"),
        container_meta=hook.ContainerMetadata(name="web", id=CTR_ID),
        container_annotations=CONTAINER_CONFIG["annotations"],
        container_envs={"GOMAXPROCS": "1", "TZ": "Europe/Paris"},
        pod_labels=POD_CONFIG["labels"], pod_cgroup_parent=POD_CONFIG["linux"]["cgroup_parent"],
        container_resources=hook.LinuxContainerResources(cpu_shares=512, cpu_quota=50000),
        container_image=IMAGE_ID)
    pod_answer = hook.PodSandboxHookResponse(labels={"app": "web-v2"},
                                             cgroup_parent="/kubepods/besteffort")
    ctr_answer = hook.ContainerResourceHookResponse(
        container_envs={"GOMAXPROCS": "4"}, container_annotations={"a": "b"},
        container_resources=hook.LinuxContainerResources(cpuset_cpus="2-3", cpu_shares=2048))
    for kind, name, req, answer in ((0, "pod", pod, pod_answer), (1, "create", create, ctr_answer),
                                    (2, "update", update, ctr_answer),
                                    (3, "record", record, ctr_answer)):
        body = req.SerializeToString(deterministic=True)
        write("merge", "with-request-" + name,
              bytes([kind | 4]) + len(body).to_bytes(2, "big") + body + answer.SerializeToString(deterministic=True))


def views_seeds(cri):
    from google.protobuf import json_format
    pod = json_format.ParseDict(POD_CONFIG, cri.PodSandboxConfig())
    ctr = json_format.ParseDict(CONTAINER_CONFIG, cri.ContainerConfig())
    reqs = [
        (0, "run-pod-sandbox", cri.RunPodSandboxRequest(config=pod, runtime_handler="runc")),
        (1, "stop-pod-sandbox", cri.StopPodSandboxRequest(pod_sandbox_id=POD_ID)),
        (2, "remove-pod-sandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=POD_ID)),
        (3, "create-container", cri.CreateContainerRequest(pod_sandbox_id=POD_ID, config=ctr,
                                                           sandbox_config=pod)),
        (4, "start-container", cri.StartContainerRequest(container_id=CTR_ID)),
        (5, "update-container-resources",
         json_format.ParseDict(UPDATE, cri.UpdateContainerResourcesRequest())),
        (6, "stop-container", cri.StopContainerRequest(container_id=CTR_ID, timeout=30)),
        (7, "remove-container", cri.RemoveContainerRequest(container_id=CTR_ID)),
    ]
    for kind, name, msg in reqs:
        write("views", name, bytes([kind]) + msg.SerializeToString(deterministic=True))


def pbjson_seeds():
    write("pbjson", "pod-config.json", json.dumps(POD_CONFIG, indent=1))
    write("pbjson", "container-config-camel-case.json", json.dumps({
        "metadata": {"name": "web"}, "image": {"image": IMAGE_ID,
                                               "userSpecifiedImage": "nginx:1.25"},
        "linux": {"resources": {"cpuShares": "512", "memoryLimitInBytes": 268435456.0}},
        "envs": [{"key": "A", "value": "1"}]}))
    write("pbjson", "container-config.json", json.dumps(CONTAINER_CONFIG, indent=1))
    write("pbjson", "hook-answer.json", json.dumps({
        "container_envs": {"TZ": "UTC"}, "container_resources": {
            "hugepage_limits": [{"page_size": "1GB", "limit": "18446744073709551615"}],
            "cpu_shares": 2}}))


def pbjson_dict():
    """pbjson.dict: libFuzzer's dictionary for the JSON reader, every field
    and enum value name of the protos as a JSON key or string, and JSON's
    own tokens, so that mutations make documents the reader goes deep in."""
    import re
    names = set()
    for proto in ("cri.proto", "hook.proto"):
        with open(os.path.join(ROOT, "api", proto)) as f:
            text = f.read()
        names.update(re.findall(r"^\s*(?:repeated\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+",
                                text, re.M))
        names.update(re.findall(r"^\s*(\w+)\s*=\s*\d+;", text, re.M))
    lines = ['"\\"%s\\":"' % n for n in sorted(names)]
    lines += ['"%s"' % t for t in ("{", "}", "[", "]", ":", ",", "null", "true", "false", "-1",
                                   "1e308", "18446744073709551615", "9223372036854775808",
                                   "\\\\u0000", "\\\\ud800", "\\\"base64\\\":")]
    with open(os.path.join(HERE, "pbjson.dict"), "w") as f:
        f.write("# written by make_seeds.py: field and enum names of api/*.proto, JSON tokens\n")
        f.write("\n".join(lines) + "\n")


def admin_http_seeds():
    reqs = {
        "curl-healthz": "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\n"
                        "Accept: */*\r\n\r\n",
        "crihookctl-plugins": "GET /plugins HTTP/1.0\r\n\r\n",
        "prometheus-metrics": "GET /metrics HTTP/1.1\r\nHost: 10.0.0.5:9101\r\nUser-Agent: "
                              "Prometheus/2.45.0\r\nAccept: application/openmetrics-text;"
                              "version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
                              "Accept-Encoding: gzip\r\n\r\n",
        "trace-query": "GET /trace?method=Run.*%7CCreate&pod=shop%2Fweb+1 HTTP/1.0\r\n\r\n",
        "post": "POST /plugins HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        "partial": "GET /store/po",
        "bare-lf": "GET /store/containers\n",
    }
    for name, text in reqs.items():
        write("admin_http", name, text)


def h2relay_backend_seeds(target="h2relay_backend"):
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    from harness import h2_frame, hpack_literal  # noqa: E402

    def block(*pairs):
        return b"".join(hpack_literal(k, v) for k, v in pairs)

    resp = block((":status", "200"), ("content-type", "application/grpc"))
    ok = block(("grpc-status", "0"))
    msg = b"\x00\x00\x00\x00\x05hello"
    ack = h2_frame(4, 1, 0, b"")

    def unary(sid, body=msg):
        return (h2_frame(1, 4, sid, resp) + h2_frame(0, 0, sid, body) +
                h2_frame(1, 5, sid, ok))

    seeds = {
        "unary-both": ack + unary(1) + unary(3),
        "trailers-only": ack + h2_frame(1, 5, 1, resp + block(
            ("grpc-status", "5"), ("grpc-message", "not found"))) + unary(3),
        "rst-stream": ack + h2_frame(1, 4, 1, resp) + h2_frame(3, 0, 1, b"\0\0\0\x0b") +
        h2_frame(3, 0, 3, b"\0\0\0\x08"),
        "goaway-after-one": ack + unary(1) + h2_frame(7, 0, 0, b"\0\0\0\x01\0\0\0\0"),
        "continuation": ack + h2_frame(1, 0, 1, resp[:10]) + h2_frame(9, 4, 1, resp[10:]) +
        h2_frame(0, 0, 1, msg) + h2_frame(1, 5, 1, ok) + unary(3),
        "padded-data": ack + h2_frame(1, 4, 1, resp) +
        h2_frame(0, 0x9, 1, b"\x04" + msg + b"\0" * 4) + h2_frame(1, 5, 1, ok),
        "window-ping-settings": ack + h2_frame(8, 0, 0, b"\0\0\x10\0") +
        h2_frame(8, 0, 1, b"\0\0\x10\0") + h2_frame(6, 0, 0, b"12345678") +
        h2_frame(4, 0, 0, b"\0\x04\0\0\x10\0") + unary(1) + unary(3),
        "big-answer": ack + h2_frame(1, 4, 1, resp) +
        b"".join(h2_frame(0, 0, 1, b"\x00\x00\x00\x28\x00" + b"x" * 0x2800)
                 for _ in range(3)) + h2_frame(1, 5, 1, ok),
        "push-promise": ack + h2_frame(5, 4, 1, b"\0\0\0\x02" + block(
            (":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x"))),
    }
    if target == "h2verbatim_backend":
        seeds.update(verbatim_backend_extra(h2_frame, block, resp, ok, msg, ack, unary))
    for name, data in seeds.items():
        write(target, name, data)


def verbatim_backend_extra(h2_frame, block, resp, ok, msg, ack, unary):
    """Answers the verbatim engine reads in its own way (h2verbatim.c)."""
    def setting(ident, value):
        return ident.to_bytes(2, "big") + value.to_bytes(4, "big")

    def padded(payload, pad):
        return bytes([pad]) + payload + b"\0" * pad

    # literal with incremental indexing (RFC 7541 6.2.1): the backend's
    # table is not empty after it, which the engine refuses
    indexed = b"\x40\x0bgrpc-status\x010"
    big = b"\x00\x00\x02\x00\x00" + b"y" * 64  # announces 128 KiB > max_msg_size
    return {
        "v-dynamic-table": ack + h2_frame(1, 4, 1, resp) + h2_frame(0, 0, 1, msg) +
        h2_frame(1, 5, 1, indexed) + unary(3),
        "v-settings-rewritten": h2_frame(4, 0, 0, setting(1, 0) + setting(3, 100000) +
                                         setting(4, 1) + setting(1, 4096)) + ack +
        h2_frame(8, 0, 3, b"\0\0\x01\0") + unary(1) + unary(3),
        "v-window-shrinks": h2_frame(4, 0, 0, setting(4, 0)) + h2_frame(8, 0, 0, b"\x7f\xff\xff\xff") +
        h2_frame(8, 0, 3, b"\0\0\0\x10") + unary(1) + unary(3),
        "v-data-forgotten": ack + h2_frame(0, 0, 5, msg) + h2_frame(0, 1, 7, b"\0" * 32) +
        h2_frame(3, 0, 1, b"\0\0\0\x08") + h2_frame(0, 1, 1, msg) + unary(3),
        "v-goaway-none": ack + h2_frame(7, 0, 0, b"\0\0\0\0\0\0\0\x02debug") + unary(1),
        "v-held-continuation": ack + h2_frame(1, 0x28, 3, padded(b"\x80\0\0\0\x10" + resp[:7], 3)) +
        h2_frame(9, 4, 3, resp[7:]) + h2_frame(0, 0x8, 3, padded(msg, 2)) +
        h2_frame(1, 1, 3, ok[:4]) + h2_frame(9, 4, 3, ok[4:]) + unary(1),
        "v-held-trailers-only": ack + h2_frame(1, 5, 3, resp + block(
            ("grpc-status", "7"), ("grpc-message", "denied%20by%20hook"))) + unary(1),
        "v-held-reset": ack + h2_frame(1, 4, 3, resp) + h2_frame(0, 0, 3, msg) +
        h2_frame(3, 0, 3, b"\0\0\0\x02") + unary(1),
        "v-too-big": ack + h2_frame(1, 4, 1, resp) + h2_frame(0, 0, 1, big) +
        h2_frame(1, 4, 3, resp) + h2_frame(0, 0, 3, big) + h2_frame(1, 5, 3, ok) +
        h2_frame(1, 5, 1, ok),
        "v-interleaved": ack + h2_frame(1, 4, 1, resp) + h2_frame(1, 4, 3, resp) +
        h2_frame(0, 0, 3, msg) + h2_frame(0, 0, 1, msg) + h2_frame(6, 0, 0, b"abcdefgh") +
        h2_frame(1, 5, 3, ok) + h2_frame(0, 1, 1, b""),
    }


def h2verbatim_seeds():
    """What a client sends the verbatim engine after the preface
    (fuzz_h2verbatim.c: its backend answers streams by id, (id >> 1) % 4:
    0, 1 unary; 2 trailers-only; 3 RST_STREAM)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    from harness import h2_frame, grpc_headers, hpack_literal  # noqa: E402
    src = os.path.join(CORPUS, "h2relay")
    os.makedirs(os.path.join(CORPUS, "h2verbatim"), exist_ok=True)
    for name in sorted(os.listdir(src)):
        shutil.copy(os.path.join(src, name), os.path.join(CORPUS, "h2verbatim", name))

    def setting(ident, value):
        return ident.to_bytes(2, "big") + value.to_bytes(4, "big")

    def padded(payload, pad):
        return bytes([pad]) + payload + b"\0" * pad

    settings = h2_frame(4, 0, 0, b"")
    ack = h2_frame(4, 1, 0, b"")
    hook = "/runtime.v1.RuntimeService/CreateContainerHook"
    plain = "/runtime.v1.RuntimeService/Version"
    msg = b"\x00\x00\x00\x00\x07request"
    refuse = b"\x00\x00\x00\x00\x06Refuse"

    def call(sid, path, body=msg, *extra):
        return h2_frame(1, 4, sid, grpc_headers(path, *extra)) + h2_frame(0, 1, sid, body)

    hb = grpc_headers(hook)
    seeds = {
        "v-hook-continuation-padded": settings + ack +
        h2_frame(1, 0x28, 1, padded(b"\0\0\0\0\x10" + hb[:30], 5)) +
        h2_frame(9, 0, 1, hb[30:60]) + h2_frame(9, 4, 1, hb[60:]) +
        h2_frame(0, 0x8, 1, padded(msg[:6], 3)) + h2_frame(0, 0x9, 1, padded(msg[6:], 0)),
        "v-hook-refused-then-reset": settings + call(1, hook, refuse) +
        h2_frame(3, 0, 1, b"\0\0\0\x08") + call(3, hook),
        "v-hook-reset-mid-request": settings + h2_frame(1, 4, 1, hb) +
        h2_frame(0, 0, 1, msg[:5]) + h2_frame(3, 0, 1, b"\0\0\0\x08") +
        h2_frame(0, 1, 1, msg[5:]) + call(3, plain),
        "v-settings-table-size": h2_frame(4, 0, 0, setting(1, 0x1000) + setting(4, 0x8000) +
                                          setting(5, 0x10000) + setting(2, 0)) + ack +
        call(1, plain) + h2_frame(4, 0, 0, setting(1, 0)) + call(3, hook),
        "v-ping-goaway": settings + h2_frame(6, 0, 0, b"pingpong") + call(1, plain) +
        h2_frame(6, 1, 0, b"pongping") + h2_frame(7, 0, 0, b"\0\0\0\x01\0\0\0\0bye") +
        call(3, hook),
        "v-window-updates": settings + h2_frame(8, 0, 0, b"\0\x01\0\0") + call(1, hook) +
        h2_frame(8, 0, 1, b"\0\0\x10\0") + call(3, plain) + h2_frame(8, 0, 3, b"\0\0\0\x01") +
        h2_frame(8, 0, 0, b"\x7f\xff\xff\xff"),
        "v-four-answers": settings + call(1, hook) + call(3, plain) + call(5, hook) +
        call(7, plain) + call(9, plain) + call(11, hook) + call(13, plain) + call(15, hook),
        "v-too-big": settings + call(1, plain, b"\x00\x00\x02\x00\x00" + b"z" * 40) +
        call(3, hook, b"\x00\x00\x02\x00\x00" + b"z" * 40),
        "v-deadline": settings + call(1, plain, msg, ("grpc-timeout", "1n")) +
        call(3, hook, msg, ("grpc-timeout", "1u"), ("x-crihook-self-probe", "1")),
        "v-open-at-eof": settings + h2_frame(1, 4, 1, hb) + h2_frame(0, 0, 1, msg) +
        h2_frame(1, 4, 3, grpc_headers(plain)) + h2_frame(0, 0, 3, msg),
        "v-big-bodies": settings + h2_frame(1, 4, 1, hb) +
        h2_frame(0, 0, 1, b"\x00\x00\x00\x30\x00" + b"a" * 0x1800) +
        h2_frame(0, 1, 1, b"b" * 0x1800) + h2_frame(1, 4, 3, grpc_headers(plain)) +
        h2_frame(0, 1, 3, b"\x00\x00\x00\x30\x00" + b"c" * 0x3000),
        "v-trailers-continuation": settings + h2_frame(1, 4, 1, grpc_headers(plain)) +
        h2_frame(0, 0, 1, msg) + h2_frame(1, 1, 1, hpack_literal("x-end", "1")[:3]) +
        h2_frame(9, 4, 1, hpack_literal("x-end", "1")[3:]) + call(3, hook),
        "v-stray-frames": settings + h2_frame(0, 1, 9, msg) + h2_frame(2, 0, 1, b"\0\0\0\0\x10") +
        h2_frame(0xfa, 0, 0, b"ext") + call(1, plain) + h2_frame(0, 1, 1, msg) +
        h2_frame(3, 0, 5, b"\0\0\0\x08") + call(3, hook),
    }
    # the client's own dynamic table: literal with incremental indexing,
    # then the same field by its index (62: the newest entry)
    dyn = (b"\x83\x86" + b"\x44" + bytes([len(hook)]) + hook.encode() +
           hpack_literal(":authority", "localhost") + hpack_literal("content-type", "application/grpc") +
           hpack_literal("te", "trailers"))
    again = b"\x83\x86\xbe" + hpack_literal(":authority", "localhost")
    seeds["v-client-dynamic-table"] = (settings + h2_frame(1, 4, 1, dyn) + h2_frame(0, 1, 1, msg) +
                                      h2_frame(1, 4, 3, again) + h2_frame(0, 1, 3, msg))
    for name, data in seeds.items():
        write("h2verbatim", name, data)


def hpack_decode_seeds():
    """Records of [op][len][block] (fuzz_hpack_decode.c): RFC 7541 Appendix
    C's requests and responses (its C.5/C.6 ones with a 256-byte table)
    and three gRPC calls as kubelet's grpc-go encodes them, each raw and
    Huffman-coded; one where the limit drops to 0 and the next block says
    so first."""
    from hpack import Encoder

    def records(blocks):
        return b"".join(bytes([op, len(b) >> 8, len(b) & 255]) + b for op, b in blocks)

    def encoded(calls, huffman, table=4096, op=0):
        enc = Encoder()
        if table != 4096:
            enc.header_table_size = table
        return records([(op if i == 0 else 0, enc.encode(h, huffman=huffman))
                        for i, h in enumerate(calls)])

    rfc_requests = [
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
         ("cache-control", "no-cache")],
        [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
         (":authority", "www.example.com"), ("custom-key", "custom-value")],
    ]
    rfc_responses = [
        [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
         ("location", "https://www.example.com")],
        [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
         ("location", "https://www.example.com")],
        [(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
         ("location", "https://www.example.com"), ("content-encoding", "gzip"),
         ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")],
    ]
    grpc = [[(":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/" + m),
             (":authority", "/var/run/crihook/crihook.sock"), ("content-type", "application/grpc"),
             ("user-agent", "grpc-go/1.58.3"), ("te", "trailers"), ("grpc-timeout", t)]
            for m, t in (("Version", "1999833u"), ("ListPodSandbox", "1999912u"),
                         ("CreateContainer", "239999876u"))]
    for huffman in (False, True):
        tag = "huffman" if huffman else "raw"
        write("hpack_decode", "rfc-requests-" + tag, encoded(rfc_requests, huffman))
        write("hpack_decode", "rfc-responses-256-" + tag, encoded(rfc_responses, huffman, 256, 0x82))
        write("hpack_decode", "grpc-calls-" + tag, encoded(grpc, huffman))
    first = Encoder().encode(grpc[0], huffman=True)
    write("hpack_decode", "limit-0-then-update",
          records([(0, first), (0x80, b"\x20" + Encoder().encode(grpc[1][:3], huffman=False))]))


def main():
    h2relay_backend_seeds()
    h2relay_backend_seeds("h2verbatim_backend")
    h2verbatim_seeds()
    hpack_decode_seeds()
    cri, hook = protos()
    plugin_parse_seeds()
    merge_seeds(hook)
    merge_seeds_with_requests(cri, hook)
    views_seeds(cri)
    pbjson_seeds()
    pbjson_dict()
    admin_http_seeds()


if __name__ == "__main__":
    main()
