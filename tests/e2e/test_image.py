# SPDX-License-Identifier: Apache-2.0
"""The DaemonSet's image, built by the build and run for real.

Builds the image (`ninja -C BUILD image`: deploy/image/build-image.sh, an OCI
archive, no Docker), checks its metadata against the DaemonSet manifest and
meson's project version, imports it into the test containerd
(`ctr -n k8s.io images import`) and runs crihookd from it as a pod, straight
through containerd's CRI, with the DaemonSet's host paths: the socket
directory /run/crihook, the runtime's socket and /etc/runtime/hookserver.d,
each a temporary host directory (or the test containerd's socket) mounted at
that path in the container. CRI calls from the host then go through the
socket that appears in the host directory. The manifest's own install.sh
runs in a second container from the image, with the DaemonSet's command,
environment and mounts (host directories replaced by temporary ones, a stub
systemctl first in PATH), against that running crihookd. Last, the crihookd
container is stopped: it must exit 0 and remove its socket.
"""

import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import unittest
import uuid

import grpc

import harness
from harness import V1, pb_bytes, pb_fields, write_json

DAEMONSET = os.path.join(harness.ROOT, "deploy", "kubernetes", "crihook-daemonset.yaml")
DROPIN_SRC = os.path.join(harness.ROOT, "deploy", "systemd", "kubelet.service.d",
                          "10-crihook.conf")
ARCHIVE = os.path.join(harness.BUILD, "deploy", "image", "crihookd-image.tar")
PREFIX = "/opt/crihook"
SKIP_HOOKS = "runtimeproxy.koordinator.sh/skip-hookserver"
# Where the DaemonSet's pod sees them (and where the host has them).
LISTEN_DIR = "/run/crihook"
RUNTIME_SOCK = "/run/containerd/containerd.sock"
HOOK_DIR = "/etc/runtime/hookserver.d"
CONTAINER_RUNNING, CONTAINER_EXITED = 1, 2


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def project_version():
    info = json.loads(read(os.path.join(harness.BUILD, "meson-info", "intro-projectinfo.json")))
    return info["version"]


def sanitized():
    opts = json.loads(read(os.path.join(harness.BUILD, "meson-info", "intro-buildoptions.json")))
    return {o["name"]: o["value"] for o in opts}.get("b_sanitize", "none") != "none"


def manifest_docs():
    import yaml  # python3-yaml (scripts/install-deps.sh)
    return [d for d in yaml.safe_load_all(read(DAEMONSET)) if d]


def daemonset_container():
    ds = [d for d in manifest_docs() if d["kind"] == "DaemonSet"][0]
    spec = ds["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return container, spec["volumes"]


def build_image():
    """The archive, built through the build (ninja decides whether it is stale)."""
    out = subprocess.run(["ninja", "-C", harness.BUILD, "image"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError("ninja -C %s image failed:\n%s" % (harness.BUILD, out.stdout))
    if not os.path.isfile(ARCHIVE):
        raise AssertionError("ninja image made no " + ARCHIVE)


class Layout:
    """An OCI image-layout archive, read with tarfile."""

    def __init__(self, path):
        self.tar = tarfile.open(path)
        self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers()}
        self.index = json.loads(self.file("index.json"))
        (self.entry,) = self.index["manifests"]
        self.manifest_raw = self.blob(self.entry["digest"])
        self.manifest = json.loads(self.manifest_raw)
        self.config_raw = self.blob(self.manifest["config"]["digest"])
        self.config = json.loads(self.config_raw)
        (layer,) = self.manifest["layers"]
        self.layer_raw = self.blob(layer["digest"])
        self.rootfs = tarfile.open(fileobj=io.BytesIO(self.layer_raw))
        self.files = {m.name[2:] if m.name.startswith("./") else m.name: m
                      for m in self.rootfs.getmembers()}

    def close(self):
        self.rootfs.close()
        self.tar.close()

    def file(self, name):
        return self.tar.extractfile(self.members[name]).read()

    def blob(self, digest):
        algo, _, hexd = digest.partition(":")
        assert algo == "sha256", digest
        return self.file("blobs/sha256/" + hexd)

    def rootfs_file(self, path):
        return self.rootfs.extractfile(self.files[path.lstrip("/")]).read()


def built_image():
    """Builds the archive if needed; returns (version, image reference)."""
    build_image()
    version = project_version()
    return version, "localhost/crihook/crihookd:" + version


class ImageArchive(unittest.TestCase):
    """The archive itself: names, contents, reproducible tar."""

    @classmethod
    def setUpClass(cls):
        cls.version, cls.ref = built_image()
        cls.img = Layout(ARCHIVE)

    @classmethod
    def tearDownClass(cls):
        cls.img.close()

    def test_name_matches_daemonset_and_project_version(self):
        ann = self.img.entry["annotations"]
        self.assertEqual(ann["io.containerd.image.name"], self.ref)
        self.assertEqual(ann["org.opencontainers.image.ref.name"], self.version)
        container, _ = daemonset_container()
        self.assertEqual(container["image"], self.ref,
                         "the DaemonSet's image: is not this build's image")
        self.assertEqual(self.img.config["config"]["Labels"]["org.opencontainers.image.version"],
                         self.version)

    def test_layout_digests(self):
        self.assertEqual(json.loads(self.img.file("oci-layout")),
                         {"imageLayoutVersion": "1.0.0"})
        self.assertEqual(self.img.entry["digest"], "sha256:" + sha256(self.img.manifest_raw))
        self.assertEqual(self.img.manifest["config"]["digest"],
                         "sha256:" + sha256(self.img.config_raw))
        self.assertEqual(self.img.manifest["layers"][0]["digest"],
                         "sha256:" + sha256(self.img.layer_raw))
        self.assertEqual(self.img.config["rootfs"]["diff_ids"],
                         ["sha256:" + sha256(self.img.layer_raw)])
        for m in list(self.img.tar.getmembers()) + list(self.img.rootfs.getmembers()):
            self.assertEqual((m.mtime, m.uid, m.gid), (0, 0, 0), m.name)

    def test_environment_matches_daemonset(self):
        container, _ = daemonset_container()
        image_env = dict(e.split("=", 1) for e in self.img.config["config"]["Env"])
        for var in container["env"]:
            self.assertEqual(image_env.get(var["name"]), var["value"], var["name"])

    def test_contents(self):
        files = self.img.files
        for path in ("opt/crihook/sbin/crihookd", "opt/crihook/bin/crihookctl", "bin/sh",
                     "bin/busybox"):
            self.assertIn(path, files)
            self.assertTrue(files[path].mode & 0o111, path)
        # The very binaries this build made.
        self.assertEqual(sha256(self.img.rootfs_file("/opt/crihook/sbin/crihookd")),
                         sha256(read(harness.CRIHOOKD, "rb")))
        self.assertEqual(sha256(self.img.rootfs_file("/opt/crihook/bin/crihookctl")),
                         sha256(read(harness.CRIHOOKCTL, "rb")))
        unit = self.img.rootfs_file("/opt/crihook/lib/systemd/system/crihookd.service").decode()
        self.assertIn("\nExecStart=/opt/crihook/sbin/crihookd $CRIHOOKD_ARGS\n", unit)
        self.assertNotIn("@", unit)
        self.assertEqual(
            self.img.rootfs_file("/opt/crihook/lib/systemd/system/kubelet.service.d/10-crihook.conf"),
            read(DROPIN_SRC, "rb"))
        bundled = [p for p in files if p.startswith("opt/crihook/lib/") and ".so" in p]
        # the daemon's own libraries come along; grpc core is not one of
        # them any more (crihookd and crihookctl speak gRPC through rpc/)
        self.assertTrue(any("libnghttp2.so" in p for p in bundled), bundled)
        self.assertFalse([p for p in bundled if "libgrpc" in p or "libabsl" in p], bundled)
        # glibc stays out of the bundle (the host's is used there).
        self.assertFalse([p for p in bundled if os.path.basename(p).startswith(("libc.so",
                                                                                "ld-linux"))])
        if os.path.exists("/usr/bin/systemctl"):
            self.assertIn("usr/bin/systemctl", files)
        for tool in ("find", "cmp", "cp", "mv", "mkdir", "mktemp", "sleep", "dirname"):
            self.assertTrue({"bin/" + tool, "usr/bin/" + tool} & set(files), tool)

    def test_reproducible(self):
        # The same inputs give the same archive, byte for byte.
        d = harness.tmpdir("crihook-imgrepro-")
        try:
            out = os.path.join(d, "again.tar")
            unit = os.path.join(harness.BUILD, "deploy", "image", "crihookd.service")
            run = subprocess.run(
                ["bash", os.path.join(harness.ROOT, "deploy", "image", "build-image.sh"),
                 "--out", out, "--ref", self.ref, "--crihookd", harness.CRIHOOKD,
                 "--crihookctl", harness.CRIHOOKCTL, "--unit", unit,
                 "--kubelet-dropin", DROPIN_SRC],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout)
            self.assertEqual(sha256(read(out, "rb")), sha256(read(ARCHIVE, "rb")))
        finally:
            shutil.rmtree(d, ignore_errors=True)


class CrihookdPod(unittest.TestCase):
    """crihookd from the image as a pod, with the DaemonSet's host paths."""

    @classmethod
    def setUpClass(cls):
        cls.version, cls.ref = built_image()
        cls.containerd = harness.Containerd.shared()
        cls.cri = cls.containerd.sock
        cls.dir = harness.tmpdir("crihook-img-")
        cls.run_dir = os.path.join(cls.dir, "run-crihook")     # host side of /run/crihook
        cls.hook_dir = os.path.join(cls.dir, "hookserver.d")   # ... of /etc/runtime/hookserver.d
        cls.logs = os.path.join(cls.dir, "logs")
        for d in (cls.run_dir, cls.hook_dir, cls.logs):
            os.makedirs(d)
        cls.sock = os.path.join(cls.run_dir, "crihook.sock")
        cls.admin = os.path.join(cls.run_dir, "admin.sock")
        cls.pod_id = cls.ctr_id = None
        cls.imported = False
        try:
            cls.import_image()
            cls.start_pod()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def import_image(cls):
        with tarfile.open(ARCHIVE) as tar:
            index = json.load(tar.extractfile("./index.json"))
        arch = index["manifests"][0]["platform"]["architecture"]
        out = subprocess.run(["ctr", "-a", cls.cri, "-n", "k8s.io", "images", "import",
                              "--platform", "linux/" + arch, ARCHIVE],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=120)
        assert out.returncode == 0, "ctr images import failed:\n" + out.stdout
        cls.imported = True
        names = subprocess.run(["ctr", "-a", cls.cri, "-n", "k8s.io", "images", "ls", "-q"],
                               stdout=subprocess.PIPE, text=True, check=True).stdout.split()
        assert cls.ref in names, "%s not in containerd after import: %s" % (cls.ref, names)

    @classmethod
    def cri_ctl(cls, *args, check=True):
        return harness.ctl(cls.cri, *args, check=check)

    @classmethod
    def sanitizer_env(cls):
        # The suite's sanitizer settings, so the daemon in the pod is held to
        # the same rules (a leak at exit fails it) as every other test's.
        env = []
        if sanitized():
            for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                if var in os.environ:
                    env.append({"key": var, "value": os.environ[var]})
        return env

    @classmethod
    def start_pod(cls):
        name = "crihookd-image-" + uuid.uuid4().hex[:6]
        pod = {
            "metadata": {"name": name, "namespace": "kube-system", "uid": str(uuid.uuid4()),
                         "attempt": 0},
            "log_directory": cls.logs,
            "labels": {"app.kubernetes.io/name": "crihookd", SKIP_HOOKS: "true"},
            "linux": {"security_context": {"privileged": True,
                                           "namespace_options": {"network": 2}}},
        }
        ctr = {
            "metadata": {"name": "crihookd"},
            "image": {"image": cls.ref},
            "command": [PREFIX + "/sbin/crihookd",
                        "--backend", "unix://" + RUNTIME_SOCK,
                        "--listen", "unix://%s/crihook.sock" % LISTEN_DIR],
            "envs": cls.sanitizer_env(),
            "mounts": [
                {"container_path": LISTEN_DIR, "host_path": cls.run_dir},
                {"container_path": RUNTIME_SOCK, "host_path": cls.cri},
                {"container_path": HOOK_DIR, "host_path": cls.hook_dir},
            ],
            "log_path": "crihookd.log",
            "linux": {"security_context": {"privileged": True,
                                           "namespace_options": {"network": 2}}},
        }
        cls.pod_json = write_json(cls.dir, "pod.json", pod)
        ctr_json = write_json(cls.dir, "crihookd.json", ctr)
        cls.pod_id = cls.cri_ctl("runp", cls.pod_json).stdout.strip()
        cls.ctr_id = cls.cri_ctl("create", cls.pod_id, ctr_json, cls.pod_json).stdout.strip()
        cls.cri_ctl("start", cls.ctr_id)

        def serving():
            if cls.container_state(cls.ctr_id)[0] != CONTAINER_RUNNING:
                raise AssertionError("the crihookd container is not running")
            return os.path.exists(cls.sock) and harness.raw_unary(
                cls.sock, V1 + "Version", timeout=2).code == grpc.StatusCode.OK
        try:
            harness.wait_for(serving, 30, 0.1, "crihookd in the pod to answer on " + cls.sock)
        except AssertionError as e:
            raise AssertionError("%s\ncontainer log:\n%s" % (e, cls.log()))

    @classmethod
    def container_state(cls, ctr_id):
        """(state, exit code) from ContainerStatus, straight from containerd."""
        answer = harness.raw_unary(cls.cri, V1 + "ContainerStatus", pb_bytes(1, ctr_id))
        assert answer.code == grpc.StatusCode.OK, "ContainerStatus %s: %s" % (ctr_id,
                                                                             answer.details)
        status = [v for f, _, v in pb_fields(answer.body) if f == 1][0]
        fields = dict((f, v) for f, _, v in pb_fields(status))
        exit_code = fields.get(7, 0)
        if exit_code >= 1 << 31:  # int32 on the wire as a 64-bit varint
            exit_code -= 1 << 64
        return fields.get(3, 0), exit_code

    @classmethod
    def log(cls, name="crihookd.log"):
        try:
            return read(os.path.join(cls.logs, name))[-6000:]
        except FileNotFoundError:
            return "(no %s)" % name

    @classmethod
    def tearDownClass(cls):
        if cls.pod_id:
            cls.cri_ctl("stopp", cls.pod_id, check=False)
            cls.cri_ctl("rmp", cls.pod_id, check=False)
        if cls.imported:
            subprocess.run(["ctr", "-a", cls.cri, "-n", "k8s.io", "images", "rm", cls.ref],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.containerd.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- through the socket the pod made in the host directory ----

    def test_1_version_answered_by_containerd_through_crihookd(self):
        through = harness.raw_unary(self.sock, V1 + "Version")
        direct = harness.raw_unary(self.cri, V1 + "Version")
        self.assertEqual(through.code, grpc.StatusCode.OK, through.details)
        self.assertIn(b"containerd", through.body)
        self.assertTrue(through.same_as(direct), (through, direct))
        self.assertIn("containerd", harness.ctl(self.sock, "version").stdout)

    def test_1_list_shows_the_crihookd_pod_itself(self):
        pods = harness.raw_unary(self.sock, V1 + "ListPodSandbox")
        self.assertEqual(pods.code, grpc.StatusCode.OK, pods.details)
        ids = [dict((f, v) for f, _, v in pb_fields(item))[1].decode()
               for f, _, item in pb_fields(pods.body) if f == 1]
        self.assertIn(self.pod_id, ids)
        ctrs = harness.raw_unary(self.sock, V1 + "ListContainers")
        self.assertEqual(ctrs.code, grpc.StatusCode.OK, ctrs.details)
        running = {}
        for f, _, item in pb_fields(ctrs.body):
            fields = dict((k, v) for k, _, v in pb_fields(item))
            running[fields[1].decode()] = fields.get(6, 0)
        self.assertEqual(running.get(self.ctr_id), CONTAINER_RUNNING, running)

    def test_1_socket_modes(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        st = os.stat(self.admin)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_1_hook_dir_is_the_mounted_one(self):
        harness.register(self.hook_dir, "50-image-test.json", "/run/no-such-plugin.sock",
                         ["PreCreateContainer"])

        def listed():
            out = harness.ctl(self.sock, "--admin", "unix://" + self.admin, "plugins", "--json",
                              check=False)
            return out.returncode == 0 and "50-image-test.json" in out.stdout
        try:
            harness.wait_for(listed, 10, 0.1, "the plugin file to show in crihookctl plugins")
        finally:
            os.unlink(os.path.join(self.hook_dir, "50-image-test.json"))

    def test_1_tools_inside_the_image(self):
        out = self.cri_ctl("exec-sync", self.ctr_id, "--", "crihookctl", "--version").stdout
        self.assertEqual(out.strip(), "crihookctl version " + self.version)
        # The version check the readiness probe makes (install.sh "ready"):
        # this crihookd is the image's version, and no other.
        admin = "unix://%s/admin.sock" % LISTEN_DIR
        out = self.cri_ctl("exec-sync", self.ctr_id, "--", "crihookctl", "--admin", admin,
                           "status", "--expect-version", self.version, check=False)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        out = self.cri_ctl("exec-sync", self.ctr_id, "--", "crihookctl", "--admin", admin,
                           "status", "--expect-version", self.version + ".1", check=False)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("not the expected version " + self.version + ".1", out.stdout + out.stderr)
        if os.path.exists("/usr/bin/systemctl"):
            out = self.cri_ctl("exec-sync", self.ctr_id, "--", "systemctl", "--version").stdout
            self.assertTrue(out.startswith("systemd "), out)

    def test_2_install_script_of_the_daemonset(self):
        """install.sh from the ConfigMap, in a container with the DaemonSet's
        command, env (its crihookd-config ConfigMap) and mounts; host paths
        are temporary directories. The host's /run holds the running crihookd
        pod's socket directory, the test containerd's socket and a stand-in
        /run/systemd; a stub systemctl stands in for the host's systemd, whose
        crihookd.service is the crihookd container above (already serving:
        the stub reports a new MainPID once install.sh restarted it)."""
        docs = manifest_docs()
        configs = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        script = configs["crihookd-install"]["install.sh"]
        container, volumes = daemonset_container()
        host = os.path.join(self.dir, "host")            # the host's / for this container
        host_run = os.path.join(self.dir, "host-run")    # ... and its /run
        script_dir = os.path.join(self.dir, "install-script")
        stub_dir = os.path.join(self.dir, "stub-bin")
        for d in (host, script_dir, stub_dir, os.path.join(host_run, "systemd", "system")):
            os.makedirs(d)
        private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        private.bind(os.path.join(host_run, "systemd", "private"))
        private.listen(1)
        self.addCleanup(private.close)
        with open(os.path.join(script_dir, "install.sh"), "w") as f:
            f.write(script)
        calls = os.path.join(stub_dir, "calls")
        with open(os.path.join(stub_dir, "systemctl"), "w") as f:
            f.write("#!/bin/sh\n# stub: records its arguments; crihookd.service is the test's\n"
                    "# crihookd container, 'restarted' (a new MainPID) once asked to.\n"
                    'echo "$*" >>/stub-bin/calls\n'
                    'restarted() { grep -q "^restart" /stub-bin/calls; }\n'
                    'case "$1" in\n'
                    "show) if restarted; then echo 4242; else echo 0; fi ;;\n"
                    "is-active) restarted || exit 3 ;;\n"
                    "esac\nexit 0\n")
        os.chmod(os.path.join(stub_dir, "systemctl"), 0o755)

        # Each DaemonSet volume, on a temporary host directory.
        by_volume = {}
        for v in volumes:
            if "configMap" in v:
                by_volume[v["name"]] = script_dir
            elif v["hostPath"]["path"] == "/run":
                by_volume[v["name"]] = host_run
            else:
                by_volume[v["name"]] = os.path.join(host, v["hostPath"]["path"].lstrip("/"))
                os.makedirs(by_volume[v["name"]], exist_ok=True)
        mounts = [{"container_path": "/stub-bin", "host_path": stub_dir},
                  # Inside the host's /run: the running crihookd's sockets and the runtime's.
                  {"container_path": LISTEN_DIR, "host_path": self.run_dir},
                  {"container_path": RUNTIME_SOCK, "host_path": self.cri}]
        for m in container["volumeMounts"]:
            mounts.append({"container_path": m["mountPath"], "host_path": by_volume[m["name"]],
                           "readonly": bool(m.get("readOnly"))})
        env = [{"key": k, "value": v} for k, v in configs["crihookd-config"].items()]
        env += [{"key": e["name"], "value": e["value"]} for e in container["env"]]
        for e in env:
            if e["key"] == "PATH":
                e["value"] = "/stub-bin:" + e["value"]
        ctr = {"metadata": {"name": "install"}, "image": {"image": self.ref},
               "command": container["command"], "envs": env + self.sanitizer_env(),
               "mounts": mounts, "log_path": "install.log",
               "linux": {"security_context": {"privileged": True,
                                              "namespace_options": {"network": 2}}}}
        ctr_id = self.cri_ctl("create", self.pod_id, write_json(self.dir, "install.json", ctr),
                              self.pod_json).stdout.strip()
        self.cri_ctl("start", ctr_id)
        try:
            def done():
                if self.container_state(ctr_id)[0] == CONTAINER_EXITED:
                    raise AssertionError("install.sh exited:\n" + self.log("install.log"))
                return "is ready at unix://%s/crihook.sock" % LISTEN_DIR \
                    in self.log("install.log")
            harness.wait_for(done, 90, 0.2, "install.sh to finish:\n" + self.log("install.log"))
            self.assertIn("trial passed", self.log("install.log"))
            # The DaemonSet's readiness probe, as kubelet runs it in that container.
            probe = container["readinessProbe"]["exec"]["command"]
            out = self.cri_ctl("exec-sync", ctr_id, "--", *probe, check=False)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        finally:
            self.cri_ctl("stop", "-t", "10", ctr_id, check=False)
        self.assertEqual(self.container_state(ctr_id), (CONTAINER_EXITED, 0),
                         self.log("install.log"))
        self.cri_ctl("rm", ctr_id)

        # The bundle, the unit, its drop-ins and crihookctl landed on the host.
        host_prefix = os.path.join(host, PREFIX.lstrip("/"))
        self.assertEqual(read(os.path.join(host_prefix, "sbin", "crihookd"), "rb"),
                         read(harness.CRIHOOKD, "rb"))
        self.assertTrue(os.access(os.path.join(host_prefix, "sbin", "crihookd"), os.X_OK))
        self.assertEqual(read(os.path.join(host_prefix, "bin", "crihookctl"), "rb"),
                         read(harness.CRIHOOKCTL, "rb"))
        libs = os.listdir(os.path.join(host_prefix, "lib"))
        self.assertTrue([l for l in libs if l.startswith("libnghttp2.so")], libs)
        self.assertFalse([l for l in libs if l.startswith("libgrpc")], libs)
        self.assertEqual(read(os.path.join(host_prefix, ".version")).strip(), self.version)
        units = os.path.join(host, "etc", "systemd", "system")
        self.assertEqual(read(os.path.join(units, "crihookd.service")),
                         read(os.path.join(host_prefix, "lib", "systemd", "system",
                                           "crihookd.service")))
        self.assertIn("\nExecStart=/opt/crihook/sbin/crihookd ",
                      read(os.path.join(units, "crihookd.service")))
        self.assertEqual(read(os.path.join(units, "crihookd.service.d",
                                           "20-crihook-bundle.conf")),
                         "[Service]\nEnvironment=LD_LIBRARY_PATH=/opt/crihook/lib\n")
        conf = read(os.path.join(units, "crihookd.service.d", "30-crihook-config.conf"))
        for k, v in configs["crihookd-config"].items():
            self.assertIn('\nEnvironment="%s=%s"\n' % (k, v), conf)
        self.assertIn("exec /opt/crihook/bin/crihookctl",
                      read(os.path.join(host, "usr", "local", "bin", "crihookctl")))
        self.assertFalse(os.path.exists(os.path.join(units, "kubelet.service.d")),
                         "install.sh must not switch kubelet")
        self.assertEqual(read(calls).splitlines()[:4],
                         ["show -p MainPID --value crihookd.service", "daemon-reload",
                          "enable crihookd.service", "restart --no-block crihookd.service"])

    # ---- last: SIGTERM through StopContainer ----

    def test_9_stop_exits_cleanly_and_removes_socket(self):
        start = time.monotonic()
        self.cri_ctl("stop", "-t", "20", self.ctr_id)
        self.assertLess(time.monotonic() - start, 15, "crihookd did not exit on SIGTERM in time")
        self.assertEqual(self.container_state(self.ctr_id), (CONTAINER_EXITED, 0), self.log())
        self.assertFalse(os.path.exists(self.sock), "crihookd left its socket behind")
        self.assertFalse(os.path.exists(self.admin), "crihookd left its admin socket behind")


if __name__ == "__main__":
    harness.main()
