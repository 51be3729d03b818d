#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# run.sh — fuzz one libFuzzer target for a fixed time from a copy of its
# seed corpus (tests/fuzz/meson.build runs it as a test):
#
#   run.sh FUZZER CORPUS_DIR ARTIFACT_DIR [DICTIONARY]
#
# CRIHOOK_FUZZ_SECONDS (default 20) is the time. The copy lives in a temp
# dir and is removed, so the tree's corpus is never changed. A crash, leak,
# sanitizer report, timeout (10 s per input) or out-of-memory ends the run
# non-zero; the input that did it is kept in ARTIFACT_DIR and printed here
# in base64, to be added to the corpus once fixed. Reproduce with:
#   FUZZER ARTIFACT_DIR/crash-...
set -euo pipefail

fuzzer=$1 corpus=$2 artifacts=$3
dict=()
[ -z "${4:-}" ] || dict=(-dict="$4")
seconds=${CRIHOOK_FUZZ_SECONDS:-20}

work=$(mktemp -d /tmp/crihook-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus/." "$work/"
rm -rf "$artifacts" && mkdir -p "$artifacts" # this run's findings only
seeds=$(find "$work" -type f | wc -l)
echo "run.sh: $(basename "$fuzzer") for ${seconds}s from $seeds seeds of $corpus"

status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-error_exitcode=1 -artifact_prefix="$artifacts/" "${dict[@]}" "$work" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
	echo "run.sh: $(basename "$fuzzer") failed (exit $status); inputs kept in $artifacts:"
	for f in $(ls -t "$artifacts" | head -n 3); do
		echo "--- $artifacts/$f (base64):"
		head -c 65536 "$artifacts/$f" | base64
	done
fi
# libFuzzer's own default for a finding is 77, which meson reads as "skipped":
# every failure leaves here as 1.
[ "$status" -eq 0 ] || exit 1
exit 0
