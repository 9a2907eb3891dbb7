# The two commands of the quick start:
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, run every test
# Everything else is CMake underneath (build/ and build-asan/).

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run test test-unit test-asan bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: the quick-start sweep on 2 MPI ranks (resumes if rerun).
run: build
	@mkdir -p results
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	  mpirun --oversubscribe -n 2 $(BUILD)/qblind run configs/quickstart.yaml -o results/quickstart.h5

# Every test: the unit suites and the real-training checks in the Release
# build, then the unit suites again under AddressSanitizer + UBSan.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

# Optimised (-O2 -g): the sanitizers keep their checks, and the suites that
# train small models run in a fraction of the -O0 time.
test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQBLIND_SANITIZE=ON -DQBLIND_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -L unit -j $(JOBS)

bench: build
	bench/train_vs_torch.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
