#!/bin/sh
# Runs every fuzz target for SECONDS seconds each (default 20), seeded from fuzz/seeds/ and
# growing fuzz/corpus/ (not checked in). A crash leaves its input in fuzz/artifacts/<target>/
# and fails the run: turn it into a regression test beside the code it broke.
#     fuzz/run.sh [SECONDS] [TARGET...]      (`make fuzz` runs FUZZ_SECONDS=600 each)
set -eu
cd "$(dirname "$0")/.."
secs="${1:-20}"
[ $# -gt 0 ] && shift
targets="${*:-wire_decode seal_open unpack reorder packet uci}"
cargo +nightly fuzz build -O
for t in $targets; do
	mkdir -p "fuzz/corpus/$t"
	echo "== fuzz $t (${secs} s)"
	cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
		-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 2>&1 |
		grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|ERROR|panicked|SUMMARY|Done' || true
	# libFuzzer exits non-zero on a crash; the pipe above hides it: look for its artifact.
	if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/oom-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
		echo "fuzz $t: found a failing input in fuzz/artifacts/$t/" >&2
		exit 1
	fi
done
