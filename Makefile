# Braid: build, test, demo, benchmarks, cross builds and packages.
# Every target does its own set-up; run as root for the lab targets.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

FUZZ_SECONDS ?= 600

.PHONY: fuzz all build test e2e lint unit demo bench bench-cpu bench-mips bench-faults bench-hub bench-memory bench-offload bench-pack lab-deps cross cross-test ipk ipk-test pkg-test luci-test setup clean sim

all: build

build:
	$(CARGO) build --release --locked

## test: what CI runs: format, lints, package and LuCI tests, unit + simulator tests, and (as root)
## the namespace tests.
test: lint pkg-test luci-test
	$(CARGO) test --locked --all-targets
	# braid-aead (aead/) is a path dependency, not a workspace member: its own tests (the RFC 8439
	# vector, the MIPS/ARM construction against the chacha20poly1305 crate) run only when named.
	$(CARGO) test --locked -p braid-aead

## e2e: only the end-to-end tests (root: real edge and core daemons in the lab's namespaces).
e2e:
	$(CARGO) test --locked --test 'e2e_*' -- --nocapture

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked -p braid-aead --all-targets -- -D warnings

## sim: run every scenario in scenarios/ on the deterministic simulator and print its table.
sim:
	$(CARGO) build --release --locked
	for s in scenarios/*.toml; do echo "== $$s"; ./target/release/braid sim "$$s" || exit 1; done

clean:
	$(CARGO) clean

## fuzz: every cargo-fuzz target (fuzz/, nightly libFuzzer) for FUZZ_SECONDS each (default 600),
## seeded from fuzz/seeds/ (the golden vectors); a crash leaves its input in fuzz/artifacts/.
## Needs the nightly toolchain only (`rustup toolchain install nightly`; cargo-fuzz is optional).
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

## --- lab: `make demo`, `make bench` (as root; see src/lab/) ---
# Modes the demo compares: Braid, the best single link (direct) and MPTCP (OpenMPTCProuter).
DEMO_MODES ?= braid,direct,mptcp
# Empty: direct, mptcp, and braid when `braid edge`/`braid core` are built.
BENCH_MODES ?=
# Empty: `braid lab bench`'s defaults (hetero, lte, hsr, flap; the six bench workloads; each
# scenario's own duration). bench/results was made with
#   BENCH_SCENARIOS=lte,hetero,hsr-pair,umts-pair,driving-pair
#   BENCH_WORKLOADS=bulk1-down,bulk8-down,bulk1-up,bulk8-up,rr BENCH_DURATION=20s
BENCH_SCENARIOS ?=
BENCH_WORKLOADS ?=
BENCH_DURATION ?=
LAB_PKGS = iproute2 nftables shadowsocks-libev mptcpize

lab-deps:
	@command -v ip >/dev/null && command -v nft >/dev/null && command -v ss-redir >/dev/null && \
	  command -v mptcpize >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(LAB_PKGS); }

## demo: bonded goodput against the best single link, the best link cut mid-transfer (~1 min).
demo: lab-deps
	$(CARGO) build --locked
	./target/debug/braid lab demo --mode $(DEMO_MODES)

## bench-hub: hub capture cost, braid's AF_PACKET socket against pnet_datalink (as root).
bench-hub:
	$(CARGO) run --locked --example hub_bench

## bench-offload: CPU per GB of finishing the hosts' offloads in user space (braid) against
## the kernel segmenting before the hub, on TCP through a real hub (as root; ~4 min).
bench-offload:
	$(CARGO) run --release --locked --example offload_bench

## bench-pack: the sender's per-packet header packing cost, ns/packet (no root; ~1 min).
bench-pack:
	$(CARGO) run --release --locked --example pack_bench

## bench-faults: restarts, kills, black holes, a flapping link, a boot without DNS or devices, a
## clock a day behind: how long until bonded UDP and TCP carry data again, and the client's TCP
## flows reset (release binaries; as root; ~3 min per repeat; FAULTS_REPEAT runs each).
FAULTS_REPEAT ?= 3
bench-faults: lab-deps
	$(CARGO) build --release --locked
	./target/release/braid lab faults --repeat $(FAULTS_REPEAT) --out bench/faults

## bench-cpu: CPU seconds per bonded GB of braid edge and core beside ss-redir/ss-server
## (OpenMPTCProuter) in the same run, and instructions per forwarded packet of the edge (with an
## MT7621 projection) and of the core under callgrind, per workload, the dumps kept in bench/cpu
## for bench/cpu/cgfuncs.py (release binaries; as root; ~8 min). CPU_REPEAT runs each.
CPU_REPEAT ?= 3
bench-cpu: lab-deps
	@command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
	$(CARGO) build --release --locked
	./target/release/braid lab cpu --repeat $(CPU_REPEAT) --callgrind-core --out bench/cpu

## bench-mips: instructions per packet on the router build (mips_24kc) under qemu-mips with an
## instruction-counting plugin (cross/insncount.c), beside the x86_64 build: ChaCha20-Poly1305 seal
## and open, and the protocol core's edge + core path in memory; min/median/max over COUNT_REPEAT
## runs, net of a 0-packet baseline, with the MT7621 projection (no root; ~5 min with the builds).
COUNT_REPEAT ?= 3
bench-mips:
	cross/build.sh setup mips_24kc
	COUNT_REPEAT=$(COUNT_REPEAT) cross/count.sh mips_24kc

## bench-memory: peak RSS of the edge and the core at their default budgets (option memory,
## 16M and 64M) with 200 users and 2,000 UDP flows overloading two links, min/median/max over
## 3 runs (release binaries; as root; ~1 min). Figures: bench/memory.md.
bench-memory:
	$(CARGO) test --release --locked --test e2e_memory -- --ignored --nocapture bench_memory

## bench: every scenario x workload for each mode, BENCH_REPEAT runs of each (fresh daemons
## each run, release binaries); bench/results/*.json + README.md with min/median/max per cell
## beside direct and mptcp (as root; about 45 min per repeat, progress on stderr).
BENCH_REPEAT ?= 3
bench: lab-deps
	$(CARGO) build --release --locked
	./target/release/braid lab bench --repeat $(BENCH_REPEAT) $(if $(BENCH_MODES),--mode $(BENCH_MODES)) \
	  $(if $(BENCH_SCENARIOS),--scenario $(BENCH_SCENARIOS)) $(if $(BENCH_WORKLOADS),--workload $(BENCH_WORKLOADS)) \
	  $(if $(BENCH_DURATION),--duration $(BENCH_DURATION)) --out bench/results

## Router builds and packages (cross/, openwrt/, hotplug/). ARCH is an OpenWrt package arch, as
## `opkg print-architecture` shows it (`cross/build.sh list`: mipsel_24kc, mips_24kc,
## aarch64_cortex-a53, aarch64_generic, arm_cortex-a7_neon-vfpv4, x86_64, ...).
ARCH ?= mipsel_24kc
CROSS_TEST_ARCHS ?= mips_24kc aarch64_cortex-a53

## cross: build every router target (router and OpenWrt-SDK profiles), run each, print sizes,
## then what each crate costs in the mips_24kc router binary (cross/crates.py), so that growth is
## a decision.
cross:
	cross/build.sh setup
	cross/build.sh sizes
	cross/build.sh crates mips_24kc

## cross-test: unit and simulator tests under qemu-user (big-endian mips first).
cross-test:
	cross/build.sh setup $(CROSS_TEST_ARCHS)
	for a in $(CROSS_TEST_ARCHS); do cross/build.sh test $$a || exit 1; done

## ipk: an installable package for ARCH in dist/, plus luci-app-braid (arch all).
ipk:
	cross/build.sh setup $(ARCH)
	cross/mkipk.sh $(ARCH)

## ipk-test: build the ARCH package, open it and check it, run its binary under qemu.
ipk-test: ipk
	tests/pkg/run.sh dist/braid_*_$(ARCH).ipk dist/luci-app-braid_*_all.ipk

## pkg-test: shellcheck and stand-in tests of the init, hotplug and package scripts (no build).
pkg-test:
	tests/pkg/run.sh

## luci-test: luci-app-braid in headless Chromium against a LuCI stand-in (tests/luci/README.md):
## the validators against the daemon's table, then the views; screens in target/luci-screens/.
## Needs Debian's chromium and node; installs puppeteer-core from tests/luci/package-lock.json.
luci-test:
	node tests/luci/validate.test.js
	cd tests/luci && { [ -d node_modules/puppeteer-core ] || npm ci --no-audit --no-fund; }
	node tests/luci/run.js
