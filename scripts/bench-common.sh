# SPDX-License-Identifier: Apache-2.0
# bench-common.sh — sourced by the small benchmark scripts (bench-hooks.sh,
# bench-observe.sh): build, a work directory, a private containerd with one
# pod, and cleanup of everything they started. After `bench_setup PREFIX`:
#   BUILD  the build directory ($BENCH_BUILD_DIR, default build), built
#   WORK   a fresh directory under /tmp, removed at exit
#   CTD    the private containerd's socket, CTD_PID its process
#   POD    the ID of a host-network pod made from tests/e2e/fixtures/pod.json
#   PIDS   an array: append every background process to stop at exit
#   ctl    crihookctl against the containerd
# The caller must have cd'd to the repository's top.

bench_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	bash tests/harness/containerd.sh stop "$WORK/ctd" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

ctl() { "$BUILD/ctl/crihookctl" --endpoint "unix://$CTD" "$@"; }

bench_setup() { # PREFIX: the work directory's name prefix
	BUILD=${BENCH_BUILD_DIR:-build}
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
	ninja -C "$BUILD" >/dev/null
	WORK=$(mktemp -d "/tmp/$1-XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$WORK/ctd" "$WORK/hooks"
	CTD=$(bash tests/harness/containerd.sh start "$WORK/ctd" 2>/dev/null | tail -n 1)
	CTD_PID=$(cat "$WORK/ctd/containerd.pid")
	POD=$(ctl runp tests/e2e/fixtures/pod.json)
}
