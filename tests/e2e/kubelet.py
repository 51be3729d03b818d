# SPDX-License-Identifier: Apache-2.0
"""kubelet.py: a real kubelet (v1.28.7, standalone, static pods) for the
end-to-end tests, so that kubelet itself, not a hand-written client, drives
crihookd (or, for comparison, containerd directly).

Owned by the kubelet tests (tests/e2e/test_kubelet.py); written to be reused
by any test that needs kubelet (e.g. the example plugins under kubelet).

Where the binary comes from (available() says whether it is there and, if
not, where it looked, for the skip message):
- $CRIHOOK_KUBELET, a kubelet binary or an .xz of one, if set;
- else <repo>/../shared/tools/kubelet-v1.28.7.xz (the workplace's copy; CI
  runs a fresh clone with shared/ beside it), or for a git worktree the same
  path beside its main checkout. A clone elsewhere has none of these, and
  the tests that need kubelet are reported skipped.
An .xz is decompressed once per content into /tmp/crihook-kubelet-<sha256>/.

Kubelet(endpoint, runtime) starts one kubelet:
- against the CRI socket `endpoint` (crihookd's or containerd's), with its
  own root dir, static-pod dir and log under a fresh /tmp/crihook-kl-* dir,
  free ports on 127.0.0.1 (HTTPS API, read-only port for /pods and
  /stats/summary, healthz), and a KubeletConfiguration tuned for short tests
  (1 s file check, 2 s sync, no image GC, loose eviction, cgroupfs);
- in a private mount namespace in which kubelet's kernel tunables
  (vm.overcommit_memory, kernel.panic, ...) are files of its own: kubelet
  otherwise rewrites them on the shared host (with protectKernelDefaults, as
  set here, it would refuse to start instead). Its root dir's shared bind
  mount also stays in that namespace and goes away with kubelet;
- static pods (add_pod/remove_pod) in a namespace of its own (`namespace`),
  so that everything kubelet leaves behind is found by that name.
stop() kills kubelet by its PID (kubelet does not clean up when killed),
removes the pods of its namespace through the runtime's CRI socket
(`runtime`, containerd's: crihookd may be down), their /var/log/pods and
/var/log/containers entries, their pod cgroups and the QoS cgroups kubelet
made (when empty), anything mounted under its dir, and the dir.

Only one kubelet runs at a time (a lock file): kubelets share /kubepods.
Give it a runtime of its own (a private harness.Containerd()): kubelet kills
running pods it does not know and garbage-collects dead ones.
"""

import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import socket
import subprocess
import unittest
import urllib.request
import uuid

import harness

XZ_NAME = "kubelet-v1.28.7.xz"
NODE = "crihook-e2e"  # --hostname-override: static pod NAME runs as NAME-crihook-e2e
BUSYBOX = "localhost/crihook/busybox:test"
LOCK = "/tmp/crihook-kubelet.lock"
CGROUP_ROOT = "/sys/fs/cgroup"

# kubelet's wanted kernel tunables (pkg/kubelet/cm setupKernelTunables),
# shown to it as files in its own mount namespace.
KERNEL_TUNABLES = {
    "vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
    "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
MASK_SCRIPT = r"""
set -e
dir=$1; shift
for kv in $TUNABLES; do
  key=${kv%%=*}
  [ -e "/proc/sys/$key" ] || continue
  file="$dir/$(echo "$key" | tr / .)"
  printf '%s\n' "${kv#*=}" > "$file"
  mount --bind "$file" "/proc/sys/$key"
done
exec "$@"
"""


def repo_roots():
    """The repository's top, and for a git worktree also its main checkout's
    (the worktree's .git file names it), whose ../shared is the workplace's."""
    roots = [harness.ROOT]
    try:
        with open(os.path.join(harness.ROOT, ".git")) as f:
            gitdir = f.read().strip()
    except OSError:
        return roots
    if gitdir.startswith("gitdir: ") and "/.git/worktrees/" in gitdir:
        roots.append(gitdir[len("gitdir: "):].split("/.git/worktrees/")[0])
    return roots


def source():
    """(path, where): the kubelet binary or .xz to use, or None, and the
    places looked at (for the skip message)."""
    env = os.environ.get("CRIHOOK_KUBELET")
    if env:
        return (env if os.path.isfile(env) else None), "$CRIHOOK_KUBELET=" + env
    places = [os.path.join(os.path.dirname(r), "shared", "tools", XZ_NAME) for r in repo_roots()]
    where = "%s (set CRIHOOK_KUBELET=/path/to/kubelet to use another)" % " and ".join(places)
    return next((p for p in places if os.path.isfile(p)), None), where


def available():
    """(True, "") when kubelet is there, else (False, why) for unittest.skipUnless."""
    path, where = source()
    if path:
        return True, ""
    return False, "no kubelet binary: looked for " + where


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def binary():
    """The path of a runnable kubelet, decompressing an .xz once per content."""
    path, where = source()
    if not path:
        raise unittest.SkipTest("no kubelet binary: looked for " + where)
    if not path.endswith(".xz"):
        return path
    cache = "/tmp/crihook-kubelet-" + _sha256(path)[:16]
    exe = os.path.join(cache, "kubelet")
    if not os.path.isfile(exe):
        os.makedirs(cache, exist_ok=True)
        tmp = "%s.%d" % (exe, os.getpid())
        with lzma.open(path) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(tmp, 0o755)
        os.rename(tmp, exe)
    return exe


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container(name, command, **extra):
    """A container of the test busybox image (never pulled) running `command`."""
    c = {"name": name, "image": BUSYBOX, "imagePullPolicy": "Never", "command": list(command)}
    c.update(extra)
    return c


def exec_probe(command, period=1, failures=1, timeout=5):
    return {"exec": {"command": list(command)}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


class Kubelet:
    """One standalone kubelet on `endpoint`; `runtime` is the containerd
    socket its leftovers are removed through."""

    def __init__(self, endpoint, runtime, namespace=None, config=None, log_level=2):
        self._lock = open(LOCK, "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # before the ports are chosen
        self.endpoint, self.runtime = endpoint, runtime
        self.namespace = namespace or "kl-" + uuid.uuid4().hex[:8]
        self.dir = harness.tmpdir("crihook-kl-")
        self.root = os.path.join(self.dir, "root")
        self.manifests = os.path.join(self.dir, "manifests")
        self.log_path = os.path.join(self.dir, "kubelet.log")
        for d in (self.root, self.manifests, os.path.join(self.dir, "sysctl")):
            os.makedirs(d)
        self.ports = {"port": free_port(), "readOnlyPort": free_port(),
                      "healthzPort": free_port()}
        self.config_path = harness.write_json(self.dir, "config.json", self._config(config))
        self.proc = None
        try:
            self._start(log_level)
        except BaseException:
            self.stop()
            raise

    def _config(self, extra):
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": "unix://" + self.endpoint,
            "staticPodPath": self.manifests,
            "fileCheckFrequency": "1s",
            "syncFrequency": "2s",
            "httpCheckFrequency": "1s",
            "address": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1",
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": True,
            "failSwapOn": False,
            "makeIPTablesUtilChains": False,  # leave the host's iptables alone
            "protectKernelDefaults": True,  # never rewrite the host's sysctls
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "imageMinimumGCAge": "24h",
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "evictionPressureTransitionPeriod": "5s",
            "volumeStatsAggPeriod": "0s",
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "2s",
            "runtimeRequestTimeout": "20s",
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
        }
        cfg.update(self.ports)
        cfg.update(extra or {})
        return cfg

    def _start(self, log_level):
        exe = binary()
        tunables = " ".join("%s=%s" % kv for kv in sorted(KERNEL_TUNABLES.items()))
        cmd = ["unshare", "--mount", "--propagation", "slave", "--",
               "sh", "-c", MASK_SCRIPT, "kubelet-mask", os.path.join(self.dir, "sysctl"),
               exe, "--config", self.config_path, "--root-dir", self.root,
               "--hostname-override", NODE, "--housekeeping-interval", "2s",
               "-v", str(log_level)]
        env = dict(os.environ, TUNABLES=tunables)
        self.log = open(self.log_path, "a")
        # same process group as the test: a test runner's time-out kills it too
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        harness.wait_for(self._healthy, 60, 0.2, "kubelet to answer /healthz")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("kubelet exited (%s):\n%s" % (self.proc.returncode,
                                                               self.log_tail()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.ports["healthzPort"],
                                        timeout=2) as r:
                if r.read() != b"ok":
                    return False
            return "items" in self.get("/pods")
        except (OSError, ValueError):
            return False

    # ---- reading kubelet ----

    def get(self, path, port="readOnlyPort"):
        url = "http://127.0.0.1:%d%s" % (self.ports[port], path)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def pods(self):
        """kubelet's /pods items of this kubelet's namespace."""
        return [p for p in self.get("/pods").get("items") or []
                if p["metadata"].get("namespace") == self.namespace]

    def full_name(self, name):
        return name + "-" + NODE

    def pod(self, name):
        """kubelet's view (/pods) of static pod `name`, or None."""
        for p in self.pods():
            if p["metadata"]["name"] == self.full_name(name):
                return p
        return None

    def summary(self):
        return self.get("/stats/summary")

    def pod_stats(self, name):
        for p in self.summary().get("pods") or []:
            ref = p["podRef"]
            if ref["namespace"] == self.namespace and ref["name"] == self.full_name(name):
                return p
        return None

    def wait_pod(self, name, predicate, timeout=30, what=None):
        """Waits until predicate(pod) holds for kubelet's view of `name`
        (None once gone); returns that view."""
        seen = {}

        def check():
            seen["pod"] = self.pod(name)
            return predicate(seen["pod"])
        try:
            harness.wait_for(check, timeout, 0.25, what or "pod %s" % name)
        except AssertionError as e:
            raise AssertionError("%s; last /pods view: %s\nkubelet log:\n%s" % (
                e, json.dumps((seen.get("pod") or {}).get("status"))[:3000],
                self.log_tail())) from None
        return seen["pod"]

    def wait_running(self, name, timeout=30):
        """Waits until every container of `name` runs and is ready."""
        return self.wait_pod(name, lambda p: p is not None and all_running(p), timeout,
                             "all containers of %s running" % name)

    def log_dir(self, name):
        """/var/log/pods/NAMESPACE_NAME_UID of pod `name`, or None."""
        prefix = "%s_%s_" % (self.namespace, self.full_name(name))
        for entry in sorted(os.listdir("/var/log/pods")) if os.path.isdir("/var/log/pods") else []:
            if entry.startswith(prefix):
                return os.path.join("/var/log/pods", entry)
        return None

    def container_log(self, name, ctr, restart):
        """What container `ctr` of pod `name` wrote in its run number `restart`."""
        path = os.path.join(self.log_dir(name) or "/nonexistent", ctr, "%d.log" % restart)
        with open(path) as f:
            return f.read()

    def container_logs(self, name, ctr):
        """The logs kubelet kept of container `ctr` of pod `name`, oldest run
        first (kubelet removes those of the runs it garbage-collected)."""
        d = os.path.join(self.log_dir(name) or "/nonexistent", ctr)
        runs = sorted(int(f[:-4]) for f in os.listdir(d) if re.fullmatch(r"\d+\.log", f))
        out = []
        for run in runs:
            with open(os.path.join(d, "%d.log" % run)) as f:
                out.append(f.read())
        return out

    def wait_log(self, pattern, timeout=30):
        """Waits until kubelet's log matches the regex `pattern`; returns the match."""
        seen = {}

        def check():
            seen["m"] = re.search(pattern, self.read_log())
            return seen["m"] is not None
        harness.wait_for(check, timeout, 0.25, "kubelet to log " + pattern)
        return seen["m"]

    def log_about(self, text, lines=40):
        """The last `lines` lines of kubelet's log that mention `text`."""
        return "\n".join([line for line in self.read_log().splitlines()
                          if text in line][-lines:])

    def log_tail(self, n=6000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except FileNotFoundError:
            return ""

    def read_log(self):
        return self.log_tail(1 << 30)

    # ---- static pods ----

    def add_pod(self, name, containers, labels=None, annotations=None, **spec):
        """Writes the static pod `name` (host network, 1 s grace period;
        `spec` merged into its spec) into the manifest dir."""
        full = {"hostNetwork": True, "terminationGracePeriodSeconds": 1,
                "containers": list(containers)}
        full.update(spec)
        meta = {"name": name, "namespace": self.namespace}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": full}
        # kubelet ignores dot files: write one, then rename it into place
        tmp = harness.write_json(self.manifests, "." + name + ".tmp", doc)
        os.rename(tmp, os.path.join(self.manifests, name + ".json"))

    def remove_pod(self, name):
        os.unlink(os.path.join(self.manifests, name + ".json"))

    # ---- the runtime's side ----

    def cri(self, *args, endpoint=None, check=True):
        """crihookctl against `endpoint` (default: the one kubelet uses)."""
        return harness.ctl(endpoint or self.endpoint, *args, check=check)

    def exec_in(self, status, *command, check=True):
        """ExecSync of `command` in the container of a containerStatus,
        through kubelet's endpoint; returns its stdout."""
        return self.cri("exec-sync", cid(status), "--", *command, check=check).stdout

    def cri_pods(self, endpoint=None):
        """Sandboxes of this kubelet's namespace, as the runtime lists them."""
        out = self.cri("pods", "-o", "json", endpoint=endpoint or self.runtime, check=False)
        if out.returncode != 0:
            return []
        return [p for p in json.loads(out.stdout).get("items") or []
                if p["metadata"].get("namespace") == self.namespace]

    def cri_containers(self, pod_id, endpoint=None):
        out = self.cri("ps", "-a", "--pod", pod_id, "-o", "json",
                       endpoint=endpoint or self.runtime)
        return json.loads(out.stdout).get("containers") or []

    # ---- stop and clean up ----

    def kill(self):
        """Stops kubelet (TERM, then KILL); its pods stay as they are."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def stop(self):
        """Kills kubelet and removes everything it made."""
        try:
            self.kill()
            uids = self._remove_pods()
            uids |= self._remove_logs()
            self._remove_cgroups(uids)
            unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if not self._lock.closed:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()

    def _remove_pods(self):
        uids = set()
        for p in self.cri_pods():
            uids.add(p["metadata"].get("uid", ""))
            self.cri("stopp", p["id"], endpoint=self.runtime, check=False)
            self.cri("rmp", p["id"], endpoint=self.runtime, check=False)
        return uids

    def _remove_logs(self):
        uids = set()
        prefix = self.namespace + "_"
        if os.path.isdir("/var/log/pods"):
            for entry in os.listdir("/var/log/pods"):
                if entry.startswith(prefix):
                    uids.add(entry.rsplit("_", 1)[-1])
                    shutil.rmtree(os.path.join("/var/log/pods", entry), ignore_errors=True)
        if os.path.isdir("/var/log/containers"):
            for entry in os.listdir("/var/log/containers"):
                if "_%s_" % self.namespace in entry:
                    os.unlink(os.path.join("/var/log/containers", entry))
        return uids

    @staticmethod
    def _remove_cgroups(uids):
        """Pod cgroups of `uids`, then kubelet's QoS cgroups if empty."""
        for ctrl in os.listdir(CGROUP_ROOT):
            top = os.path.join(CGROUP_ROOT, ctrl, "kubepods")
            if not os.path.isdir(top):
                continue
            for qos in ("", "burstable", "besteffort"):
                for uid in uids:
                    _rmdir_tree(os.path.join(top, qos, "pod" + uid))
            for qos in ("burstable", "besteffort", ""):
                try:
                    os.rmdir(os.path.join(top, qos))
                except OSError:
                    pass


def _rmdir_tree(path):
    """rmdir every directory under `path`, deepest first (cgroups hold no files)."""
    if not os.path.isdir(path):
        return
    for here, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        try:
            os.rmdir(here)
        except OSError:
            pass


def unmount_under(path):
    """Unmounts every mount point at or under `path` in this namespace."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)


# ---- reading kubelet's pod views ----

def statuses(pod):
    """{container name: its containerStatus} of a /pods item."""
    return {c["name"]: c for c in (pod.get("status") or {}).get("containerStatuses") or []}


def cid(status):
    """The runtime's ID of a containerStatus ('containerd://ID')."""
    return status["containerID"].split("://", 1)[-1]


def all_running(pod):
    st = statuses(pod)
    names = [c["name"] for c in pod["spec"]["containers"]]
    return len(st) == len(names) and all("running" in st[n].get("state", {}) for n in names)


def state_of(status):
    """'running', 'waiting:REASON' or 'terminated:REASON' of a containerStatus."""
    state = status.get("state") or {}
    for kind in ("running", "waiting", "terminated"):
        if kind in state:
            reason = (state[kind] or {}).get("reason")
            return kind + (":" + reason if reason else "")
    return "unknown"
