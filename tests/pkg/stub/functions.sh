# Stand-in for OpenWrt's /lib/functions.sh: the UCI helpers braid's scripts use
# (config_load, config_get, config_get_bool, config_foreach), reading
# "$UCI_CONFIG_DIR/<package>".
# shellcheck shell=dash

config_load() {
	local file="${UCI_CONFIG_DIR:?}/$1"
	CONFIG_SECTIONS=""
	[ -f "$file" ] || return 1
	# Turn `config T 'name'` / `option k 'v'` into CONFIG_<section>_<option>='v' assignments.
	eval "$(awk '
		function unq(s) { gsub(/^'\''|'\''$/, "", s); gsub(/^"|"$/, "", s); return s }
		/^[ \t]*#/ { next }
		$1 == "config" { n++; sec = ($3 == "") ? "cfg" n : unq($3);
			printf "CONFIG_%s_TYPE='\''%s'\''\n", sec, unq($2);
			printf "CONFIG_SECTIONS=\"$CONFIG_SECTIONS %s\"\n", sec; next }
		$1 == "option" && sec != "" { k = $2; $1 = ""; $2 = ""; v = $0; sub(/^[ \t]+/, "", v);
			printf "CONFIG_%s_%s='\''%s'\''\n", sec, k, unq(v) }
	' "$file")"
}

# Locals start with _ so that they never shadow the caller's variable.
config_get() {
	local _var="$1" _sec="$2" _opt="$3" _val
	# shellcheck disable=SC2034 # read by the eval
	local _def="$4"
	eval "_val=\${CONFIG_${_sec}_${_opt}-\$_def}"
	eval "$_var=\$_val"
}

config_get_bool() {
	local _bvar="$1" _b
	config_get _b "$2" "$3" "$4"
	case "$_b" in
	1 | on | true | yes | enabled) _b=1 ;;
	0 | off | false | no | disabled) _b=0 ;;
	*) _b="$4" ;;
	esac
	eval "$_bvar=\$_b"
}

# config_foreach FUNCTION [TYPE]: FUNCTION SECTION for every section (of TYPE), in file order.
config_foreach() {
	local _fn="$1" _type="$2" _s _t
	for _s in $CONFIG_SECTIONS; do
		eval "_t=\${CONFIG_${_s}_TYPE}"
		[ -z "$_type" ] || [ "$_t" = "$_type" ] || continue
		"$_fn" "$_s"
	done
}
