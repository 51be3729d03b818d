#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# wrap.sh — the `meson test --wrapper` of the ThreadSanitizer build
# (scripts/test.sh runs build-tsan's tests under it):
#
#   meson test -C build-tsan --wrapper "$PWD/tests/tsan/wrap.sh" ...
#
# Runs one test with TSAN_OPTIONS pointing every process it starts (the unit
# test itself, or the crihookd and crihookctl an end-to-end test runs) at
# the suppressions in this directory and at a report directory of its own.
# Any report (a data race, a lock-order inversion, a thread leak, ...) from
# any of those processes fails the test, even when the process itself
# exited 0 or was killed by the test: the reports are printed and the exit
# status is 1.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
reports=$(mktemp -d /tmp/crihook-tsan-XXXXXX)
trap 'rm -rf "$reports"' EXIT
export TSAN_OPTIONS="suppressions=$here/suppressions.txt:log_path=$reports/report:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

# gcc 12's ThreadSanitizer cannot map its shadow memory when the kernel
# randomizes mmap with more than 28 bits (vm.mmap_rnd_bits, raised by some
# newer kernels): run the test without address randomization there.
run=("$@")
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
	run=(setarch "$(uname -m)" -R "$@")
fi
"${run[@]}"
status=$?

found=$(find "$reports" -type f -name 'report.*' | sort)
if [ -n "$found" ]; then
	for f in $found; do
		echo "=== ThreadSanitizer: $(basename "$f") (pid of the process that reported)" >&2
		cat "$f" >&2
	done
	echo "wrap.sh: ThreadSanitizer reported $(cat $found | grep -c '^WARNING: ThreadSanitizer') warning(s) in $(echo "$found" | wc -l) process(es)" >&2
	[ "$status" -eq 0 ] && status=1
fi
exit "$status"
