#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# images.sh — build and import the two OCI images the end-to-end tests use,
# without Docker and without any registry.
#
#   images.sh [build] CACHE_DIR        build (or reuse) the archives, print their paths
#   images.sh import CACHE_DIR SOCKET  build if needed, then import both into
#                                      namespace k8s.io of the containerd at SOCKET
#
# Images:
#   localhost/crihook/pause:test    tests/harness/pause.c compiled with
#                                   `cc -static -O2`, entrypoint /pause; the
#                                   private containerd's sandbox_image.
#   localhost/crihook/busybox:test  Debian's static /bin/busybox (package
#                                   busybox-static) with a symlink for every
#                                   applet it lists (plus a small printenv
#                                   script: Debian's build lacks that applet),
#                                   /etc/passwd and /etc/group with root and
#                                   nobody, cmd ["sh"].
#
# Each archive is an OCI image layout (oci-layout, index.json, blobs/sha256/)
# packed with tar: one uncompressed rootfs tar layer, a config JSON and a
# manifest, every blob named by its sha256sum. The tar files are built
# reproducibly (sorted names, mtime 0, uid/gid 0), so the same inputs give the
# same digests. The layout writing is scripts/oci-layout.sh, shared with the
# DaemonSet's image (deploy/image/build-image.sh).
#
# Cache: CACHE_DIR/{pause,busybox}.tar plus CACHE_DIR/inputs.sha256, a hash of
# everything the archives are made from (this script, oci-layout.sh, pause.c,
# the busybox binary, the compiler's version, the architecture). The archives are rebuilt
# only when that hash changes. A lock (flock on CACHE_DIR/.lock) makes it safe
# for two test containerds to start at the same time with one cache.
set -euo pipefail
umask 022

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OCI_LAYOUT=$HARNESS_DIR/../../scripts/oci-layout.sh
PAUSE_SRC="$HARNESS_DIR/pause.c"
BUSYBOX_BIN=${CRIHOOK_BUSYBOX:-/bin/busybox}

PAUSE_REF=localhost/crihook/pause:test
BUSYBOX_REF=localhost/crihook/busybox:test
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CREATED_BY="crihook tests/harness/images.sh"

# Applets the tests rely on; the build fails if busybox lacks one of them.
REQUIRED_APPLETS="sh env cat ls sleep echo id grep top true false printenv wc head"

die() {
	echo "images.sh: error: $*" >&2
	exit 1
}

usage() {
	echo "usage: images.sh [build] CACHE_DIR | images.sh import CACHE_DIR SOCKET" >&2
	exit 2
}

[ -f "$OCI_LAYOUT" ] || die "missing $OCI_LAYOUT"
# shellcheck source=../../scripts/oci-layout.sh
. "$OCI_LAYOUT"

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "'$tool' not found (run scripts/install-deps.sh as root)"
	done
}

build_pause() {
	local cache=$1 root
	root=$(mktemp -d "$cache/.rootfs.XXXXXX")
	cc -static -O2 -Wall -Wextra -o "$root/pause" "$PAUSE_SRC" ||
		die "compiling $PAUSE_SRC statically failed (is libc6-dev installed?)"
	strip "$root/pause" 2>/dev/null || true
	chmod 0755 "$root/pause"
	make_image "$root" "$PAUSE_REF" "$cache/pause.tar" \
		"\"Env\":[\"PATH=$DEFAULT_PATH\"],\"Entrypoint\":[\"/pause\"],\"WorkingDir\":\"/\"" "$CREATED_BY"
	rm -rf "$root"
}

build_busybox() {
	local cache=$1 root applet
	root=$(mktemp -d "$cache/.rootfs.XXXXXX")
	rootfs_busybox "$root" "$BUSYBOX_BIN"
	# Debian's busybox-static has no printenv applet: a script stands in.
	if [ ! -e "$root/usr/bin/printenv" ] && [ ! -e "$root/bin/printenv" ]; then
		cat >"$root/usr/bin/printenv" <<'PRINTENV'
#!/bin/sh
# printenv [NAME...]: stand-in for the applet Debian's busybox-static lacks.
[ $# -eq 0 ] && exec env
exec awk 'BEGIN { rc = 0; for (i = 1; i < ARGC; i++) { if (ARGV[i] in ENVIRON) print ENVIRON[ARGV[i]]; else rc = 1 }; exit rc }' "$@"
PRINTENV
		chmod 0755 "$root/usr/bin/printenv"
	fi
	for applet in $REQUIRED_APPLETS; do
		[ -e "$root/bin/$applet" ] || [ -e "$root/usr/bin/$applet" ] ||
			[ -e "$root/sbin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] ||
			die "$BUSYBOX_BIN has no '$applet' applet"
	done
	make_image "$root" "$BUSYBOX_REF" "$cache/busybox.tar" \
		"\"Env\":[$(json_strings "PATH=$DEFAULT_PATH")],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\"" "$CREATED_BY"
	rm -rf "$root"
}

# Hash of everything the archives depend on.
inputs_hash() {
	{
		sha256sum "${BASH_SOURCE[0]}" "$OCI_LAYOUT" "$PAUSE_SRC" "$BUSYBOX_BIN" | cut -d' ' -f1
		cc --version 2>&1 | sed -n 1p
		oci_arch
	} | sha256sum | cut -d' ' -f1
}

# build CACHE_DIR: make sure CACHE_DIR/{pause,busybox}.tar are current.
build() {
	local cache=$1 want have=""
	need cc tar sha256sum flock
	[ -f "$PAUSE_SRC" ] || die "missing $PAUSE_SRC"
	[ -x "$BUSYBOX_BIN" ] || die "missing $BUSYBOX_BIN (apt-get install busybox-static)"
	mkdir -p "$cache" || die "cannot create cache directory $cache"
	cache=$(cd "$cache" && pwd)

	exec 9>"$cache/.lock"
	flock -w 120 9 || die "timed out waiting for the lock on $cache/.lock"

	want=$(inputs_hash)
	[ -f "$cache/inputs.sha256" ] && have=$(cat "$cache/inputs.sha256")
	if [ "$want" != "$have" ] || [ ! -s "$cache/pause.tar" ] || [ ! -s "$cache/busybox.tar" ]; then
		echo "images.sh: building test images in $cache" >&2
		rm -f "$cache/inputs.sha256"
		rm -rf "$cache"/.build.* "$cache"/.rootfs.*
		build_pause "$cache"
		build_busybox "$cache"
		echo "$want" >"$cache/inputs.sha256"
	fi
	exec 9>&-
	echo "$cache/pause.tar"
	echo "$cache/busybox.tar"
}

# import CACHE_DIR SOCKET: build if needed, then import into k8s.io.
import() {
	local cache=$1 socket=$2 arch archives archive present ref
	need ctr
	[ -S "$socket" ] || die "no containerd socket at $socket"
	arch=$(oci_arch)
	mapfile -t archives < <(build "$cache")
	for archive in "${archives[@]}"; do
		# --platform: import and unpack exactly the platform the manifest
		# declares (the host's), whatever ctr's default would be.
		ctr -a "$socket" -n k8s.io images import --platform "linux/$arch" "$archive" >/dev/null ||
			die "ctr images import $archive into $socket failed"
	done
	present=$(ctr -a "$socket" -n k8s.io images ls -q) || die "ctr images ls on $socket failed"
	for ref in "$PAUSE_REF" "$BUSYBOX_REF"; do
		grep -qxF "$ref" <<<"$present" || die "image $ref missing in $socket after import"
	done
	echo "images.sh: imported $PAUSE_REF and $BUSYBOX_REF into $socket" >&2
}

main() {
	[ $# -ge 1 ] || usage
	case "$1" in
	build)
		[ $# -eq 2 ] || usage
		build "$2"
		;;
	import)
		[ $# -eq 3 ] || usage
		import "$2" "$3"
		;;
	-h | --help) usage ;;
	*)
		[ $# -eq 1 ] || usage
		build "$1"
		;;
	esac
}

main "$@"
