#!/usr/bin/env bash
# Instructions per packet on the router build, counted under qemu-user (issue 17 §4).
#
#   cross/count.sh [ARCH]        (default mips_24kc; also `cross/build.sh count`, `make bench-mips`)
#
# Builds examples/perpacket_count.rs for ARCH as the router binary is built (router profile,
# build-std, no default features) and for the host (release profile, what `braid lab cpu`
# counts under callgrind), and cross/insncount.c, a qemu TCG plugin that counts the guest
# instructions a run executes. Then cross/count.py runs each build under qemu-user with the
# plugin (the host build under qemu-x86_64: the same count as callgrind's to 0.1 %), with N=0 and
# N packets, alternating builds, and prints instructions per packet ((count(N) - count(0)) / N)
# min / median / max over the repeats, and the MT7621 projection of `braid lab cpu` (880 MHz,
# IPC 0.5-0.8) from ARCH's figures. COUNT_REPEAT (3) repeats, COUNT_N (1000,3000) packets.
# Needs a C compiler for the plugin and qemu-user (cross/build.sh setup ARCH); no root.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
arch=${1:-mips_24kc}
host=$(uname -m)
[ "$host" = x86_64 ] || { echo "count: the host build is counted with qemu-x86_64: x86_64 hosts only" >&2; exit 2; }

# The arch's qemu-user, from build.sh's table.
qemu=$(bash -c '. <(sed -n "/^target_of()/,/^}/p" "$1"); target_of "$2"; echo "$QEMU"' _ cross/build.sh "$arch")
[ -n "$qemu" ] || qemu="qemu-x86_64"
command -v "$qemu" >/dev/null || { echo "count: $qemu not found (cross/build.sh setup $arch)" >&2; exit 1; }
command -v qemu-x86_64 >/dev/null || { echo "count: qemu-x86_64 not found (apt-get install qemu-user)" >&2; exit 1; }
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "count: no C compiler for the plugin (apt-get install gcc)" >&2; exit 1; }

mkdir -p target/insncount
plugin=$ROOT/target/insncount/insncount.so
"$cc" -shared -fPIC -O2 -Wall -Wextra -o "$plugin" cross/insncount.c

example=$(cross/build.sh example "$arch" perpacket_count | tail -n 1)
nice cargo build --release --locked --example perpacket_count >&2
hostex=$ROOT/target/release/examples/perpacket_count

echo "count: $arch $(basename "$example") under $qemu, x86_64 release under qemu-x86_64" \
	"($(uptime | sed 's/.*load/load/'))" >&2
exec python3 cross/count.py --plugin "$plugin" \
	--build "$arch=$qemu:$example" --build "x86_64=qemu-x86_64:$hostex" \
	--repeat "${COUNT_REPEAT:-3}" --n "${COUNT_N:-1000,3000}" --project "$arch"
