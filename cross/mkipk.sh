#!/usr/bin/env bash
# Build braid_<version>_<ARCH>.ipk (and luci-app-braid_<version>_all.ipk) in dist/, without
# the OpenWrt SDK, laid out as OpenWrt's scripts/ipkg-build lays them out: a gzipped tar of
# ./debian-binary, ./data.tar.gz and ./control.tar.gz (GNU format, numeric root owner,
# sorted names), which is what opkg installs.
#
#   cross/mkipk.sh ARCH [BINARY]    BINARY defaults to a fresh `cross/build.sh build ARCH`
#   cross/mkipk.sh luci             only the LuCI package
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
pack() {
	local stage=$1 out=$2 tmp
	tmp=$(mktemp -d)
	(cd "$stage/root" && tar "${TAR_OPTS[@]}" -cf - .) | gzip -n9 >"$tmp/data.tar.gz"
	local size
	size=$(zcat "$tmp/data.tar.gz" | wc -c)
	sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$stage/CONTROL/control"
	(cd "$stage/CONTROL" && tar "${TAR_OPTS[@]}" -cf - .) | gzip -n9 >"$tmp/control.tar.gz"
	echo "2.0" >"$tmp/debian-binary"
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
	install -D -m0644 openwrt/files/braid.capabilities.json "$r/etc/capabilities/braid.json"
	install -D -m0644 hotplug/braid.iface "$r/etc/hotplug.d/iface/30-braid"

	local c=$stage/CONTROL
	mkdir -p "$c"
	sed -n '/^define Package\/braid\/description/,/^endef/p' openwrt/Makefile |
		sed '1d;$d; s/^  //' >"$stage/description"
	local depends
	# shellcheck disable=SC2016 # $(RUST_ARCH_DEPENDS) is make syntax, matched literally
	depends=$(sed -n 's/^  DEPENDS:=$(RUST_ARCH_DEPENDS) //p' openwrt/Makefile | sed 's/+//g; s/ /, /g')
	control braid "$arch" "$depends" net "$stage/description" >"$c/control"
	sed -n '/^define Package\/braid\/conffiles/,/^endef/p' openwrt/Makefile | sed '1d;$d' \
		>"$c/conffiles"
	install -m0755 openwrt/files/braid.postinst "$c/postinst"
	install -m0755 openwrt/files/braid.prerm "$c/prerm"
	pack "$stage" "$DIST/braid_${FULL_VERSION}_${arch}.ipk"
	rm -rf "$stage"
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
	install -m0755 luci-app/postinst "$stage/CONTROL/postinst"
	pack "$stage" "$DIST/luci-app-braid_${FULL_VERSION}_all.ipk"
	rm -rf "$stage"
}

case "${1:-}" in
"") sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
luci) build_luci ;;
*)
	build_braid "$@"
	build_luci
	;;
esac
