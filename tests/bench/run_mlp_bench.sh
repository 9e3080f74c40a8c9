#!/usr/bin/env bash
# Runs graft and PyTorch side by side on three MLP shapes, times `graft validate`, and prints
# one table (mlp_bench_report.py); exits 1 when a goal of tests/bench/RESULTS.md is missed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(cd "$here/../.." && pwd)"
bench="" graft="" seconds=4 repeats=2 profile="" validate_runs=10 wait_quiet=0 attempts=1 save=""
config="$source_dir/configs/fashion_mlp.toml"
python=/usr/bin/python3  # Debian's python3-torch; not a pyenv python on PATH

usage() {
  cat <<EOF
usage: $0 --bench BUILD/tests/bench/graft_bench_mlp --graft BUILD/graft
          [--seconds 4] [--repeats 2] [--validate-runs 10] [--wait-quiet 0] [--attempts 1]
          [--profile] [--save FILE]
Each measurement runs --seconds after a 1 s warm-up; graft and torch alternate --repeats times
and the best rate of each is kept (other processes only ever slow a run down). --wait-quiet S
waits up to S seconds before each measurement for the CPUs to be 90% idle; each run reports the
cores other processes used while it was timed, and --attempts N runs a measurement again (up
to N times in all) while that exceeds 0.15 cores. --profile adds graft's per-phase breakdown.
--save FILE keeps every run's JSON line.
EOF
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --graft) graft="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --validate-runs) validate_runs="$2"; shift 2 ;;
    --wait-quiet) wait_quiet="$2"; shift 2 ;;
    --attempts) attempts="$2"; shift 2 ;;
    --profile) profile="--profile"; shift ;;
    --save) save="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ ! -x "$bench" || ! -x "$graft" ]]; then
  echo "run_mlp_bench.sh: --bench and --graft must name the built executables" >&2
  usage >&2
  exit 2
fi
bench="$(realpath "$bench")" graft="$(realpath "$graft")"
[[ -n "$save" ]] && save="$(realpath "$save")"
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "run_mlp_bench.sh: $python cannot import torch; install Debian's python3-torch" >&2
  exit 2
fi

# The same environment for both sides: torch's OpenMP threads sleep when idle, as OpenBLAS's
# pthreads do; OPENBLAS_* variables are left as the caller set them.
export OMP_WAIT_POLICY=passive
threads=2
# On a shared machine, both sides run at the highest priority allowed, so that background jobs
# take as little of their CPU as possible: nice -20, and, where the kernel groups each session's
# processes (autogroup: nice only counts within a group), a new session whose group gets -20
# too. Both need root or CAP_SYS_NICE; without, runs keep their priority and report the load.
prioritized() {
  setsid --wait bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"' \
    prioritized "$@"
}
priority="$(prioritized bash -c 'echo "nice $(nice)$(sed -n "s/.*nice / autogroup /p" \
  /proc/self/autogroup 2>/dev/null)"')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"

echo "{\"event\":\"machine\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\",\
\"cores\":$(nproc),\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\
\"priority\":\"$priority\",\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\
\"openblas_env\":\"$(env | grep '^OPENBLAS_' | tr '\n' ' ')\"}" >> "$results"

# Waits up to $wait_quiet seconds for 3 consecutive seconds with the CPUs >= 90% idle.
wait_for_quiet() {
  local waited=0 calm=0 busy idle total previous_idle previous_total
  read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
  previous_idle=$((idle + iowait))
  previous_total=$((user + nice + system + idle + iowait + irq + softirq + steal))
  while ((waited < wait_quiet && calm < 3)); do
    sleep 1
    waited=$((waited + 1))
    read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
    total=$((user + nice + system + idle + iowait + irq + softirq + steal))
    busy=$((100 - 100 * (idle + iowait - previous_idle) / (total - previous_total)))
    previous_idle=$((idle + iowait)) previous_total=$total
    if ((busy <= 10)); then calm=$((calm + 1)); else calm=0; fi
  done
  if ((wait_quiet > 0 && calm < 3)); then
    echo "  (the machine stayed busy for ${wait_quiet}s; measuring anyway)" >&2
  fi
}

# Runs one measurement (the command prints one JSON line) and keeps it; runs it again, up to
# $attempts times, while other processes took more than 0.15 cores during the timed part.
measure() {
  local attempt line load
  for ((attempt = 1; attempt <= attempts; ++attempt)); do
    wait_for_quiet
    line="$("$@")"
    echo "$line" >> "$results"
    load="$(sed -n 's/.*"other_load_cores": *\([0-9.eE+-]*\).*/\1/p' <<< "$line")"
    if awk -v load="$load" 'BEGIN { exit !(load < 0.15) }'; then return; fi
    echo "  other processes took $load cores during that run" >&2
  done
}

shapes=("784,256,128,10 64" "784,1024,1024,10 256" "784,4096,4096,10 512")
for shape in "${shapes[@]}"; do
  read -r layers batch <<< "$shape"
  for ((r = 0; r < repeats; ++r)); do
    echo "graft $layers batch $batch (run $((r + 1))/$repeats)" >&2
    measure prioritized "$bench" --layers "$layers" --batch "$batch" --seconds "$seconds" \
      --threads "$threads" --sgemm-seconds 1.5 $profile
    echo "torch $layers batch $batch (run $((r + 1))/$repeats)" >&2
    measure prioritized "$python" "$here/bench_mlp_torch.py" --layers "$layers" \
      --batch "$batch" --seconds "$seconds" --threads "$threads"
  done
done

# graft validate: the first run in a fresh folder unpacks the data cache (cold); then warm runs.
mkdir -p "$work/validate"
cd "$work/validate"
validate_once() {
  local start end internal
  start=$EPOCHREALTIME
  prioritized "$graft" validate "$config" > "$work/validate.out"
  end=$EPOCHREALTIME
  internal="$(sed -n 's/^checked in \([0-9.]*\) ms$/\1/p' "$work/validate.out")"
  echo "{\"event\":\"validate\",\"kind\":\"$1\",\"start\":$start,\"end\":$end,\
\"internal_ms\":${internal:-null}}" >> "$results"
}
echo "graft validate $config: 1 cold + $validate_runs warm runs" >&2
wait_for_quiet
validate_once cold
for ((i = 0; i < validate_runs; ++i)); do validate_once warm; done
cd "$source_dir"
echo "{\"event\":\"load_after\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$results"

[[ -n "$save" ]] && cp "$results" "$save"
"$python" "$here/mlp_bench_report.py" "$results"
