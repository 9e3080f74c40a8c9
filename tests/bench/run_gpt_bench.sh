#!/usr/bin/env bash
# Runs graft and PyTorch side by side on configs/char_gpt.toml's GPT: training step speed and
# peak RSS at context 128 and 512, one long-context attention pass, and graft's cached
# generation against --no-cache; prints the tables (gpt_bench_report.py), exits 1 on a missed goal.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(cd "$here/../.." && pwd)"
graft="" bench_attention="" steps=25 log_every=5 seconds=8 save="" gen_steps=50
contexts="128 512" long_contexts="1024 2048 4096"
config="$source_dir/configs/char_gpt.toml"
python=/usr/bin/python3  # Debian's python3-torch; not a pyenv python on PATH

usage() {
  cat <<EOF
usage: $0 --graft BUILD/graft --bench-attention BUILD/tests/bench/graft_bench_attention
          [--steps 25] [--log-every 5] [--seconds 8] [--contexts "128 512"]
          [--long-contexts "1024 2048 4096"] [--generate-steps 50] [--save FILE]
graft trains --steps steps per context (the first --log-every are its warm-up, the rest are
timed from its metrics.jsonl); torch times --seconds of steps after a warm-up, once with
nn.MultiheadAttention and once with a written-out attention, each in its own process.
--generate-steps trains the checkpoint that graft generate then samples 500 tokens from.
--save FILE keeps every measurement's JSON line.
EOF
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --graft) graft="$2"; shift 2 ;;
    --bench-attention) bench_attention="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --log-every) log_every="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --contexts) contexts="$2"; shift 2 ;;
    --long-contexts) long_contexts="$2"; shift 2 ;;
    --generate-steps) gen_steps="$2"; shift 2 ;;
    --save) save="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ ! -x "$graft" || ! -x "$bench_attention" ]]; then
  echo "run_gpt_bench.sh: --graft and --bench-attention must name the built executables" >&2
  usage >&2
  exit 2
fi
graft="$(realpath "$graft")" bench_attention="$(realpath "$bench_attention")"
[[ -n "$save" ]] && save="$(realpath -m "$save")"
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "run_gpt_bench.sh: $python cannot import torch; install Debian's python3-torch" >&2
  exit 2
fi

# The same environment for both sides: 2 threads, OpenMP threads that sleep when idle as
# OpenBLAS's do; OPENBLAS_* variables are left as the caller set them.
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
echo "{\"event\":\"machine\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\",\
\"cores\":$(nproc),\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\
\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\
\"openblas_env\":\"$(env | grep '^OPENBLAS_' | tr '\n' ' ')\"}" >> "$results"

# Peak RSS in bytes of the command /usr/bin/time -v ran, from its report in file $1.
peak_rss() { echo $(($(sed -n 's/.*Maximum resident set size (kbytes): //p' "$1") * 1024)); }

# graft train at context $1 for $steps steps, no evaluation; metrics.jsonl's train events after
# the first window are the timed steps.
graft_speed() {
  local context="$1" run="$work/runs" name="speed_$1"
  echo "graft train, context $context, $steps steps" >&2
  /usr/bin/time -v -o "$work/time_$context.txt" "$graft" train "$config" \
    --set run.steps="$steps" --set run.log_every="$log_every" --set run.eval_every=1000000000 \
    --set run.threads=2 --set run.progress=none --set "run.output_dir=\"$run\"" \
    --set "run.name=\"$name\"" --set data.context="$context" --set data.eval_batch_size=32 \
    --set model.layers.1.max_positions="$context" > "$work/train_$context.log" 2>&1 ||
    { cat "$work/train_$context.log" >&2; exit 2; }
  "$python" - "$run/$name/metrics.jsonl" "$context" "$(peak_rss "$work/time_$context.txt")" \
    "$log_every" <<'EOF' >> "$results"
import json, sys
path, context, rss, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
events = [e for e in map(json.loads, open(path)) if e.get("event") == "train"]
timed = events[1:]  # the first window holds the warm-up steps
seconds = sum(window * 32 / e["samples_per_s"] for e in timed)
print(json.dumps({"event": "speed", "framework": "graft", "context": context, "batch": 32,
                  "steps": window * len(timed), "seconds": seconds,
                  "samples_per_s": window * len(timed) * 32 / seconds,
                  "last_loss": events[-1]["loss"], "peak_rss_bytes": rss}))
EOF
}

for context in $contexts; do
  graft_speed "$context"
  echo "torch, context $context: nn.MultiheadAttention, then the written-out attention" >&2
  "$python" "$here/gpt_reference.py" --speed --context "$context" --seconds "$seconds" \
    --attention both >> "$results"
done

for context in $long_contexts; do
  echo "attention forward + backward at T = $context, C = 256, batch 1" >&2
  "$bench_attention" --context "$context" --width 256 --heads 4 >> "$results"
  "$python" "$here/gpt_reference.py" --attention-only --context "$context" --width 256 \
    --heads 4 >> "$results"
done

# Generation needs a trained checkpoint: a short run, then 500 tokens with and without the
# layers' key-value caches.
echo "graft train $gen_steps steps for the generation checkpoint" >&2
"$graft" train "$config" --set run.steps="$gen_steps" --set run.eval_every=1000000000 \
  --set run.threads=2 --set run.progress=none --set "run.output_dir=\"$work/runs\"" \
  --set 'run.name="generate"' > "$work/generate_train.log" 2>&1 ||
  { cat "$work/generate_train.log" >&2; exit 2; }
for cache in cached no-cache; do
  flag=""
  [[ "$cache" == no-cache ]] && flag="--no-cache"
  echo "graft generate, 500 tokens, $cache" >&2
  "$graft" generate "$config" --checkpoint "$work/runs/generate" --tokens 500 --seed 1 \
    --set run.threads=2 $flag > "$work/generate_$cache.txt" 2> "$work/generate_$cache.err" ||
    { cat "$work/generate_$cache.err" >&2; exit 2; }
  rate="$(sed -n 's/.*(\([0-9.]*\) tokens\/s.*/\1/p' "$work/generate_$cache.err" | tail -1)"
  echo "{\"event\":\"generate\",\"cache\":\"$cache\",\"tokens_per_s\":${rate:-null}}" >> "$results"
done
echo "{\"event\":\"load_after\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$results"

[[ -n "$save" ]] && cp "$results" "$save"
"$python" "$here/gpt_bench_report.py" "$results"
