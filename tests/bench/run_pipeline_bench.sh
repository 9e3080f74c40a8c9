#!/usr/bin/env bash
# The pipeline's measured idle fraction per stage next to the predicted bubble (p-1)/(m+p-1),
# for 2 and 4 stages and 4, 8 and 16 micro-batches, in one run (goal: within 5 percentage
# points). Each case trains a synthetic MLP of equal stages under mpirun and reads the
# strategy event of its last epoch from metrics.jsonl; the first epoch is a warm-up.
set -euo pipefail

graft="" stages_list="2 4" micro_list="4 8 16" schedule="1f1b" steps=10 batch=512 width=1024
threads=1 keep="" warmup_extra=1
mpirun_cmd="${MPIEXEC:-mpirun}"

usage() {
  cat <<EOF
usage: $0 --graft BUILD/graft [--stages "2 4"] [--micro "4 8 16"] [--schedule 1f1b|gpipe]
          [--steps 10] [--batch 512] [--width 1024] [--threads 1] [--warmup-extra 1]
          [--keep DIR]
Trains a flatten, 4 linear layers (width x width, relu) and a small head, --steps steps per
measured epoch after a warm-up epoch, one stage per rank, --threads OpenBLAS threads per rank.
--warmup-extra is the pipeline's warmup_extra (1f1b: forwards run ahead, for slack).
Stages on more ranks than this machine has cores share them: a stage's compute then slows
down whenever others compute too, which the formula (a device per stage) does not model; the
table says so. Waits sleep then (the MPI communicator sees the node is oversubscribed), so a
waiting stage does not take a core from a computing one. Exits 1 when a case misses the 5-point goal, 2 on bad usage.
EOF
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --graft) graft="$2"; shift 2 ;;
    --stages) stages_list="$2"; shift 2 ;;
    --micro) micro_list="$2"; shift 2 ;;
    --schedule) schedule="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --warmup-extra) warmup_extra="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ ! -x "$graft" ]]; then
  echo "run_pipeline_bench.sh: --graft must name the built graft executable" >&2
  usage >&2
  exit 2
fi
graft="$(realpath "$graft")"
work="${keep:-$(mktemp -d)}"
mkdir -p "$work"
[[ -z "$keep" ]] && trap 'rm -rf "$work"' EXIT
mpi_flags=()
if "$mpirun_cmd" --version 2>/dev/null | grep -q "Open MPI\|OpenRTE"; then
  mpi_flags=(--oversubscribe --allow-run-as-root --bind-to none)
fi

config="$work/pipeline_bench.toml"
{
  printf '[run]\nname = "bench"\nseed = 1\nepochs = 2\nthreads = %d\nprogress = "none"\n' "$threads"
  printf 'log_every = 1000000\noutput_dir = "%s"\n' "$work/runs"
  printf '[data]\nreader = "synthetic"\nkind = "blobs"\nfeatures = %d\nclasses = 16\n' "$width"
  printf 'samples = %d\ntest_samples = 16\nbatch_size = %d\nshuffle = false\n' \
    "$((steps * batch))" "$batch"
  # The bubble formula assumes stages alike, forward and backward. The model's first layer
  # computes no input gradient, so a first linear would make stage 0 lighter in backward than
  # the others: a flatten (no parameters, no work) goes first and every linear does all three
  # products.
  printf '[[model.layers]]\ntype = "flatten"\n'
  for _ in 1 2 3 4; do
    printf '[[model.layers]]\ntype = "linear"\nunits = %d\nactivation = "relu"\n' "$width"
  done
  printf '[[model.layers]]\ntype = "linear"\nunits = 16\n'
  printf '[loss]\ntype = "cross_entropy"\n[optimizer]\ntype = "sgd"\nlr = 0.01\n'
  printf '[parallel]\nstrategy = "pipeline"\nschedule = "%s"\nwarmup_extra = %d\n' \
    "$schedule" "$warmup_extra"
} > "$config"

cores="$(nproc)"
printf 'pipeline bubble, %s (warmup_extra %d), batch %d, 4 x linear %d, %d thread(s) per rank, %d cores\n' \
  "$schedule" "$warmup_extra" "$batch" "$width" "$threads" "$cores"
printf '%-7s %-6s %-10s %-28s %-10s %s\n' stages micro predicted "measured idle per stage" \
  "worst diff" verdict
missed=0
for p in $stages_list; do
  for m in $micro_list; do
    run="$work/runs/p${p}_m${m}"
    rm -rf "$run"
    if ! "$mpirun_cmd" "${mpi_flags[@]}" -np "$p" "$graft" train "$config" \
        --set parallel.micro_batches="$m" --set run.output_dir="$run" > "$work/log" 2>&1; then
      echo "stages $p micro $m: graft train failed:" >&2
      tail -20 "$work/log" >&2
      exit 1
    fi
    line="$(python3 - "$run/bench/metrics.jsonl" "$p" "$m" "$threads" "$cores" <<'EOF'
import json, sys
path, p, m, threads, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
shared = p * threads > cores
events = [json.loads(l) for l in open(path) if '"strategy"' in l]
last = events[-1]  # the second epoch: the first warmed up
predicted = (p - 1) / (m + p - 1)
idle = [last[f"idle_stage{s}"] for s in range(p)]
worst = max(abs(i - predicted) for i in idle)
verdict = "ok" if worst <= 0.05 else "MISSED"
if shared:
    verdict += f" ({p * threads} ranks x threads share {cores} cores)"
print(f"{p:<7} {m:<6} {100 * predicted:5.1f}%     " +
      f"{' '.join(f'{100 * i:5.1f}%' for i in idle):<28} {100 * worst:5.1f} pp   {verdict}")
EOF
)"
    echo "$line"
    [[ "$line" == *MISSED* ]] && missed=1
  done
done
exit "$missed"
