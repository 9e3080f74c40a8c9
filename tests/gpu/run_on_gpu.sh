#!/usr/bin/env bash
# Runs graft's GPU checks on a machine with a GPU and the CUDA toolkit but none of graft's
# Debian packages, from a build made elsewhere (CI or a developer machine, GRAFT_CUDA on).
#
#   On the build machine:  tests/gpu/run_on_gpu.sh --bundle BUILD OUT
#     copies BUILD's graft, its CUDA, NCCL and MPI modules, plugins, GPU test executables and GPU
#     benchmark into OUT, with the shared libraries they need that are not glibc's, libstdc++'s
#     or CUDA's (OpenBLAS, Boost.Program_options, fmt, zlib, ...) in OUT/lib, and the configs
#     with their data (Fashion-MNIST from the Debian package, 30 MB) for the config test.
#   On the GPU machine:    OUT/run_on_gpu.sh   (this script, copied there; or --run OUT)
#     prints the GPU (nvidia-smi), runs every GPU test (a skip, exit 77, counts as a failure
#     here: this script is for machines that have a GPU), `graft validate` on a cuda config,
#     then the GPU benchmark (about a minute): graft vs PyTorch (python3 on PATH, or
#     $GRAFT_PYTHON) training 784-4096-4096-10 at batch 1024 and 4096, one table with PASS or
#     MISS per goal: samples/s >= 1.0x PyTorch's, TFLOP/s >= 80% of cuBLAS's own sgemm rate on
#     the same products. GRAFT_GPU_BENCH=0 skips it; GRAFT_GPU_BENCH_SAVE=FILE keeps its JSON.
#     Exit status 1 when a test failed, or a goal was missed or a side could not be measured.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
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
  # test_configs_cuda trains every config on both devices: the configs, their small data, and
  # Fashion-MNIST (the Debian package's files) when this machine has it.
  local source_dir
  source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
  mkdir -p "$out/source"
  cp -r "$source_dir/configs" "$out/source/"
  if [[ -d /usr/share/datasets/fashion-mnist ]]; then
    mkdir -p "$out/data"
    cp -r /usr/share/datasets/fashion-mnist "$out/data/"
  else
    echo "run_on_gpu.sh: no /usr/share/datasets/fashion-mnist here (dataset-fashion-mnist):" \
         "the bundle's config test will find no Fashion-MNIST" >&2
  fi
  local files=("$out/graft" "$out"/libgraft_*.so "$out"/plugins/*.so "$out"/tests/*)
  if [[ -x "$build/tests/bench/graft_bench_mlp_gpu" ]]; then
    local sources
    sources="$(cd "$(dirname "$0")/../bench" && pwd)"
    mkdir -p "$out/bench"
    cp "$build/tests/bench/graft_bench_mlp_gpu" "$sources/run_mlp_gpu_bench.py" \
       "$sources/bench_mlp_torch.py" "$out/bench/"
    files+=("$out/bench/graft_bench_mlp_gpu")
  else
    echo "run_on_gpu.sh: $build has no tests/bench/graft_bench_mlp_gpu; bundling without the GPU" \
         "benchmark (cmake --build $build --target graft_bench_mlp_gpu)" >&2
  fi
  # Libraries outside glibc, the C++ runtime and CUDA, which the GPU machine brings itself.
  ldd "${files[@]}" 2>/dev/null | awk '/=> \// { print $3 }' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda*|libcublas*|libnccl*|libnvidia*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
  echo "bundled into $out: $(ls "$out/lib" | wc -l) libraries; copy it to the GPU machine and run $out/run_on_gpu.sh"
}

# The benchmark's driver (bench/run_mlp_gpu_bench.py) gives graft the bundle's libraries and
# PyTorch the library path the machine had, so that torch loads the CUDA libraries it came with.
benchmark() {
  local here="$1" machine_library_path="$2" python
  if [[ "${GRAFT_GPU_BENCH:-1}" == 0 ]]; then
    echo "== GPU benchmark skipped (GRAFT_GPU_BENCH=0)"
    return 0
  fi
  echo "== GPU benchmark: graft vs PyTorch, 784-4096-4096-10 at batch 1024 and 4096"
  if [[ ! -x "$here/bench/graft_bench_mlp_gpu" ]]; then
    echo "FAILED: this bundle has no bench/graft_bench_mlp_gpu (bundled from a build without it)"
    return 1
  fi
  python="${GRAFT_PYTHON:-$(command -v python3 || true)}"
  if [[ -z "$python" ]]; then
    echo "FAILED: no python3 on PATH (set GRAFT_PYTHON): no PyTorch side and no table; graft alone:"
    for batch in 1024 4096; do
      "$here/bench/graft_bench_mlp_gpu" --layers 784,4096,4096,10 --batch "$batch" \
        --plugin-dir "$here/plugins" || true
    done
    return 1
  fi
  LD_LIBRARY_PATH="$machine_library_path" "$python" "$here/bench/run_mlp_gpu_bench.py" \
    --bench "$here/bench/graft_bench_mlp_gpu" --plugin-dir "$here/plugins" \
    --library-path "$here/lib:/usr/local/cuda/lib64" --python "$python" --layers 784,4096,4096,10 \
    --batches 1024,4096 --seconds 3 ${GRAFT_GPU_BENCH_SAVE:+--save "$GRAFT_GPU_BENCH_SAVE"}
}

# The kernel tests again under compute-sanitizer (CUDA's memcheck and racecheck: out-of-bounds
# and misaligned device accesses, shared-memory races), where the toolkit has it. The config
# test (graft in child processes) and the multi-rank NCCL test are left out: the tool follows
# one process, and they launch no kernel the others do not. GRAFT_GPU_SANITIZE=0 skips this.
compute_sanitizer() {
  local here="$1" tool failed=0
  tool="$(command -v compute-sanitizer || true)"
  [[ -z "$tool" && -x /usr/local/cuda/bin/compute-sanitizer ]] && tool=/usr/local/cuda/bin/compute-sanitizer
  if [[ "${GRAFT_GPU_SANITIZE:-1}" == 0 || -z "$tool" ]]; then
    echo "== compute-sanitizer skipped ($([[ -z "$tool" ]] && echo 'not installed' || echo 'GRAFT_GPU_SANITIZE=0'))"
    return 0
  fi
  for check in memcheck racecheck; do
    for test in "$here"/tests/gpu_test_*; do
      case "$(basename "$test")" in gpu_test_configs_cuda|gpu_test_nccl_comm_ranks) continue ;; esac
      echo "== compute-sanitizer --tool $check $(basename "$test")"
      set +e
      "$tool" --tool "$check" --error-exitcode 86 "$test"
      local rc=$?
      set -e
      if [[ $rc -ne 0 && $rc -ne 77 ]]; then
        echo "FAILED: $(basename "$test") under $check, exit $rc"
        failed=1
      fi
    done
  done
  return "$failed"
}

run() {
  local here="$1" machine_library_path="${LD_LIBRARY_PATH:-}"
  export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GRAFT_TEST_PLUGIN_DIR="$here/plugins" GRAFT_CUDA_MODULE="$here/libgraft_device_cuda.so"
  # Where the tests find what the build machine had at fixed paths.
  export GRAFT_TEST_EXECUTABLE="$here/graft" GRAFT_TEST_SOURCE_DIR="$here/source"
  export GRAFT_TEST_FASHION_MNIST="$here/data/fashion-mnist"
  GRAFT_TEST_TMP="$(mktemp -d)"
  export GRAFT_TEST_TMP
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  local failed=0
  for test in "$here"/tests/gpu_test_*; do
    echo "== $(basename "$test")"
    local log
    log="$(mktemp)"
    set +e
    "$test" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    # A test that needs more GPUs than the machine has is a skip here too; any other skip means
    # the GPU was not usable, which is what this script is run to check.
    if [[ $rc -eq 77 ]] && grep -q "fewer than 2 GPUs" "$log"; then
      echo "skipped: $(basename "$test") needs 2 GPUs"
    elif [[ $rc -ne 0 ]]; then
      echo "FAILED: $(basename "$test") exit $rc$([[ $rc -eq 77 ]] && echo ' (skipped: no usable GPU)')"
      failed=1
    fi
    rm -f "$log"
  done
  local config
  config="$(mktemp -d)/cuda.toml"
  printf '[run]\nname = "gpu"\ndevice = "cuda"\nsteps = 1\n[data]\nreader = "synthetic"\n%s\n%s\n%s\n' \
    'kind = "blobs"' 'features = 4' 'classes = 2' > "$config"
  printf '[[model.layers]]\ntype = "relu"\n[loss]\ntype = "cross_entropy"\n' >> "$config"
  printf '[optimizer]\ntype = "sgd"\n' >> "$config"
  echo "== graft validate on a cuda config"
  "$here/graft" validate "$config" --plugin-dir "$here/plugins" || true
  compute_sanitizer "$here" || failed=1
  benchmark "$here" "$machine_library_path" || failed=1
  exit "$failed"
}

case "${1:-}" in
  --bundle) [[ $# -eq 3 ]] || { usage >&2; exit 2; }; bundle "$2" "$3" ;;
  --run) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; run "$(cd "$2" && pwd)" ;;
  -h|--help) usage ;;
  "") run "$(cd "$(dirname "$0")" && pwd)" ;;
  *) usage >&2; exit 2 ;;
esac
