#!/usr/bin/env bash
# Cross builds of braid for the OpenWrt targets, their size table and their tests under qemu-user.
#
#   cross/build.sh setup [ARCH...]          install what the builds need (rustup targets, zig, qemu)
#   cross/build.sh build ARCH [PROFILE]     build the router binary; prints its path on the last line
#   cross/build.sh sizes [ARCH...]          build router + openwrt profiles, run each, print a table
#   cross/build.sh test ARCH [cargo args]   run the unit and simulator tests for ARCH under qemu
#   cross/build.sh crates [ARCH]            what each crate costs in the router binary (mips_24kc)
#   cross/build.sh example ARCH NAME [PROF] build examples/NAME.rs as the router binary is built
#   cross/build.sh count [ARCH]             instructions per packet under qemu (cross/count.sh)
#   cross/build.sh list                     the OpenWrt architectures known here
#
# ARCH is an OpenWrt package architecture (what `opkg print-architecture` shows on the router).
# Router builds use --no-default-features: the simulator and the lab stay on the host.
# PROFILE is a Cargo profile: `router` (default: size-optimised, what ships) or `openwrt`.
# Zig is the linker for every target (cargo-zigbuild), so no C cross toolchain is needed.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

# One of each binary (what `sizes` and `setup` build by default).
ALL_ARCHS="mipsel_24kc mips_24kc aarch64_cortex-a53 arm_cortex-a7 x86_64"
# Every package architecture a package can be made for: OpenWrt's ARCH_PACKAGES,
# <arch>_<cpu type>[_<cpu subtype>], as `opkg print-architecture` (or `apk --print-arch`) shows
# it on the router. Targets sharing a binary: aarch64 (filogic/mvebu a53, bcm2711/mvebu a72,
# bcm2712 a76, armsr/rockchip generic), ARMv7 with VFP (ipq40xx/sunxi/bcm2709 cortex-a7 neon,
# mt7629 cortex-a7, mvebu cortex-a9 vfpv3-d16, ipq806x cortex-a15 neon).
KNOWN_ARCHS="mipsel_24kc mips_24kc aarch64_cortex-a53 aarch64_cortex-a72 aarch64_cortex-a76 \
aarch64_generic arm_cortex-a7 arm_cortex-a7_neon-vfpv4 arm_cortex-a9_vfpv3-d16 \
arm_cortex-a15_neon-vfpv4 x86_64"
# Budget from DESIGN.md: the mipsel router binary, stripped, without UPX.
BUDGET_BYTES=$((3 * 1024 * 1024 / 2))

# target_of ARCH: sets TRIPLE, TOOLCHAIN, BUILD_STD, FLAGS and QEMU for an OpenWrt arch.
#   MIPS (tier 3): nightly with -Zbuild-std, and a non-PIE static binary (a static-pie MIPS
#   binary crashes at start). mips_24kc is ath79, big endian: the tests run there too.
#   ARMv7: nightly -Zbuild-std, linked by zig with its own musl (not Rust's self-contained one).
#   OpenWrt's arm_cortex-a7 is soft-float ABI, but a static binary brings its own libc and
#   every Cortex-A7 has VFPv4, so the hard-float musleabihf build runs there.
target_of() {
	BUILD_STD=0 FLAGS="" TOOLCHAIN=stable QEMU=""
	case "$1" in
	mipsel_24kc)
		TRIPLE=mipsel-unknown-linux-musl TOOLCHAIN=nightly BUILD_STD=1
		FLAGS="-C relocation-model=static" QEMU=qemu-mipsel ;;
	mips_24kc)
		TRIPLE=mips-unknown-linux-musl TOOLCHAIN=nightly BUILD_STD=1
		FLAGS="-C relocation-model=static" QEMU=qemu-mips ;;
	aarch64_cortex-a53 | aarch64_cortex-a72 | aarch64_cortex-a76 | aarch64_generic)
		TRIPLE=aarch64-unknown-linux-musl QEMU=qemu-aarch64 ;;
	arm_cortex-a7 | arm_cortex-a7_neon-vfpv4 | arm_cortex-a9_vfpv3-d16 | arm_cortex-a15_neon-vfpv4)
		TRIPLE=armv7-unknown-linux-musleabihf TOOLCHAIN=nightly BUILD_STD=1
		FLAGS="-C link-self-contained=no" QEMU=qemu-arm ;;
	x86_64)
		TRIPLE=x86_64-unknown-linux-musl ;;
	*)
		echo "cross: unknown arch '$1' (known: $KNOWN_ARCHS)" >&2
		return 2 ;;
	esac
}

# cargo_for ARCH PROFILE SUBCOMMAND ARGS...: runs cargo-zigbuild with the arch's settings.
# The per-target RUSTFLAGS variable leaves host build scripts and proc macros alone.
cargo_for() {
	local arch=$1 profile=$2 sub=$3
	shift 3
	target_of "$arch"
	local var
	var=$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')
	local std=()
	if [ "$BUILD_STD" = 1 ]; then
		# rustc passes the target's library directory in the sysroot to the linker even when
		# std is built from source (rustup installed none for the target, so the directory is
		# missing), and zig warns about it on every link: rustc's linker-messages warning, the
		# one warning of a router build. An empty directory is all that was expected there.
		mkdir -p "$(RUSTUP_TOOLCHAIN="$TOOLCHAIN" rustc --print target-libdir --target "$TRIPLE")"
		# panic=abort (router) needs panic_abort built; panic=unwind (openwrt) the default set.
		# The router's std leaves out backtrace symbolization (gimli, addr2line, the
		# demangler: about 230 KB of the mipsel binary), which a stripped binary cannot use:
		# a panic still prints its message. Tests keep the default set.
		# shellcheck disable=SC2054 # the commas belong to the -Z flag
		if [ "$profile" = openwrt ]; then
			std=(-Zbuild-std=std,panic_unwind)
		elif [ "$profile" = router ]; then
			std=(-Zbuild-std=std,panic_abort -Zbuild-std-features=)
		else
			std=(-Zbuild-std=std,panic_abort)
		fi
	fi
	# The shipped build leaves out the file:line of panic locations (the message stays): it
	# keeps the mipsel binary inside its 1.5 MiB budget. Nightly only; tests keep them.
	local flags=$FLAGS
	if [ "$profile" = router ] && [ "$TOOLCHAIN" = nightly ]; then
		flags="$flags -Zlocation-detail=none"
	fi
	# Only what the target needs: cargo rejects an empty runner.
	local vars=(RUSTUP_TOOLCHAIN="$TOOLCHAIN")
	[ -z "$flags" ] || vars+=("CARGO_TARGET_${var}_RUSTFLAGS=${flags# }")
	[ -z "$QEMU" ] || vars+=("CARGO_TARGET_${var}_RUNNER=$QEMU")
	env "${vars[@]}" nice cargo-zigbuild "$sub" --locked --target "$TRIPLE" --profile "$profile" \
		"${std[@]}" "$@"
}

# out_dir PROFILE: cargo's directory name for a profile.
out_dir() {
	case "$1" in
	dev | test) echo debug ;;
	*) echo "$1" ;;
	esac
}

# run_bin ARCH FILE ARGS...: runs a binary built for ARCH (natively for x86_64).
run_bin() {
	local arch=$1 bin=$2
	shift 2
	target_of "$arch"
	if [ -n "$QEMU" ]; then
		"$QEMU" "$bin" "$@"
	else
		"$bin" "$@"
	fi
}

cmd_setup() {
	local archs=("$@")
	[ ${#archs[@]} -gt 0 ] || read -r -a archs <<<"$ALL_ARCHS"
	local need_nightly=0 stable_targets=() arch
	for arch in "${archs[@]}"; do
		target_of "$arch"
		if [ "$TOOLCHAIN" = nightly ]; then need_nightly=1; else stable_targets+=("$TRIPLE"); fi
	done
	if [ ${#stable_targets[@]} -gt 0 ]; then
		rustup target add "${stable_targets[@]}"
	fi
	# An installed nightly is kept as it is (no update on every run), given rust-src.
	if [ "$need_nightly" = 1 ] &&
		! rustup component list --installed --toolchain nightly 2>/dev/null | grep -q '^rust-src'; then
		rustup toolchain install nightly --profile minimal --component rust-src
	fi
	if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
		pip install --quiet ziglang cargo-zigbuild
	fi
	command -v qemu-mips >/dev/null || {
		command -v apt-get >/dev/null || { echo "cross: install qemu-user" >&2; return 1; }
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
	}
}

# cmd_build ARCH [PROFILE]: the stripped router binary; its path is the last line printed.
cmd_build() {
	local arch=$1 profile=${2:-router}
	cargo_for "$arch" "$profile" build --no-default-features --bin braid >&2 || return 1
	target_of "$arch"
	echo "$ROOT/target/$TRIPLE/$(out_dir "$profile")/braid"
}

# cmd_example ARCH NAME [PROFILE]: an example built with the router binary's settings (profile,
# std, flags, no default features); its path is the last line printed.
cmd_example() {
	local arch=$1 name=$2 profile=${3:-router}
	cargo_for "$arch" "$profile" build --no-default-features --example "$name" >&2 || return 1
	target_of "$arch"
	echo "$ROOT/target/$TRIPLE/$(out_dir "$profile")/examples/$name"
}

cmd_sizes() {
	local archs=("$@")
	[ ${#archs[@]} -gt 0 ] || read -r -a archs <<<"$ALL_ARCHS"
	local arch profile bin size ver rows=() fail=0
	for arch in "${archs[@]}"; do
		for profile in router openwrt; do
			bin=$(cmd_build "$arch" "$profile" | tail -n 1)
			size=$(stat -c %s "$bin")
			if ver=$(run_bin "$arch" "$bin" --version 2>&1); then :; else
				ver="FAILED: $ver"
				fail=1
			fi
			file "$bin" | grep -q 'not stripped' && { ver="$ver (NOT STRIPPED)"; fail=1; }
			rows+=("$arch|$profile|$size|$ver")
		done
	done
	echo
	printf '| %-20s | %-8s | %10s | %9s | %s\n' arch profile bytes KiB "runs (--version under qemu)"
	printf '|%s|%s|%s|%s|%s\n' ---------------------- ---------- ------------ ----------- -----------
	local row
	for row in "${rows[@]}"; do
		IFS='|' read -r arch profile size ver <<<"$row"
		printf '| %-20s | %-8s | %10d | %9.1f | %s\n' "$arch" "$profile" "$size" \
			"$(awk -v s="$size" 'BEGIN { print s / 1024 }')" "$ver"
		# The budget is the shipped (router) build's; the SDK profile (panic=unwind, overflow
		# checks) must build and run, and its size is reported.
		if [ "$arch" = mipsel_24kc ] && [ "$size" -gt "$BUDGET_BYTES" ]; then
			echo "cross: mipsel_24kc $profile is $size bytes, over the budget of $BUDGET_BYTES" >&2
			[ "$profile" = router ] && fail=1
		fi
	done
	return $fail
}

# cmd_test ARCH [ARGS]: the library's unit tests, the binaries' tests and every integration
# test under tests/ that needs no root (not named netns_*, lab_*, os_* or e2e_*: those drive
# real kernels and namespaces, which qemu-user does not emulate), built with the `sim` feature
# so the simulator tests run too (not `lab`: it is host-only and never built for a router).
# Tests that start the braid binary as a child are skipped under qemu (see
# spawning-tests.awk); x86_64 runs natively and skips nothing.
cmd_test() {
	local arch=$1
	shift
	target_of "$arch"
	local tests=() skips=() t name fn
	for t in tests/*.rs; do
		[ -e "$t" ] || continue
		name=$(basename "$t" .rs)
		case "$name" in
		netns_* | lab_* | os_* | pkg_* | e2e_*) continue ;;
		esac
		tests+=(--test "$name")
		if [ -n "$QEMU" ]; then
			while read -r fn; do
				skips+=(--skip "$fn")
			done < <(awk -f cross/spawning-tests.awk "$t")
		fi
	done
	if [ ${#skips[@]} -gt 0 ]; then
		echo "cross: under $QEMU, skipping tests that start the binary: ${skips[*]}" >&2
	fi
	cargo_for "$arch" dev test --no-default-features --features sim --lib --bins "${tests[@]}" \
		"$@" -- "${skips[@]}"
}

# cmd_crates [ARCH]: the router build once more with its symbols (its own target directory, so
# the shipped build stays cached), and the bytes each crate's functions and data take in it.
cmd_crates() {
	local arch=${1:-mips_24kc} bin stripped
	stripped=$(cmd_build "$arch" router | tail -n 1)
	CARGO_PROFILE_ROUTER_STRIP=false CARGO_TARGET_DIR="$ROOT/target/crates" \
		cargo_for "$arch" router build --no-default-features --bin braid >&2 || return 1
	target_of "$arch"
	bin="$ROOT/target/crates/$TRIPLE/router/braid"
	echo
	echo "What each crate costs in the $arch router binary ($(stat -c %s "$stripped") bytes stripped;"
	echo "budget $BUDGET_BYTES): function and data symbols by crate, with LTO (inlined code counts"
	echo "where it landed)."
	echo
	python3 "$ROOT/cross/crates.py" "$bin" --top "${CRATES_TOP:-20}"
}

case "${1:-}" in
setup) shift; cmd_setup "$@" ;;
build) shift; cmd_build "$@" ;;
sizes) shift; cmd_sizes "$@" ;;
test) shift; cmd_test "$@" ;;
crates) shift; cmd_crates "$@" ;;
example) shift; cmd_example "$@" ;;
count) shift; exec "$ROOT/cross/count.sh" "$@" ;;
list) echo "$KNOWN_ARCHS" ;;
*)
	sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
	exit 2 ;;
esac
