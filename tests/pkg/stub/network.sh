# Stand-in for OpenWrt's /lib/functions/network.sh: network_get_device VAR INTERFACE gives the
# interface's L3 device, as netifd reports it (ubus network.interface dump: l3_device). The
# devices are read from "$NETIFD_DEVICES", one "INTERFACE DEVICE" line each; an interface
# without a line is down. Every call is logged to $PROCD_LOG when set.
# shellcheck shell=dash

network_get_device() {
	local _v="$1" _iface="$2" _dev
	[ -z "$PROCD_LOG" ] || echo "network_get_device $_iface" >>"$PROCD_LOG"
	_dev=$(awk -v i="$_iface" '$1 == i { print $2; exit }' "${NETIFD_DEVICES:-/dev/null}" 2>/dev/null)
	eval "$_v=\$_dev"
	[ -n "$_dev" ]
}
