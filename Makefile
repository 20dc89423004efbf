# mloracle: the two commands of the README, plus helpers.
#   make report   run the oracle on the default OpenCL device and print what it found
#   make test     the test suite (set MLORACLE_REQUIRE_OPENCL=1 to fail instead of skip
#                 when no OpenCL device is present; CI does)
CARGO ?= cargo
SKIP_LOG := $(CURDIR)/target/mloracle-skipped.txt

.PHONY: test test-cpu report opencl bench lint doc

opencl:
	@scripts/ensure-opencl.sh

test: opencl
	@mkdir -p target && rm -f $(SKIP_LOG)
	MLORACLE_SKIP_LOG=$(SKIP_LOG) $(CARGO) test --release
	@scripts/skip-summary.sh $(SKIP_LOG)

# Reference-only build and tests: no OpenCL linked.
test-cpu:
	$(CARGO) test --release --no-default-features

report: opencl
	$(CARGO) run --release --example report -- $(ARGS)

bench: opencl
	$(CARGO) bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --no-default-features -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps
