#!/usr/bin/env bash
# The sanitizer and fuzzing part of the test suite (README "Sanitizers and fuzzing"); the
# README's test command, scripts/test.sh, runs it after the release build's tests.
#   1. build-asan (clang, AddressSanitizer + UndefinedBehaviorSanitizer, fuzz targets): the
#      unit, plugin, integration and mpi tests, and every fuzz corpus replayed (label fuzz).
#   2. Each fuzz target fuzzed for FUZZ_SECONDS (default 60) from its corpus.
#   3. build-tsan (clang, ThreadSanitizer): the tests of threaded code (label threads).
# Any sanitizer report fails the test that made it. Run as root on Debian 12 after
# scripts/install_deps.sh. `--asan`, `--fuzz`, `--tsan` run one part alone.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=("$@")
((${#parts[@]})) || parts=(--asan --fuzz --tsan)
jobs="$(nproc)"
export CC=clang CXX=clang++
# Leak detection is off: OpenMPI and OpenBLAS keep allocations for the life of the process.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/sanitizers/tsan.supp"

started=$SECONDS
stamp() { printf '== %s: %d s\n' "$1" $((SECONDS - started)); }

for part in "${parts[@]}"; do
  case "$part" in
    --asan)
      cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DGRAFT_SANITIZE=address,undefined -DGRAFT_FUZZ=ON
      cmake --build build-asan -j"$jobs"
      stamp "ASan+UBSan build"
      ctest --test-dir build-asan --output-on-failure -j"$jobs" -L "unit|plugin|integration|mpi|fuzz"
      stamp "ASan+UBSan tests"
      ;;
    --fuzz)
      bash tests/fuzz/run_fuzzers.sh build-asan "${FUZZ_SECONDS:-60}"
      stamp "fuzzing"
      ;;
    --tsan)
      cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_SANITIZE=thread
      cmake --build build-tsan -j"$jobs" --target graft_thread_tests
      stamp "TSan build"
      ctest --test-dir build-tsan --output-on-failure -j"$jobs" -L threads
      stamp "TSan tests"
      ;;
    *) echo "sanitize.sh: unknown part '$part' (use --asan, --fuzz, --tsan)" >&2; exit 2 ;;
  esac
done
