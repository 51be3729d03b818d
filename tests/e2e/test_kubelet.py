# SPDX-License-Identifier: Apache-2.0
"""End to end with a real kubelet (v1.28.7, standalone, static pods).

Owned by the kubelet tests; the harness is tests/e2e/kubelet.py. Skipped,
with the places looked at, when no kubelet binary is found (a clone outside
this workplace has no ../shared); run when it is (CI has it).

KubeletThroughCrihookd: the same static pods run under kubelet pointed at
containerd directly, then at crihookd (no plugins) in front of it, one
kubelet at a time (both use /kubepods). Pods: two containers with CPU and
memory limits, a crash-looping container, an exec liveness probe that passes
and one that fails; then a manifest is removed. What kubelet reports (/pods,
/stats/summary, container logs, the runtime's state after teardown) must be
the same both ways. Restart counts depend on timing, so the comparison keeps
what is stable: the crash-looper is seen after its second restart, waiting
in the 20 s back-off that follows it (the first restart is immediate, the
second follows a 10 s back-off); the failing probe's container restarted at
least once; everything else has no restart.

KubeletSurvivesCrihookdRestart: crihookd stopped with SIGTERM, then with
SIGKILL, and started again while kubelet runs, with a hook server
(tests/e2e/hookserver.py) registered for PreCreateContainer (adds an env var)
and PostStopContainer. The pod running across the restart keeps its
containers (same IDs, no restart); kubelet (same process) starts a new pod
through the new crihookd, whose container gets the plugin's env var; and
when the old pod is removed, the PostStopContainer hooks for containers
created before the restart carry the pod's name, namespace, uid and labels,
which only a store rebuilt from the runtime can give (StopContainer carries
only an ID).

What kubelet showed that hand-written requests had hidden (seen in these
runs; see also ../shared/tools/README.md):
- CreateContainer's ImageSpec.image is the image ID (sha256:...), the name
  the user wrote is only in user_specified_image (field 18), so a hook
  request's container_image is the ID; ListContainers reports the ID as the
  image too.
- kubelet never copies pod annotations to a container: a container's
  annotations are kubelet's own io.kubernetes.* keys (container hash,
  restartCount, termination message path and policy, grace period). A pod's
  annotations gain kubernetes.io/config.{hash,seen,source}; the hash is a
  static pod's UID, its name NAME-NODENAME.
- Its resources are never empty: a BestEffort container comes with
  cpu_shares 2, cpu_period 100000, oom_score_adj 1000 and hugepage_limits
  for 2MB and 1GB pages with limit 0; the pod's cgroup parent is
  /kubepods/<qos>/pod<uid> (cgroupfs driver).
- kubelet polls: about 12 CRI calls a second in this scenario (measured
  through crihookd's /metrics and printed by the test; the test's own
  crihookctl calls add Version and ExecSync): ListContainers and
  ListPodSandbox about 2.5/s each, ContainerStatus 2/s, ExecSync for every
  probe period, PodSandboxStatus, ImageStatus, Status, ImageFsInfo,
  ListContainerStats. It keeps its gRPC connection across a proxy restart
  and reconnects by itself, with no kubelet restart.
- Stopping a container sends only its ID (and a pod stop only the sandbox
  ID): hooks on stop calls depend on the proxy's store knowing the pod.
- kubelet treats every pod in its runtime as its own: it kills running pods
  it does not know ("Clean up containers for orphaned pod") and
  garbage-collects dead ones, so it cannot share a runtime with other tests;
  and unless protectKernelDefaults is set it rewrites host sysctls
  (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, ...).
"""

import re
import signal
import time
import unittest

import harness
import kubelet
from kubelet import Kubelet, cid, container, exec_probe, state_of, statuses

HAVE_KUBELET, WHY = kubelet.available()
LIMITS = {"main": {"cpu": "250m", "memory": "64Mi"}, "side": {"cpu": "100m", "memory": "32Mi"}}
ENV_NAME, ENV_VALUE = "CRIHOOK_HOOKED", "by-hookserver"


CONTAINERD = None


def setUpModule():
    """A private containerd, even when the suite shares one: kubelet treats
    every pod in the runtime as its own (it would kill pods it does not know
    and garbage-collect their leftovers)."""
    global CONTAINERD
    if HAVE_KUBELET:
        CONTAINERD = harness.Containerd()


def tearDownModule():
    if CONTAINERD:
        CONTAINERD.stop()


def cgroup_limits(kl, status):
    """The container's own memory and CPU quota, read inside it."""
    out = kl.exec_in(status, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                     "/sys/fs/cgroup/cpu/cpu.cfs_quota_us").split()
    return {"memory": int(out[0]), "cpu_quota_us": int(out[1])}


def scenario(kl):
    """Runs the no-plugin pods under `kl`; returns what kubelet and the
    runtime showed, with IDs, times and names of this run left out."""
    kl.add_pod("two", [container(name, ["sh", "-c", "echo %s up; exec sleep 3600" % name],
                                 resources={"limits": LIMITS[name]}) for name in ("main", "side")])
    kl.add_pod("crash", [container("crasher", ["sh", "-c", "echo crashing; exit 3"])])
    kl.add_pod("probed", [
        container("healthy", ["sleep", "3600"],
                  livenessProbe=exec_probe(["sh", "-c", "echo probed >> /tmp/probes"],
                                           failures=3, timeout=10)),
        container("sick", ["sleep", "3600"], livenessProbe=exec_probe(["false"]))])
    return {"two": observe_two(kl), "probed": observe_probed(kl),
            "crash": observe_crash(kl), "teardown": observe_teardown(kl, "two")}


def observe_two(kl):
    pod = kl.wait_running("two")
    st = statuses(pod)
    stats = harness_wait(lambda: stats_of(kl, "two", st.keys()), "stats of pod two")
    return {"phase": pod["status"]["phase"], "qos": pod["status"].get("qosClass"),
            "containers": {n: [state_of(s), s["restartCount"], s.get("ready")]
                           for n, s in st.items()},
            "limits": {n: cgroup_limits(kl, s) for n, s in st.items()},
            "logs": {n: kl.container_log("two", n, 0).count("%s up" % n) for n in st},
            "stats": stats}


def stats_of(kl, name, containers):
    """Which figures /stats/summary has for the pod and its containers
    (non-zero or not), once every container is there."""
    p = kl.pod_stats(name)
    if not p or sorted(c["name"] for c in p.get("containers") or []) != sorted(containers):
        return None

    def figures(s):
        return {"cpu": bool((s.get("cpu") or {}).get("usageCoreNanoSeconds")),
                "memory": bool((s.get("memory") or {}).get("workingSetBytes"))}
    out = {"pod": figures(p)}
    out.update({c["name"]: figures(c) for c in p["containers"]})
    return out if all(all(v.values()) for v in out.values()) else None


def harness_wait(fetch, what, timeout=30, explain=None):
    """Waits until fetch() returns something else than None and returns it;
    on time-out the error says what explain() returns."""
    seen = {}

    def check():
        seen["v"] = fetch()
        return seen["v"] is not None
    try:
        harness.wait_for(check, timeout, 0.5, what)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, explain() if explain else "")) from None
    return seen["v"]


def observe_crash(kl):
    """Waits for the crash-looper's second restart and the back-off after it
    (the first restart is immediate, the second follows a 10 s back-off, the
    third a 20 s one: 'back-off 20s' shows that kubelet's back-off grew)."""
    def backing_off(pod):
        s = statuses(pod or {}).get("crasher")
        return bool(s) and s["restartCount"] >= 2 and "waiting" in s["state"]
    pod = kl.wait_pod("crash", backing_off, 60, "crasher restarted twice, then backing off")
    s = statuses(pod)["crasher"]
    last = s["lastState"]["terminated"]
    return {"phase": pod["status"]["phase"], "qos": pod["status"].get("qosClass"),
            "state": state_of(s),
            "backoff": re.findall(r"back-off \d+s", s["state"]["waiting"].get("message", "")),
            "last_exit": [last.get("reason"), last["exitCode"]],
            "logs": sorted({log.count("crashing")
                            for log in kl.container_logs("crash", "crasher")})}


def observe_probed(kl):
    """The passing probe ran (its file grew) and its container never
    restarted; the failing probe's container was restarted by kubelet."""
    def sick_restarted(pod):
        st = statuses(pod or {})
        return "sick" in st and st["sick"]["restartCount"] >= 1 and "healthy" in st
    pod = kl.wait_pod("probed", sick_restarted, 30, "the failing probe's container restarted")
    healthy = statuses(pod)["healthy"]
    runs = harness_wait(lambda: _probe_runs(kl, healthy), "two passing probe runs", 15)
    pod = kl.pod("probed")
    healthy, sick = statuses(pod)["healthy"], statuses(pod)["sick"]
    last = sick["lastState"]["terminated"]
    return {"phase": pod["status"]["phase"], "qos": pod["status"].get("qosClass"),
            "healthy": [state_of(healthy), healthy["restartCount"], runs >= 2],
            "sick_restarted": sick["restartCount"] >= 1,
            "sick_last_exit": [last.get("reason"), last["exitCode"]]}


def _probe_runs(kl, status):
    out = kl.exec_in(status, "cat", "/tmp/probes", check=False)
    runs = out.count("probed")
    return runs if runs >= 2 else None


def observe_teardown(kl, name):
    """Removes pod `name`'s manifest; returns what the runtime shows once
    kubelet is done with it: the sandbox stopped (kubelet's GC removes it
    later), its containers exited or removed."""
    pod_uid = kl.pod(name)["metadata"]["uid"]
    kl.remove_pod(name)
    kl.wait_pod(name, lambda p: p is None, 30, "pod %s gone from /pods" % name)

    def torn_down():
        pods = [p for p in kl.cri_pods() if p["metadata"]["uid"] == pod_uid]
        if len(pods) != 1:
            return None
        # (JSON leaves out enum values 0: SANDBOX_READY, CONTAINER_CREATED)
        state = pods[0].get("state", "SANDBOX_READY")
        ctrs = sorted(c.get("state", "CONTAINER_CREATED") for c in kl.cri_containers(pods[0]["id"]))
        # kubelet stops the containers, then removes them (at once or at its
        # next container GC, a minute later: timing), then stops the sandbox
        live = [c for c in ctrs if c != "CONTAINER_EXITED"]
        if state == "SANDBOX_READY" or live:
            return None
        return {"sandbox": state, "containers_not_exited": live}
    def explain():
        return "runtime:\n%s%s\nkubelet's log about the pod:\n%s" % (
            kl.cri("pods", endpoint=kl.runtime).stdout,
            kl.cri("ps", "-a", endpoint=kl.runtime).stdout, kl.log_about(kl.full_name(name)))
    return harness_wait(torn_down, "pod %s stopped in the runtime" % name, 60, explain)


def print_calls(proxy, seconds):
    """Prints (no assertion) the CRI calls kubelet made through crihookd
    during the scenario, per method, from crihookd's /metrics."""
    _, body = harness.http_get("/metrics", unix=proxy.admin)
    calls = {}
    sample = r'^crihook_cri_calls_total\{[^}]*method="[^"]*/(\w+)"[^}]*\} (\S+)$'
    for method, n in re.findall(sample, body, re.M):
        calls[method] = calls.get(method, 0) + int(float(n))
    total = sum(calls.values())
    print("\nkubelet's CRI calls through crihookd: %d in %.0f s (%.1f/s): %s" % (
        total, seconds, total / seconds,
        ", ".join("%s %d" % kv for kv in sorted(calls.items(), key=lambda kv: -kv[1]))))


@unittest.skipUnless(HAVE_KUBELET, WHY)
class KubeletThroughCrihookd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = CONTAINERD
        cls.proxy = None
        try:
            cls.direct = cls.run_under(cls.containerd.sock)
            cls.proxy = harness.Crihookd(cls.containerd.sock)
            cls.proxied = cls.run_under(cls.proxy.sock)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def run_under(cls, endpoint):
        kl = Kubelet(endpoint, cls.containerd.sock)
        started = time.monotonic()
        try:
            return scenario(kl)
        finally:
            if cls.proxy:
                print_calls(cls.proxy, time.monotonic() - started)
            kl.stop()

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop() if cls.proxy else 0
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def test_two_containers_with_limits(self):
        two = self.proxied["two"]
        self.assertEqual(two["phase"], "Running")
        self.assertEqual(two["qos"], "Guaranteed")
        self.assertEqual(two["containers"], {"main": ["running", 0, True],
                                             "side": ["running", 0, True]})
        self.assertEqual(two["limits"], {
            "main": {"memory": 64 << 20, "cpu_quota_us": 25000},
            "side": {"memory": 32 << 20, "cpu_quota_us": 10000}})
        self.assertEqual(two["logs"], {"main": 1, "side": 1})
        self.assertIsNotNone(two["stats"])

    def test_crash_loop_backs_off(self):
        crash = self.proxied["crash"]
        self.assertEqual(crash["phase"], "Running")
        self.assertEqual(crash["state"], "waiting:CrashLoopBackOff")
        self.assertEqual(crash["backoff"], ["back-off 20s"])
        self.assertEqual(crash["last_exit"], ["Error", 3])
        self.assertEqual(crash["logs"], [1])  # each run kubelet kept a log of said it once

    def test_exec_liveness_probes(self):
        probed = self.proxied["probed"]
        self.assertEqual(probed["healthy"], ["running", 0, True])
        self.assertTrue(probed["sick_restarted"])
        self.assertEqual(probed["sick_last_exit"][1], 137)  # killed after the grace period

    def test_removed_manifest_tears_the_pod_down(self):
        down = self.proxied["teardown"]
        self.assertEqual(down, {"sandbox": "SANDBOX_NOTREADY", "containers_not_exited": []})

    def test_same_as_containerd_directly(self):
        self.maxDiff = None
        self.assertEqual(self.direct, self.proxied)


@unittest.skipUnless(HAVE_KUBELET, WHY)
class KubeletSurvivesCrihookdRestart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.containerd = CONTAINERD
        cls.proxy = cls.kl = cls.hooks = None
        try:
            cls.proxy = harness.Crihookd(cls.containerd.sock)
            cls.hooks = harness.HookServer("env", {
                "PreCreateContainer": {"answer": {"container_envs": {ENV_NAME: ENV_VALUE}}}})
            harness.register(cls.proxy.hook_dir, "10-env.json", cls.hooks.sock,
                             ["PreCreateContainer", "PostStopContainer"])
            harness.wait_for(lambda: len(cls.proxy.plugins()["plugins"]) == 1, 10,
                             what="the hook server registered")
            cls.kl = Kubelet(cls.proxy.sock, cls.containerd.sock)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.kl:
            cls.kl.stop()
        if cls.hooks:
            cls.hooks.stop()
        code = cls.proxy.stop() if cls.proxy else 0
        assert code == 0, "crihookd exit %d:\n%s" % (code, cls.proxy.read_log()[-5000:])

    def env_of(self, status):
        return self.kl.exec_in(status, "env")

    def restart_crihookd(self, sig):
        self.proxy.signal(sig)
        code = self.proxy.proc.wait(30)
        self.proxy.log.close()
        if sig == signal.SIGTERM:
            self.assertEqual(code, 0, self.proxy.read_log()[-5000:])
        self.proxy.restart()

    def check_restart(self, sig):
        kl, tag = self.kl, sig.name.lower()
        steady = "steady-" + tag
        kl.add_pod(steady, [container(n, ["sleep", "3600"]) for n in ("main", "side")])
        before = {n: cid(s) for n, s in statuses(kl.wait_running(steady)).items()}
        hooked = "%s=%s" % (ENV_NAME, ENV_VALUE)
        self.assertIn(hooked, self.env_of(statuses(kl.pod(steady))["main"]))
        kubelet_pid = kl.proc.pid

        self.restart_crihookd(sig)

        # a new pod, through the new crihookd, gets the plugin's change
        after = "after-" + tag
        kl.add_pod(after, [container("main", ["sleep", "3600"])])
        pod = kl.wait_running(after, 60)
        self.assertIn(hooked, self.env_of(statuses(pod)["main"]))
        # the old pod kept its containers, and kubelet is the same process
        st = statuses(kl.pod(steady))
        self.assertEqual({n: cid(s) for n, s in st.items()}, before)
        self.assertEqual({n: (state_of(s), s["restartCount"]) for n, s in st.items()},
                         {"main": ("running", 0), "side": ("running", 0)})
        self.assertIsNone(kl.proc.poll())
        self.assertEqual(kl.proc.pid, kubelet_pid)
        running = [c["id"] for p in kl.cri_pods() if p["metadata"]["name"] == kl.full_name(steady)
                   for c in kl.cri_containers(p["id"]) if c["state"] == "CONTAINER_RUNNING"]
        self.assertEqual(sorted(running), sorted(before.values()))
        self.check_store_rebuilt(steady, before)
        kl.remove_pod(after)

    def check_store_rebuilt(self, steady, before):
        """Stops the pod that ran across the restart: the PostStopContainer
        hooks of its containers carry what only the rebuilt store knows."""
        kl, full = self.kl, self.kl.full_name(steady)
        pod_uid = kl.pod(steady)["metadata"]["uid"]
        kl.remove_pod(steady)

        def stops():
            calls = [c["request"] for c in self.hooks.calls("PostStopContainer")
                     if c["request"].get("pod_meta", {}).get("name") == full]
            names = sorted(c.get("container_meta", {}).get("name") for c in calls)
            return calls if names == ["main", "side"] else None
        try:
            calls = harness_wait(stops, "PostStopContainer hooks naming pod " + full)
        except AssertionError:
            self.fail("no PostStopContainer hook with the pod's metadata for %s (store not "
                      "rebuilt?); calls: %s" % (full, self.hooks.calls("PostStopContainer")))
        self.assertEqual(sorted(c["container_meta"].get("id") for c in calls),
                         sorted(before.values()))
        for req in calls:
            self.assertEqual(req["pod_meta"]["namespace"], kl.namespace)
            self.assertEqual(req["pod_meta"]["uid"], pod_uid)
            self.assertEqual(req["pod_labels"]["io.kubernetes.pod.name"], full)
            self.assertEqual(req["pod_labels"]["io.kubernetes.pod.uid"], pod_uid)

    def test_sigkill(self):
        self.check_restart(signal.SIGKILL)

    def test_sigterm(self):
        self.check_restart(signal.SIGTERM)


if __name__ == "__main__":
    harness.main()
