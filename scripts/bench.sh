#!/usr/bin/env bash
#
# bench.sh — what crihookd costs per forwarded call, next to nginx.
#
# Builds (ninja -C build), starts a private containerd (tests/harness/
# containerd.sh) with $BENCH_CONTAINERS running containers (`sleep 3600`,
# spread over $BENCH_PODS host-network pods) so ListContainers has work to
# do, puts crihookd and nginx (grpc_pass to a keepalive upstream) in front of
# it, and measures unary calls with build/tests/bench/crihook-bench:
#
#   rounds x {Version, ListContainers} x {concurrency 1, 32} x
#            {direct, crihookd, nginx}
#
# The three targets run back to back inside each round (in an order that
# rotates per round), so drift on the machine hits them alike. It prints per
# method and concurrency the median over rounds of p50 and p99, the
# throughput, the p50 added over direct, p50 / p50(direct) and the CPU per
# call of the proxy (crihookd: the process; nginx: its worker processes) and
# of containerd, then whether the targets hold:
#   - crihookd adds less p50 latency than nginx,
#   - crihookd costs less CPU per call than nginx,
#   - p50 through crihookd <= 1.3 x direct at concurrency 1.
# Everything started is stopped at exit (trap), containerd included.
#
# Run as root:   scripts/bench.sh
# Environment:
#   CRIHOOKD_ARGS       extra crihookd flags, e.g. "--workers 2"
#   CRIHOOKD_ENV        extra environment for crihookd, e.g.
#                       "GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456"
#   BENCH_ROUNDS        rounds (default 5)
#   BENCH_DURATION_MS   measured time of each run (default 1200)
#   BENCH_WARMUP        unmeasured calls before each run (default 300)
#   BENCH_CONCURRENCY   concurrencies (default "1 32")
#   BENCH_METHODS       RuntimeService methods with empty requests
#                       (default "Version ListContainers")
#   BENCH_TARGETS       subset/order of "direct crihookd nginx"
#   BENCH_CONTAINERS    running containers (default 50), BENCH_PODS (default 5)
#   NGINX_WORKERS       nginx worker processes (default 1)
#   BENCH_PERF=1        afterwards, `perf record -g` crihookd during one
#                       more run per concurrency (Version) and print the top
#                       of `perf report`; full reports are kept in
#                       $BENCH_PERF_OUT (default /tmp/crihook-bench-perf)
#   BENCH_STRICT=1      exit 1 when a target is missed
#   BENCH_HOLD=1        set everything up, print sockets and pids (shell
#                       assignments on stdout), run nothing, and wait until
#                       interrupted; then clean up
#   BENCH_RESULTS=FILE  keep the raw RESULT lines in FILE
#   BENCH_BUILD_DIR=DIR use binaries from another (configured) build dir
#                       (default build/); BENCH_NO_BUILD=1 skips ninja
set -euo pipefail
# shellcheck disable=SC2317  # functions called from traps only

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
HARNESS=$ROOT/tests/harness/containerd.sh
BENCH=$BUILD/tests/bench/crihook-bench
CRIHOOKD=$BUILD/proxy/crihookd
CTL=$BUILD/ctl/crihookctl

ROUNDS=${BENCH_ROUNDS:-5}
DURATION_MS=${BENCH_DURATION_MS:-1200}
WARMUP=${BENCH_WARMUP:-300}
CONCURRENCIES=${BENCH_CONCURRENCY:-"1 32"}
METHODS=${BENCH_METHODS:-"Version ListContainers"}
TARGETS=${BENCH_TARGETS:-"direct crihookd nginx"}
CONTAINERS=${BENCH_CONTAINERS:-50}
PODS=${BENCH_PODS:-5}
NGINX_WORKERS=${NGINX_WORKERS:-1}
CRIHOOKD_ARGS=${CRIHOOKD_ARGS:-}
CRIHOOKD_ENV=${CRIHOOKD_ENV:-}
PERF=${BENCH_PERF:-0}
PERF_OUT=${BENCH_PERF_OUT:-/tmp/crihook-bench-perf}

die() {
	echo "bench.sh: error: $*" >&2
	exit 1
}
note() { echo "bench.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (containerd, nginx)"
for tool in ninja nginx python3 pgrep; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done

W=""
CTD_DIR=""
CRIHOOKD_PID=""
NGINX_PID=""

stop_pid() { # PID SIGNAL: signal, wait up to 5 s, then SIGKILL
	local pid=$1 sig=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" QUIT
	[ -n "$CRIHOOKD_PID" ] && stop_pid "$CRIHOOKD_PID" TERM
	[ -n "$CTD_DIR" ] && "$HARNESS" stop "$CTD_DIR" >/dev/null 2>&1
	[ -n "$W" ] && rm -rf "$W"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s)
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	note "building ($BUILD)"
	ninja -C "$BUILD" >/dev/null || die "build failed (ninja -C $BUILD)"
fi
[ -x "$CRIHOOKD" ] || die "$CRIHOOKD missing"
[ -x "$BENCH" ] || die "$BENCH missing"

W=$(mktemp -d /tmp/chb-XXXXXX)
CTD_DIR=$W/ctd
mkdir -p "$W/hooks" "$W/logs" "$W/nginx/tmp"

note "starting containerd"
CTD_SOCK=$("$HARNESS" start "$CTD_DIR" 2>"$W/containerd-start.log" | tail -n 1) ||
	{ cat "$W/containerd-start.log" >&2; die "containerd did not start"; }
CTD_PID=$(cat "$CTD_DIR/containerd.pid")

# ---------------------------------------------------------------- containers

# crihookctl, tried again when the connection itself failed (UNAVAILABLE: the
# request was not sent); a busy machine can delay containerd's first SETTINGS
# frame past the client's connect timeout.
ctl() {
	local i out errf
	errf=$(mktemp "$W/ctl-err.XXXXXX")
	for i in 1 2 3 4 5; do
		if out=$("$CTL" --endpoint "unix://$CTD_SOCK" "$@" 2>"$errf"); then
			rm -f "$errf"
			printf '%s\n' "$out"
			return 0
		fi
		grep -q UNAVAILABLE "$errf" || break
		sleep 0.2
	done
	cat "$errf" >&2
	rm -f "$errf"
	return 1
}

make_pod() { # INDEX COUNT
	local i=$1 count=$2 k pod ctr pod_id ctr_id
	pod=$W/pod$i.json
	mkdir -p "$W/logs/pod$i"
	cat >"$pod" <<EOF
{
  "metadata": {"name": "bench-pod-$i", "namespace": "crihook-bench",
               "uid": "bec40000-0000-4000-8000-$(printf '%012d' "$i")", "attempt": 0},
  "log_directory": "$W/logs/pod$i",
  "labels": {"app": "crihook-bench"},
  "linux": {"security_context": {"namespace_options": {"network": 2}}}
}
EOF
	pod_id=$(ctl runp "$pod")
	for k in $(seq "$count"); do
		ctr=$W/pod$i-ctr$k.json
		cat >"$ctr" <<EOF
{
  "metadata": {"name": "bench-ctr-$k"},
  "image": {"image": "localhost/crihook/busybox:test"},
  "command": ["sleep", "3600"],
  "labels": {"app": "crihook-bench", "bench.crihook/index": "$k"},
  "annotations": {"bench.crihook/purpose": "give ListContainers 50 entries"},
  "log_path": "ctr$k.log"
}
EOF
		ctr_id=$(ctl create "$pod_id" "$ctr" "$pod")
		ctl start "$ctr_id" >/dev/null
	done
}

note "creating $CONTAINERS containers in $PODS pods"
pids=()
for i in $(seq "$PODS"); do
	n=$((CONTAINERS / PODS + (i <= CONTAINERS % PODS ? 1 : 0)))
	make_pod "$i" "$n" >"$W/pod$i.log" 2>&1 &
	pids+=($!)
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || { cat "$W/pod$((i + 1)).log" >&2; die "creating pod $((i + 1)) failed"; }
done
running=$(ctl ps -q | wc -l)
[ "$running" -eq "$CONTAINERS" ] || die "expected $CONTAINERS running containers, found $running"

# ---------------------------------------------------------------- proxies

wait_answers() { # SOCKET NAME PID
	local i
	for i in $(seq 100); do
		kill -0 "$3" 2>/dev/null || return 1
		if [ -S "$1" ] && "$BENCH" --target "unix://$1" --calls 1 --warmup 0 --timeout-ms 1000 \
			>/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

CRIHOOKD_SOCK=$W/crihookd.sock
note "starting crihookd ${CRIHOOKD_ARGS:+(extra flags: $CRIHOOKD_ARGS)} ${CRIHOOKD_ENV:+(environment: $CRIHOOKD_ENV)}"
# a private admin socket (newer crihookd), never the system one
admin_args=()
if grep -q -a -- admin-socket "$CRIHOOKD"; then
	admin_args=(--admin-socket "unix://$W/admin.sock")
fi
# shellcheck disable=SC2086  # CRIHOOKD_ENV and CRIHOOKD_ARGS are lists
env $CRIHOOKD_ENV "$CRIHOOKD" --listen "unix://$CRIHOOKD_SOCK" --backend "unix://$CTD_SOCK" \
	--hook-dir "$W/hooks" "${admin_args[@]}" $CRIHOOKD_ARGS >"$W/crihookd.log" 2>&1 &
CRIHOOKD_PID=$!
wait_answers "$CRIHOOKD_SOCK" crihookd "$CRIHOOKD_PID" ||
	{ cat "$W/crihookd.log" >&2; die "crihookd does not answer"; }

NGINX_SOCK=$W/nginx.sock
sed -e "s|@WORK@|$W/nginx|g" -e "s|@SOCK@|$NGINX_SOCK|g" -e "s|@BACKEND@|$CTD_SOCK|g" \
	-e "s|@WORKERS@|$NGINX_WORKERS|g" "$ROOT/tests/bench/nginx.conf.in" >"$W/nginx/nginx.conf"
note "starting nginx ($NGINX_WORKERS worker(s))"
nginx -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx/nginx.conf" >"$W/nginx/out.log" 2>&1 &
NGINX_PID=$!
wait_answers "$NGINX_SOCK" nginx "$NGINX_PID" ||
	{ cat "$W/nginx/out.log" "$W/nginx/error.log" >&2; die "nginx does not answer"; }
NGINX_WORKER_PIDS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
[ -n "$NGINX_WORKER_PIDS" ] || die "no nginx worker processes"

if [ "${BENCH_HOLD:-0}" = 1 ]; then
	echo "CONTAINERD_SOCK=$CTD_SOCK"
	echo "CONTAINERD_PID=$CTD_PID"
	echo "CRIHOOKD_SOCK=$CRIHOOKD_SOCK"
	echo "CRIHOOKD_PID=$CRIHOOKD_PID"
	echo "NGINX_SOCK=$NGINX_SOCK"
	echo "NGINX_WORKER_PIDS=\"$NGINX_WORKER_PIDS\""
	echo "BENCH=$BENCH"
	note "holding; interrupt (Ctrl-C or kill -TERM $$) to clean up"
	while :; do sleep 1; done
fi

# ---------------------------------------------------------------- runs

RESULTS=$W/results.txt
: >"$RESULTS"

run_one() { # ROUND TARGET METHOD CONCURRENCY [extra bench args]
	local round=$1 target=$2 method=$3 conc=$4 sock pid_args=() out line
	shift 4
	case $target in
	direct) sock=$CTD_SOCK ;;
	crihookd)
		sock=$CRIHOOKD_SOCK
		pid_args=(--proxy-pid "$CRIHOOKD_PID")
		;;
	nginx)
		sock=$NGINX_SOCK
		for p in $NGINX_WORKER_PIDS; do pid_args+=(--proxy-pid "$p"); done
		;;
	*) die "unknown target $target" ;;
	esac
	out=$("$BENCH" --target "unix://$sock" --method "/runtime.v1.RuntimeService/$method" \
		--concurrency "$conc" --duration-ms "$DURATION_MS" --warmup "$WARMUP" \
		--label "$target" --backend-pid "$CTD_PID" "${pid_args[@]}" "$@") ||
		{ echo "$out" >&2; die "benchmark run failed: $target $method c=$conc"; }
	line=$(grep '^RESULT ' <<<"$out")
	echo "$line round=$round" >>"$RESULTS"
	awk -v r="$round" '{for(i=2;i<=NF;i++){split($i,kv,"=");v[kv[1]]=kv[2]}
		printf "  round %s %-8s %-14s c=%-3s p50 %6s us  p99 %6s us  %7.0f calls/s  errors %s\n",
		r, v["label"], substr(v["method"], 28), v["concurrency"], v["p50"], v["p99"], v["tput"], v["errors"]}' \
		<<<"$line" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a target_list <<<"$TARGETS"
nt=${#target_list[@]}
note "running $ROUNDS rounds x {$METHODS} x concurrency {$CONCURRENCIES} x {$TARGETS}, ${DURATION_MS} ms each"
for round in $(seq "$ROUNDS"); do
	for method in $METHODS; do
		for conc in $CONCURRENCIES; do
			for k in $(seq 0 $((nt - 1))); do
				run_one "$round" "${target_list[$(((k + round - 1) % nt))]}" "$method" "$conc"
			done
		done
	done
done

if [ "$PERF" = 1 ]; then
	command -v perf >/dev/null 2>&1 || die "BENCH_PERF=1 but perf is not installed"
	mkdir -p "$PERF_OUT"
	for conc in $CONCURRENCIES; do
		note "perf record -g on crihookd, Version, concurrency $conc"
		perf record -q -g -o "$W/perf-c$conc.data" -p "$CRIHOOKD_PID" -- \
			sleep $(((DURATION_MS + 1500) / 1000)) >/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.3
		run_one perf crihookd Version "$conc"
		wait "$perf_pid" || true
		perf report -i "$W/perf-c$conc.data" --no-children --sort dso,sym --stdio \
			-g none 2>/dev/null >"$PERF_OUT/crihookd-c$conc.txt" || true
		perf report -i "$W/perf-c$conc.data" --no-children --sort dso --stdio \
			-g none 2>/dev/null >"$PERF_OUT/crihookd-c$conc-dso.txt" || true
		echo "--- perf: crihookd, Version, concurrency $conc (top symbols; $PERF_OUT/crihookd-c$conc.txt)"
		grep -v '^#' "$PERF_OUT/crihookd-c$conc.txt" | grep '%' | head -25
	done
	sed -i '/ round=perf$/d' "$RESULTS"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${BENCH_RESULTS:-}" ]; then cp "$RESULTS" "$BENCH_RESULTS"; fi

# ---------------------------------------------------------------- table

echo
echo "crihook benchmark: $(nproc) CPUs, $CONTAINERS containers, $ROUNDS rounds x ${DURATION_MS} ms," \
	"crihookd flags: ${CRIHOOKD_ARGS:-(none)}${CRIHOOKD_ENV:+, crihookd env: $CRIHOOKD_ENV}," \
	"nginx workers: $NGINX_WORKERS"
echo "load average before the runs: $LOAD_BEFORE, after: $LOAD_AFTER" \
	"(other work on the machine shows up as spread in 'p50 per round')"
set +e
RESULTS=$RESULTS python3 - <<'EOF'
import os, statistics, sys

rows = []
for line in open(os.environ["RESULTS"]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    rows.append(kv)

def med(xs):
    return statistics.median(xs) if xs else float("nan")

groups = {}
for r in rows:
    key = (r["method"].rsplit("/", 1)[1], int(r["concurrency"]), r["label"])
    groups.setdefault(key, []).append(r)

def agg(rs):
    calls = sum(int(r["calls"]) for r in rs)
    def wavg(field):
        vals = [(float(r[field]), int(r["calls"])) for r in rs if float(r[field]) >= 0]
        n = sum(c for _, c in vals)
        return sum(v * c for v, c in vals) / n if n else None
    return {
        "p50": med([float(r["p50"]) for r in rs]),
        "p50s": [float(r["p50"]) for r in rs],
        "p99": med([float(r["p99"]) for r in rs]),
        "tput": statistics.mean(float(r["tput"]) for r in rs),
        "errors": sum(int(r["errors"]) for r in rs),
        "proxy_cpu": wavg("proxy_cpu"),
        "backend_cpu": wavg("backend_cpu"),
        "client_cpu": wavg("client_cpu"),
        "calls": calls,
    }

methods = []
for (m, c, t) in groups:
    if (m, c) not in methods:
        methods.append((m, c))
methods.sort(key=lambda mc: (["Version", "ListContainers"].index(mc[0])
                             if mc[0] in ("Version", "ListContainers") else 9, mc[0], mc[1]))
targets = [t for t in ("direct", "crihookd", "nginx") if any(k[2] == t for k in groups)]

def f(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)

hdr = ("{:<15} {:>4} {:<9} {:>7} {:>7} {:>9} {:>8} {:>7} {:>10} {:>10} {:>10} {:>6}  {}"
       .format("method", "conc", "target", "p50 us", "p99 us", "calls/s", "+p50 us", "x p50",
               "proxy us/c", "ctrd us/c", "client us/c", "errors", "p50 per round"))
print(hdr)
print("-" * len(hdr))
checks = []
for (m, c) in methods:
    a = {t: agg(groups[(m, c, t)]) for t in targets if (m, c, t) in groups}
    d = a.get("direct")
    for t in targets:
        if t not in a:
            continue
        x = a[t]
        added = x["p50"] - d["p50"] if d and t != "direct" else None
        ratio = x["p50"] / d["p50"] if d and t != "direct" and d["p50"] else None
        print("{:<15} {:>4} {:<9} {:>7.0f} {:>7.0f} {:>9.0f} {:>8} {:>7} {:>10} {:>10} {:>10} {:>6}  {}"
              .format(m, c, t, x["p50"], x["p99"], x["tput"], f(added, "{:+.0f}"),
                      f(ratio, "{:.2f}"), f(x["proxy_cpu"], "{:.1f}"), f(x["backend_cpu"], "{:.1f}"),
                      f(x["client_cpu"], "{:.1f}"), x["errors"],
                      "/".join("%.0f" % v for v in x["p50s"])))
    print()
    ch, ng = a.get("crihookd"), a.get("nginx")
    if d and ch and ng:
        ca, na = ch["p50"] - d["p50"], ng["p50"] - d["p50"]
        checks.append((f"{m} c={c}: crihookd adds less p50 than nginx "
                       f"({ca:+.0f} us vs {na:+.0f} us)", ca < na))
        if ch["proxy_cpu"] is not None and ng["proxy_cpu"] is not None:
            checks.append((f"{m} c={c}: crihookd CPU/call below nginx's "
                           f"({ch['proxy_cpu']:.1f} us vs {ng['proxy_cpu']:.1f} us)",
                           ch["proxy_cpu"] < ng["proxy_cpu"]))
    if d and ch and c == 1:
        r = ch["p50"] / d["p50"]
        checks.append((f"{m} c=1: p50 crihookd <= 1.3 x direct ({r:.2f} x)", r <= 1.3))

print("columns: p50/p99 = median over rounds; calls/s = mean; +p50 and x p50 against direct;")
print("         proxy/ctrd/client us/c = CPU (utime+stime) per call of the proxy (nginx: workers),")
print("         containerd and the benchmark client")
print()
if checks:
    print("targets:")
    missed = 0
    for text, ok in checks:
        print(("  PASS  " if ok else "  MISS  ") + text)
        missed += not ok
    print(f"{len(checks) - missed}/{len(checks)} targets met")
    sys.exit(1 if missed else 0)
EOF
checks_rc=$?
set -e
note "done in $(($(date +%s) - T0)) s"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$checks_rc" != 0 ]; then
	exit 1
fi
exit 0
