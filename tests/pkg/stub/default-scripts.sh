# Stand-in for default_postinst and default_prerm of OpenWrt's /lib/functions.sh (base-files),
# which the package's postinst and prerm call (as every SDK-built package's do). Same steps,
# in the same order, on a scratch router root "$ROUTER":
#   default_postinst: the package's postinst-pkg (in a subshell); on the router (no
#     IPKG_INSTROOT) each of its /etc/uci-defaults scripts, sourced in a subshell and removed
#     only when it succeeded; then each init script: `enable` (through rc.common) in an image
#     build, else `enable` unless PKG_UPGRADE=1, then `start`.
#   default_prerm: the package's prerm-pkg (in a subshell); then each init script: `disable`
#     (through rc.common) in an image build, else `disable` unless PKG_UPGRADE=1, then `stop`.
# opkg sets PKG_UPGRADE=1 when the package is being upgraded, 0 otherwise.
# shellcheck shell=dash

_pkgname() { basename "${1%.*}"; }

default_postinst() {
	local root="${IPKG_INSTROOT}" name ret=0 i
	name=$(_pkgname "$1")
	local info="$ROUTER/usr/lib/opkg/info"
	if [ -f "$info/$name.postinst-pkg" ]; then
		(. "$info/$name.postinst-pkg")
		ret=$?
	fi
	if [ -z "$root" ] && grep -q -s "^/etc/uci-defaults/" "$info/$name.list"; then
		for i in $(sed -ne 's!^/etc/uci-defaults/!!p' "$info/$name.list"); do (
			cd "$ROUTER/etc/uci-defaults" || exit 1
			[ -f "$i" ] && . "./$i" && rm -f "$i"
		) done
	fi
	for i in $(grep -s "^/etc/init.d/" "$info/$name.list"); do
		if [ -n "$root" ]; then
			sh "$root/etc/rc.common" "$root$i" enable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$ROUTER$i" enable
			"$ROUTER$i" start
		fi
	done
	return $ret
}

default_prerm() {
	local root="${IPKG_INSTROOT}" name ret=0 i
	name=$(_pkgname "$1")
	local info="$ROUTER/usr/lib/opkg/info"
	if [ -f "$info/$name.prerm-pkg" ]; then
		(. "$info/$name.prerm-pkg")
		ret=$?
	fi
	for i in $(grep -s "^/etc/init.d/" "$info/$name.list"); do
		if [ -n "$root" ]; then
			sh "$root/etc/rc.common" "$root$i" disable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$ROUTER$i" disable
			"$ROUTER$i" stop
		fi
	done
	return $ret
}
