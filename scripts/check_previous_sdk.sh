#!/usr/bin/env bash
# Usage: scripts/check_previous_sdk.sh REV [BUILD_DIR]
# ABI check across releases: builds git revision REV (CPU only) in a worktree, installs it, builds
# REV's sdk/examples plugins against REV's installed SDK, and has this tree's graft (BUILD_DIR,
# default build/) list, check-plugin and train them (tests/sdk/out_of_tree_example.sh). Passing
# means plugins built against REV's SDK still load and train here.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1 build=${2:-build}
work="${TMPDIR:-/tmp}/graft_previous_sdk"
rm -rf "$work" && mkdir -p "$work"
git worktree add --detach "$work/src" "$rev" >/dev/null
trap 'git worktree remove --force "$work/src"' EXIT
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=OFF >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null
echo "== plugins built against the SDK of $(git rev-parse --short "$rev"), loaded by this build"
bash tests/sdk/out_of_tree_example.sh "$build" "$work/src/sdk/examples" "$work/run" "$work/prefix"
