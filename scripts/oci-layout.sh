# SPDX-License-Identifier: Apache-2.0
# oci-layout.sh — shell library (sourced, not run) that writes OCI image
# archives without Docker: a rootfs directory becomes one uncompressed tar
# layer, a config JSON, a manifest and an index in an OCI image layout
# (oci-layout, index.json, blobs/sha256/), packed with tar. Every tar is built
# reproducibly (sorted names, mtime 0, uid/gid 0), so the same inputs give the
# same digests.
#
# Used by tests/harness/images.sh (the test images) and
# deploy/image/build-image.sh (the DaemonSet's image). The caller sets
# `set -euo pipefail` and may define die() (message, exit 1) before sourcing;
# otherwise a plain one is defined here.
#
#   oci_arch                          OCI architecture name of this machine
#   repro_tar DIR OUT                 reproducible tar of DIR's contents
#   json_strings A B ...              "A","B",... (values needing no escaping)
#   rootfs_busybox ROOT BUSYBOX       Debian's static busybox in ROOT/bin with
#                                     a symlink per applet, /etc/passwd, /etc/group,
#                                     /tmp, /root and the usual mount points
#   make_image ROOTFS REF OUT CONFIG_FRAGMENT [CREATED_BY]
#                                     the archive OUT of image REF from ROOTFS;
#                                     CONFIG_FRAGMENT: members of the image
#                                     config's "config" object
#   OCI_LAYOUT_SH                     this file's path (for dependency hashes)

OCI_LAYOUT_SH=${BASH_SOURCE[0]}

if ! declare -F die >/dev/null; then
	die() {
		echo "oci-layout.sh: error: $*" >&2
		exit 1
	}
fi

# The OCI architecture name of this machine.
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
		case "$s" in *[\"\\]* | *[[:cntrl:]]*) die "cannot JSON-encode '$s'" ;; esac
		out="$out${out:+,}\"$s\""
	done
	printf '%s' "$out"
}

# rootfs_busybox ROOT BUSYBOX: a minimal root file system around a static
# busybox: one symlink per applet where `busybox --list-full` says it
# belongs, root and nobody in /etc/passwd and /etc/group.
rootfs_busybox() {
	local root=$1 busybox=$2 applet applets=()
	local -A dirs=()
	[ -x "$busybox" ] || die "missing $busybox (apt-get install busybox-static)"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var,proc,sys,dev,run}
	[ -d "$root/tmp" ] || mkdir "$root/tmp"
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root"
	install -m 0755 "$busybox" "$root/bin/busybox"
	# No process per applet (some 400): slow on a loaded machine.
	mapfile -t applets < <("$busybox" --list-full)
	for applet in "${applets[@]}"; do
		case "$applet" in */*) dirs["$root/${applet%/*}"]=1 ;; esac
	done
	[ "${#dirs[@]}" -eq 0 ] || mkdir -p "${!dirs[@]}"
	if command -v perl >/dev/null 2>&1; then
		# One process for all links (Debian's perl-base is always there).
		perl -e 'my $r = shift; for (@ARGV) { next if $_ eq "" || -e "$r/$_" || -l "$r/$_";
			symlink("/bin/busybox", "$r/$_") or die "symlink $r/$_: $!\n" }' \
			"$root" "${applets[@]}" || die "cannot make the busybox applet links in $root"
	else
		for applet in "${applets[@]}"; do
			[ -n "$applet" ] || continue
			[ -e "$root/$applet" ] || [ -L "$root/$applet" ] && continue
			ln -s /bin/busybox "$root/$applet"
		done
	fi
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# make_image ROOTFS REF OUT_TAR CONFIG_FRAGMENT [CREATED_BY]
#   CONFIG_FRAGMENT: the members of the image config's "config" object.
#   CREATED_BY: the config's history entry (default: this library).
make_image() {
	local rootfs=$1 ref=$2 out=$3 config_fragment=$4 created_by=${5:-crihook scripts/oci-layout.sh}
	local work layout arch
	local layer_digest layer_size cfg_digest cfg_size man_digest man_size

	case "$ref" in
	*/*:*) ;;
	*) die "image reference '$ref' is not of the form NAME/PATH:TAG" ;;
	esac
	json_strings "$ref" "$created_by" >/dev/null
	work=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
	layout="$work/layout"
	mkdir -p "$layout"
	arch=$(oci_arch)

	chmod 0755 "$rootfs" # mktemp -d made it 0700; it becomes the container's /
	repro_tar "$rootfs" "$work/layer.tar"
	read -r layer_digest layer_size < <(add_blob "$work/layer.tar" "$layout")

	printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"%s"}]}' \
		"$arch" "$config_fragment" "$layer_digest" "$created_by" >"$work/config.json"
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
