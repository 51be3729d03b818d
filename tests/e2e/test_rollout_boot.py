# SPDX-License-Identifier: Apache-2.0
"""A node's boot where the runtime is slower than crihookd (issue 12).

crihookd.service runs `crihookd --backend auto` and kubelet is ordered after
it. If crihookd exited when no runtime answered yet, systemd would record a
failed start and (with the old Requires=) stop kubelet with it. Now crihookd
keeps probing (1, 2, 4, then every 8 s, each round logged), does not send
READY=1 and serves nothing until a runtime answers, then serves through it.

The test runs the real daemon with the real well-known runtime paths:
crihookd runs in a private mount namespace (`unshare --mount`, root) whose
/run is an empty tmpfs, so none of the candidates /run/containerd,
/run/k3s/containerd, /run/crio, /run/cri-dockerd exists -- as on a node
where containerd has not started yet. /run/containerd/containerd.sock is a
symbolic link to a path in /tmp where nothing is yet; a real containerd is
then started late and linked there, and crihookd must find it, tell systemd
READY=1 (a datagram socket in NOTIFY_SOCKET stands in for systemd's: it is
the same protocol) and answer CRI calls through it.
"""

import os
import shutil
import socket
import subprocess
import unittest

import grpc

import harness
from harness import V1


class SlowRuntimeAtBoot(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare(1) for a private mount namespace")
        self.dir = harness.tmpdir("crihook-boot-")
        self.sock = os.path.join(self.dir, "crihook.sock")
        self.admin = os.path.join(self.dir, "admin.sock")
        self.late = os.path.join(self.dir, "late.sock")  # where containerd will be
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.messages = []
        self.log_path = os.path.join(self.dir, "crihookd.log")
        self.containerd = None
        script = ("mount -t tmpfs crihook-test-run /run && mkdir -p /run/containerd && "
                  'ln -s "$LATE" /run/containerd/containerd.sock && exec "$@"')
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               harness.CRIHOOKD, "--backend", "auto", "--listen", "unix://" + self.sock,
               "--admin-socket", "unix://" + self.admin,
               "--hook-dir", os.path.join(self.dir, "hookserver.d")]
        env = dict(os.environ, LATE=self.late, NOTIFY_SOCKET=self.notify_path)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def tearDown(self):
        if getattr(self, "proc", None) and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        if getattr(self, "notify", None):
            self.notify.close()
        if self.containerd:
            self.containerd.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def drain_notify(self):
        while True:
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except socket.timeout:
                return

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("crihookd exited (%s) while waiting for its runtime:\n%s"
                                 % (self.proc.returncode, self.read_log()))
        return True

    def test_waits_for_the_runtime_then_serves(self):
        # Two probing rounds fail (no runtime anywhere): crihookd stays up,
        # says why in its log and to systemd, and is not ready.
        harness.wait_for(lambda: self.alive() and
                         self.read_log().count("waiting for a CRI runtime round=") >= 2,
                         30, 0.1, "two logged probing rounds:\n" + self.read_log())
        self.alive()
        self.drain_notify()
        self.assertFalse([m for m in self.messages if "READY=1" in m], self.messages)
        self.assertTrue([m for m in self.messages if "STATUS=waiting for a CRI runtime" in m],
                        self.messages)
        self.assertFalse(os.path.exists(self.sock), "serving before a runtime answered")
        self.assertIn("containerd /run/containerd/containerd.sock (no such file)",
                      self.read_log())

        # The runtime comes up late; crihookd finds it at its usual path.
        self.containerd = harness.Containerd()
        os.symlink(self.containerd.sock, self.late)

        def ready():
            self.alive()
            self.drain_notify()
            return [m for m in self.messages if "READY=1" in m]
        harness.wait_for(ready, 60, 0.1, "READY=1 once containerd answers:\n" + self.read_log())
        self.assertIn("backend auto-detected runtime=containerd", self.read_log())
        through = harness.raw_unary(self.sock, V1 + "Version")
        self.assertEqual(through.code, grpc.StatusCode.OK, through.details)
        self.assertIn(b"containerd", through.body)
        harness.wait_for(lambda: harness.ctl(self.sock, "--admin", "unix://" + self.admin,
                                             "status", check=False).returncode == 0,
                         30, 0.2, "crihookctl status to report ready")

        self.proc.terminate()
        self.assertEqual(self.proc.wait(30), 0, self.read_log())


if __name__ == "__main__":
    harness.main()
