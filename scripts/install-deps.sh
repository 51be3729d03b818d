#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# install-deps.sh — install everything crihook needs to build and test, on a
# fresh Debian 12 machine (run as root; CI runs it before building).
#
#   scripts/install-deps.sh
#
# - Installs the Debian packages below with apt-get, non-interactively and
#   without recommends. Packages already installed (dpkg-query) are skipped,
#   and `apt-get update` only runs when something is missing, so a second run
#   does nothing and needs no network.
# - Keeps package scripts from starting services while installing (a
#   temporary /usr/sbin/policy-rc.d, unless one exists), then makes sure no
#   system containerd or nginx is left running: the tests start their own
#   private ones, and a system containerd on /run/containerd/containerd.sock
#   would be found by backend auto-detection.
# - Waits (up to $APT_LOCK_WAIT s, default 600) while another apt or dpkg
#   holds its lock, instead of failing at once.
# - Prints one line per action; on failure, the tail of apt's log and a
#   non-zero exit.
set -euo pipefail

PACKAGES=(
	# build
	build-essential meson ninja-build pkg-config
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
	libjansson-dev libuv1-dev libcmocka-dev uthash-dev
	# relay/ (HTTP/2 relay core)
	libnghttp2-dev
	# fuzzing (tests/fuzz): clang with libFuzzer and its sanitizers, and
	# llvm-symbolizer for readable reports
	clang libclang-rt-14-dev llvm
	# scripts/lint.sh: clang-format and clang-tidy (LLVM 14, as clang)
	clang-format clang-tidy
	# end-to-end tests: a real containerd, images, helpers
	containerd runc containernetworking-plugins busybox-static
	nginx-light iproute2 python3 python3-grpcio python3-protobuf python3-yaml protobuf-compiler procps
	# raw HTTP/2 tests (tests/e2e/h2raw.py): an HPACK coder
	python3-hpack
	# the DaemonSet's image (deploy/image/build-image.sh) ships systemctl
	systemd
)

# Commands and files that must exist afterwards.
REQUIRED_PATHS=(
	/usr/bin/cc /usr/bin/meson /usr/bin/ninja /usr/bin/pkg-config /usr/bin/protoc-c
	/usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc
	/usr/lib/cni/loopback /bin/busybox /usr/sbin/nginx /usr/bin/python3 /usr/bin/pgrep
	/usr/bin/systemctl /usr/bin/clang /usr/bin/llvm-symbolizer
	/usr/bin/clang-format-14 /usr/bin/clang-tidy-14
)

APT_LOG=$(mktemp /tmp/crihook-install-deps.XXXXXX)
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0

say() { echo "install-deps: $*"; }

die() {
	echo "install-deps: error: $*" >&2
	exit 1
}

cleanup() {
	[ "$POLICY_RC_OURS" = 1 ] && rm -f "$POLICY_RC"
	rm -f "$APT_LOG"
}
trap cleanup EXIT

# Run an apt-get command quietly; on failure show the end of its output.
# Another apt or dpkg (unattended-upgrades, a second install) may hold a lock:
# apt-get install waits for dpkg's lock itself (DPkg::Lock::Timeout), but
# apt 2.6's `update` fails at once on the lists lock whatever that option
# says, so a run that failed on a lock is retried every 5 s until
# $APT_LOCK_WAIT seconds (default 600) have passed.
apt_quiet() {
	local waited=0 wait=${APT_LOCK_WAIT:-600}
	while ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$wait" "$@" >"$APT_LOG" 2>&1; do
		if grep -q "Could not get lock" "$APT_LOG" && [ "$waited" -lt "$wait" ]; then
			[ "$waited" -gt 0 ] || say "waiting for another apt/dpkg to release its lock (up to ${wait}s)"
			sleep 5
			waited=$((waited + 5))
			continue
		fi
		tail -n 25 "$APT_LOG" >&2
		die "apt-get $1 failed (output above)"
	done
}

is_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		is_installed "$p" || echo "$p"
	done
}

# Keep maintainer scripts from starting services (invoke-rc.d and
# deb-systemd-invoke both honour policy-rc.d exit code 101).
block_service_starts() {
	[ -e "$POLICY_RC" ] && return 0
	printf '#!/bin/sh\n# crihook install-deps.sh: no service starts during install\nexit 101\n' >"$POLICY_RC"
	chmod 0755 "$POLICY_RC"
	POLICY_RC_OURS=1
}

install_missing() {
	local missing
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		say "all ${#PACKAGES[@]} packages already installed"
		return 0
	fi
	block_service_starts
	say "apt-get update"
	apt_quiet update -qq
	say "installing ${missing[*]}"
	apt_quiet install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}"
	mapfile -t missing < <(missing_packages)
	[ "${#missing[@]}" -eq 0 ] || die "still not installed after apt-get: ${missing[*]}"
}

# The system containerd: one running on the packaged config (no --config,
# or --config /etc/containerd/config.toml).
system_containerd_pids() {
	local pid args
	for pid in $(pgrep -x containerd || true); do
		args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
		case "$args" in
		"/usr/bin/containerd " | "containerd " | *"--config /etc/containerd/config.toml "* | *"-c /etc/containerd/config.toml "*)
			echo "$pid" ;;
		esac
	done
}

# The system nginx: the master process of /run/nginx.pid (packaged config).
system_nginx_pids() {
	local pid
	pid=$(cat /run/nginx.pid 2>/dev/null || true)
	[ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = nginx ] && echo "$pid"
	return 0
}

terminate() {
	local what=$1 pid
	shift
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
		say "stopped system $what (pid $pid)"
	done
}

stop_system_services() {
	local svc pids
	for svc in containerd nginx; do
		if [ -d /run/systemd/system ] && systemctl is-active --quiet "$svc" 2>/dev/null; then
			if systemctl stop "$svc" >/dev/null 2>&1; then
				say "stopped $svc.service"
			else
				say "warning: systemctl stop $svc failed"
			fi
		fi
	done
	if [ -n "$(system_nginx_pids)" ] && [ -x /etc/init.d/nginx ]; then
		if /etc/init.d/nginx stop >/dev/null 2>&1; then
			say "stopped system nginx (/etc/init.d/nginx stop)"
		fi
	fi
	mapfile -t pids < <(system_containerd_pids)
	[ "${#pids[@]}" -eq 0 ] || terminate containerd "${pids[@]}"
	mapfile -t pids < <(system_nginx_pids)
	[ "${#pids[@]}" -eq 0 ] || terminate nginx "${pids[@]}"
	return 0
}

check_paths() {
	local p missing=()
	for p in "${REQUIRED_PATHS[@]}"; do
		[ -e "$p" ] || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] || die "missing after install: ${missing[*]}"
}

main() {
	[ "$(id -u)" -eq 0 ] || die "run as root (apt-get needs it)"
	if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
		die "apt-get/dpkg-query not found: this script is for Debian 12"
	fi
	install_missing
	stop_system_services
	check_paths
	say "ok"
}

main "$@"
