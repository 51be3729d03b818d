# SPDX-License-Identifier: Apache-2.0
"""End to end: the registry follows hookserver.d, and the store survives a
restart of crihookd.

The watch cases are timed precisely by the unit tests (tests/unit/
test_watch.c); here they are driven through the real daemon and read back
with `crihookctl plugins`, as an operator would.
"""

import json
import os
import shutil
import signal
import time
import unittest
import uuid

import harness
from harness import HookServer, register


def names(proxy):
    return [p["name"] for p in proxy.plugins()["plugins"]]


class RegistryFollowsTheDirectory(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir("crihook-reg-")
        self.backend = os.path.join(self.dir, "fake.sock")
        from fake_backend import FakeBackend
        self.fake = FakeBackend(self.backend)
        self.hook_dir = os.path.join(self.dir, "not-yet", "hookserver.d")
        self.proxy = harness.Crihookd(self.backend, hook_dir=self.hook_dir)

    def tearDown(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.read_log())
        self.fake.stop()

    def expect(self, wanted, what):
        harness.wait_for(lambda: names(self.proxy) == wanted, 2, what=what)

    def test_every_kind_of_change(self):
        sock = os.path.join(self.dir, "p.sock")
        self.assertEqual(names(self.proxy), [])  # missing directory: not an error
        os.makedirs(self.hook_dir)
        register(self.hook_dir, "20-b.json", sock, ["PreStartContainer"])
        self.expect(["20-b"], "directory created later")
        register(self.hook_dir, "10-a.json", sock, ["PreRunPodSandbox"], policy="Fail")
        self.expect(["10-a", "20-b"], "file created")
        a = self.proxy.plugins()["plugins"][0]
        self.assertEqual((a["failure_policy"], a["hooks"], a["order"]),
                         ("Fail", ["PreRunPodSandbox"], 0))
        with open(os.path.join(self.hook_dir, "10-a.json"), "w") as f:  # rewritten in place
            json.dump({"remote-endpoint": sock, "runtime-hooks": ["PostStopContainer"]}, f)
        harness.wait_for(lambda: self.proxy.plugins()["plugins"][0]["hooks"] ==
                         ["PostStopContainer"], 2, what="rewrite")
        os.rename(os.path.join(self.hook_dir, "20-b.json"), os.path.join(self.dir, "b.json"))
        self.expect(["10-a"], "renamed out")
        os.rename(os.path.join(self.dir, "b.json"), os.path.join(self.hook_dir, "30-b.json"))
        self.expect(["10-a", "30-b"], "renamed in")
        os.unlink(os.path.join(self.hook_dir, "10-a.json"))
        self.expect(["30-b"], "deleted")

    def test_malformed_file_registers_nothing_and_is_explained(self):
        sock = os.path.join(self.dir, "p.sock")
        os.makedirs(self.hook_dir)
        register(self.hook_dir, "10-good.json", sock, ["PreRunPodSandbox"])
        self.expect(["10-good"], "good file")
        bad = os.path.join(self.hook_dir, "20-bad.json")
        with open(bad, "w") as f:
            f.write('{"remote-endpoint": "/x.sock", "runtime-hooks": ["PreRunPodSandbox",')
        harness.wait_for(lambda: self.proxy.plugins()["rejected"], 2, what="rejection")
        rejected = self.proxy.plugins()["rejected"][0]
        self.assertTrue(rejected["file"].endswith("20-bad.json"))
        self.assertTrue(rejected["reason"])
        self.assertEqual(names(self.proxy), ["10-good"])
        register(self.hook_dir, "20-bad.json", sock, ["NoSuchHook"])
        harness.wait_for(lambda: "NoSuchHook" in json.dumps(self.proxy.plugins()["rejected"]), 2,
                         what="unknown hook named")
        register(self.hook_dir, "20-bad.json", sock, ["PostStopContainer"])
        self.expect(["10-good", "20-bad"], "fixed file registered")
        self.assertEqual(self.proxy.plugins()["rejected"], [])
        rejections = [l for l in self.proxy.read_log().splitlines()
                      if "20-bad.json" in l and "reject" in l]
        self.assertEqual(len(rejections), 2, "each bad state is logged once:\n" + "\n".join(rejections))

    def test_configmap_symlink_swap(self):
        sock = os.path.join(self.dir, "p.sock")
        os.makedirs(self.hook_dir)

        def generation(n, files):
            d = os.path.join(self.hook_dir, "..gen_%d" % n)
            os.mkdir(d)
            for name, hooks in files.items():
                register(d, name, sock, hooks)
            return os.path.basename(d)

        first = generation(1, {"10-a.json": ["PreRunPodSandbox"], "20-b.json": ["PostStopContainer"]})
        os.symlink(first, os.path.join(self.hook_dir, "..data"))
        for name in ("10-a.json", "20-b.json"):
            os.symlink(os.path.join("..data", name), os.path.join(self.hook_dir, name))
        self.expect(["10-a", "20-b"], "first ConfigMap generation")
        second = generation(2, {"10-a.json": ["PreStartContainer"], "20-b.json": ["PostStopContainer"],
                                "30-c.json": ["PreCreateContainer"]})
        tmp = os.path.join(self.hook_dir, "..data_tmp")
        os.symlink(second, tmp)
        os.rename(tmp, os.path.join(self.hook_dir, "..data"))  # the atomic swap
        os.symlink(os.path.join("..data", "30-c.json"), os.path.join(self.hook_dir, "30-c.json"))
        shutil.rmtree(os.path.join(self.hook_dir, first))
        self.expect(["10-a", "20-b", "30-c"], "second generation")
        self.assertEqual(self.proxy.plugins()["plugins"][0]["hooks"], ["PreStartContainer"])


class StoreSurvivesRestart(unittest.TestCase):
    def test_restart_keeps_what_hooks_are_told(self):
        containerd = harness.Containerd.shared()
        proxy = harness.Crihookd(containerd.sock)
        work = harness.tmpdir("crihook-rs-")
        hs = HookServer("watcher", {}, work)
        try:
            name = "rs-" + uuid.uuid4().hex[:8]
            pod_path, ctr_path = harness.pod_files(
                work, name, linux={"cgroup_parent": "/crihook-rs-" + name},
                container={"linux": {"resources": {"cpu_shares": 300,
                                                   "memory_limit_in_bytes": 50331648}}})
            pod_id = proxy.ctl("runp", pod_path).stdout.strip()
            ctr_id = proxy.ctl("create", pod_id, ctr_path, pod_path).stdout.strip()
            before = (proxy.store("pods"), proxy.store("containers"))
            self.assertIn(pod_id, json.dumps(before[0]))
            self.assertIn(ctr_id, json.dumps(before[1]))

            proxy.kill()  # SIGKILL: no chance to save anything
            proxy.restart()
            after = (proxy.store("pods"), proxy.store("containers"))
            ours = lambda docs, key: [d for d in docs if d["id"] == key]
            self.assertEqual(ours(after[0], pod_id), ours(before[0], pod_id))
            self.assertEqual(ours(after[1], ctr_id), ours(before[1], ctr_id))

            register(proxy.hook_dir, "10-watcher.json", hs.sock, ["PreStartContainer"])
            harness.wait_for(lambda: proxy.plugins()["plugins"], 3, what="plugin registered")
            proxy.ctl("start", ctr_id)
            seen = hs.calls("PreStartContainer")[-1]["request"]
            self.assertEqual(seen["pod_cgroup_parent"], "/crihook-rs-" + name)
            self.assertEqual(seen["container_envs"]["GREETING"], "hello from crihook")
            self.assertEqual(seen["container_resources"]["cpu_shares"], "300")
            self.assertEqual(seen["container_resources"]["memory_limit_in_bytes"], "50331648")
            self.assertEqual(seen["pod_meta"]["name"], name)
            self.assertEqual(seen["container_meta"]["id"], ctr_id)
            harness.ctl(containerd.sock, "stopp", pod_id)
            harness.ctl(containerd.sock, "rmp", pod_id)
        finally:
            hs.stop()
            self.assertEqual(proxy.stop(), 0, proxy.read_log()[-3000:])
            containerd.stop()


if __name__ == "__main__":
    harness.main()
