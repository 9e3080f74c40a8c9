#!/usr/bin/env bash
# Runs graft's GPU checks on a machine with a GPU and the CUDA toolkit but none of graft's
# Debian packages, from a build made elsewhere (CI or a developer machine, GRAFT_CUDA on).
#
#   On the build machine:  tests/gpu/run_on_gpu.sh --bundle BUILD OUT
#     copies BUILD's graft, its CUDA and MPI modules, plugins and GPU test executables into OUT,
#     with the shared libraries they need that are not glibc's, libstdc++'s or CUDA's (OpenBLAS,
#     Boost.Program_options, fmt, zlib, ...) in OUT/lib.
#   On the GPU machine:    OUT/run_on_gpu.sh   (this script, copied there; or --run OUT)
#     prints the GPU (nvidia-smi), runs every GPU test (a skip, exit 77, counts as a failure
#     here: this script is for machines that have a GPU), and `graft validate` on a cuda config.
#
# The GPU benchmark of the CUDA issue (graft vs PyTorch, 784-4096-4096-10 at batch 1024 and
# 4096) needs the model to train on the GPU, which this graft does not do yet: it is not here.
set -euo pipefail

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

bundle() {
  local build="$1" out="$2"
  [[ -x "$build/graft" ]] || { echo "run_on_gpu.sh: $build/graft is not a built graft" >&2; exit 2; }
  [[ -f "$build/libgraft_device_cuda.so" ]] ||
    { echo "run_on_gpu.sh: $build has no libgraft_device_cuda.so (configure with -DGRAFT_CUDA=ON)" >&2; exit 2; }
  mkdir -p "$out/lib" "$out/plugins" "$out/tests"
  cp "$build/graft" "$build"/libgraft_*.so "$out/"
  cp "$build"/plugins/*.so "$out/plugins/"
  cp "$build"/tests/gpu/gpu_test_* "$out/tests/"
  cp "$0" "$out/run_on_gpu.sh"
  # Libraries outside glibc, the C++ runtime and CUDA, which the GPU machine brings itself.
  local files=("$out/graft" "$out"/libgraft_*.so "$out"/plugins/*.so "$out"/tests/*)
  ldd "${files[@]}" 2>/dev/null | awk '/=> \// { print $3 }' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda*|libcublas*|libnccl*|libnvidia*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
  echo "bundled into $out: $(ls "$out/lib" | wc -l) libraries; copy it to the GPU machine and run $out/run_on_gpu.sh"
}

run() {
  local here="$1"
  export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GRAFT_TEST_PLUGIN_DIR="$here/plugins" GRAFT_CUDA_MODULE="$here/libgraft_device_cuda.so"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  local failed=0
  for test in "$here"/tests/gpu_test_*; do
    echo "== $(basename "$test")"
    set +e
    "$test"
    local rc=$?
    set -e
    if [[ $rc -ne 0 ]]; then
      echo "FAILED: $(basename "$test") exit $rc$([[ $rc -eq 77 ]] && echo ' (skipped: no usable GPU)')"
      failed=1
    fi
  done
  local config
  config="$(mktemp -d)/cuda.toml"
  printf '[run]\nname = "gpu"\ndevice = "cuda"\nsteps = 1\n[data]\nreader = "synthetic"\n%s\n%s\n%s\n' \
    'kind = "blobs"' 'features = 4' 'classes = 2' > "$config"
  printf '[[model.layers]]\ntype = "relu"\n[loss]\ntype = "cross_entropy"\n' >> "$config"
  printf '[optimizer]\ntype = "sgd"\n' >> "$config"
  echo "== graft validate on a cuda config"
  "$here/graft" validate "$config" --plugin-dir "$here/plugins" || true
  exit "$failed"
}

case "${1:-}" in
  --bundle) [[ $# -eq 3 ]] || { usage >&2; exit 2; }; bundle "$2" "$3" ;;
  --run) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; run "$(cd "$2" && pwd)" ;;
  -h|--help) usage ;;
  "") run "$(cd "$(dirname "$0")" && pwd)" ;;
  *) usage >&2; exit 2 ;;
esac
