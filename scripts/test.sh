#!/usr/bin/env bash
# The whole test suite from a fresh checkout: install dependencies, check the style (format
# and line budget, scripts/check_style.sh), build with warnings as errors, run every CTest test
# except benchmarks (label bench) in build/, then the sanitizer and fuzzing builds
# (scripts/sanitize.sh: ASan+UBSan, the fuzz targets, TSan).
# `--quick` stops after the release build's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/check_style.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE bench
echo "== release build and tests: $SECONDS s"
if [[ "${1:-}" != "--quick" ]]; then bash scripts/sanitize.sh; fi
