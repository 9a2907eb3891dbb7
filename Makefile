# The two commands of the quick start:
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, run every test
# `make build` only builds (it never installs). Everything else is CMake
# underneath, through CMakePresets.json: preset `release` (build/) and
# `asan` (build-asan/).

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run test test-unit test-asan bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

# The main job: the quick-start sweep on 2 MPI ranks (resumes if rerun).
run: deps
	@$(MAKE) --no-print-directory build
	@mkdir -p results
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	  mpirun --oversubscribe -n 2 build/qblind run configs/quickstart.yaml -o results/quickstart.h5

# Every test: the unit suites and the real-training checks in the Release
# build, then the unit suites again under AddressSanitizer + UBSan.
test: deps
	@$(MAKE) --no-print-directory build
	ctest --preset release -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

test-unit: build
	ctest --preset release -L unit -j $(JOBS)

# Optimised (-O2 -g): the sanitizers keep their checks, and the suites that
# train small models run in a fraction of the -O0 time.
test-asan:
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --preset asan -j $(JOBS)

bench: build
	bench/train_vs_torch.sh build

# libFuzzer (fuzz/README.md): build build-fuzz/ with clang and fuzz each
# harness FUZZ_SECONDS seconds on its seed corpus.
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz
