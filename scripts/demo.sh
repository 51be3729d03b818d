#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# demo.sh — see crihook work on this machine in about a minute: installs what
# is missing, builds, starts a private containerd, puts crihookd in front of
# it, registers two example plugins written with the C SDK (qos-cgroup and
# env-inject, from hookserver.d.example/), and runs a real pod (labelled
# crihook.io/qos-class=gold) and container through crihookd, the requests
# shaped as kubelet sends them (image ID plus the name the user wrote, a
# Burstable container's cpu shares and oom_score_adj, a pod cgroup parent of
# kubelet's form under a demo root instead of /kubepods), showing from inside
# the container and from the runtime's status what the plugins changed. No
# kubelet needed. Cleans up after itself; safe to run twice in a row. Run as
# root on Debian 12:
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
TRACE_PID=
PLUGIN_PIDS=()
cleanup() {
	[ -n "$TRACE_PID" ] && kill "$TRACE_PID" 2>/dev/null && wait "$TRACE_PID" 2>/dev/null
	[ -n "$CRIHOOKD_PID" ] && kill "$CRIHOOKD_PID" 2>/dev/null && wait "$CRIHOOKD_PID" 2>/dev/null
	for p in "${PLUGIN_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	bash tests/harness/containerd.sh stop "$CTD_DIR" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	# the pod cgroup parent's directories runc made (empty ones only)
	find /sys/fs/cgroup -depth -type d -path '*/crihook-demo-kubepods*' -exec rmdir {} + \
		2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM PIPE # so the EXIT trap runs on a signal too

say "starting a private containerd"
CONTAINERD_SOCK=$(bash tests/harness/containerd.sh start "$CTD_DIR" 2>/dev/null | tail -n 1)
echo "containerd: $CONTAINERD_SOCK"

say "starting the example plugins qos-cgroup and env-inject, and registering them"
mkdir -p "$WORK/hookserver.d"
start_plugin() { # NAME REGISTRATION-FILE ARGS...
	local name=$1 file=$2
	shift 2
	"$BUILD/examples/$name/crihook-$name" --socket "$WORK/$name.sock" "$@" \
		>"$WORK/$name.log" 2>&1 &
	PLUGIN_PIDS+=($!)
	for _ in $(seq 100); do [ -S "$WORK/$name.sock" ] && break; sleep 0.05; done
	sed "s|unix:///run/crihook/plugins/$name.sock|unix://$WORK/$name.sock|" \
		"hookserver.d.example/$file" >"$WORK/hookserver.d/$file"
}
start_plugin qos-cgroup 10-qos-cgroup.json --rules hookserver.d.example/qos-cgroup.rules.json
start_plugin env-inject 20-env-inject.json --rules hookserver.d.example/env-inject.rules.json
head -n 20 "$WORK"/hookserver.d/*.json

say "starting crihookd in front of containerd"
SOCK=$WORK/crihook.sock
ADMIN=$WORK/admin.sock
"$BUILD/daemon/crihookd" --listen "unix://$SOCK" --backend "unix://$CONTAINERD_SOCK" \
	--hook-dir "$WORK/hookserver.d" --admin-socket "unix://$ADMIN" >"$WORK/crihookd.log" 2>&1 &
CRIHOOKD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
cat "$WORK/crihookd.log"

ctl() { "$BUILD/ctl/crihookctl" --endpoint "unix://$SOCK" --admin "unix://$ADMIN" "$@"; }

say "crihookctl plugins"
ctl plugins

say "crihookctl version (through crihookd)"
ctl version

say "a real pod (labelled crihook.io/qos-class=gold) and container through crihookd"
# kubelet asks for the image by ID and passes the name the user wrote along
IMAGE_ID=$(ctl images -o json | /usr/bin/python3 -c '
import json, sys
print([i["id"] for i in json.load(sys.stdin)["images"]
       if "localhost/crihook/busybox:test" in i.get("repo_tags", [])][0])')
/usr/bin/python3 - "$ROOT/tests/e2e/fixtures" "$WORK" "$IMAGE_ID" <<'PY'
import json, os, sys
fixtures, work, image_id = sys.argv[1:]
pod = json.load(open(os.path.join(fixtures, "pod.json")))
pod["labels"]["crihook.io/qos-class"] = "gold"
# kubelet's pod cgroup (cgroupfs driver), under a demo root rather than /kubepods
pod["linux"]["cgroup_parent"] = "/crihook-demo-kubepods/burstable/pod" + pod["metadata"]["uid"]
json.dump(pod, open(os.path.join(work, "pod.json"), "w"), indent=2)
ctr = json.load(open(os.path.join(fixtures, "container.json")))
ctr["image"]["image"] = image_id
# a Burstable container asking for 100m CPU and some memory, as kubelet computes it
ctr["linux"]["resources"] = {"cpu_period": 100000, "cpu_shares": 102,
                             "memory_limit_in_bytes": 268435456, "oom_score_adj": 968}
json.dump(ctr, open(os.path.join(work, "container.json"), "w"), indent=2)
PY
grep -A3 '"image"' "$WORK/container.json"
grep -A5 '"resources"' "$WORK/container.json"
# the live trace watches every call from here on (shown further down)
"$BUILD/ctl/crihookctl" --admin "unix://$ADMIN" trace >"$WORK/trace.txt" 2>&1 &
TRACE_PID=$!
sleep 0.3
POD_ID=$(ctl runp "$WORK/pod.json")
echo "pod:       $POD_ID"
CTR_ID=$(ctl create "$POD_ID" "$WORK/container.json" "$WORK/pod.json")
echo "container: $CTR_ID"
ctl start "$CTR_ID"
ctl ps --pod "$POD_ID"

say "inside the container: env (the container asked only for CRIHOOK_E2E and GREETING;"
echo "   env-inject's rule for image *busybox* matched the name, not the sha256 ID)"
ctl exec-sync "$CTR_ID" -- env | sort

say "the container's CPU weight and OOM score (kubelet computed cpu_shares 102, oom_score_adj 968;"
echo "   gold: shares x2 raised to at least 1024, oom_score_adj at most 500)"
ctl exec-sync "$CTR_ID" -- sh -c 'if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then
	echo "inside:  cpu.shares $(cat /sys/fs/cgroup/cpu/cpu.shares)"
else echo "inside:  cpu.weight $(cat /sys/fs/cgroup/cpu.weight) (cgroup v2: shares 1024 -> weight 39)"; fi'
CTR_PID=$(ctl inspect "$CTR_ID" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["info"]["pid"])')
echo "host:    /proc/$CTR_PID/oom_score_adj $(cat "/proc/$CTR_PID/oom_score_adj") (the container's process)"

say "inside the container: its cgroup, still under the pod's own cgroup parent (kubelet's stats see it)"
ctl exec-sync "$CTR_ID" -- cat /proc/self/cgroup | grep -E ':cpu[,:]|memory|^0::' || true

say "the runtime's view: the pod's cgroup parent as asked, the annotations the plugins set"
ctl inspectp "$POD_ID" | grep -m1 -E '"cgroupsPath"' || true
ctl inspect "$CTR_ID" | grep -E '"example.com/|"crihook.io/qos-class"' | sort -u || true

say "crihookctl plugins: who was called"
ctl plugins

say "what crihookd remembers for later hooks (crihookctl store containers)"
ctl store containers

say "stopping and removing"
ctl stop -t 0 "$CTR_ID" && ctl rm "$CTR_ID" && ctl stopp "$POD_ID" && ctl rmp "$POD_ID"
ctl pods

say "crihookctl trace: every call above as it passed, with the hooks and what they changed"
sleep 0.1 # the trace is flushed every 20 ms at most
kill -TERM "$TRACE_PID" && wait "$TRACE_PID" || true
TRACE_PID=
grep -v -E ' (Version|ListPodSandbox|ListContainers|PodSandboxStatus|ContainerStatus|ExecSync) ' \
	"$WORK/trace.txt" || true

say "SIGTERM: crihookd drains and exits"
kill "$CRIHOOKD_PID"
wait "$CRIHOOKD_PID" && echo "crihookd exited 0"
CRIHOOKD_PID=
tail -n 2 "$WORK/crihookd.log"
