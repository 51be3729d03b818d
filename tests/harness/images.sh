#!/usr/bin/env bash
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
# same digests.
#
# Cache: CACHE_DIR/{pause,busybox}.tar plus CACHE_DIR/inputs.sha256, a hash of
# everything the archives are made from (this script, pause.c, the busybox
# binary, the compiler's version, the architecture). The archives are rebuilt
# only when that hash changes. A lock (flock on CACHE_DIR/.lock) makes it safe
# for two test containerds to start at the same time with one cache.
set -euo pipefail
umask 022

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PAUSE_SRC="$HARNESS_DIR/pause.c"
BUSYBOX_BIN=${CRIHOOK_BUSYBOX:-/bin/busybox}

PAUSE_REF=localhost/crihook/pause:test
BUSYBOX_REF=localhost/crihook/busybox:test
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

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

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "'$tool' not found (run scripts/install-deps.sh as root)"
	done
}

# The OCI architecture name (and variant) of this machine.
oci_arch() {
	local arch
	arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
	case "$arch" in
	amd64 | x86_64) echo amd64 ;;
	arm64 | aarch64) echo arm64 ;;
	armhf | armv7l) echo arm ;;
	i386 | i686) echo 386 ;;
	ppc64el | ppc64le) echo ppc64le ;;
	s390x) echo s390x ;;
	riscv64) echo riscv64 ;;
	*) die "unknown architecture '$arch'" ;;
	esac
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# Reproducible tar of directory $1's contents into file $2.
repro_tar() {
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		--format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-C "$1" -cf "$2" .
}

# Move file $1 into layout $2's blob store under its digest; print "digest size".
add_blob() {
	local file=$1 layout=$2 digest size
	digest=$(sha256_of "$file")
	size=$(size_of "$file")
	mkdir -p "$layout/blobs/sha256"
	mv "$file" "$layout/blobs/sha256/$digest"
	echo "$digest $size"
}

# json_strings a b c -> "a","b","c" (values must not need escaping).
json_strings() {
	local out="" s
	for s in "$@"; do
		case "$s" in *[\"\\]*) die "cannot JSON-encode '$s'" ;; esac
		out="$out${out:+,}\"$s\""
	done
	printf '%s' "$out"
}

# make_image ROOTFS REF OUT_TAR CONFIG_FRAGMENT
#   CONFIG_FRAGMENT: the members of the image config's "config" object.
make_image() {
	local rootfs=$1 ref=$2 out=$3 config_fragment=$4
	local work layout arch
	local layer_digest layer_size cfg_digest cfg_size man_digest man_size

	work=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
	layout="$work/layout"
	mkdir -p "$layout"
	arch=$(oci_arch)

	chmod 0755 "$rootfs" # mktemp -d made it 0700; it becomes the container's /
	repro_tar "$rootfs" "$work/layer.tar"
	read -r layer_digest layer_size < <(add_blob "$work/layer.tar" "$layout")

	printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"crihook tests/harness/images.sh"}]}' \
		"$arch" "$config_fragment" "$layer_digest" >"$work/config.json"
	read -r cfg_digest cfg_size < <(add_blob "$work/config.json" "$layout")

	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
		"$cfg_digest" "$cfg_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
	read -r man_digest man_size < <(add_blob "$work/manifest.json" "$layout")

	# io.containerd.image.name carries the full name (ctr import uses it
	# as is); org.opencontainers.image.ref.name is only the tag, per OCI.
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$man_digest" "$man_size" "$arch" "$ref" "${ref##*:}" >"$layout/index.json"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

	repro_tar "$layout" "$work/image.tar"
	mv -f "$work/image.tar" "$out"
	rm -rf "$work"
}

build_pause() {
	local cache=$1 root
	root=$(mktemp -d "$cache/.rootfs.XXXXXX")
	cc -static -O2 -Wall -Wextra -o "$root/pause" "$PAUSE_SRC" ||
		die "compiling $PAUSE_SRC statically failed (is libc6-dev installed?)"
	strip "$root/pause" 2>/dev/null || true
	chmod 0755 "$root/pause"
	make_image "$root" "$PAUSE_REF" "$cache/pause.tar" \
		"\"Env\":[\"PATH=$DEFAULT_PATH\"],\"Entrypoint\":[\"/pause\"],\"WorkingDir\":\"/\""
	rm -rf "$root"
}

build_busybox() {
	local cache=$1 root applet dir
	root=$(mktemp -d "$cache/.rootfs.XXXXXX")
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var,proc,sys,dev,run}
	mkdir -m 1777 "$root/tmp"
	chmod 0700 "$root/root"
	install -m 0755 "$BUSYBOX_BIN" "$root/bin/busybox"

	# One symlink per applet, where busybox says it belongs.
	while read -r applet; do
		[ -n "$applet" ] || continue
		[ -e "$root/$applet" ] && continue
		dir=$(dirname "$applet")
		mkdir -p "$root/$dir"
		ln -s /bin/busybox "$root/$applet"
	done < <("$BUSYBOX_BIN" --list-full)
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

	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	make_image "$root" "$BUSYBOX_REF" "$cache/busybox.tar" \
		"\"Env\":[$(json_strings "PATH=$DEFAULT_PATH")],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\""
	rm -rf "$root"
}

# Hash of everything the archives depend on.
inputs_hash() {
	{
		sha256sum "${BASH_SOURCE[0]}" "$PAUSE_SRC" "$BUSYBOX_BIN" | cut -d' ' -f1
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
