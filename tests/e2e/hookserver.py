# SPDX-License-Identifier: Apache-2.0
"""hookserver.py: a real hook server for the tests, on Python's grpcio.

It speaks the hook wire API from the project's own api/hook.proto (compiled
with protoc at start), so it doubles as proof that the API is not C-only.
Run it as a separate process:

    hookserver.py SOCKET CONFIG.json

CONFIG.json is read again on every call, so a test can change what the
server does without restarting it:
    {
      "PreRunPodSandbox":  {"answer": {...PodSandboxHookResponse as JSON...}},
      "PreCreateContainer": {"answer": {...ContainerResourceHookResponse...},
                             "behaviour": "ok" | "sleep:SECONDS" | "crash"
                                          | "error:CODE:message"},
      ...
      "log": "/path/calls.jsonl"
    }
A hook not named in the config answers an empty response. Every request is
appended to "log" as one JSON line {"hook", "time", "request"} before the
behaviour runs, so tests can see what crihookd sent.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
API = os.path.join(os.path.dirname(os.path.dirname(HERE)), "api")
SERVICE = "/runtime.v1alpha1.RuntimeHookService/"
POD_HOOKS = ("PreRunPodSandbox", "PostStopPodSandbox", "PreRemovePodSandbox")


def load_api():
    """Compiles api/hook.proto for Python and imports it."""
    out = tempfile.mkdtemp(prefix="crihook-pb-")
    subprocess.run(["protoc", "--proto_path=" + API, "--python_out=" + out, "hook.proto"],
                   check=True)
    sys.path.insert(0, out)
    import hook_pb2  # noqa: E402  (generated just above)
    return hook_pb2


class HookServer:
    def __init__(self, sock, config_path):
        self.pb = load_api()
        self.config_path = config_path
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((self,))
        self.server.add_insecure_port("unix://" + sock)

    def config(self):
        try:
            with open(self.config_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def types(self, hook):
        if hook in POD_HOOKS:
            return self.pb.PodSandboxHookRequest, self.pb.PodSandboxHookResponse
        return self.pb.ContainerResourceHookRequest, self.pb.ContainerResourceHookResponse

    # grpc.GenericRpcHandler
    def service(self, details):
        if not details.method.startswith(SERVICE) or not details.method.endswith("Hook"):
            return None
        hook = details.method[len(SERVICE):-len("Hook")]
        request_type, response_type = self.types(hook)

        def handle(request, context):
            return self.handle(hook, request, response_type, context)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString)

    def handle(self, hook, request, response_type, context):
        config = self.config()
        rule = config.get(hook, {})
        self.log(config.get("log"), hook, request)
        behaviour = rule.get("behaviour", "ok")
        if behaviour.startswith("sleep:"):
            time.sleep(float(behaviour.split(":", 1)[1]))
        elif behaviour == "crash":
            os._exit(3)
        elif behaviour.startswith("error:"):
            _, code, message = behaviour.split(":", 2)
            context.abort(getattr(grpc.StatusCode, code), message)
        return json_format.ParseDict(rule.get("answer", {}), response_type())

    def log(self, path, hook, request):
        if not path:
            return
        line = json.dumps({"hook": hook, "time": time.time(),
                           "request": json_format.MessageToDict(
                               request, preserving_proto_field_name=True)})
        with self.lock, open(path, "a") as f:
            f.write(line + "\n")


def main():
    server = HookServer(sys.argv[1], sys.argv[2])
    server.server.start()
    print("ready", flush=True)
    server.server.wait_for_termination()


if __name__ == "__main__":
    main()
