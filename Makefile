# Braid: build, test, demo, benchmarks, cross builds and packages.
# Every target does its own set-up; run as root for the lab targets.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test lint unit demo bench lab-deps cross cross-test ipk setup clean sim

all: build

build:
	$(CARGO) build --release --locked

## test: what CI runs: format, lints, unit + simulator tests, and (as root) the namespace tests.
test: lint
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## sim: run every scenario in scenarios/ on the deterministic simulator and print its table.
sim:
	$(CARGO) build --release --locked
	for s in scenarios/*.toml; do echo "== $$s"; ./target/release/braid sim "$$s" || exit 1; done

clean:
	$(CARGO) clean

## --- lab: `make demo`, `make bench` (as root; see src/lab/) ---
# Modes the demo compares; add `braid` here once the edge/core daemons run: direct,mptcp,braid
DEMO_MODES ?= direct,mptcp
BENCH_MODES ?= direct,mptcp
LAB_PKGS = iproute2 nftables shadowsocks-libev mptcpize

lab-deps:
	@command -v ip >/dev/null && command -v nft >/dev/null && command -v ss-redir >/dev/null && \
	  command -v mptcpize >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(LAB_PKGS); }

## demo: bonded goodput against the best single link, the best link cut mid-transfer (~1 min).
demo: lab-deps
	$(CARGO) build --locked
	./target/debug/braid lab demo --mode $(DEMO_MODES)

## bench: every scenario x workload for each mode; bench/results/*.json + README.md table.
bench: lab-deps
	$(CARGO) build --locked
	./target/debug/braid lab bench --mode $(BENCH_MODES) --out bench/results
