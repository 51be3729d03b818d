#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# test.sh — install what is missing, build, and run the whole test suite
# three ways, ending with one line "N passed, N failed" (every case of the
# three) and a non-zero exit on any failure. Run as root on Debian 12:
#
#   bash scripts/test.sh [TEST...]
#
# 1. AddressSanitizer + UndefinedBehaviorSanitizer (gcc, $CRIHOOK_TEST_BUILD,
#    default build-test): every unit test (cmocka) and end-to-end test, the
#    latter against one real containerd started for the suite.
# 2. ThreadSanitizer (gcc, $CRIHOOK_TSAN_BUILD, default build-tsan): every
#    unit test, and the end-to-end tests that drive crihookd's threads (the
#    data-plane workers, the libuv control loop and its thread pool, hook
#    calls, the store, the trace and metrics readers, the drain): fidelity,
#    faults, shutdown, hooks, hooks_state, metrics, trace, operate (in
#    TSAN_E2E below; the others mostly wait on containerd and images and add
#    time, not threads). Each runs under tests/tsan/wrap.sh: any report from
#    any process it starts (crihookd included) fails it. Named tsan/<suite>-
#    <name> in the summary.
# 3. Fuzzing (clang, libFuzzer + ASan + UBSan, $CRIHOOK_FUZZ_BUILD, default
#    build-fuzz): each target of tests/fuzz for $CRIHOOK_FUZZ_SECONDS
#    (default 20) from a copy of its seed corpus; a crash, leak, sanitizer
#    report or timeout fails it. One case each (fuzz-<target>).
# 4. Lint (scripts/lint.sh): clang-format --dry-run -Werror over every C
#    file (lint-format) and clang-tidy with .clang-tidy over every C file of
#    the first build (lint-tidy). One case each.
# Every build is set up with -Dtests=enabled: without cmocka the setup fails
# rather than dropping the unit tests from the summary.
# With TEST arguments, only those tests of the first build run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${CRIHOOK_TEST_BUILD:-build-test}
TSAN_BUILD=${CRIHOOK_TSAN_BUILD:-build-tsan}
FUZZ_BUILD=${CRIHOOK_FUZZ_BUILD:-build-fuzz}
TSAN_E2E=(e2e-fidelity e2e-faults e2e-shutdown e2e-hooks e2e-hooks_state e2e-metrics e2e-trace e2e-operate e2e-dataplane)
ALL=1
[ "$#" -eq 0 ] || ALL=0

bash scripts/install-deps.sh

# Whether build dir $1 was set up with -Dtests=enabled (one set up before
# the option existed is reconfigured).
tests_enabled() {
	/usr/bin/python3 -c 'import json, sys
opts = json.load(open(sys.argv[1] + "/meson-info/intro-buildoptions.json"))
sys.exit(0 if any(o["name"] == "tests" and o["value"] == "enabled" for o in opts) else 1)' "$1"
}

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
elif ! tests_enabled "$BUILD"; then
	meson configure "$BUILD" -Dtests=enabled >/dev/null # a build dir set up before the option
fi
ninja -C "$BUILD" >/dev/null
if [ "$ALL" = 1 ]; then
	if [ ! -f "$TSAN_BUILD/build.ninja" ]; then
		meson setup "$TSAN_BUILD" -Dtests=enabled -Db_sanitize=thread -Db_lundef=false >/dev/null
	elif ! tests_enabled "$TSAN_BUILD"; then
		meson configure "$TSAN_BUILD" -Dtests=enabled >/dev/null
	fi
	ninja -C "$TSAN_BUILD" >/dev/null
	if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
		CC=clang meson setup "$FUZZ_BUILD" -Dfuzz=true -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	ninja -C "$FUZZ_BUILD" fuzz >/dev/null # the fuzz targets only
fi

# One containerd for every test that does not need its own.
SUITE_DIR=$(mktemp -d /tmp/crihook-suite-XXXXXX)
cleanup() { bash tests/harness/containerd.sh stop "$SUITE_DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM PIPE # so the EXIT trap runs on a signal too
CRIHOOK_TEST_CONTAINERD=$(bash tests/harness/containerd.sh start "$SUITE_DIR" | tail -n 1)
export CRIHOOK_TEST_CONTAINERD

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# containerds the tests start for themselves live under /tmp/crihook-ctd-*;
# one still running after the tests is a leak, and fails the run.
private_containerds() { pgrep -f "containerd --config /tmp/crihook-ctd-" | sort || true; }
before=$(private_containerds)

status=0
meson test -C "$BUILD" --no-rebuild --print-errorlogs "$@" || status=$?
logs=()
if [ "$ALL" = 1 ]; then
	# meson names a wrapped run's log LOGBASE-wrap.sh.json; a log that a run
	# did not write counts as a failure (summary.py), not as an old result
	rm -f "$TSAN_BUILD"/meson-logs/tsan-*-wrap.sh.json "$FUZZ_BUILD/meson-logs/testlog.json"
	tsan=(meson test -C "$TSAN_BUILD" --no-rebuild --print-errorlogs --wrapper "$PWD/tests/tsan/wrap.sh")
	"${tsan[@]}" --logbase tsan-unit --suite unit || status=$?
	"${tsan[@]}" --logbase tsan-e2e "${TSAN_E2E[@]}" || status=$?
	meson test -C "$FUZZ_BUILD" --no-rebuild --print-errorlogs --suite fuzz || status=$?
	logs=(--log tsan/ "$TSAN_BUILD/meson-logs/tsan-unit-wrap.sh.json"
		--log tsan/ "$TSAN_BUILD/meson-logs/tsan-e2e-wrap.sh.json"
		--log "" "$FUZZ_BUILD/meson-logs/testlog.json")
	for check in format tidy; do
		rc=0
		bash scripts/lint.sh "$check" "$BUILD" || rc=$?
		logs+=(--case "lint-$check" "$rc")
		[ "$rc" = 0 ] || status=1
	done
fi
leaked=$(comm -13 <(echo "$before") <(private_containerds) | grep . || true)
if [ -n "$leaked" ]; then
	echo "test.sh: a test left its containerd running (stopped now):" >&2
	for pid in $leaked; do
		cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
		echo "  pid $pid: $cmd" >&2
		config=${cmd#*--config }
		bash tests/harness/containerd.sh stop "$(dirname "${config%% *}")" >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
	done
	status=1
fi
/usr/bin/python3 tests/summary.py "$BUILD/meson-logs/testlog.json" "${logs[@]}" \
	--leaked "$(echo "$leaked" | grep -c . || true)" || status=1
exit "$status"
