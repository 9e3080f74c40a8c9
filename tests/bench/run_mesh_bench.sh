#!/usr/bin/env bash
# The mesh benchmark (mesh_bench.py): the full verify matrix on 4 and 8 ranks, ZeRO-1's speed
# against plain data parallel on 2 ranks, and per-rank memory (peak RSS and validate's plan)
# for 784-4096-4096-10. Run from the build folder's parent or pass --config.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$here/mesh_bench.py" "$@"
