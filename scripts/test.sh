#!/usr/bin/env bash
# The whole test suite from a fresh checkout: install dependencies, build with warnings as
# errors, run every CTest test except benchmarks (label bench). Build folder: build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE bench
