#!/bin/sh
# Runs every fuzz target for SECONDS seconds each (default 20), seeded from fuzz/seeds/ and
# growing fuzz/corpus/ (not checked in). A crash leaves its input in fuzz/artifacts/<target>/
# and fails the run: turn it into a regression test beside the code it broke.
#     fuzz/run.sh [SECONDS] [TARGET...]      (`make fuzz` runs FUZZ_SECONDS=600 each)
#
# Needs only the nightly toolchain: the targets are built the way `cargo fuzz build -O` builds
# them (libFuzzer from libfuzzer-sys, SanitizerCoverage, AddressSanitizer, --cfg fuzzing, the
# host triple given so that build scripts stay uninstrumented), so CI need not compile
# cargo-fuzz itself (11 minutes here). `cargo +nightly fuzz run TARGET` works as well.
set -eu
cd "$(dirname "$0")/.."
secs="${1:-20}"
[ $# -gt 0 ] && shift
targets="${*:-wire_decode seal_open unpack reorder packet uci}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Zsanitizer=address -Cdebug-assertions -Coverflow-checks"
export RUSTFLAGS
echo "== fuzz: building $targets (nightly, $host)"
cargo +nightly build --manifest-path fuzz/Cargo.toml --locked --release --target "$host" \
	$(for t in $targets; do printf -- '--bin %s ' "$t"; done)
for t in $targets; do
	mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
	echo "== fuzz $t (${secs} s)"
	"fuzz/target/$host/release/$t" -artifact_prefix="fuzz/artifacts/$t/" \
		-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 \
		"fuzz/corpus/$t" "fuzz/seeds/$t" 2>&1 |
		grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|ERROR|panicked|SUMMARY|Done' || true
	# libFuzzer exits non-zero on a crash; the pipe above hides it: look for its artifact.
	if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/oom-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
		echo "fuzz $t: found a failing input in fuzz/artifacts/$t/" >&2
		exit 1
	fi
done
