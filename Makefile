# Braid: build, test, demo, benchmarks, cross builds and packages.
# Every target does its own set-up; run as root for the lab targets.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test lint unit demo bench cross cross-test ipk setup clean

all: build

build:
	$(CARGO) build --release --locked

## test: what CI runs: format, lints, unit + simulator tests, and (as root) the namespace tests.
test: lint
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
