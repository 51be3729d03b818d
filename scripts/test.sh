#!/usr/bin/env bash
#
# test.sh — install what is missing, build with AddressSanitizer and
# UndefinedBehaviorSanitizer, and run the whole test suite: unit tests
# (cmocka) and end-to-end tests against a real containerd started for the
# suite. Ends with one line "N passed, N failed" and exits non-zero on any
# failure. Run as root on Debian 12:
#
#   bash scripts/test.sh
#
# CRIHOOK_TEST_BUILD names the build directory (default build-test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${CRIHOOK_TEST_BUILD:-build-test}

bash scripts/install-deps.sh

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$BUILD" >/dev/null

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
/usr/bin/python3 tests/summary.py "$BUILD/meson-logs/testlog.json" \
	--leaked "$(echo "$leaked" | grep -c . || true)" || status=1
exit "$status"
