# Braid: build, test, demo, benchmarks, cross builds and packages.
# Every target does its own set-up; run as root for the lab targets.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test lint unit demo bench cross cross-test ipk ipk-test pkg-test setup clean

all: build

build:
	$(CARGO) build --release --locked

## test: what CI runs: format, lints, unit + simulator tests, and (as root) the namespace tests.
test: lint pkg-test
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean

## Router builds and packages (cross/, openwrt/, hotplug/). ARCH is an OpenWrt package arch:
## mipsel_24kc mips_24kc aarch64_cortex-a53 arm_cortex-a7 x86_64.
ARCH ?= mipsel_24kc
CROSS_TEST_ARCHS ?= mips_24kc aarch64_cortex-a53

## cross: build every router target (release and OpenWrt-SDK profiles), run each, print sizes.
cross:
	cross/build.sh setup
	cross/build.sh sizes

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
	tests/pkg/run.sh dist/braid_*_$(ARCH).ipk

## pkg-test: shellcheck and stand-in tests of the init, hotplug and package scripts (no build).
pkg-test:
	tests/pkg/run.sh
