#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# build-image.sh — the DaemonSet's image (localhost/crihook/crihookd:VERSION)
# as an OCI image-layout tar archive, without Docker or any registry. Run by
# the build (`ninja -C BUILD image`, deploy/image/meson.build); by hand:
#
#   build-image.sh --out FILE.tar --ref NAME:TAG --crihookd PATH --crihookctl PATH
#                  --unit crihookd.service --kubelet-dropin 10-crihook.conf
#                  [--depfile FILE] [--busybox PATH] [--systemctl PATH]
#
# What the image holds (what deploy/kubernetes/crihook-daemonset.yaml expects):
#   /opt/crihook/sbin/crihookd, /opt/crihook/bin/crihookctl   the given binaries
#   /opt/crihook/sbin/crihook-switch-kubelet, .../crihook-uninstall
#                               the node's scripts (deploy/scripts/)
#   /opt/crihook/lib/*.so*      every shared library they need (found with
#                               ldd) except glibc's own: the bundle install.sh
#                               copies to the host, where the service runs
#                               with LD_LIBRARY_PATH=/opt/crihook/lib and the
#                               host's glibc (which must be at least as new as
#                               the build machine's)
#   /opt/crihook/lib/systemd/system/crihookd.service            the unit, its
#                               ExecStart /opt/crihook/sbin/crihookd
#   /opt/crihook/lib/systemd/system/kubelet.service.d/10-crihook.conf
#   /lib64/ld-linux-*.so.*, /lib/<triplet>/libc.so.6 ...        glibc (loader
#                               at the binaries' PT_INTERP path), so the
#                               binaries also run inside the container
#   /bin/busybox + applets      Debian's busybox-static: /bin/sh, coreutils,
#                               find, cmp, mktemp, sleep ... (install.sh)
#   /usr/bin/systemctl          the build machine's systemctl (Debian package
#                               systemd), with its libraries at their own
#                               paths: install.sh talks to the host's systemd
#                               through /run/systemd/private. Left out, with a
#                               warning, when the build machine has none.
# Image config: PATH and LD_LIBRARY_PATH as in the DaemonSet, Cmd crihookd.
#
# --depfile writes a Makefile-style list of every file the image was made
# from (binaries, libraries, busybox, systemctl, these scripts), so ninja
# rebuilds the archive when any of them changes. The archive is reproducible
# (scripts/oci-layout.sh): the same inputs give the same digests.
set -euo pipefail
umask 022

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OCI_LAYOUT=$IMAGE_DIR/../../scripts/oci-layout.sh
PREFIX=/opt/crihook
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Tools install.sh (the DaemonSet's ConfigMap) calls, all from busybox.
REQUIRED_APPLETS="sh cat cp mv mkdir mktemp dirname find cmp sleep printf echo rm ls sort xargs
 sha256sum cut sed kill env chmod"
# The node's scripts that go into the bundle's sbin/.
NODE_SCRIPTS="$IMAGE_DIR/../scripts/crihook-switch-kubelet $IMAGE_DIR/../scripts/crihook-uninstall"

die() {
	echo "build-image.sh: error: $*" >&2
	exit 1
}

note() { echo "build-image.sh: $*" >&2; }

usage() {
	sed -n '7,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ -f "$OCI_LAYOUT" ] || die "missing $OCI_LAYOUT"
# shellcheck source=../../scripts/oci-layout.sh
. "$OCI_LAYOUT"

OUT="" REF="" DEPFILE="" CRIHOOKD="" CRIHOOKCTL="" UNIT="" DROPIN=""
BUSYBOX=${CRIHOOK_BUSYBOX:-/bin/busybox}
SYSTEMCTL=""
for tool in /usr/bin/systemctl /bin/systemctl; do
	if [ -x "$tool" ]; then
		SYSTEMCTL=$tool
		break
	fi
done

while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
	--out) OUT=$2 ;;
	--ref) REF=$2 ;;
	--depfile) DEPFILE=$2 ;;
	--crihookd) CRIHOOKD=$2 ;;
	--crihookctl) CRIHOOKCTL=$2 ;;
	--unit) UNIT=$2 ;;
	--kubelet-dropin) DROPIN=$2 ;;
	--busybox) BUSYBOX=$2 ;;
	--systemctl) SYSTEMCTL=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ -n "$OUT" ] && [ -n "$REF" ] && [ -n "$CRIHOOKD" ] && [ -n "$CRIHOOKCTL" ] &&
	[ -n "$UNIT" ] && [ -n "$DROPIN" ] || usage

for tool in ldd tar sha256sum install; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run scripts/install-deps.sh as root)"
done
[ -x "$CRIHOOKD" ] || die "no crihookd binary at $CRIHOOKD"
[ -x "$CRIHOOKCTL" ] ||
	die "no crihookctl binary at $CRIHOOKCTL: build everything first (ninja -C BUILD), then the image (ninja -C BUILD image)"
[ -f "$UNIT" ] || die "no unit file at $UNIT"
[ -f "$DROPIN" ] || die "no kubelet drop-in at $DROPIN"
[ -x "$BUSYBOX" ] || die "no busybox at $BUSYBOX (apt-get install busybox-static)"
applets=$("$BUSYBOX" --list-full) || die "$BUSYBOX --list-full failed"
grep -qx 'bin/sh' <<<"$applets" ||
	die "$BUSYBOX is not a busybox with an 'sh' applet (apt-get install busybox-static)"
grep -qx "ExecStart=$PREFIX/sbin/crihookd .*" "$UNIT" ||
	die "the unit $UNIT does not start $PREFIX/sbin/crihookd (configure it with SBINDIR=$PREFIX/sbin)"

OUT_DIR=$(dirname "$OUT")
mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
# Everything temporary in one directory next to OUT, removed however we exit.
WORK=$(mktemp -d "$OUT_DIR/.crihookd-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/rootfs
mkdir "$ROOT"
DEPS=("${BASH_SOURCE[0]}" "$OCI_LAYOUT" "$CRIHOOKD" "$CRIHOOKCTL" "$UNIT" "$DROPIN" "$BUSYBOX")

# Is this library (by file name) part of glibc? Those stay out of the bundle:
# a host has its own, matching its loader.
is_glibc() {
	case "${1##*/}" in
	ld-linux*.so* | ld64.so* | ld-*.so.* | libc.so.* | libm.so.* | libmvec.so.* | \
		libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | libutil.so.* | \
		libanl.so.* | libnsl.so.* | libnss_*.so.* | libBrokenLocale.so.* | \
		libthread_db.so.* | libc_malloc_debug.so.*) return 0 ;;
	esac
	return 1
}

# ldd BINARY -> "NAME PATH" lines; the loader as "- PATH". Fails on a
# library ldd cannot find.
libs_of() {
	local bin=$1 out
	out=$(ldd "$bin" 2>&1) || die "ldd $bin failed: $out"
	if grep -q 'not found' <<<"$out"; then
		die "ldd $bin: missing libraries: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $1, $3; next }
	     $1 ~ /^\// { print "-", $1 }' <<<"$out"
}

# Copy FILE (following symlinks) to ROOT/DEST with MODE; remember FILE.
# (Few forks per file: this runs for some 80 files.)
declare -A MADE_DIRS=()
put() {
	local src=$1 dest=$2 mode=$3 dir
	dir=$ROOT${dest%/*}
	if [ -z "${MADE_DIRS[$dir]:-}" ]; then
		mkdir -p "$dir"
		MADE_DIRS[$dir]=1
	fi
	install -m "$mode" "$src" "$ROOT$dest"
	DEPS+=("$src")
}

# Every library of BINARY: glibc and the loader at their own paths, the
# rest in BUNDLE_DIR (a path in the image) if given, else at their own paths.
put_libs() {
	local bin=$1 bundle_dir=$2 name path
	while read -r name path; do
		if [ "$name" = - ] || is_glibc "$path" || [ -z "$bundle_dir" ]; then
			[ -e "$ROOT$path" ] || put "$path" "$path" 0755
		else
			[ -e "$ROOT$bundle_dir/$name" ] || put "$path" "$bundle_dir/$name" 0755
		fi
	done < <(libs_of "$bin")
}

# 1. busybox: /bin/sh and the tools install.sh uses.
rootfs_busybox "$ROOT" "$BUSYBOX"
for applet in $REQUIRED_APPLETS; do
	[ -e "$ROOT/bin/$applet" ] || [ -e "$ROOT/usr/bin/$applet" ] ||
		[ -e "$ROOT/sbin/$applet" ] || [ -e "$ROOT/usr/sbin/$applet" ] ||
		die "$BUSYBOX has no '$applet' applet (install.sh needs it)"
done

# 2. crihook under /opt/crihook, with its libraries.
put "$CRIHOOKD" "$PREFIX/sbin/crihookd" 0755
put "$CRIHOOKCTL" "$PREFIX/bin/crihookctl" 0755
put "$UNIT" "$PREFIX/lib/systemd/system/crihookd.service" 0644
put "$DROPIN" "$PREFIX/lib/systemd/system/kubelet.service.d/10-crihook.conf" 0644
for script in $NODE_SCRIPTS; do
	put "$script" "$PREFIX/sbin/${script##*/}" 0755
done
put_libs "$CRIHOOKD" "$PREFIX/lib"
put_libs "$CRIHOOKCTL" "$PREFIX/lib"

# 3. systemctl (a client of the host's systemd), libraries at their paths.
if [ -n "$SYSTEMCTL" ] && [ -x "$SYSTEMCTL" ]; then
	rm -f "$ROOT/usr/bin/systemctl" "$ROOT/bin/systemctl"
	put "$SYSTEMCTL" /usr/bin/systemctl 0755
	put_libs "$SYSTEMCTL" ""
else
	note "warning: no systemctl on this machine (apt-get install systemd): the image has none," \
		"and the DaemonSet's install.sh will fail at 'systemctl daemon-reload'"
fi

# 4. Does every binary find all its libraries inside the image? Ask the
#    image's own loader, with the image's directories only.
loader=$(libs_of "$CRIHOOKD" | awk '$1 == "-" && !l { l = $2 } END { print l }')
[ -n "$loader" ] && [ -x "$ROOT$loader" ] || die "no dynamic loader found for $CRIHOOKD"
libdirs="$ROOT$PREFIX/lib"
for d in $(find "$ROOT" -name '*.so*' ! -path "$ROOT$PREFIX/*" -printf '%h\n' | sort -u); do
	libdirs="$libdirs:$d"
done
for bin in "$PREFIX/sbin/crihookd" "$PREFIX/bin/crihookctl" /usr/bin/systemctl; do
	[ -e "$ROOT$bin" ] || continue
	listed=$("$ROOT$loader" --inhibit-cache --library-path "$libdirs" --list "$ROOT$bin" 2>&1) ||
		die "the image's loader cannot load $bin: $listed"
	outside=$(awk -v r="$ROOT/" '$2 == "=>" && index($3, r) != 1 { print $1 " => " $3 }' <<<"$listed")
	[ -z "$outside" ] || die "$bin needs libraries that are not in the image: $outside"
done

# 5. The archive.
version=${REF##*:}
json_strings "$version" >/dev/null
make_image "$ROOT" "$REF" "$WORK/image.tar" \
	"\"Env\":[$(json_strings "PATH=$PREFIX/bin:$PREFIX/sbin:$DEFAULT_PATH" "LD_LIBRARY_PATH=$PREFIX/lib")],\"Cmd\":[\"$PREFIX/sbin/crihookd\"],\"WorkingDir\":\"/\",\"Labels\":{\"org.opencontainers.image.title\":\"crihookd\",\"org.opencontainers.image.version\":\"$version\"}" \
	"crihook deploy/image/build-image.sh"
mv -f "$WORK/image.tar" "$OUT"

if [ -n "$DEPFILE" ]; then
	{
		printf '%s:' "${OUT// /\\ }"
		printf '%s\n' "${DEPS[@]}" | sort -u | while IFS= read -r dep; do
			printf ' \\\n %s' "${dep// /\\ }"
		done
		printf '\n'
	} >"$DEPFILE"
fi
note "$REF -> $OUT ($(($(stat -c %s "$OUT") / 1048576)) MiB, $(find "$ROOT" ! -type d | wc -l) files)"
