#!/usr/bin/env bash
#
# demo.sh — see crihook work on this machine in about a minute: installs what
# is missing, builds, starts a private containerd, puts crihookd in front of
# it, registers an example hook plugin (hookserver.d.example/10-demo-env.json,
# served by tests/e2e/hookserver.py with demo-env.rules.json), and runs a real
# pod and container through crihookd, showing from inside the container and
# from the runtime's status what the plugin changed. Cleans up after itself;
# safe to run twice in a row. Run as root on Debian 12:
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=${CRIHOOK_DEMO_BUILD:-build}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/install-deps.sh
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null

WORK=$(mktemp -d /tmp/crihook-demo-XXXXXX)
CTD_DIR=$WORK/containerd
mkdir -p "$CTD_DIR"
CRIHOOKD_PID=
PLUGIN_PID=
cleanup() {
	[ -n "$CRIHOOKD_PID" ] && kill "$CRIHOOKD_PID" 2>/dev/null && wait "$CRIHOOKD_PID" 2>/dev/null
	[ -n "$PLUGIN_PID" ] && kill "$PLUGIN_PID" 2>/dev/null && wait "$PLUGIN_PID" 2>/dev/null
	bash tests/harness/containerd.sh stop "$CTD_DIR" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say "starting a private containerd"
CONTAINERD_SOCK=$(bash tests/harness/containerd.sh start "$CTD_DIR" 2>/dev/null | tail -n 1)
echo "containerd: $CONTAINERD_SOCK"

say "starting the example plugin demo-env and registering it"
PLUGIN_SOCK=$WORK/demo-env.sock
/usr/bin/python3 tests/e2e/hookserver.py "$PLUGIN_SOCK" hookserver.d.example/demo-env.rules.json \
	>"$WORK/plugin.log" 2>&1 &
PLUGIN_PID=$!
for _ in $(seq 100); do [ -S "$PLUGIN_SOCK" ] && break; sleep 0.05; done
mkdir -p "$WORK/hookserver.d"
sed "s|unix:///run/crihook/plugins/demo-env.sock|unix://$PLUGIN_SOCK|" \
	hookserver.d.example/10-demo-env.json >"$WORK/hookserver.d/10-demo-env.json"
cat "$WORK/hookserver.d/10-demo-env.json"

say "starting crihookd in front of containerd"
SOCK=$WORK/crihook.sock
ADMIN=$WORK/admin.sock
"$BUILD/proxy/crihookd" --listen "unix://$SOCK" --backend "unix://$CONTAINERD_SOCK" \
	--hook-dir "$WORK/hookserver.d" --admin-socket "unix://$ADMIN" >"$WORK/crihookd.log" 2>&1 &
CRIHOOKD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
cat "$WORK/crihookd.log"

ctl() { "$BUILD/ctl/crihookctl" --endpoint "unix://$SOCK" --admin "unix://$ADMIN" "$@"; }

say "crihookctl plugins"
ctl plugins

say "crihookctl version (through crihookd)"
ctl version

say "a real pod and container through crihookd"
POD_ID=$(ctl runp "$ROOT/tests/e2e/fixtures/pod.json")
echo "pod:       $POD_ID"
CTR_ID=$(ctl create "$POD_ID" "$ROOT/tests/e2e/fixtures/container.json" "$ROOT/tests/e2e/fixtures/pod.json")
echo "container: $CTR_ID"
ctl start "$CTR_ID"
ctl ps --pod "$POD_ID"

say "inside the container: env (the pod file asked for GREETING=hello from crihook)"
ctl exec-sync "$CTR_ID" -- env | sort

say "the runtime's view: labels and annotations the plugin added"
ctl inspectp "$POD_ID" | grep -E '"crihook\.demo/' || true
ctl inspect "$CTR_ID" | grep -E '"crihook\.demo/' | sort -u || true

say "what crihookd remembers for later hooks (crihookctl store containers)"
ctl store containers

say "stopping and removing"
ctl stop -t 0 "$CTR_ID" && ctl rm "$CTR_ID" && ctl stopp "$POD_ID" && ctl rmp "$POD_ID"
ctl pods

say "SIGTERM: crihookd drains and exits"
kill "$CRIHOOKD_PID"
wait "$CRIHOOKD_PID" && echo "crihookd exited 0"
CRIHOOKD_PID=
tail -n 2 "$WORK/crihookd.log"
