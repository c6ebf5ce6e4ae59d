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
# A scratch OpenWrt: its config dir, a copy of the init script pointing there, procd's state.
init_world() {
	W=$TMP/init.$1
	rm -rf "$W"
	mkdir -p "$W/config" "$W/procd" "$W/sbin"
	export UCI_CONFIG_DIR=$W/config PROCD_STATE=$W/procd PROCD_LOG=$W/log
	: >"$PROCD_LOG"
	sed -e "s#^CONF=.*#CONF=$W/config/braid#" -e "s#^CAPS=.*#CAPS=$W/caps.json#" \
		-e "s#/sbin/ujail#$W/sbin/ujail#" openwrt/files/braid.init >"$W/braid"
}
# main_conf ENABLED ROLE: a braid config with those main options (empty = absent).
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

	init_world edge
	main_conf 1 edge
	conf=$UCI_CONFIG_DIR/braid
	check "init: start edge" rc start
	check "init: edge instance named after its role" has "$PROCD_LOG" "procd_open_instance edge"
	check "init: edge command in the foreground with the config" \
		has "$PROCD_LOG" "procd_set_param command /usr/sbin/braid edge --config $conf"
	check "init: respawn" has "$PROCD_LOG" "procd_set_param respawn"
	check "init: stderr to syslog" has "$PROCD_LOG" "procd_set_param stderr 1"
	check "init: reload signal is HUP" has "$PROCD_LOG" "procd_set_param reload_signal HUP"
	check "init: config file watched" has "$PROCD_LOG" "procd_set_param file $conf"
	check "init: reload trigger on config braid" has "$PROCD_LOG" "procd_add_reload_trigger braid"
	check "init: procd starts braid edge" \
		has "$PROCD_LOG" "procd: start edge: /usr/sbin/braid edge --config $conf"
	check "init: no jail without ujail" lacks "$PROCD_LOG" 'procd_add_jail|capabilities'
	check "init: running after start" rc running

	rc reload
	check "init: reload with the file unchanged leaves braid alone" lacks "$PROCD_LOG" '^procd: '
	echo "config link 'wwan'" >>"$conf"
	rc reload
	check "init: reload after an edit sends SIGHUP, no restart" has "$PROCD_LOG" "procd: signal edge HUP"
	check "init: reload after an edit: no stop, no start" lacks "$PROCD_LOG" '^procd: (stop|start|restart)'

	main_conf 1 core
	rc reload
	check "init: role change: edge stopped" has "$PROCD_LOG" "procd: stop edge"
	check "init: role change: core started" \
		has "$PROCD_LOG" "procd: start core: /usr/sbin/braid core --config $conf"
	check "init: role change is not a mere HUP" lacks "$PROCD_LOG" '^procd: signal'

	main_conf 0 core
	rc reload
	check "init: disabling then reload stops it" has "$PROCD_LOG" "procd: stop core"
	check "init: not running once disabled" bash -c '! sh "$0" "$1" running' "$STUB/rc.common" "$W/braid"

	init_world default
	main_conf "" ""
	rc start
	check "init: enabled and role absent: edge, as the daemon's defaults" \
		has "$PROCD_LOG" "procd: start edge: /usr/sbin/braid edge --config $UCI_CONFIG_DIR/braid"

	init_world yes
	main_conf yes core
	rc start
	check "init: enabled 'yes' counts as on" has "$PROCD_LOG" "procd_open_instance core"

	init_world bad
	main_conf 1 router
	check "init: unknown role fails" bash -c '! sh "$0" "$1" start 2>"$2"' "$STUB/rc.common" "$W/braid" "$W/err"
	check "init: unknown role is named on stderr" grep -q "role 'router'" "$W/err"
	check "init: unknown role starts nothing" lacks "$PROCD_LOG" '^procd: start'

	init_world jail
	main_conf 1 edge
	printf '#!/bin/sh\n' >"$W/sbin/ujail"
	chmod +x "$W/sbin/ujail"
	cp openwrt/files/braid.capabilities.json "$W/caps.json"
	rc start
	check "init: with ujail: jailed" has "$PROCD_LOG" "procd_add_jail braid"
	check "init: with ujail: capability file" has "$PROCD_LOG" "procd_set_param capabilities $W/caps.json"
	check "init: with ujail: no_new_privs" has "$PROCD_LOG" "procd_set_param no_new_privs 1"
}

test_capabilities() {
	local f=openwrt/files/braid.capabilities.json
	check "capabilities: valid JSON with the five sets, each NET_ADMIN NET_RAW SYS_ADMIN only" \
		python3 - "$f" <<'EOF'
import json, sys
caps = json.load(open(sys.argv[1]))
want = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
sets = ["bounding", "effective", "ambient", "permitted", "inheritable"]
assert sorted(caps) == sorted(sets), caps.keys()
for s in sets:
    assert sorted(caps[s]) == want, (s, caps[s])
EOF
}

# ---------------------------------------------------------------- hotplug
# hotplug ACTION INTERFACE RUNNING(0|1) BRAID_EXIT [MAIN_OPTION_LINE]: source the script as
# hotplug-call does (in a subshell, with the environment netifd gives), against stand-ins.
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
		export PATH="$h/bin:$STUB/bin:$PATH" ACTION="$1" INTERFACE="$2" DEVICE=eth1
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
	check "hotplug: ifup of a link -> braid link up" has "$HP_LOG" "braid link up wan"
	check "hotplug: ifup of a link is quiet" quiet
	hotplug ifdown wwan 1 0
	check "hotplug: ifdown of a link -> braid link down" has "$HP_LOG" "braid link down wwan"
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
	hotplug ifup wan 1 0 "	option control_socket '/tmp/other.sock'"
	check "hotplug: the configured control socket is used" \
		has "$HP_LOG" "braid link up wan --socket /tmp/other.sock"
	hotplug ifup wan 1 3
	check "hotplug: a failed 'braid link' is logged to syslog" \
		grep -q "logger -t braid -p daemon.warn hotplug: 'braid link up wan' failed" "$HP_LOG"
}

# ---------------------------------------------------------------- uci-defaults
# defaults KEYLINE GENKEY_EXIT: run the uci-defaults script on a config with KEYLINE in main.
defaults() {
	local d=$TMP/defaults
	rm -rf "$d"
	mkdir -p "$d/config"
	export UCI_CONFIG_DIR=$d/config UCI_LOG=$d/ucilog
	printf "config braid 'main'\n\toption enabled '0'\n%s\n" "$1" >"$UCI_CONFIG_DIR/braid"
	printf '#!/bin/sh\n[ "$1" = genkey ] || exit 9\necho "oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0="\nexit %s\n' \
		"$2" >"$d/braid"
	chmod +x "$d/braid"
	sed "s#/usr/sbin/braid#$d/braid#" openwrt/files/braid.uci-defaults >"$d/90-braid"
	: >"$UCI_LOG"
	(cd "$d" && PATH="$STUB/bin:$PATH" sh ./90-braid) >"$d/out" 2>&1
	echo "exit $?" >>"$d/out"
	D=$d
	unset UCI_LOG
}

test_defaults() {
	defaults "" 0
	check "uci-defaults: exits 0" has "$D/out" "exit 0"
	check "uci-defaults: a fresh key is stored" \
		has "$D/config/braid" "	option private_key 'oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0='"
	check "uci-defaults: committed" has "$D/ucilog" "uci commit braid"
	defaults "	option private_key 'mine'" 0
	check "uci-defaults: an existing key is kept" has "$D/config/braid" "	option private_key 'mine'"
	check "uci-defaults: nothing written over it" lacks "$D/ucilog" '^uci (set|commit)'
	defaults "	option key_file '/etc/braid/k'" 0
	check "uci-defaults: key_file set: no key added" lacks "$D/ucilog" '^uci (set|commit)'
	defaults "" 1
	check "uci-defaults: genkey failing: no change, exit 0" lacks "$D/ucilog" '^uci (set|commit)'
	check "uci-defaults: genkey failing: exit 0" has "$D/out" "exit 0"
}

# ---------------------------------------------------------------- postinst / prerm
# maint SCRIPT [VAR=VALUE...]: run a maintainer script with /etc/init.d/braid, rc.common and
# /etc/uci-defaults replaced by logging stand-ins.
maint() {
	local script=$1 m=$TMP/maint
	shift
	rm -rf "$m"
	mkdir -p "$m/uci-defaults" "$m/instroot/etc"
	printf '#!/bin/sh\necho "init $*" >>"%s"\n' "$m/log" >"$m/init"
	printf '#!/bin/sh\necho "uci-defaults ran" >>"%s"\n' "$m/log" >"$m/uci-defaults/90-braid"
	printf 'echo "rc.common $* IPKG_INSTROOT=$IPKG_INSTROOT" >>"%s"\n' "$m/log" >"$m/instroot/etc/rc.common"
	chmod +x "$m/init"
	sed -e "/\$root/!s#/etc/init.d/braid#$m/init#g" -e "s#/etc/uci-defaults#$m/uci-defaults#g" \
		"openwrt/files/$script" >"$m/script"
	: >"$m/log"
	env -u IPKG_INSTROOT -u PKG_UPGRADE "${@//@ROOT@/$m/instroot}" sh "$m/script" >"$m/out" 2>&1
	echo "exit $?" >>"$m/out"
	M=$m
}
# lines FILE LINE...: FILE holds exactly these lines (none: FILE is empty).
lines() {
	if [ $# -eq 1 ]; then [ ! -s "$1" ] || { cat "$1"; return 1; }; return; fi
	diff <(printf '%s\n' "${@:2}") "$1"
}

test_maint() {
	maint braid.postinst
	check "postinst: runs uci-defaults, enables, starts" lines "$M/log" \
		"uci-defaults ran" "init enable" "init start"
	check "postinst: uci-defaults script removed after it ran" test ! -e "$M/uci-defaults/90-braid"
	check "postinst: exit 0" has "$M/out" "exit 0"
	maint braid.postinst PKG_UPGRADE=1
	check "postinst on upgrade: restarts the new binary" lines "$M/log" "uci-defaults ran" "init restart"
	maint braid.postinst IPKG_INSTROOT=@ROOT@
	check "postinst in an image build: only enables, through rc.common" lines "$M/log" \
		"rc.common $M/instroot/etc/init.d/braid enable IPKG_INSTROOT=$M/instroot"
	maint braid.postinst IPKG_NO_SCRIPT=1
	check "postinst with IPKG_NO_SCRIPT: nothing" lines "$M/log"
	maint braid.prerm
	check "prerm: stops then disables" lines "$M/log" "init stop" "init disable"
	check "prerm: exit 0" has "$M/out" "exit 0"
	maint braid.prerm IPKG_INSTROOT=@ROOT@
	check "prerm in an image build: nothing" lines "$M/log"
}

# ---------------------------------------------------------------- feed Makefile
test_feed() {
	local v
	v=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
	check "feed: PKG_VERSION matches Cargo.toml ($v)" grep -qx "PKG_VERSION:=$v" openwrt/Makefile
	check "feed: rust/host build dependency" grep -qx 'PKG_BUILD_DEPENDS:=rust/host' openwrt/Makefile
	check "feed: uses rust-package.mk and RustBinPackage" bash -c \
		'grep -q "^include ../../lang/rust/rust-package.mk" "$0" && grep -q "call RustBinPackage,braid" "$0"' \
		openwrt/Makefile
	check "feed: router build without the host features" \
		grep -q -- '--no-default-features' openwrt/Makefile
	check "feed: /etc/config/braid is a conffile" bash -c \
		'sed -n "/^define Package\/braid\/conffiles/,/^endef/p" "$0" | grep -qx /etc/config/braid' \
		openwrt/Makefile
	local f
	while read -r f; do
		f=${f/\$(BRAID_SRC)/..}
		check "feed: installs existing file ${f#./}" test -f "openwrt/$f"
	done < <(grep -o './files/[a-z.-]*\|$(BRAID_SRC)/hotplug/[a-z.-]*' openwrt/Makefile | sort -u)
}

# ---------------------------------------------------------------- LuCI app
test_luci() {
	local l=luci-app f
	for f in "$l"/htdocs/luci-static/resources/view/braid/*.js; do
		check "luci: node --check ${f##*/}" node --check "$f"
	done
	for f in "$l"/root/usr/share/luci/menu.d/*.json "$l"/root/usr/share/rpcd/acl.d/*.json \
		"$l"/root/usr/share/ucitrack/*.json; do
		check "luci: ${f#"$l"/root} is JSON" python3 -m json.tool "$f"
	done
	check "luci: ACL splits read (status, uci) from write (link, uci)" python3 - \
		"$l/root/usr/share/rpcd/acl.d/luci-app-braid.json" <<'EOF'
import json, sys
acl = json.load(open(sys.argv[1]))["luci-app-braid"]
assert acl["read"]["ubus"] == {"luci.braid": ["status"]}, acl["read"]
assert acl["write"]["ubus"] == {"luci.braid": ["link"]}, acl["write"]
assert acl["read"]["uci"] == ["braid"] and acl["write"]["uci"] == ["braid"]
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
		<(grep -ho "method: *'[a-z]*'" "$l"/htdocs/luci-static/resources/view/braid/*.js |
			grep -o "[a-z]*'$" | tr -d "'" | sort -u) <(printf 'link\nstatus\n')
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
arch_of_file() {
	case "$(file -b "$1")" in
	*"MIPS"*"MSB"* | *"MSB"*"MIPS"*) echo mips_24kc ;;
	*"MIPS"*"LSB"* | *"LSB"*"MIPS"*) echo mipsel_24kc ;;
	*aarch64*) echo aarch64_cortex-a53 ;;
	*ARM*) echo arm_cortex-a7 ;;
	*x86-64*) echo x86_64 ;;
	*) echo unknown ;;
	esac
}

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
	check "$name: conffiles is /etc/config/braid" lines "$x/control/conffiles" /etc/config/braid
	check "$name: postinst and prerm executable" test -x "$x/control/postinst" -a -x "$x/control/prerm"
	check "$name: postinst is the shipped one" cmp "$x/control/postinst" openwrt/files/braid.postinst
	check "$name: prerm is the shipped one" cmp "$x/control/prerm" openwrt/files/braid.prerm
	check "$name: files" lines <(cd "$x/data" && find . -type f | sort) \
		./etc/capabilities/braid.json ./etc/config/braid ./etc/hotplug.d/iface/30-braid \
		./etc/init.d/braid ./etc/uci-defaults/90-braid ./usr/sbin/braid
	local want
	for want in "usr/sbin/braid 755" "etc/init.d/braid 755" "etc/config/braid 600" \
		"etc/uci-defaults/90-braid 755" "etc/hotplug.d/iface/30-braid 644" \
		"etc/capabilities/braid.json 644"; do
		check "$name: mode of /${want% *} is ${want#* }" test \
			"$(stat -c %a "$x/data/${want% *}")" = "${want#* }"
	done
	check "$name: init script is the shipped one" cmp "$x/data/etc/init.d/braid" openwrt/files/braid.init
	check "$name: config is the shipped one" cmp "$x/data/etc/config/braid" openwrt/files/braid.config
	check "$name: hotplug script is the shipped one" cmp "$x/data/etc/hotplug.d/iface/30-braid" hotplug/braid.iface
	local bin=$x/data/usr/sbin/braid
	check "$name: binary is static" bash -c 'file -b "$0" | grep -q "statically linked"' "$bin"
	check "$name: binary is stripped" bash -c 'file -b "$0" | grep -qv "not stripped"' "$bin"
	check "$name: binary is built for $arch" test "$(arch_of_file "$bin")" = "$arch"
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
test_init
test_capabilities
test_hotplug
test_defaults
test_maint
test_feed
test_luci
for ipk in "$@"; do
	if [ -f "$ipk" ]; then test_ipk "$ipk"; else not_ok "package $ipk exists"; fi
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
