# SPDX-License-Identifier: Apache-2.0
"""Deployment files cannot drift from the daemon's real defaults.

The defaults come from the built daemon (`crihookd --help`); the systemd
unit, the kubelet drop-in, the DaemonSet (its crihookd-config ConfigMap, the
one source of the socket paths) and the READMEs' kubelet/k3s lines must use
exactly those paths, and the DaemonSet the image the build makes (tag =
meson's project version). The kubelet drop-in ties kubelet to crihookd by
Wants=/After= only, so crihookd's failure never stops kubelet; the DaemonSet
rolls one node at a time and creates no host directory. `meson install
--destdir` of the build dir must put the binaries, the SDK, the units and
the examples where the unit expects them, and deploy/README's release build
line must build (a fresh release build dir of crihookd and crihookctl, the
image's binaries: Debian 12's GCC at -O3 warns where -O0 does not). No
containerd and no root needed.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

DEPLOY = os.path.join(harness.ROOT, "deploy")
UNIT_SRC = os.path.join(DEPLOY, "systemd", "crihookd.service")
DROPIN_SRC = os.path.join(DEPLOY, "systemd", "kubelet.service.d", "10-crihook.conf")
DAEMONSET = os.path.join(DEPLOY, "kubernetes", "crihook-daemonset.yaml")
DEPLOY_README = os.path.join(DEPLOY, "README.md")
TOP_README = os.path.join(harness.ROOT, "README.md")
EXAMPLES = os.path.join(harness.ROOT, "hookserver.d.example")
OPTIONS_H = os.path.join(harness.ROOT, "daemon", "options.h")
BACKEND_DIR = os.path.join(harness.ROOT, "backend")  # one file per runtime kind


def read(path):
    with open(path) as f:
        return f.read()


def unix_path(endpoint):
    assert endpoint.startswith("unix://"), endpoint
    return endpoint[len("unix://"):]


def help_default(text, flag):
    """The '(default X)' of `flag` in a --help text, or None."""
    m = re.search(r"^\s*--%s\s.*?\(default ([^)\s]+)\)" % re.escape(flag), text, re.M)
    return m.group(1) if m else None


def daemon_defaults():
    out = subprocess.run([harness.CRIHOOKD, "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=30)
    assert out.returncode == 0, out.stdout
    listen = help_default(out.stdout, "listen")
    hook_dir = help_default(out.stdout, "hook-dir")
    admin = help_default(out.stdout, "admin-socket")
    assert listen and hook_dir, "crihookd --help names no defaults:\n" + out.stdout
    if admin is None:
        # crihookd --help does not list --admin-socket (yet): take the
        # daemon's compiled-in default from the header it is built with.
        m = re.search(r'#define CH_DEFAULT_ADMIN "([^"]+)"', read(OPTIONS_H))
        assert m, "no CH_DEFAULT_ADMIN in daemon/options.h"
        admin = m.group(1)
    return {"listen": listen, "hook_dir": hook_dir, "admin": admin}


def project_version():
    with open(os.path.join(harness.BUILD, "meson-info", "intro-projectinfo.json")) as f:
        return json.load(f)["version"]


# The DaemonSet's image, as the build names it (deploy/image/meson.build).
IMAGE = "localhost/crihook/crihookd:" + project_version()

D = daemon_defaults()
LISTEN, ADMIN, HOOK_DIR = D["listen"], D["admin"], D["hook_dir"]
LISTEN_DIR = os.path.dirname(unix_path(LISTEN))
BACKENDS = dict(pair for name in sorted(os.listdir(BACKEND_DIR)) if name.endswith(".c")
                for pair in re.findall(r'\{"([\w-]+)", "(/[^"]+\.sock)"\}',
                                       read(os.path.join(BACKEND_DIR, name))))


def unit_settings(text):
    """[(section, key, value)] of a systemd unit file."""
    section, out = None, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(settings, section, key):
    return [v for s, k, v in settings if s == section and k == key]


def environment(settings):
    env = {}
    for v in values(settings, "Service", "Environment"):
        v = v[1:-1] if v.startswith('"') and v.endswith('"') else v
        k, _, val = v.partition("=")
        env[k] = val
    return env


def crihook_socket_paths(text):
    """Every /run/crihook/... socket path a text names."""
    return set(re.findall(r"%s/[\w./-]+?\.sock" % re.escape(LISTEN_DIR), text))


class Defaults(unittest.TestCase):
    def test_daemon_defaults_known(self):
        # The rest of the file assumes the daemon's sockets share one directory.
        self.assertEqual(os.path.dirname(unix_path(ADMIN)), LISTEN_DIR)
        self.assertIn("k3s", BACKENDS)

    def test_crihookctl_defaults_match_daemon(self):
        out = subprocess.run([harness.CRIHOOKCTL, "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=30).stdout
        self.assertIn("or %s)" % LISTEN, out)
        self.assertIn("or %s)" % ADMIN, out)


class SystemdUnit(unittest.TestCase):
    def setUp(self):
        self.s = unit_settings(read(UNIT_SRC))

    def test_defaults(self):
        env = environment(self.s)
        self.assertEqual(env["CRIHOOK_LISTEN"], LISTEN)
        self.assertEqual(env["CRIHOOK_ADMIN_SOCKET"], ADMIN)
        self.assertEqual(env["CRIHOOK_HOOK_DIR"], HOOK_DIR)
        self.assertEqual(env["CRIHOOK_BACKEND"], "auto")
        # Every crihook socket the unit names is one of the daemon's.
        self.assertLessEqual(crihook_socket_paths(read(UNIT_SRC)),
                             {unix_path(LISTEN), unix_path(ADMIN)})

    def test_service(self):
        one = lambda key: values(self.s, "Service", key)
        self.assertEqual(one("Type"), ["notify"])  # crihookd sends READY=1
        self.assertEqual(one("NotifyAccess"), ["main"])
        self.assertEqual(one("Restart"), ["always"])
        self.assertEqual(one("RestartSec"), ["1"])
        self.assertEqual(one("KillSignal"), ["SIGTERM"])
        self.assertEqual(one("TimeoutStopSec"), ["15"])
        self.assertEqual(one("EnvironmentFile"), ["-/etc/default/crihookd"])
        # EnvironmentFile after the Environment= defaults (it overrides them anyway).
        self.assertEqual(one("ExecStart"), ["@SBINDIR@/crihookd $CRIHOOKD_ARGS"])
        self.assertIn("Before=kubelet.service", read(UNIT_SRC))
        after = " ".join(values(self.s, "Unit", "After")).split()
        self.assertIn("containerd.service", after)
        self.assertIn("crio.service", after)
        self.assertEqual(values(self.s, "Unit", "StartLimitIntervalSec"), ["0"])
        # kubelet's start waits at most this long for crihookd's READY=1.
        self.assertEqual(one("TimeoutStartSec"), ["90"])


class KubeletDropin(unittest.TestCase):
    def test_dropin(self):
        s = unit_settings(read(DROPIN_SRC))
        # Starting kubelet starts crihookd first and waits for it; crihookd
        # failing, stopping or restarting never stops kubelet (systemd
        # propagates stops only along Requires=, BindsTo=, PartOf=, Requisite=).
        self.assertEqual(values(s, "Unit", "Wants"), ["crihookd.service"])
        self.assertEqual(values(s, "Unit", "After"), ["crihookd.service"])
        for key in ("Requires", "BindsTo", "PartOf", "Requisite", "Upholds"):
            self.assertEqual(values(s, "Unit", key), [], key)
        self.assertEqual(environment(s),
                         {"KUBELET_EXTRA_ARGS": "--container-runtime-endpoint=" + LISTEN})


class Readmes(unittest.TestCase):
    def check_runtime_endpoint_lines(self, path):
        text = read(path)
        lines = [l for l in text.splitlines() if "container-runtime-endpoint" in l
                 and "unix://" in l]
        self.assertTrue(lines, path)
        for line in lines:
            for url in re.findall(r"unix://[^\s\"'`]+", line):
                self.assertEqual(url, LISTEN, "%s: %s" % (path, line))
        return text

    def test_deploy_readme(self):
        text = self.check_runtime_endpoint_lines(DEPLOY_README)
        for needle in ("k3s agent  --container-runtime-endpoint " + LISTEN,
                       "k3s server --container-runtime-endpoint " + LISTEN,
                       "CRIHOOK_BACKEND=unix://" + BACKENDS["k3s"],
                       "KUBELET_EXTRA_ARGS=--container-runtime-endpoint=" + LISTEN,
                       "crihookctl --endpoint %s version" % LISTEN,
                       "CRIHOOK_LISTEN=" + LISTEN, "CRIHOOK_ADMIN_SOCKET=" + ADMIN,
                       "CRIHOOK_HOOK_DIR=" + HOOK_DIR,
                       # The image section names the image the build makes.
                       "`%s`" % IMAGE, "ninja -C build image",
                       "ctr -n k8s.io images import"):
            self.assertIn(needle, text)
        self.assertLessEqual(crihook_socket_paths(text), {unix_path(LISTEN), unix_path(ADMIN)})

    def test_top_readme(self):
        text = self.check_runtime_endpoint_lines(TOP_README)
        self.assertIn("kubelet --container-runtime-endpoint=" + LISTEN, text)
        self.assertIn("`" + BACKENDS["k3s"] + "`", text)


class DaemonSet(unittest.TestCase):
    def setUp(self):
        self.text = read(DAEMONSET)

    def test_text(self):
        # Checks that need no YAML parser.
        for needle in ("image: " + IMAGE,
                       'runtimeproxy.koordinator.sh/skip-hookserver: "true"',
                       "CRIHOOK_LISTEN: " + LISTEN, "CRIHOOK_ADMIN_SOCKET: " + ADMIN,
                       "CRIHOOK_HOOK_DIR: " + HOOK_DIR, "LISTEN=${CRIHOOK_LISTEN:-%s}" % LISTEN,
                       "ADMIN=${CRIHOOK_ADMIN_SOCKET:-%s}" % ADMIN):
            self.assertIn(needle, self.text)
        self.assertLessEqual(crihook_socket_paths(self.text), {unix_path(LISTEN), unix_path(ADMIN)})

    def test_manifest(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml is not installed")
        docs = [d for d in yaml.safe_load_all(self.text) if d]
        ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
        self.assertEqual(ds["metadata"]["namespace"], "kube-system")
        # One node at a time, each Ready for a while before the next.
        self.assertEqual(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1)
        self.assertGreaterEqual(ds["spec"]["minReadySeconds"], 10)
        pod = ds["spec"]["template"]
        spec = pod["spec"]
        self.assertEqual(pod["metadata"]["labels"]["runtimeproxy.koordinator.sh/skip-hookserver"],
                         "true")
        self.assertIs(spec["hostNetwork"], True)
        self.assertIs(spec["hostPID"], False)
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        exprs = [e for t in terms["nodeSelectorTerms"] for e in t["matchExpressions"]]
        self.assertIn({"key": "crihook.io/no-systemd", "operator": "DoesNotExist"}, exprs)
        (c,) = spec["containers"]
        self.assertEqual(c["image"], IMAGE)
        self.assertIs(c["securityContext"]["privileged"], True)
        # Settings: one ConfigMap, the pod's environment, the daemon's defaults.
        configs = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        self.assertEqual([e["configMapRef"]["name"] for e in c["envFrom"]], ["crihookd-config"])
        config = configs["crihookd-config"]
        self.assertEqual(config["CRIHOOK_LISTEN"], LISTEN)
        self.assertEqual(config["CRIHOOK_ADMIN_SOCKET"], ADMIN)
        self.assertEqual(config["CRIHOOK_HOOK_DIR"], HOOK_DIR)
        self.assertEqual(config["CRIHOOK_BACKEND"], "auto")
        # The probe is install.sh's own check (same env, same sockets).
        probe = c["readinessProbe"]["exec"]["command"]
        self.assertEqual(probe, c["command"] + ["ready"])
        self.assertGreater(c["readinessProbe"]["timeoutSeconds"], 10)  # two 5 s calls
        host = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        by_host = {h["path"]: mounts[name] for name, h in host.items()}
        # No hostPath creates a directory on the node (uninstall leaves none).
        self.assertEqual({h["type"] for h in host.values()}, {"Directory"})
        # The host's /run at /run: crihookd's, the runtimes' and systemd's sockets.
        self.assertEqual(by_host.get("/run"), "/run")
        for path in (LISTEN_DIR, os.path.dirname(BACKENDS["containerd"]),
                     os.path.dirname(BACKENDS["k3s"]), "/run/systemd"):
            self.assertTrue(path.startswith("/run/"), path)
        self.assertEqual(by_host.get("/etc/systemd/system"), "/host/etc/systemd/system")
        self.assertEqual(by_host.get("/opt"), "/host/opt")
        self.assertEqual(by_host.get("/usr/local/bin"), "/host/usr/local/bin")
        script = configs["crihookd-install"]["install.sh"]
        self.assertIn("PREFIX=/opt/crihook", script)
        self.assertIn("HOST=${CRIHOOK_HOST_ROOT:-/host}", script)
        # The pod never switches kubelet itself (an operator step, deploy/README.md).
        acts = [l for l in script.splitlines()
                if "kubelet" in l and not l.strip().startswith(("#", "log "))]
        self.assertEqual(acts, [])
        sh = subprocess.run(["sh", "-n"], input=script, text=True, stderr=subprocess.PIPE)
        self.assertEqual(sh.returncode, 0, sh.stderr)


class NodeScripts(unittest.TestCase):
    def test_shell_syntax(self):
        for name in ("crihook-switch-kubelet", "crihook-uninstall"):
            path = os.path.join(DEPLOY, "scripts", name)
            self.assertTrue(os.access(path, os.X_OK), path)
            sh = subprocess.run(["sh", "-n", path], stderr=subprocess.PIPE, text=True)
            self.assertEqual(sh.returncode, 0, sh.stderr)


class ReleaseBuild(unittest.TestCase):
    """deploy/README's build line, in a fresh build dir: `meson setup
    -Dbuildtype=release`, then the image's two binaries (about a minute on
    two cores; the whole tree would take twice that)."""

    def test_release_build(self):
        text = read(DEPLOY_README)
        self.assertIn("meson setup build -Dbuildtype=release && ninja -C build", text)
        d = harness.tmpdir("crihook-release-")
        try:
            for cmd in (["meson", "setup", d, "-Dbuildtype=release"],
                        ["ninja", "-C", d, "daemon/crihookd", "ctl/crihookctl"]):
                out = subprocess.run(cmd, cwd=harness.ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, timeout=900)
                self.assertEqual(out.returncode, 0, "%s:\n%s" % (" ".join(cmd), out.stdout[-6000:]))
            out = subprocess.run([os.path.join(d, "daemon", "crihookd"), "--version"],
                                 stdout=subprocess.PIPE, text=True)
            self.assertEqual(out.stdout.strip(), "crihookd " + project_version())
        finally:
            shutil.rmtree(d, ignore_errors=True)


def build_options():
    with open(os.path.join(harness.BUILD, "meson-info", "intro-buildoptions.json")) as f:
        return {o["name"]: o["value"] for o in json.load(f)}


class MesonInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = harness.tmpdir("crihook-dest-")
        out = subprocess.run(["meson", "install", "-C", harness.BUILD, "--destdir", cls.dest,
                              "--no-rebuild", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=300)
        cls.install_log = out.stdout
        cls.rc = out.returncode
        opts = build_options()
        cls.prefix = opts["prefix"]
        cls.opts = opts

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def path(self, *parts):
        """Installed path (under DESTDIR) of prefix/parts."""
        return os.path.join(self.dest, self.prefix.lstrip("/"), *parts)

    def test_01_install_ran(self):
        self.assertEqual(self.rc, 0, self.install_log)

    def test_binaries_and_sdk(self):
        o = self.opts
        self.assertTrue(os.access(self.path(o["sbindir"], "crihookd"), os.X_OK))
        self.assertTrue(os.access(self.path(o["bindir"], "crihookctl"), os.X_OK))
        libs = glob.glob(self.path(o["libdir"], "libcrihook.so*"))
        self.assertTrue(libs, "no libcrihook.so* in " + self.path(o["libdir"]))
        self.assertTrue(os.path.isfile(self.path(o["libdir"], "pkgconfig", "crihook.pc")))
        self.assertTrue(os.path.isfile(self.path(o["includedir"], "crihook", "crihook_plugin.h")))

    def test_units(self):
        unit = self.path("lib", "systemd", "system", "crihookd.service")
        dropin = self.path("lib", "systemd", "system", "kubelet.service.d", "10-crihook.conf")
        self.assertEqual(read(dropin), read(DROPIN_SRC))
        text = read(unit)
        self.assertNotIn("@", text)
        crihookd = os.path.join(self.prefix, self.opts["sbindir"], "crihookd")
        (exec_start,) = values(unit_settings(text), "Service", "ExecStart")
        self.assertEqual(exec_start.split()[0], crihookd)
        self.assertTrue(os.access(os.path.join(self.dest, crihookd.lstrip("/")), os.X_OK))
        # Apart from ExecStart, the installed unit is the source unit.
        self.assertEqual(text, read(UNIT_SRC).replace("@SBINDIR@",
                                                      os.path.dirname(crihookd)))

    def test_units_verify(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze is not installed")
        d = tempfile.mkdtemp(dir=self.dest)
        crihookd = os.path.join(self.dest, self.prefix.lstrip("/"), self.opts["sbindir"],
                                "crihookd")
        with open(os.path.join(d, "crihookd.service"), "w") as f:
            f.write(read(self.path("lib", "systemd", "system", "crihookd.service"))
                    .replace(os.path.join(self.prefix, self.opts["sbindir"], "crihookd"),
                             crihookd))
        # A stand-in kubelet.service, so the drop-in is loaded and checked too.
        with open(os.path.join(d, "kubelet.service"), "w") as f:
            f.write("[Service]\nExecStart=/bin/true $KUBELET_EXTRA_ARGS\n")
        shutil.copytree(self.path("lib", "systemd", "system", "kubelet.service.d"),
                        os.path.join(d, "kubelet.service.d"))
        env = dict(os.environ, SYSTEMD_UNIT_PATH=d + ":")
        out = subprocess.run([analyze, "verify", "crihookd.service", "kubelet.service"],
                             cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertEqual(out.stdout.strip(), "", out.stdout)

    def test_examples(self):
        want = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.json")))
        got_dir = self.path(self.opts["datadir"], "crihook", "hookserver.d.example")
        self.assertEqual(sorted(os.listdir(got_dir)), want)
        for name in want:
            self.assertEqual(read(os.path.join(got_dir, name)),
                             read(os.path.join(EXAMPLES, name)))


if __name__ == "__main__":
    harness.main()
