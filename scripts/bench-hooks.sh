#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench-hooks.sh — what a hook costs: UpdateContainerResources on a running
# container through crihookd with 0, 1 and 3 PreUpdateContainerResources
# plugins registered. The plugin is the example crihook-cpuset-pin (written
# with the C SDK): a container without its annotation gets an empty answer at
# once, so the figure is crihook's own cost plus one plain round trip per
# plugin. Prints p50/p99/throughput and crihookd's CPU per call for each
# count, and p50(1 hook) / p50(no hook) against the target (<= 2).
#
# Run as root:   bash scripts/bench-hooks.sh
# Environment:   BENCH_DURATION_MS (default 3000), BENCH_CONCURRENCY ("1 32"),
#                BENCH_BUILD_DIR (default build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${BENCH_DURATION_MS:-3000}
CONCURRENCY=${BENCH_CONCURRENCY:-1 32}

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
bench_setup crihook-bh
CTR=$(ctl create "$POD" tests/e2e/fixtures/container.json tests/e2e/fixtures/pod.json)
ctl start "$CTR" >/dev/null

# UpdateContainerResourcesRequest{container_id: CTR, linux: {cpu_shares: 512}}
/usr/bin/python3 - "$CTR" "$WORK/update.bin" <<'PY'
import sys
cid = sys.argv[1].encode()
linux = bytes([0x18]) + bytes([0x80, 0x04])          # cpu_shares (3) = 512
msg = bytes([0x0a, len(cid)]) + cid + bytes([0x12, len(linux)]) + linux
open(sys.argv[2], "wb").write(msg)
PY

PLUGIN=$BUILD/examples/cpuset-pin/crihook-cpuset-pin
for i in 1 2 3; do
	"$PLUGIN" --socket "$WORK/p$i.sock" >"$WORK/p$i.log" 2>&1 &
	PIDS+=($!)
done
"$BUILD/daemon/crihookd" --listen "unix://$WORK/c.sock" --backend "unix://$CTD" \
	--hook-dir "$WORK/hooks" --admin-socket "unix://$WORK/a.sock" >"$WORK/crihookd.log" 2>&1 &
CRIHOOKD=$!
PIDS+=("$CRIHOOKD")
for _ in $(seq 200); do [ -S "$WORK/c.sock" ] && [ -S "$WORK/p3.sock" ] && break; sleep 0.05; done

plugins() { "$BUILD/ctl/crihookctl" --admin "unix://$WORK/a.sock" plugins --json |
	/usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["plugins"]))'; }

register() { # N: exactly N registration files
	rm -f "$WORK"/hooks/*.json
	for i in $(seq 1 "$1"); do
		printf '{"remote-endpoint": "%s", "runtime-hooks": ["PreUpdateContainerResources"]}\n' \
			"$WORK/p$i.sock" >"$WORK/hooks/${i}0-p.json"
	done
	for _ in $(seq 100); do [ "$(plugins)" = "$1" ] && return; sleep 0.05; done
	echo "bench-hooks: registry did not reach $1 plugins" >&2
	exit 1
}

declare -A P50 P99 TPUT CPU
for n in 0 1 3; do
	register "$n"
	for c in $CONCURRENCY; do
		line=$("$BUILD/tests/bench/crihook-bench" --target "unix://$WORK/c.sock" \
			--method /runtime.v1.RuntimeService/UpdateContainerResources \
			--request-file "$WORK/update.bin" --concurrency "$c" --duration-ms "$DURATION" \
			--warmup 200 --proxy-pid "$CRIHOOKD" --label "hooks=$n" | grep '^RESULT')
		val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
		[ "$(val errors)" = "0" ] || { echo "bench-hooks: errors: $line" >&2; exit 1; }
		P50[$n,$c]=$(val p50); P99[$n,$c]=$(val p99); TPUT[$n,$c]=$(val tput); CPU[$n,$c]=$(val proxy_cpu)
	done
done

printf '\nUpdateContainerResources through crihookd, PreUpdateContainerResources plugins answering at once\n'
printf '%-6s %-5s %10s %10s %12s %16s\n' conc hooks "p50 us" "p99 us" "calls/s" "crihookd cpu us"
for c in $CONCURRENCY; do
	for n in 0 1 3; do
		printf '%-6s %-5s %10s %10s %12s %16s\n' "$c" "$n" "${P50[$n,$c]}" "${P99[$n,$c]}" \
			"${TPUT[$n,$c]}" "${CPU[$n,$c]}"
	done
done
printf '\n'
for c in $CONCURRENCY; do
	/usr/bin/python3 -c "import sys; r=float(sys.argv[1])/float(sys.argv[2]); print('concurrency %s: p50(1 hook)/p50(none) = %.2f (target <= 2.0: %s), p50(3 hooks)/p50(none) = %.2f' % (sys.argv[4], r, 'met' if r <= 2 else 'MISSED', float(sys.argv[3])/float(sys.argv[2])))" \
		"${P50[1,$c]}" "${P50[0,$c]}" "${P50[3,$c]}" "$c"
done
