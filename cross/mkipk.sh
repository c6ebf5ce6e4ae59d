#!/usr/bin/env bash
# Build braid_<version>_<ARCH>.ipk (and luci-app-braid_<version>_all.ipk) in dist/, without
# the OpenWrt SDK, laid out as OpenWrt's scripts/ipkg-build lays them out: a gzipped tar of
# ./debian-binary, ./data.tar.gz and ./control.tar.gz (GNU format, numeric root owner,
# sorted names), which is what opkg installs. The maintainer scripts are the SDK's: postinst
# and prerm call default_postinst/default_prerm of the router's /lib/functions.sh, which run
# the package's prerm-pkg (Package/braid/prerm in openwrt/Makefile); conffiles that are not
# files of the package go to /lib/upgrade/keep.d/braid, as the SDK does, so sysupgrade keeps
# them. Every mode in the archives is set here, whatever the builder's umask: opkg applies a
# directory's mode from the archive to an existing directory (/, /etc, /usr...).
#
#   cross/mkipk.sh ARCH [BINARY]    BINARY defaults to a fresh `cross/build.sh build ARCH`
#   cross/mkipk.sh luci             only the LuCI package
#   cross/mkipk.sh control DIR      only braid's control files (conffiles, postinst, prerm,
#                                   prerm-pkg) in DIR (the package tests run them)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIST=${DIST:-$ROOT/dist}

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
RELEASE=$(sed -n 's/^PKG_RELEASE:=//p' openwrt/Makefile)
MAINTAINER=$(sed -n 's/^PKG_MAINTAINER:=//p' openwrt/Makefile)
LICENSE=$(sed -n 's/^PKG_LICENSE:=//p' openwrt/Makefile)
FULL_VERSION="$VERSION-$RELEASE"
# Reproducible archives: every file dated to the last commit.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)

TAR_OPTS=(--format=gnu --numeric-owner --owner=0 --group=0 --sort=name --mtime="@$EPOCH")

# pack STAGE OUT_IPK: STAGE holds root/ (the files) and CONTROL/ (control, scripts, conffiles).
# Directories are 0755 (the root ./ too: mktemp made it 0700), files keep the mode set when
# they were staged.
pack() {
	local stage=$1 out=$2 tmp
	find "$stage/root" "$stage/CONTROL" -type d -exec chmod 0755 {} +
	tmp=$(mktemp -d)
	chmod 0755 "$tmp"
	(cd "$stage/root" && tar "${TAR_OPTS[@]}" -cf - .) | gzip -n9 >"$tmp/data.tar.gz"
	local size
	size=$(zcat "$tmp/data.tar.gz" | wc -c)
	sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$stage/CONTROL/control"
	(cd "$stage/CONTROL" && tar "${TAR_OPTS[@]}" -cf - .) | gzip -n9 >"$tmp/control.tar.gz"
	echo "2.0" >"$tmp/debian-binary"
	chmod 0644 "$tmp/debian-binary" "$tmp/data.tar.gz" "$tmp/control.tar.gz"
	mkdir -p "$(dirname "$out")"
	(cd "$tmp" && tar "${TAR_OPTS[@]}" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) |
		gzip -n9 >"$out"
	rm -rf "$tmp"
	echo "$out"
}

# control PACKAGE ARCH DEPENDS SECTION DESCRIPTION_FILE
control() {
	cat <<EOF
Package: $1
Version: $FULL_VERSION
Depends: $3
Source: braid
SourceName: $1
License: $LICENSE
Section: $4
SourceDateEpoch: $EPOCH
Maintainer: $MAINTAINER
Architecture: $2
Installed-Size: 0
Description: $(head -n 1 "$5")
EOF
	tail -n +2 "$5" | sed 's/^/ /'
}

build_braid() {
	local arch=$1 bin=${2:-}
	if ! cross/build.sh list | tr ' ' '\n' | grep -qxF -- "$arch"; then
		echo "mkipk: unknown arch '$arch' (known: $(cross/build.sh list))" >&2
		return 2
	fi
	if [ -z "$bin" ]; then
		bin=$(cross/build.sh build "$arch" router | tail -n 1)
	fi
	[ -x "$bin" ] || { echo "mkipk: no binary at '$bin'" >&2; return 1; }
	# The size budget (DESIGN.md, as in cross/build.sh sizes) holds for both MIPS routers: a
	# package over it is not made, so CI's `make ipk-test ARCH=mips_24kc` catches growth.
	local size
	size=$(stat -c %s "$bin")
	case "$arch" in
	mips_24kc | mipsel_24kc)
		if [ "$size" -gt $((3 * 1024 * 1024 / 2)) ]; then
			echo "mkipk: $arch binary is $size bytes, over the 1.5 MiB budget" >&2
			return 1
		fi ;;
	esac
	local stage
	stage=$(mktemp -d)
	local r=$stage/root
	install -D -m0755 "$bin" "$r/usr/sbin/braid"
	install -D -m0755 openwrt/files/braid.init "$r/etc/init.d/braid"
	install -D -m0600 openwrt/files/braid.config "$r/etc/config/braid"
	install -D -m0755 openwrt/files/braid.uci-defaults "$r/etc/uci-defaults/90-braid"
	install -D -m0644 hotplug/braid.iface "$r/etc/hotplug.d/iface/30-braid"

	local c=$stage/CONTROL
	mkdir -p "$c"
	makefile_define 'Package/braid/description' | sed 's/^  //' >"$stage/description"
	local depends
	# shellcheck disable=SC2016 # $(RUST_ARCH_DEPENDS) is make syntax, matched literally
	depends=$(sed -n 's/^  DEPENDS:=$(RUST_ARCH_DEPENDS) //p' openwrt/Makefile | sed 's/+//g; s/ /, /g')
	control braid "$arch" "$depends" net "$stage/description" >"$c/control"
	chmod 0644 "$c/control"
	control_scripts "$c"
	# As the SDK: conffiles that are not files of the package are kept by sysupgrade.
	local keep
	while read -r keep; do
		[ -f "$r$keep" ] && continue
		mkdir -p "$r/lib/upgrade/keep.d"
		echo "$keep" >>"$r/lib/upgrade/keep.d/braid"
	done <"$c/conffiles"
	[ ! -f "$r/lib/upgrade/keep.d/braid" ] || chmod 0644 "$r/lib/upgrade/keep.d/braid"
	pack "$stage" "$DIST/braid_${FULL_VERSION}_${arch}.ipk"
	rm -rf "$stage"
}

# makefile_define NAME: the body of `define NAME` in openwrt/Makefile, as make expands it
# ($$ -> $).
makefile_define() {
	sed -n "\\#^define $1\$#,/^endef/p" openwrt/Makefile | sed '1d;$d; s/\$\$/$/g'
}

# control_scripts DIR: conffiles, and postinst, prerm and prerm-pkg as OpenWrt's
# package-pack.mk writes them for an .ipk.
control_scripts() {
	mkdir -p "$1"
	makefile_define 'Package/braid/conffiles' >"$1/conffiles"
	makefile_define 'Package/braid/prerm' >"$1/prerm-pkg"
	# shellcheck disable=SC2016 # written literally, expanded on the router
	printf '%s\n' '#!/bin/sh' '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' '. ${IPKG_INSTROOT}/lib/functions.sh' \
		'default_postinst $0 $@' >"$1/postinst"
	# shellcheck disable=SC2016
	printf '%s\n' '#!/bin/sh' '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' 'default_prerm $0 $@' >"$1/prerm"
	chmod 0644 "$1/conffiles"
	chmod 0755 "$1/postinst" "$1/prerm" "$1/prerm-pkg"
}

build_luci() {
	local src=luci-app
	[ -d "$src/root" ] || return 0
	local stage
	stage=$(mktemp -d)
	mkdir -p "$stage/root" "$stage/CONTROL"
	cp -a "$src/root/." "$stage/root/"
	if [ -d "$src/htdocs" ]; then
		mkdir -p "$stage/root/www"
		cp -a "$src/htdocs/." "$stage/root/www/"
	fi
	find "$stage/root" -type d -exec chmod 0755 {} +
	find "$stage/root" -type f -exec chmod 0644 {} +
	printf '%s\n' "LuCI support for Braid" \
		"Status page (session, links, users, counters) and settings for Braid." \
		>"$stage/description"
	control luci-app-braid all "luci-base, rpcd-mod-ucode, braid" luci "$stage/description" \
		>"$stage/CONTROL/control"
	chmod 0644 "$stage/CONTROL/control"
	install -m0755 luci-app/postinst "$stage/CONTROL/postinst"
	pack "$stage" "$DIST/luci-app-braid_${FULL_VERSION}_all.ipk"
	rm -rf "$stage"
}

case "${1:-}" in
"") sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
luci) build_luci ;;
control) control_scripts "${2:?usage: cross/mkipk.sh control DIR}" ;;
*)
	build_braid "$@"
	build_luci
	;;
esac
