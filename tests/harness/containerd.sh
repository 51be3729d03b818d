#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# containerd.sh — a private, throw-away containerd for the end-to-end tests.
#
#   containerd.sh start DIR    start containerd with everything under DIR, wait
#                              until it answers, import the test images, print
#                              the gRPC socket path as the last line on stdout
#   containerd.sh stop DIR     stop it and all it started (shims, containers,
#                              mounts, pod network namespaces), remove DIR
#   containerd.sh kill DIR     SIGKILL containerd only, leaving its shims and
#                              containers running (simulates a crash)
#   containerd.sh restart DIR  start containerd again on the same DIR after
#                              `kill`, wait until it answers
#   containerd.sh socket DIR   print the gRPC socket path of DIR
#
# DIR is a fresh directory such as one from `mktemp -d /tmp/crihook-XXXX`; it
# must be short, since unix socket paths are limited to 108 bytes. Layout:
#   DIR/config.toml             containerd config (version 2)
#   DIR/containerd.sock         gRPC API (CRI and containerd's own services)
#   DIR/containerd.sock.ttrpc   ttrpc API, DIR/debug.sock debug API
#   DIR/root, DIR/state         containerd root and state (images, snapshots,
#                               task bundles, CRI sandboxes)
#   DIR/runc                    runc state of CRI containers (runc `Root`)
#   DIR/cni                     CNI conf_dir: a loopback-only conflist, so
#                               NetworkReady is true and no host network or
#                               address is touched; tests use host-network pods
#   DIR/certs.d                 CRI registry config_path (empty)
#   DIR/containerd.log          containerd's output; DIR/containerd.pid its pid
#
# The CRI plugin runs with restrict_oom_score_adj (root here lacks
# CAP_SYS_RESOURCE), runc with cgroupfs (cgroup v1), the overlayfs snapshotter,
# sandbox_image localhost/crihook/pause:test and a stream server on 127.0.0.1
# with a random port. The images are built and imported by images.sh; their
# cache is $CRIHOOK_IMAGE_CACHE (default /var/tmp/crihook-images).
#
# Two instances can run at the same time. containerd 1.6 puts shim sockets in
# /run/containerd/s whatever `state` says (named by a hash that includes the
# instance's socket path, so they do not collide); `stop` only touches shims
# whose `-address` argument is this instance's socket, and their descendants.
set -euo pipefail

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE_CACHE=${CRIHOOK_IMAGE_CACHE:-/var/tmp/crihook-images}
START_TIMEOUT=${CRIHOOK_CONTAINERD_TIMEOUT:-20}
MARKER="# crihook test containerd (tests/harness/containerd.sh)"
CNI_BIN_DIR=/usr/lib/cni

die() {
	echo "containerd.sh: error: $*" >&2
	exit 1
}

note() { echo "containerd.sh: $*" >&2; }

usage() {
	echo "usage: containerd.sh start|stop|kill|restart|socket DIR" >&2
	exit 2
}

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "'$tool' not found (run scripts/install-deps.sh as root)"
	done
}

# ---------------------------------------------------------------- paths

# Absolute form of DIR (which may not exist yet).
abs_dir() {
	case "$1" in
	/*) printf '%s\n' "${1%/}" ;;
	*) printf '%s/%s\n' "$(pwd)" "${1%/}" ;;
	esac
}

sock_path() { echo "$1/containerd.sock"; }
pid_of_dir() { cat "$1/containerd.pid" 2>/dev/null || true; }

# Is PID a containerd running with DIR's config?
is_our_containerd() {
	local pid=$1 dir=$2
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	proc_has_args "$pid" '^containerd$' --config "$dir/config.toml"
}

# Escape a string for use in an extended regular expression.
re_escape() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

# Does process PID have the argument sequence ARG1 ARG2 (exact strings)?
# Also requires the base name of its argv[0] to match the regex NAME.
proc_has_args() {
	local pid=$1 name=$2 arg1=$3 arg2=$4
	tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" |
		awk -v n="$name" -v a="$arg1" -v b="$arg2" '
			NR == 1 { k = split($0, parts, "/"); if (parts[k] !~ n) { bad = 1; exit } }
			prev == a && $0 == b { found = 1 } { prev = $0 }
			END { exit bad || !found }'
}

# Find a containerd started on DIR's config (used when the pid file is
# stale, e.g. if setsid had to fork).
find_containerd() {
	local dir=$1 pid
	for pid in $(pgrep -f -- "--config $(re_escape "$dir/config.toml")( |\$)"); do
		proc_has_args "$pid" '^containerd$' --config "$dir/config.toml" && { echo "$pid"; return 0; }
	done
	return 0
}

# The pid of the containerd running on DIR, or nothing.
running_pid() {
	local dir=$1 pid
	pid=$(pid_of_dir "$dir")
	if is_our_containerd "$pid" "$dir"; then
		echo "$pid"
		return 0
	fi
	[ -f "$dir/config.toml" ] || return 0
	pid=$(find_containerd "$dir")
	if [ -n "$pid" ]; then
		echo "$pid" >"$dir/containerd.pid"
		echo "$pid"
	fi
}

# ---------------------------------------------------------------- config

write_config() {
	local dir=$1
	mkdir -p "$dir"/{root,state,runc,cni,certs.d,opt}
	cat >"$dir/cni/10-crihook-loopback.conflist" <<'EOF'
{
  "cniVersion": "0.4.0",
  "name": "crihook-loopback",
  "plugins": [ { "type": "loopback" } ]
}
EOF
	cat >"$dir/config.toml" <<EOF
$MARKER
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "$dir/containerd.sock"
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = "$dir/debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/crihook/pause:test"
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$dir/runc"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN_DIR"
      conf_dir = "$dir/cni"
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$dir/certs.d"
EOF
}

# ---------------------------------------------------------------- start

# Launch containerd on DIR's config, detached from the caller's session and
# with no descriptor of the caller's (so `$(containerd.sh start DIR)` returns).
launch() {
	local dir=$1 pid
	rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc" "$dir/debug.sock"
	echo "---- containerd start $(date -u +%FT%TZ)" >>"$dir/containerd.log"
	setsid containerd --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/containerd.pid"
	LAUNCHED_PID=$pid
}

# Is PID alive (and not a zombie)?
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
		[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Wait until containerd (launched as PID) answers and its CRI plugin loaded.
wait_ready() {
	local dir=$1 pid=$2 sock deadline cri
	sock=$(sock_path "$dir")
	deadline=$((SECONDS + START_TIMEOUT))
	while :; do
		if ! alive "$pid" && [ -z "$(running_pid "$dir")" ]; then
			fail_start "$dir" "containerd exited during start-up"
		fi
		if [ -S "$sock" ] && timeout 5 ctr -a "$sock" version >/dev/null 2>&1; then
			cri=$(timeout 5 ctr -a "$sock" plugins ls 2>/dev/null |
				awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
			case "$cri" in
			ok) break ;;
			"") ;; # not listed yet
			*) fail_start "$dir" "the CRI plugin did not load (status '$cri')" ;;
			esac
		fi
		[ "$SECONDS" -lt "$deadline" ] ||
			fail_start "$dir" "containerd did not answer on $sock within ${START_TIMEOUT}s"
		sleep 0.1
	done
	[ -n "$(running_pid "$dir")" ] || fail_start "$dir" "cannot find the containerd process of $dir"
}

# Start-up failed: show the log, kill what we started, keep DIR for a look.
fail_start() {
	local dir=$1 pid
	shift
	echo "containerd.sh: error: $*; last lines of $dir/containerd.log:" >&2
	tail -n 30 "$dir/containerd.log" | cut -c1-400 >&2 || true
	pid=$(running_pid "$dir")
	[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
	echo "containerd.sh: run 'containerd.sh stop $dir' to clean up" >&2
	exit 1
}

cmd_start() {
	local dir=$1 sock
	need containerd ctr runc setsid timeout
	[ -x "$CNI_BIN_DIR/loopback" ] ||
		die "no $CNI_BIN_DIR/loopback (apt-get install containernetworking-plugins)"
	sock=$(sock_path "$dir")
	[ "${#sock}" -le 90 ] || die "DIR '$dir' is too long for unix socket paths (keep it under 70 characters)"
	[ -z "$(running_pid "$dir")" ] || die "a containerd is already running on $dir (pid $(pid_of_dir "$dir"))"
	[ ! -f "$dir/config.toml" ] ||
		die "$dir was already used by a containerd; 'restart' it after 'kill', or 'stop' it first"
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		die "$dir exists and is not empty; give a fresh directory"
	fi
	mkdir -p "$dir" || die "cannot create $dir"
	write_config "$dir"
	launch "$dir"
	wait_ready "$dir" "$LAUNCHED_PID"
	"$HARNESS_DIR/images.sh" import "$IMAGE_CACHE" "$sock" >&2 ||
		fail_start "$dir" "importing the test images failed"
	note "containerd pid $(pid_of_dir "$dir") ready on $sock"
	echo "$sock"
}

cmd_restart() {
	local dir=$1 sock
	need containerd ctr setsid timeout
	[ -f "$dir/config.toml" ] || die "no $dir/config.toml: use 'start' first"
	[ -z "$(running_pid "$dir")" ] || die "containerd is still running on $dir (pid $(pid_of_dir "$dir")); 'kill' it first"
	sock=$(sock_path "$dir")
	launch "$dir"
	wait_ready "$dir" "$LAUNCHED_PID"
	note "containerd pid $(pid_of_dir "$dir") ready again on $sock"
	echo "$sock"
}

# ---------------------------------------------------------------- kill

# Send SIG to PID and wait up to WAIT seconds for it to be gone.
kill_and_wait() {
	local pid=$1 sig=$2 wait=$3 deadline
	kill "-$sig" "$pid" 2>/dev/null || return 0
	deadline=$((SECONDS + wait))
	while kill -0 "$pid" 2>/dev/null; do
		# A zombie (reaped later by its parent) counts as gone.
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

cmd_kill() {
	local dir=$1 pid
	pid=$(running_pid "$dir")
	[ -n "$pid" ] || die "no containerd running on $dir"
	kill_and_wait "$pid" KILL 10 || die "containerd pid $pid survived SIGKILL"
	note "killed containerd pid $pid (shims left running)"
}

# ---------------------------------------------------------------- stop

# PIDs of the shims of this instance: argv has "-address" "DIR/containerd.sock".
our_shims() {
	local sock=$1 pid
	for pid in $(pgrep -f -- "-address $(re_escape "$sock")( |\$)"); do
		proc_has_args "$pid" '^containerd-shim' -address "$sock" && echo "$pid"
	done
	return 0
}

# All descendants of the given PIDs (not the PIDs themselves).
descendants() {
	[ $# -gt 0 ] || return 0
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
		{ parent[$1] = $2 }
		END {
			do {
				added = 0
				for (p in parent)
					if (!(p in want) && (parent[p] in want)) { want[p] = 2; added = 1 }
			} while (added)
			for (p in want) if (want[p] == 2) print p
		}'
}

# Kill this instance's containers cleanly with runc (processes, cgroups,
# runc state). CRI containers keep their runc state in DIR/runc/NAMESPACE/ID;
# others (e.g. `ctr run`) in the shared /run/containerd/runc/NAMESPACE/ID,
# where ours are those whose rootfs lies under DIR.
runc_delete_all() {
	local dir=$1 state root id
	for state in "$dir"/runc/*/*/state.json /run/containerd/runc/*/*/state.json; do
		[ -f "$state" ] || continue
		case "$state" in
		"$dir"/*) ;;
		*) grep -qF "\"rootfs\":\"$dir/" "$state" 2>/dev/null || continue ;;
		esac
		id=$(basename "$(dirname "$state")")
		root=$(dirname "$(dirname "$state")")
		timeout 10 runc --root "$root" delete --force "$id" >/dev/null 2>&1 ||
			note "warning: runc --root $root delete --force $id failed"
	done
}

# Net namespaces (as "net:[INODE]") of the given PIDs, but not the host's
# (host-network pods share it).
netns_of() {
	local pid host
	host=$(readlink /proc/self/ns/net)
	for pid in "$@"; do readlink "/proc/$pid/ns/net" 2>/dev/null || true; done |
		grep -vxF "$host" | sort -u || true
}

# Leaf cgroup directories of the given PIDs (containers), leaving out those
# of this script and of the shims (SHIMS: space-separated pids).
cgroups_of() {
	local shims=$1 pid line ctrl path mine
	shift
	mine=$(for pid in self $shims; do cat "/proc/$pid/cgroup" 2>/dev/null || true; done)
	for pid in "$@"; do
		while IFS= read -r line; do
			grep -qxF "$line" <<<"$mine" && continue
			ctrl=$(cut -d: -f2 <<<"$line")
			path=$(cut -d: -f3- <<<"$line")
			[ "$path" != / ] || continue
			ctrl=${ctrl#name=}
			if [ -z "$ctrl" ]; then
				if [ -d /sys/fs/cgroup/unified ]; then echo "/sys/fs/cgroup/unified$path"; else echo "/sys/fs/cgroup$path"; fi
			else
				echo "/sys/fs/cgroup/${ctrl%%,*}$path"
			fi
		done <"/proc/$pid/cgroup" 2>/dev/null || true
	done | sort -u
}

# Unmount and remove /run/netns entries whose namespace is one of ours.
remove_netns() {
	local wanted=$1 f ino
	[ -n "$wanted" ] || return 0
	for f in /run/netns/* /var/run/netns/*; do
		[ -e "$f" ] || continue
		ino=$(stat -L -c %i "$f" 2>/dev/null) || continue
		if grep -qxF "net:[$ino]" <<<"$wanted"; then
			umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true
			rm -f "$f" 2>/dev/null || true
		fi
	done
}

# Every mount point under DIR, deepest first.
mounts_under() {
	local dir=$1
	awk -v d="$dir" '{ p = $5; gsub(/\\040/, " ", p) } p == d || index(p, d "/") == 1 { print p }' \
		/proc/self/mountinfo | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

unmount_under() {
	local dir=$1 m pass
	for pass in 1 2 3; do
		[ -n "$(mounts_under "$dir")" ] || return 0
		while IFS= read -r m; do
			[ -n "$m" ] || continue
			umount "$m" 2>/dev/null || { [ "$pass" -lt 3 ] || umount -l "$m" 2>/dev/null; } || true
		done < <(mounts_under "$dir")
	done
	[ -z "$(mounts_under "$dir")" ] || note "warning: mounts left under $dir: $(mounts_under "$dir" | tr '\n' ' ')"
}

# Shim sockets in /run/containerd/s that belong to this instance's tasks.
remove_shim_sockets() {
	local dir=$1 f addr
	for f in "$dir"/state/io.containerd.runtime.v2.task/*/*/address; do
		[ -f "$f" ] || continue
		addr=$(cat "$f" 2>/dev/null) || continue
		addr=${addr#unix://}
		case "$addr" in
		/run/containerd/s/*) rm -f "$addr" 2>/dev/null || true ;;
		esac
	done
}

cmd_stop() {
	local dir=$1 sock pid shims procs netns cgroups p cg
	if [ ! -e "$dir" ]; then
		note "$dir does not exist: nothing to stop"
		return 0
	fi
	if [ -d "$dir" ] && [ -z "$(ls -A "$dir" 2>/dev/null)" ]; then
		rmdir "$dir" # start never got as far as writing its config
		return 0
	fi
	local first=""
	if [ -f "$dir/config.toml" ]; then IFS= read -r first <"$dir/config.toml" || true; fi
	[ "$first" = "$MARKER" ] ||
		die "$dir was not made by containerd.sh start (no marker in $dir/config.toml); not touching it"
	sock=$(sock_path "$dir")

	# 1. containerd first, so that it starts nothing new while we clean up.
	pid=$(running_pid "$dir")
	if [ -n "$pid" ]; then
		kill_and_wait "$pid" TERM 10 || kill_and_wait "$pid" KILL 5 ||
			note "warning: containerd pid $pid did not exit"
	fi

	# 2. What the shims run: remember namespaces and cgroups before killing.
	mapfile -t shims < <(our_shims "$sock")
	mapfile -t procs < <(descendants "${shims[@]}")
	netns=$(netns_of "${procs[@]}")
	cgroups=$(cgroups_of "${shims[*]}" "${procs[@]}")

	# 3. CRI containers: runc removes processes, cgroups and state.
	runc_delete_all "$dir"

	# 4. Whatever is left (e.g. containers in the shared runc root), then
	#    the shims themselves.
	for p in "${procs[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${shims[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${procs[@]}" "${shims[@]}"; do kill_and_wait "$p" KILL 5 || note "warning: pid $p did not exit"; done
	if [ -n "$cgroups" ]; then
		while IFS= read -r cg; do rmdir "$cg" 2>/dev/null || true; done <<<"$cgroups"
	fi

	# 5. Pod network namespaces, shim sockets, mounts, then DIR itself.
	remove_netns "$netns"
	remove_shim_sockets "$dir"
	unmount_under "$dir"
	if [ -n "$(mounts_under "$dir")" ]; then
		die "could not unmount everything under $dir; not removing it"
	fi
	rm -rf --one-file-system "$dir" || die "could not remove $dir"
	note "stopped containerd on $dir (${#shims[@]} shim(s), ${#procs[@]} process(es) killed)"
}

# ---------------------------------------------------------------- main

main() {
	[ $# -eq 2 ] || usage
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	local dir
	dir=$(abs_dir "$2")
	case "$dir" in
	/ | /tmp | /var/tmp | /run | /var | /home | /root) die "refusing to use $dir as DIR" ;;
	esac
	case "$1" in
	start) cmd_start "$dir" ;;
	stop) cmd_stop "$dir" ;;
	kill) cmd_kill "$dir" ;;
	restart) cmd_restart "$dir" ;;
	socket) sock_path "$dir" ;;
	*) usage ;;
	esac
}

main "$@"
