#!/usr/bin/env bash
# Package tests (make pkg-test, make ipk-test):
#   tests/pkg/run.sh              shellcheck every packaged script, then run the init script,
#                                 the hotplug script, the uci-defaults, postinst and prerm
#                                 against stand-ins for the OpenWrt pieces they call (stub/)
#   tests/pkg/run.sh X.ipk ...    the same, then open each .ipk: layout, modes, control
#                                 fields, and the packaged binary's --version under qemu
# Prints one line per check and "N passed, N failed" last; exits 1 on any failure.
#
# Stand-in scripts are written in single quotes on purpose; subshells keep their own PATH.
# shellcheck disable=SC2016,SC2030,SC2031
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STUB=$ROOT/tests/pkg/stub
cd "$ROOT" || exit 1
export PATH="$HOME/.cargo/bin:$PATH"

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
not_ok() {
	FAIL=$((FAIL + 1))
	echo "not ok - $1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/#   /'
}
# check NAME CMD...: passes when CMD succeeds.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
# has FILE LINE: FILE has LINE exactly.
has() { grep -qxF -- "$2" "$1" || { echo "missing line: $2"; echo "in:"; cat "$1"; return 1; }; }
# lacks FILE PATTERN: no line of FILE matches PATTERN (grep -E).
lacks() { ! grep -E -- "$2" "$1" || { echo "unexpected match of /$2/ in $1"; return 1; }; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SCRIPTS=(openwrt/files/braid.init openwrt/files/braid.uci-defaults openwrt/files/braid.postinst
	openwrt/files/braid.prerm hotplug/braid.iface)

# ---------------------------------------------------------------- shellcheck
test_shellcheck() {
	if ! command -v shellcheck >/dev/null; then
		not_ok "shellcheck installed (apt-get install shellcheck)"
		return
	fi
	local f
	for f in "${SCRIPTS[@]}" luci-app/postinst; do
		[ -f "$f" ] || continue
		check "shellcheck $f" shellcheck -x "$f"
	done
	for f in cross/*.sh tests/pkg/run.sh; do
		check "shellcheck $f" shellcheck -s bash "$f"
	done
	for f in "$STUB"/functions.sh "$STUB"/rc.common "$STUB"/bin/uci; do
		check "shellcheck ${f#"$ROOT"/}" shellcheck -x -s dash "$f"
	done
}

# ---------------------------------------------------------------- init script
# A scratch OpenWrt: its config dir, a copy of the init script pointing there, procd's state,
# netifd's devices (stub/network.sh reads "$NETIFD_DEVICES").
init_world() {
	W=$TMP/init.$1
	rm -rf "$W"
	mkdir -p "$W/config" "$W/procd" "$W/run"
	export UCI_CONFIG_DIR=$W/config PROCD_STATE=$W/procd PROCD_LOG=$W/log
	export NETIFD_DEVICES=$W/netifd
	: >"$PROCD_LOG"
	: >"$NETIFD_DEVICES"
	DEVS=$W/run/braid/devices
	# The daemon's command-line client (`braid stop`): a stand-in that logs its arguments.
	printf '#!/bin/sh\necho "braid-cli $*" >>"$PROCD_LOG"\n' >"$W/braid-cli"
	chmod +x "$W/braid-cli"
	sed -e "s#^CONF=.*#CONF=$W/config/braid#" -e "s#^DEVICES=.*#DEVICES=$DEVS#" \
		-e "s#^NETWORK_SH=.*#NETWORK_SH=$STUB/network.sh#" \
		-e "s#\"\$PROG\" stop#$W/braid-cli stop#" openwrt/files/braid.init >"$W/braid"
}
# main_conf ENABLED ROLE: a braid config with those main options (empty = absent), and one
# link 'wan' without a device.
main_conf() {
	{
		echo "config braid 'main'"
		[ -z "$1" ] || echo "	option enabled '$1'"
		[ -z "$2" ] || echo "	option role '$2'"
		echo
		echo "config link 'wan'"
		echo "	option role 'primary'"
	} >"$UCI_CONFIG_DIR/braid"
}
rc() { : >"$PROCD_LOG"; sh "$STUB/rc.common" "$W/braid" "$@"; }

test_init() {
	local conf

	init_world disabled
	main_conf 0 edge
	check "init: start while disabled succeeds" rc start
	check "init: disabled: no instance sent" lacks "$PROCD_LOG" '^procd_open_instance'
	check "init: disabled: nothing started" lacks "$PROCD_LOG" '^procd: start'

	init_world shipped
	cp openwrt/files/braid.config "$UCI_CONFIG_DIR/braid"
	rc start
	check "init: the shipped config leaves the service off" lacks "$PROCD_LOG" '^procd: start'
	check "init: the shipped config still reloads on interface events of its links" \
		lines <(grep '^procd_add_interface_trigger' "$PROCD_LOG") \
		"procd_add_interface_trigger interface.* wan /etc/init.d/braid reload" \
		"procd_add_interface_trigger interface.* wwan /etc/init.d/braid reload"

	init_world edge
	main_conf 1 edge
	conf=$UCI_CONFIG_DIR/braid
	echo "wan pppoe-wan" >"$NETIFD_DEVICES"
	check "init: start edge" rc start
	check "init: edge instance named after its role" has "$PROCD_LOG" "procd_open_instance edge"
	check "init: edge command in the foreground with the config and the devices file" \
		has "$PROCD_LOG" "procd_set_param command /usr/sbin/braid edge --config $conf --devices $DEVS"
	check "init: respawn forever (retry 0), 5 s apart" has "$PROCD_LOG" "procd_set_param respawn 3600 5 0"
	check "init: stderr to syslog" has "$PROCD_LOG" "procd_set_param stderr 1"
	check "init: reload signal is HUP" has "$PROCD_LOG" "procd_set_param reload_signal HUP"
	check "init: config and devices files watched" has "$PROCD_LOG" "procd_set_param file $conf $DEVS"
	check "init: reload trigger on config braid" has "$PROCD_LOG" "procd_add_reload_trigger braid"
	check "init: an interface trigger per link reloads" has "$PROCD_LOG" \
		"procd_add_interface_trigger interface.* wan /etc/init.d/braid reload"
	check "init: procd starts braid edge" \
		has "$PROCD_LOG" "procd: start edge: /usr/sbin/braid edge --config $conf --devices $DEVS"
	check "init: devices file: the link's L3 device from netifd" lines "$DEVS" "wan pppoe-wan"
	check "init: no jail, no capability file (see README, Capabilities)" \
		lacks "$PROCD_LOG" 'procd_add_jail|capabilities|no_new_privs'
	check "init: running after start" rc running

	rc reload
	check "init: reload with nothing changed leaves braid alone" lacks "$PROCD_LOG" '^procd: '
	echo "wan pppoe-wan2" >"$NETIFD_DEVICES"
	rc reload
	check "init: the link's device changed: devices file follows" lines "$DEVS" "wan pppoe-wan2"
	check "init: the link's device changed: SIGHUP, no restart" has "$PROCD_LOG" "procd: signal edge HUP"
	check "init: the link's device changed: no stop, no start" lacks "$PROCD_LOG" '^procd: (stop|start|restart)'
	: >"$NETIFD_DEVICES"
	rc reload
	check "init: the link's interface went down: its line goes" lines "$DEVS"
	check "init: the link's interface went down: SIGHUP" has "$PROCD_LOG" "procd: signal edge HUP"
	printf "\nconfig link 'wwan'\n\toption device 'wwan0'\n\nconfig link 'lte'\n" >>"$conf"
	printf 'wan eth0.2\nwwan usb0\nlte wwan1\n' >"$NETIFD_DEVICES"
	rc reload
	check "init: links with option device are not in the devices file" lines "$DEVS" \
		"wan eth0.2" "lte wwan1"
	check "init: reload after an edit sends SIGHUP, no restart" has "$PROCD_LOG" "procd: signal edge HUP"
	check "init: reload after an edit: no stop, no start" lacks "$PROCD_LOG" '^procd: (stop|start|restart)'
	check "init: every link gets its interface trigger" \
		lines <(grep '^procd_add_interface_trigger' "$PROCD_LOG") \
		"procd_add_interface_trigger interface.* wan /etc/init.d/braid reload" \
		"procd_add_interface_trigger interface.* wwan /etc/init.d/braid reload" \
		"procd_add_interface_trigger interface.* lte /etc/init.d/braid reload"

	main_conf 1 core
	rc reload
	check "init: role change: edge stopped" has "$PROCD_LOG" "procd: stop edge"
	check "init: role change: core started, without a devices file" \
		has "$PROCD_LOG" "procd: start core: /usr/sbin/braid core --config $conf"
	check "init: core watches the config only" has "$PROCD_LOG" "procd_set_param file $conf"
	check "init: role change is not a mere HUP" lacks "$PROCD_LOG" '^procd: signal'

	rc restart
	check "init: core restart: procd restarts it" \
		has "$PROCD_LOG" "procd: start core: /usr/sbin/braid core --config $conf"
	check "init: core restart: no braid stop (the core keeps its NAT for the next start)" \
		lacks "$PROCD_LOG" '^braid-cli stop'
	PKG_UPGRADE=1 rc stop
	check "init: core stop in an upgrade: no braid stop" lacks "$PROCD_LOG" '^braid-cli stop'
	rc start
	rc stop
	check "init: core stop: braid stop first (nothing left behind)" \
		has "$PROCD_LOG" "braid-cli stop --socket /var/run/braid.sock"
	check "init: core stop: then procd stops it" has "$PROCD_LOG" "procd: stop core"
	rc start

	main_conf 0 core
	rc reload
	check "init: disabling then reload stops it" has "$PROCD_LOG" "procd: stop core"
	check "init: not running once disabled" bash -c '! sh "$0" "$1" running' "$STUB/rc.common" "$W/braid"

	init_world default
	main_conf "" ""
	rc start
	check "init: enabled and role absent: edge, as the daemon's defaults" \
		has "$PROCD_LOG" "procd: start edge: /usr/sbin/braid edge --config $UCI_CONFIG_DIR/braid --devices $DEVS"
	check "init: an interface that is down gives an empty devices file" lines "$DEVS"

	init_world yes
	main_conf yes core
	rc start
	check "init: enabled 'yes' counts as on" has "$PROCD_LOG" "procd_open_instance core"

	init_world bad
	main_conf 1 router
	check "init: unknown role fails" bash -c '! sh "$0" "$1" start 2>"$2"' "$STUB/rc.common" "$W/braid" "$W/err"
	check "init: unknown role is named on stderr" grep -q "role 'router'" "$W/err"
	check "init: unknown role starts nothing" lacks "$PROCD_LOG" '^procd: start'
}

# ---------------------------------------------------------------- hotplug
# hotplug ACTION INTERFACE RUNNING(0|1) BRAID_EXIT [MAIN_OPTION_LINE] [DEVICE]: source the
# script as hotplug-call does (in a subshell, with the environment netifd gives), against
# stand-ins. Links: 'wan' and 'wwan' without a device, 'fixed' with option device 'eth9'.
hotplug() {
	local h=$TMP/hotplug
	mkdir -p "$h/bin"
	export UCI_CONFIG_DIR=$h/config
	mkdir -p "$UCI_CONFIG_DIR"
	cat >"$UCI_CONFIG_DIR/braid" <<EOF
config braid 'main'
	option enabled '1'
${5:-}

config link 'wan'
	option role 'primary'

config link 'wwan'
	option role 'backup'

config link 'fixed'
	option device 'eth9'

config policy 'lan'
	option class 'bulk'
EOF
	printf '#!/bin/sh\n[ "$1" = running ] && exit %s\nexit 0\n' "$(($3 ? 0 : 1))" >"$h/init"
	printf '#!/bin/sh\necho "braid $*" >>"%s"\nexit %s\n' "$h/log" "$4" >"$h/braid"
	printf '#!/bin/sh\necho "logger $*" >>"%s"\n' "$h/log" >"$h/bin/logger"
	chmod +x "$h/init" "$h/braid" "$h/bin/logger"
	sed -e "s#/etc/init.d/braid#$h/init#" -e "s#/usr/sbin/braid#$h/braid#" hotplug/braid.iface \
		>"$h/30-braid"
	: >"$h/log"
	(
		export PATH="$h/bin:$STUB/bin:$PATH" ACTION="$1" INTERFACE="$2"
		# netifd gives DEVICE on ifup (the L3 device), and often none on ifdown.
		if [ -n "${6-pppoe-wan}" ]; then export DEVICE="${6-pppoe-wan}"; else unset DEVICE; fi
		# shellcheck disable=SC1091
		. "$h/30-braid"
	) >"$h/out" 2>&1
	echo "exit $?" >>"$h/out"
	HP_LOG=$h/log HP_OUT=$h/out
}
quiet() { [ "$(cat "$HP_OUT")" = "exit 0" ] || { cat "$HP_OUT"; return 1; }; }
silent_daemon() { [ ! -s "$HP_LOG" ] || { cat "$HP_LOG"; return 1; }; }

test_hotplug() {
	hotplug ifup wan 1 0
	check "hotplug: ifup of a link without a device -> braid link up with netifd's device" \
		lines "$HP_LOG" "braid link up wan --device pppoe-wan"
	check "hotplug: ifup of a link is quiet" quiet
	hotplug ifup wwan 1 0 "" wwan0
	check "hotplug: each interface gets its own device" lines "$HP_LOG" "braid link up wwan --device wwan0"
	hotplug ifup fixed 1 0
	check "hotplug: a link with option device keeps it (no --device)" lines "$HP_LOG" "braid link up fixed"
	hotplug ifup wan 1 0 "" ""
	check "hotplug: ifup without DEVICE: no --device" lines "$HP_LOG" "braid link up wan"
	hotplug ifdown wwan 1 0
	check "hotplug: ifdown of a link -> braid link down, no device" lines "$HP_LOG" "braid link down wwan"
	hotplug ifupdate wan 1 0
	check "hotplug: ifupdate ignored" silent_daemon
	hotplug "" wan 1 0
	check "hotplug: no ACTION ignored" silent_daemon
	hotplug ifup "" 1 0
	check "hotplug: no INTERFACE ignored" silent_daemon
	hotplug ifup lan 1 0
	check "hotplug: interface without a link section ignored" silent_daemon
	hotplug ifup main 1 0
	check "hotplug: the braid section is not a link" silent_daemon
	hotplug ifup 'wan;touch x' 1 0
	check "hotplug: odd interface names go nowhere" silent_daemon
	hotplug ifup wan 0 0
	check "hotplug: braid not running: nothing sent" silent_daemon
	check "hotplug: braid not running: quiet, exit 0" quiet
	hotplug ifup wan 1 0 "	option control_socket '/tmp/other.sock'" 'pppoe-wan'
	check "hotplug: the configured control socket is used" \
		lines "$HP_LOG" "braid link up wan --device pppoe-wan --socket /tmp/other.sock"
	hotplug ifup wan 1 3
	check "hotplug: a failed 'braid link' is logged to syslog" grep -qF \
		"logger -t braid -p daemon.warn hotplug: 'braid link up wan --device pppoe-wan' failed" "$HP_LOG"
}

# ---------------------------------------------------------------- uci-defaults
# defaults MAIN_LINES GENKEY_EXIT [FIREWALL(0|1)] [FW4_RUNNING(0|1)]: run the uci-defaults
# script on a config with MAIN_LINES in main, a stand-in `braid genkey` exiting GENKEY_EXIT
# (exit 7 prints nothing), and, when FIREWALL is 1, OpenWrt's default firewall zones.
defaults() {
	local d=$TMP/defaults
	rm -rf "$d"
	mkdir -p "$d/config" "$d/bin" "$d/etc"
	export UCI_CONFIG_DIR=$d/config UCI_LOG=$d/ucilog
	printf "config braid 'main'\n\toption enabled '0'\n%s\n" "$1" >"$UCI_CONFIG_DIR/braid"
	if [ "${3:-1}" = 1 ]; then
		printf "config zone 'lan'\n\toption name 'lan'\n\nconfig zone 'wan'\n\toption name 'wan'\n" \
			>"$UCI_CONFIG_DIR/firewall"
	fi
	printf '#!/bin/sh\n[ "$1" = genkey ] || exit 9\n[ %s = 7 ] && exit 0\necho "oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0="\nexit %s\n' \
		"$2" "$2" >"$d/braid"
	printf '#!/bin/sh\n[ "$1 $2 $3" = "list table inet" ] && exit %s\nexit 9\n' "$((${4:-1} ? 0 : 1))" \
		>"$d/bin/nft"
	printf '#!/bin/sh\necho "firewall $*" >>"%s"\n' "$d/ucilog" >"$d/firewall"
	printf '#!/bin/sh\necho "logger $*" >>"%s"\n' "$d/ucilog" >"$d/bin/logger"
	chmod +x "$d/braid" "$d/bin/nft" "$d/firewall" "$d/bin/logger"
	sed -e "s#/usr/sbin/braid#$d/braid#" -e "s#^KEY_FILE=.*#KEY_FILE=$d/etc/braid/key#" \
		-e "s#^FIREWALL_CONF=.*#FIREWALL_CONF=$UCI_CONFIG_DIR/firewall#" \
		-e "s#^FIREWALL_INIT=.*#FIREWALL_INIT=$d/firewall#" openwrt/files/braid.uci-defaults >"$d/90-braid"
	: >"$UCI_LOG"
	# As /etc/init.d/boot and default_postinst run it: sourced in a subshell.
	(cd "$d" && PATH="$d/bin:$STUB/bin:$PATH" sh -c '. ./90-braid') >"$d/out" 2>&1
	echo "exit $?" >>"$d/out"
	D=$d KEY=$d/etc/braid/key
}
mode_of() { stat -c %a "$1"; }
fresh_key=oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0=

test_defaults() {
	defaults "" 0
	check "uci-defaults: exits 0" has "$D/out" "exit 0"
	check "uci-defaults: a fresh key in the key file" lines "$KEY" "$fresh_key"
	check "uci-defaults: the key file is readable by root only (0600)" test "$(mode_of "$KEY")" = 600
	check "uci-defaults: its directory too (0700)" test "$(mode_of "${KEY%/*}")" = 700
	check "uci-defaults: key_file set" has "$D/config/braid" "	option key_file '$KEY'"
	check "uci-defaults: the private key is not in /etc/config/braid" \
		bash -c '! grep -q "$0" "$1"' "$fresh_key" "$D/config/braid"
	check "uci-defaults: committed" has "$D/ucilog" "uci commit braid"
	(umask 000 && defaults "" 0)
	check "uci-defaults: key file 0600 whatever the umask" test "$(mode_of "$TMP/defaults/etc/braid/key")" = 600

	defaults "	option key_file '/etc/braid/k'" 0
	check "uci-defaults: key_file set: no key made, nothing written" \
		lacks "$D/ucilog" '^uci (set|add_list|delete|commit) braid'
	check "uci-defaults: key_file set: no key file" test ! -e "$KEY"

	defaults "	option private_key 'mineminemineminemineminemineminemineminemin='" 0
	check "uci-defaults: an inline key (older package) moves to the key file" \
		lines "$KEY" "mineminemineminemineminemineminemineminemin="
	check "uci-defaults: moved: key_file set" has "$D/config/braid" "	option key_file '$KEY'"
	check "uci-defaults: moved: private_key deleted" lacks "$D/config/braid" 'private_key'
	check "uci-defaults: moved: exit 0" has "$D/out" "exit 0"

	defaults "" 1
	check "uci-defaults: genkey failing: exit non-zero (kept, run again at next boot)" has "$D/out" "exit 1"
	check "uci-defaults: genkey failing: nothing written" lacks "$D/ucilog" '^uci (set|delete|commit)'
	check "uci-defaults: genkey failing: no key file" test ! -e "$KEY"
	defaults "" 7
	check "uci-defaults: genkey printing nothing: exit non-zero" has "$D/out" "exit 1"

	# A key file kept by sysupgrade and a config without key options: the file is used as is.
	defaults "" 1
	mkdir -p "${KEY%/*}"
	echo "keptkeptkeptkeptkeptkeptkeptkeptkeptkeptkep=" >"$KEY"
	(cd "$D" && PATH="$D/bin:$STUB/bin:$PATH" sh -c '. ./90-braid') >"$D/out" 2>&1
	check "uci-defaults: an existing key file is never overwritten" \
		lines "$KEY" "keptkeptkeptkeptkeptkeptkeptkeptkeptkeptkep="
	check "uci-defaults: an existing key file is used (key_file set)" has "$D/config/braid" "	option key_file '$KEY'"

	defaults "" 0 1 1
	check "uci-defaults: firewall: zone 'braid' with the hub device, no masquerading" python3 - \
		"$D/config/firewall" <<'EOF'
import sys
text = open(sys.argv[1]).read()
zone = text.split("config zone 'braid'")[1].split("config ")[0]
want = ["option name 'braid'", "list device 'braid0'", "option input 'REJECT'",
        "option output 'ACCEPT'", "option forward 'REJECT'"]
for w in want:
    assert w in zone, (w, zone)
assert "masq" not in zone, zone
fwd = text.split("config forwarding 'braid_lan'")[1].split("config ")[0]
assert "option src 'lan'" in fwd and "option dest 'braid'" in fwd, fwd
back = text.split("config forwarding 'braid_return'")[1].split("config ")[0]
assert "option src 'braid'" in back and "option dest 'lan'" in back, back
EOF
	check "uci-defaults: firewall: committed, and fw4 (running) reloaded" bash -c \
		'grep -qx "uci commit firewall" "$0" && grep -qx "firewall reload" "$0"' "$D/ucilog"
	check "uci-defaults: firewall: the lan and wan zones untouched" bash -c \
		'grep -q "config zone .lan." "$0" && grep -q "config zone .wan." "$0"' "$D/config/firewall"
	cp "$D/config/firewall" "$TMP/firewall.once"
	(cd "$D" && PATH="$D/bin:$STUB/bin:$PATH" sh -c '. ./90-braid') >"$D/out" 2>&1
	check "uci-defaults: run again: the firewall config is unchanged" cmp "$TMP/firewall.once" "$D/config/firewall"

	defaults "	option hub 'bhub7'" 0 1 0
	check "uci-defaults: firewall: the configured hub goes in the zone" \
		grep -qF "list device 'bhub7'" "$D/config/firewall"
	check "uci-defaults: firewall: fw4 not running (first boot): no reload" lacks "$D/ucilog" '^firewall'

	defaults "" 0 0
	check "uci-defaults: no /etc/config/firewall: no zone, exit 0" bash -c \
		'[ ! -e "$0/config/firewall" ] && grep -qx "exit 0" "$0/out"' "$D"
	unset UCI_LOG
}

# ---------------------------------------------------------------- postinst / prerm
# maint SCRIPT [VAR=VALUE...]: run the package's SCRIPT (postinst or prerm, made by
# `cross/mkipk.sh control`: the SDK's wrappers around default_postinst/default_prerm) on a
# scratch router: stub/default-scripts.sh for base-files, logging stand-ins for
# /etc/init.d/braid, /etc/init.d/firewall, rc.common and the uci-defaults script, the stub
# uci on a config with Braid's firewall zone.
maint() {
	local script=$1 m=$TMP/maint
	shift
	rm -rf "$m"
	mkdir -p "$m/ctl" "$m/router/usr/lib/opkg/info" "$m/router/etc/init.d" \
		"$m/router/etc/uci-defaults" "$m/instroot/etc" "$m/config"
	cross/mkipk.sh control "$m/ctl"
	local info=$m/router/usr/lib/opkg/info
	cp "$m/ctl/prerm-pkg" "$info/braid.prerm-pkg"
	printf '%s\n' /usr/sbin/braid /etc/init.d/braid /etc/config/braid /etc/uci-defaults/90-braid \
		/etc/hotplug.d/iface/30-braid >"$info/braid.list"
	printf '#!/bin/sh\necho "init $*" >>"%s"\n' "$m/log" >"$m/router/etc/init.d/braid"
	printf '#!/bin/sh\necho "firewall $*" >>"%s"\n' "$m/log" >"$m/router/etc/init.d/firewall"
	printf 'echo "uci-defaults ran" >>"%s"\n' "$m/log" >"$m/router/etc/uci-defaults/90-braid"
	printf 'echo "rc.common $* IPKG_INSTROOT=$IPKG_INSTROOT" >>"%s"\n' "$m/log" >"$m/instroot/etc/rc.common"
	chmod +x "$m/router/etc/init.d/braid" "$m/router/etc/init.d/firewall"
	printf "config zone 'braid'\n\toption name 'braid'\n\nconfig forwarding 'braid_lan'\n\toption src 'lan'\n\nconfig forwarding 'braid_return'\n\toption src 'braid'\n" \
		>"$m/config/firewall"
	# The scripts as opkg installs them, pointed at the scratch router.
	local s
	for s in postinst prerm; do
		sed -e "s#\${IPKG_INSTROOT}/lib/functions.sh#$STUB/default-scripts.sh#" "$m/ctl/$s" >"$info/braid.$s"
	done
	sed -i -e "s#/etc/init.d/#$m/router/etc/init.d/#g" "$info/braid.prerm-pkg"
	: >"$m/log"
	(
		cd "$m/router" || exit 1
		export ROUTER=$m/router UCI_CONFIG_DIR=$m/config UCI_LOG=$m/log PATH="$STUB/bin:$PATH"
		env -u IPKG_INSTROOT -u PKG_UPGRADE "${@//@ROOT@/$m/instroot}" sh "$info/braid.$script"
	) >"$m/out" 2>&1
	echo "exit $?" >>"$m/out"
	M=$m
}
# lines FILE LINE...: FILE holds exactly these lines (none: FILE is empty).
lines() {
	if [ $# -eq 1 ]; then [ ! -s "$1" ] || { cat "$1"; return 1; }; return; fi
	diff <(printf '%s\n' "${@:2}") "$1"
}

test_maint() {
	maint postinst PKG_UPGRADE=0
	check "postinst (install): uci-defaults, enable, start" lines "$M/log" \
		"uci-defaults ran" "init enable" "init start"
	check "postinst (install): exit 0" has "$M/out" "exit 0"
	maint postinst PKG_UPGRADE=1
	check "postinst (upgrade): uci-defaults, start; the enabled state is left as it was" \
		lines "$M/log" "uci-defaults ran" "init start"
	maint postinst IPKG_INSTROOT=@ROOT@
	check "postinst (image build): only enable, through rc.common" lines "$M/log" \
		"rc.common $M/instroot/etc/init.d/braid enable IPKG_INSTROOT=$M/instroot"
	maint postinst IPKG_NO_SCRIPT=1
	check "postinst with IPKG_NO_SCRIPT: nothing" lines "$M/log"

	maint prerm PKG_UPGRADE=1
	check "prerm (upgrade): only stop: still enabled, firewall zone kept" lines "$M/log" "init stop"
	check "prerm (upgrade): the zone is still in the firewall config" grep -q "config zone 'braid'" \
		"$M/config/firewall"
	maint prerm PKG_UPGRADE=0
	check "prerm (remove): stop, zone and forwardings out of fw4, firewall reloaded, disable" \
		lines "$M/log" "uci get firewall.braid" "init stop" "uci delete firewall.braid" \
		"uci delete firewall.braid_lan" "uci delete firewall.braid_return" \
		"uci commit firewall" "firewall reload" "init disable" "init stop"
	check "prerm (remove): the firewall config has no braid section left" \
		lacks "$M/config/firewall" 'braid'
	check "prerm (remove): exit 0" has "$M/out" "exit 0"
	maint prerm
	check "prerm without PKG_UPGRADE: a removal" grep -qx "init disable" "$M/log"
	maint prerm IPKG_INSTROOT=@ROOT@
	check "prerm (image build): only disable, through rc.common" lines "$M/log" \
		"rc.common $M/instroot/etc/init.d/braid disable IPKG_INSTROOT=$M/instroot"
	check "prerm-pkg has no exit (some default_prerm source it in their own shell)" \
		lacks "$M/ctl/prerm-pkg" '(^|[;&| ])exit( |$)'
}

# ---------------------------------------------------------------- feed Makefile
# sdk_make LAYOUT TARGET [MAKEFILE]: GNU make on the package Makefile (default: the checkout's
# openwrt/Makefile) in the stand-in SDK (tests/pkg/sdk) with a scratch copy of the checkout's
# sources, laid out as LAYOUT: `local` (package/braid -> CHECKOUT/openwrt) or `feed`
# (feeds/packages/net/braid, a copy of openwrt/, sources given by BRAID_SRC).
# sdk_vars LAYOUT sets SDK (TOPDIR), SRC (the scratch checkout), OUT (what the stubs wrote)
# and LOG (what the Makefile called).
sdk_vars() {
	SDK=$TMP/sdk.$1 SRC=$TMP/sdk.$1.src OUT=$TMP/sdk.$1.out LOG=$TMP/sdk.$1.log
}
sdk_make() {
	local layout=$1 target=$2 makefile=${3:-openwrt/Makefile} dir
	sdk_vars "$layout"
	if [ ! -d "$SRC" ]; then
		rm -rf "$SDK" "$OUT"
		mkdir -p "$SRC" "$OUT"
		cp -a tests/pkg/sdk "$SDK"
		cp -a src hotplug openwrt luci-app Cargo.toml Cargo.lock README.md "$SRC/"
		mkdir -p "$SRC/target/release" && echo "build output" >"$SRC/target/release/x"
	fi
	cp "$makefile" "$SRC/openwrt/Makefile"
	case "$layout" in
	local)
		mkdir -p "$SDK/package"
		ln -sfn "$SRC/openwrt" "$SDK/package/braid"
		ln -sfn "$SRC/luci-app" "$SDK/package/luci-app-braid"
		dir=$SDK/package/braid
		;;
	feed)
		rm -rf "$SDK/feeds/packages/net/braid"
		mkdir -p "$SDK/feeds/packages/net"
		cp -a "$SRC/openwrt" "$SDK/feeds/packages/net/braid"
		dir=$SDK/feeds/packages/net/braid
		;;
	esac
	: >"$LOG"
	rm -rf "$OUT/root"
	mkdir -p "$OUT/root" "$OUT/ipkg-install/bin"
	echo "binary" >"$OUT/ipkg-install/bin/braid"
	local vars=(TOPDIR="$SDK" SDK_LOG="$LOG" SDK_OUT="$OUT" PKG_INSTALL_DIR="$OUT/ipkg-install")
	[ "$layout" = feed ] && vars+=(BRAID_SRC="$SRC")
	make --no-print-directory -C "$dir" "${vars[@]}" "$target"
}

test_feed() {
	local v
	v=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
	check "feed: PKG_VERSION matches Cargo.toml ($v)" grep -qx "PKG_VERSION:=$v" openwrt/Makefile
	check "feed: rust/host build dependency" grep -qx 'PKG_BUILD_DEPENDS:=rust/host' openwrt/Makefile
	if ! command -v make >/dev/null; then
		not_ok "feed: GNU make installed"
		return
	fi

	sdk_vars local
	check "feed: as a local package (package/braid -> openwrt/): make resolves every include" \
		sdk_make local install-braid
	check "feed: local package: rules.mk, package.mk, the SDK's rust-package.mk, the package" \
		lines "$LOG" rules.mk package.mk \
		"rust-package.mk $SDK/feeds/packages/lang/rust/rust-package.mk" \
		"RustBinPackage braid" "BuildPackage braid"
	check "feed: router build without the host features" \
		grep -q -- 'cargo build --no-default-features' "$OUT/braid.compile"
	check "feed: installs the package's files with their modes" lines \
		<(cd "$OUT/root" && find . -type f -printf '%p %m\n' | sort) \
		"./etc/config/braid 600" "./etc/hotplug.d/iface/30-braid 644" "./etc/init.d/braid 755" \
		"./etc/uci-defaults/90-braid 755" "./usr/sbin/braid 755"
	check "feed: installed files are the checkout's" bash -c 'cmp "$0/etc/init.d/braid" openwrt/files/braid.init &&
		cmp "$0/etc/hotplug.d/iface/30-braid" hotplug/braid.iface &&
		cmp "$0/etc/uci-defaults/90-braid" openwrt/files/braid.uci-defaults' "$OUT/root"
	check "feed: conffiles: the config, and /etc/braid/ (key, state) for sysupgrade" \
		lines "$OUT/braid.conffiles" /etc/config/braid /etc/braid/
	cross/mkipk.sh control "$TMP/feedctl"
	check "feed: prerm-pkg as make expands it is what cross/mkipk.sh packs" \
		cmp "$OUT/braid.prerm-pkg" "$TMP/feedctl/prerm-pkg"
	local stamp
	stamp=$(cat "$OUT/braid.stamp")
	echo "// edited" >>"$SRC/src/lib.rs"
	sdk_make local install-braid >/dev/null 2>&1
	check "feed: an edit under src/ changes the prepared stamp (rebuild)" \
		test "$(cat "$OUT/braid.stamp")" != "$stamp"
	stamp=$(cat "$OUT/braid.stamp")
	echo "more output" >>"$SRC/target/release/x"
	echo "notes" >>"$SRC/README.md"
	sdk_make local install-braid >/dev/null 2>&1
	check "feed: build output and docs do not (no rebuild)" test "$(cat "$OUT/braid.stamp")" = "$stamp"

	sdk_vars feed
	check "feed: inside a feed (feeds/packages/net/braid): make resolves every include" \
		sdk_make feed install-braid
	check "feed: in a feed: rust-package.mk through ../../lang/rust" has "$LOG" \
		"rust-package.mk $SDK/feeds/packages/net/braid/../../lang/rust/rust-package.mk"
	check "feed: in a feed: the same files" lines <(cd "$OUT/root" && find . -type f | sort) \
		./etc/config/braid ./etc/hotplug.d/iface/30-braid ./etc/init.d/braid \
		./etc/uci-defaults/90-braid ./usr/sbin/braid
	local out
	rm -f "$SRC/Cargo.toml"
	if out=$(sdk_make feed install-braid 2>&1); then
		not_ok "feed: without the sources, make fails" "$out"
	elif grep -q "no Braid checkout at '$SRC'" <<<"$out"; then
		ok "feed: without the sources, make fails and says where it looked"
	else
		not_ok "feed: without the sources, make says where it looked" "$out"
	fi

	check "luci: symlinked, the package is still luci-app-braid" bash -c \
		'make --no-print-directory -C "$0/package/luci-app-braid" TOPDIR="$0" SDK_LOG="$1" SDK_OUT=/tmp \
			>/dev/null 2>&1; grep -qx "luci.mk LUCI_NAME=luci-app-braid PKG_NAME=luci-app-braid" "$1"' \
		"$TMP/sdk.local" "$TMP/sdk.luci.log"
}

# ---------------------------------------------------------------- LuCI app
test_luci() {
	local l=luci-app f
	while read -r f; do
		check "luci: node --check ${f#"$l"/htdocs/luci-static/resources/}" node --check "$f"
	done < <(find "$l"/htdocs -name '*.js' | sort)
	for f in "$l"/root/usr/share/luci/menu.d/*.json "$l"/root/usr/share/rpcd/acl.d/*.json \
		"$l"/root/usr/share/ucitrack/*.json; do
		check "luci: ${f#"$l"/root} is JSON" python3 -m json.tool "$f"
	done
	# What the views call is derived and checked in the browser (tests/luci, make luci-test);
	# here, the shape: backend reads apart from writes, and only braid written.
	check "luci: ACL splits read (status, keys) from write (link, genkey); uci written: braid only" python3 - \
		"$l/root/usr/share/rpcd/acl.d/luci-app-braid.json" <<'EOF'
import json, sys
acl = json.load(open(sys.argv[1]))["luci-app-braid"]
assert acl["read"]["ubus"]["luci.braid"] == ["status", "keys"], acl["read"]
assert acl["write"]["ubus"] == {"luci.braid": ["link", "genkey"]}, acl["write"]
assert "braid" in acl["read"]["uci"] and acl["write"]["uci"] == ["braid"]
assert not {"network", "wireless"} & set(acl["read"]["uci"]), "uci network/wireless hold passwords"
EOF
	check "luci: menu gated on the ACL and on /etc/config/braid, views exist" python3 - \
		"$l/root/usr/share/luci/menu.d/luci-app-braid.json" "$l" <<'EOF'
import json, os, sys
menu = json.load(open(sys.argv[1]))
top = menu["admin/services/braid"]
assert top["depends"]["acl"] == ["luci-app-braid"], top
assert top["depends"]["uci"] == {"braid": True}, top
for k, v in menu.items():
    a = v["action"]
    if a["type"] == "view":
        js = os.path.join(sys.argv[2], "htdocs/luci-static/resources/view", a["path"] + ".js")
        assert os.path.isfile(js), js
EOF
	check "luci: ucitrack reloads the braid service" python3 -c \
		'import json,sys; assert json.load(open(sys.argv[1])) == {"config": "braid", "init": "braid"}' \
		"$l/root/usr/share/ucitrack/luci-app-braid.json"
	check "luci: the views call exactly the backend methods the ACL grants" diff \
		<(grep -rhoE "object: *'luci.braid', *method: *'[a-z]*'" "$l"/htdocs | grep -o "[a-z]*'$" |
			tr -d "'" | sort -u) <(printf 'genkey\nkeys\nlink\nstatus\n')
	check "luci: po/templates/braid.pot has every _() string of the views (cross/mkpot.py)" \
		cross/mkpot.py --check
	check "luci: status view keeps a sample backend reply" grep -q '"running": true' \
		"$l/htdocs/luci-static/resources/view/braid/status.js"
	test_ucode
}

# ucode_run MODE [SOCKET]: the rpcd backend under node (tests/pkg/ucode-backend.js) against a
# stand-in braid that answers as a running daemon (MODE up), as the CLI does when none runs
# (down), or with a broken reply (garbage).
ucode_run() {
	local u=$TMP/ucode
	mkdir -p "$u"
	cat >"$u/braid" <<EOF
#!/bin/sh
echo "braid \$*" >>"$u/log"
case "$1:\$1" in
up:status) echo '{"role":"edge","version":"0.1.0","uptime_s":5,"sessions":[],"drops":[]}' ;;
up:link) exit 0 ;;
garbage:status) echo 'warning: something'; echo '{"role":' ;;
*) echo "braid is not running (no daemon on /var/run/braid.sock)" >&2; exit 1 ;;
esac
EOF
	chmod +x "$u/braid"
	: >"$u/log"
	node tests/pkg/ucode-backend.js luci-app/root/usr/share/rpcd/ucode/luci.braid "$u/braid" \
		"${2:-}" >"$u/out" 2>&1
	U=$u
}

test_ucode() {
	ucode_run up /tmp/b.sock
	check "luci backend: status of a running daemon" grep -qF \
		'"reply":{"running":true,"status":{"role":"edge","version":"0.1.0"' "$U/out"
	check "luci backend: link down/up through the CLI, on the configured socket" lines "$U/log" \
		"braid status --json --socket /tmp/b.sock" "braid link down wan --socket /tmp/b.sock" \
		"braid link up wwan --socket /tmp/b.sock"
	check "luci backend: link up/down answer ok" test "$(grep -c '"reply":{"ok":true}' "$U/out")" = 2
	check "luci backend: a link name with shell characters is refused, never run" grep -qF \
		'"args":{"name":"wan'"'"'; reboot; '"'"'","up":true},"reply":{"ok":false,"error":"expected a link name' "$U/out"
	ucode_run up
	check "luci backend: no control_socket option: the daemon's default socket" \
		has "$U/log" "braid status --json"
	ucode_run down
	check "luci backend: daemon not running: running false with the CLI's message" grep -qF \
		'"reply":{"running":false,"error":"braid is not running (no daemon on /var/run/braid.sock)"}' "$U/out"
	check "luci backend: daemon not running: link fails with the message" grep -qF \
		'"args":{"name":"wan","up":false},"reply":{"ok":false,"error":"braid is not running' "$U/out"
	ucode_run garbage
	check "luci backend: unreadable status reply reported, not thrown" grep -qF \
		'"reply":{"running":false,"error":"unreadable reply from braid status --json' "$U/out"
}

# ---------------------------------------------------------------- .ipk
# arch_of_file FILE: the binary's family, as arch_family names it.
arch_of_file() {
	case "$(file -b "$1")" in
	*"MIPS"*"MSB"* | *"MSB"*"MIPS"*) echo mips ;;
	*"MIPS"*"LSB"* | *"LSB"*"MIPS"*) echo mipsel ;;
	*aarch64*) echo aarch64 ;;
	*ARM*) echo arm ;;
	*x86-64*) echo x86_64 ;;
	*) echo unknown ;;
	esac
}
# arch_family ARCH: mips_24kc -> mips, aarch64_cortex-a72 -> aarch64, ...
arch_family() { case "$1" in x86_64) echo x86_64 ;; *) echo "${1%%_*}" ;; esac; }

test_ipk() {
	local ipk=$1 name arch x
	name=$(basename "$ipk" .ipk)
	x=$TMP/ipk.$name
	rm -rf "$x"
	mkdir -p "$x/outer" "$x/control" "$x/data"
	check "$name: outer archive is a gzipped tar" bash -c 'gzip -t "$0" && tar -tzf "$0" >/dev/null' "$ipk"
	tar -xzf "$ipk" -C "$x/outer" 2>/dev/null
	check "$name: debian-binary, control.tar.gz, data.tar.gz and nothing else" lines \
		<(tar -tzf "$ipk" | sort) ./control.tar.gz ./data.tar.gz ./debian-binary
	check "$name: debian-binary is 2.0" has "$x/outer/debian-binary" "2.0"
	tar -xzf "$x/outer/control.tar.gz" -C "$x/control" 2>/dev/null
	tar -xzf "$x/outer/data.tar.gz" -C "$x/data" 2>/dev/null
	check "$name: data owned by root (numeric 0/0)" bash -c \
		'! tar -tvzf "$0" | awk "{print \$2}" | grep -v "^0/0$"' "$x/outer/data.tar.gz"
	local c=$x/control/control
	arch=$(sed -n 's/^Architecture: //p' "$c")
	local field
	for field in Package Version Depends Maintainer Architecture Installed-Size Description; do
		check "$name: control has $field" grep -q "^$field: ." "$c"
	done
	local v
	v=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
	check "$name: Version is $v-<release>" grep -qE "^Version: $v-[0-9]+$" "$c"
	check "$name: file name is Package_Version_Architecture" test "$name" = \
		"$(sed -n 's/^Package: //p' "$c")_$(sed -n 's/^Version: //p' "$c")_$(sed -n 's/^Architecture: //p' "$c")"
	check "$name: Installed-Size is the unpacked data size" test \
		"$(sed -n 's/^Installed-Size: //p' "$c")" = "$(zcat "$x/outer/data.tar.gz" | wc -c)"

	if [ "$(sed -n 's/^Package: //p' "$c")" = luci-app-braid ]; then
		test_luci_ipk "$name" "$x"
		return
	fi
	check "$name: Package braid" has "$c" "Package: braid"
	check "$name: Depends kmod-veth" grep -qE '^Depends: (.*, )?kmod-veth(,|$)' "$c"
	check "$name: conffiles: the config and /etc/braid/" lines "$x/control/conffiles" \
		/etc/config/braid /etc/braid/
	check "$name: control files" lines <(cd "$x/control" && find . -type f -printf '%p %m\n' | sort) \
		"./conffiles 644" "./control 644" "./postinst 755" "./prerm 755" "./prerm-pkg 755"
	cross/mkipk.sh control "$x/want"
	local f
	for f in postinst prerm prerm-pkg; do
		check "$name: $f is the SDK's" cmp "$x/control/$f" "$x/want/$f"
	done
	check "$name: files" lines <(cd "$x/data" && find . -type f | sort) \
		./etc/config/braid ./etc/hotplug.d/iface/30-braid ./etc/init.d/braid \
		./etc/uci-defaults/90-braid ./lib/upgrade/keep.d/braid ./usr/sbin/braid
	check "$name: sysupgrade keeps /etc/braid/ (keep.d)" lines "$x/data/lib/upgrade/keep.d/braid" /etc/braid/
	check "$name: every directory 0755 (opkg applies them to /, /etc, ...)" bash -c \
		'! tar -tvzf "$0" | grep "^d" | grep -v "^drwxr-xr-x"' "$x/outer/data.tar.gz"
	local want
	for want in "usr/sbin/braid 755" "etc/init.d/braid 755" "etc/config/braid 600" \
		"etc/uci-defaults/90-braid 755" "etc/hotplug.d/iface/30-braid 644" \
		"lib/upgrade/keep.d/braid 644"; do
		check "$name: mode of /${want% *} is ${want#* }" test \
			"$(stat -c %a "$x/data/${want% *}")" = "${want#* }"
	done
	check "$name: init script is the shipped one" cmp "$x/data/etc/init.d/braid" openwrt/files/braid.init
	check "$name: config is the shipped one" cmp "$x/data/etc/config/braid" openwrt/files/braid.config
	check "$name: hotplug script is the shipped one" cmp "$x/data/etc/hotplug.d/iface/30-braid" hotplug/braid.iface
	local bin=$x/data/usr/sbin/braid
	check "$name: binary is static" bash -c 'file -b "$0" | grep -q "statically linked"' "$bin"
	check "$name: binary is stripped" bash -c 'file -b "$0" | grep -qv "not stripped"' "$bin"
	check "$name: binary is built for $arch" test "$(arch_of_file "$bin")" = "$(arch_family "$arch")"
	# shellcheck source=cross/build.sh
	local qemu
	qemu=$(bash -c '. <(sed -n "/^target_of()/,/^}/p" cross/build.sh); target_of "$0"; echo "$QEMU"' "$arch")
	local out
	if out=$(${qemu:+$qemu} "$bin" --version 2>&1) && [ "$out" = "braid $v" ]; then
		ok "$name: packaged binary runs${qemu:+ under $qemu}: $out"
	else
		not_ok "$name: packaged binary runs${qemu:+ under $qemu}" "$out"
	fi
	# What the uci-defaults script runs on first boot, and what an operator runs next.
	local key pub
	if key=$(${qemu:+$qemu} "$bin" genkey 2>&1) && [[ "$key" =~ ^[A-Za-z0-9+/]{43}=$ ]] &&
		pub=$(echo "$key" | ${qemu:+$qemu} "$bin" pubkey 2>&1) && [[ "$pub" =~ ^[A-Za-z0-9+/]{43}=$ ]] &&
		[ "$pub" != "$key" ]; then
		ok "$name: packaged binary's genkey | pubkey give two base64 keys"
	else
		not_ok "$name: packaged binary's genkey | pubkey give two base64 keys" "${key:-} ${pub:-}"
	fi
	echo "# $name: binary $(stat -c %s "$bin") bytes, package $(stat -c %s "$ipk") bytes"
}

# The package made by a builder whose umask is 077 (no real binary needed): the same modes.
test_mkipk_umask() {
	local d=$TMP/umask x
	rm -rf "$d"
	mkdir -p "$d"
	cp /bin/true "$d/braid"
	if ! (umask 077 && DIST=$d/dist cross/mkipk.sh aarch64_cortex-a72 "$d/braid") >"$d/out" 2>&1; then
		not_ok "mkipk under umask 077" "$(cat "$d/out")"
		return
	fi
	for x in "$d"/dist/*.ipk; do
		mkdir -p "$d/o" && tar -xzf "$x" -C "$d/o"
		check "mkipk under umask 077: $(basename "$x"): members 0644" bash -c \
			'! tar -tvzf "$0" | grep -v "^-rw-r--r--"' "$x"
		check "mkipk under umask 077: $(basename "$x"): every directory 0755" bash -c \
			'! tar -tvzf "$0/data.tar.gz" | grep "^d" | grep -v "^drwxr-xr-x" &&
			! tar -tvzf "$0/control.tar.gz" | grep "^d" | grep -v "^drwxr-xr-x"' "$d/o"
		rm -rf "$d/o"
	done
	mkdir -p "$d/o" && tar -xzf "$d/dist/braid_"*"_aarch64_cortex-a72.ipk" -C "$d/o"
	check "mkipk under umask 077: file modes as set, not the umask's" lines \
		<(tar -tvzf "$d/o/data.tar.gz" | awk '$1 !~ /^d/ {print $1, $6}' | sort -k2) \
		"-rw------- ./etc/config/braid" "-rw-r--r-- ./etc/hotplug.d/iface/30-braid" \
		"-rwxr-xr-x ./etc/init.d/braid" "-rwxr-xr-x ./etc/uci-defaults/90-braid" \
		"-rw-r--r-- ./lib/upgrade/keep.d/braid" "-rwxr-xr-x ./usr/sbin/braid"
	check "mkipk: an arch OpenWrt does not have is refused" bash -c \
		'cross/mkipk.sh arm_cortex-a9 /bin/true 2>&1 | grep -q "unknown arch .arm_cortex-a9."'
}

test_luci_ipk() {
	local name=$1 x=$2 c=$2/control/control
	check "$name: Architecture all" has "$c" "Architecture: all"
	check "$name: Depends on braid" grep -qE '^Depends: (.*, )?braid(,|$)' "$c"
	local f
	for f in www/luci-static/resources/view/braid/status.js \
		usr/share/luci/menu.d/luci-app-braid.json usr/share/rpcd/acl.d/luci-app-braid.json \
		usr/share/rpcd/ucode/luci.braid usr/share/ucitrack/luci-app-braid.json \
		www/luci-static/resources/view/braid/settings.js; do
		check "$name: has /$f" test -f "$x/data/$f"
	done
}

test_shellcheck
check "cross/crates.py: symbols by crate, 32-bit big-endian and 64-bit ELF" python3 cross/test_crates.py
check "cross/count.py: instructions per packet net of the baseline, lab cpu's projection" python3 cross/test_count.py
test_init
test_hotplug
test_defaults
test_maint
test_feed
test_mkipk_umask
test_luci
for ipk in "$@"; do
	if [ -f "$ipk" ]; then test_ipk "$ipk"; else not_ok "package $ipk exists"; fi
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
