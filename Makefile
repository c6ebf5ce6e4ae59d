# Braid: build, test, demo, benchmarks, cross builds and packages.
# Every target does its own set-up; run as root for the lab targets.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build test lint unit demo bench cross cross-test ipk setup clean sim

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
