#!/usr/bin/env bash
# Runs conv2d forward + backward in graft and in PyTorch side by side on configs/fashion_cnn.toml's
# two convolutions at batch 128, 2 threads; prints one table and exits 1 when graft is slower.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="" seconds=2 repeats=5 threads=2 batch=128 wait_quiet=0 attempts=1
python=/usr/bin/python3  # Debian's python3-torch; not a pyenv python on PATH

usage() {
  cat <<EOF
usage: $0 --bench BUILD/tests/bench/graft_bench_conv [--seconds 2] [--repeats 5]
          [--threads 2] [--batch 128] [--wait-quiet 0] [--attempts 1]
graft and torch alternate --repeats times on each shape, each run --seconds after a warm-up;
the best rate of each side is kept, since other processes on the machine only slow runs down.
Each run waits up to --wait-quiet seconds for the CPUs to be idle, reports the cores other
processes used while it was timed, and runs again (up to --attempts times) above 0.15 cores.
EOF
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --wait-quiet) wait_quiet="$2"; shift 2 ;;
    --attempts) attempts="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ ! -x "$bench" ]]; then
  echo "run_conv_bench.sh: --bench must name the built graft_bench_conv" >&2
  usage >&2
  exit 2
fi
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "run_conv_bench.sh: $python cannot import torch; install Debian's python3-torch" >&2
  exit 2
fi

# The same environment for both sides: torch's OpenMP threads sleep when idle, as OpenBLAS's
# pthreads do.
export OMP_WAIT_POLICY=passive
# As run_mlp_bench.sh: on a shared machine both sides run at the highest priority allowed, nice
# -20 in a new session whose autogroup gets -20 too (needs root or CAP_SYS_NICE; without it,
# runs keep their priority and report the load).
prioritized() {
  setsid --wait bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"' \
    prioritized "$@"
}
priority="$(prioritized bash -c 'echo "nice $(nice)$(sed -n "s/.*nice / autogroup /p" \
  /proc/self/autogroup 2>/dev/null)"')"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
echo "{\"event\":\"machine\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\",\
\"cores\":$(nproc),\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"priority\":\"$priority\",\
\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$results"

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

for shape in conv1 conv2; do
  for ((r = 1; r <= repeats; ++r)); do
    echo "$shape: graft and torch, run $r/$repeats" >&2
    measure prioritized "$bench" --shape "$shape" --batch "$batch" --threads "$threads" \
      --seconds "$seconds"
    measure prioritized "$python" "$here/bench_conv_torch.py" --shape "$shape" --batch "$batch" \
      --threads "$threads" --seconds "$seconds"
  done
done
echo "{\"event\":\"load_after\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$results"

"$python" - "$results" <<'EOF'
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = next(r for r in records if r.get("event") == "machine")
load_after = next(r["load"] for r in records if r.get("event") == "load_after")
runs = [r for r in records if r.get("framework")]
print(f"machine: {machine['cpu']}, {machine['cores']} cores; {machine['date']}")
print(f"load average before {machine['load_before']}, after {load_after}; "
      f"both sides at priority '{machine['priority']}'")
torch_run = next(r for r in runs if r["framework"] == "torch")
print(f"torch {torch_run['torch_version']} (mkldnn {torch_run['mkldnn']}), "
      f"graft's gemm: OpenBLAS {next(r for r in runs if r['framework'] == 'graft')['blas_core']}; "
      f"threads {torch_run['threads']}, batch {torch_run['batch']}, best of "
      f"{sum(1 for r in runs if r['framework'] == 'torch' and r['shape'] == 'conv1')} runs each")
print("other processes took, during the best runs: " + ", ".join(
    f"{s} {side} {best_run['other_load_cores']:.2f} cores"
    for s in ("conv1", "conv2") for side in ("graft", "torch")
    for best_run in [max((r for r in runs if r["shape"] == s and r["framework"] == side),
                         key=lambda r: r["samples_per_s"])]))
print()
print(f"{'shape':32s} {'graft samples/s':>16s} {'torch samples/s':>16s} {'ratio':>7s}"
      f"   graft fwd/bwd ms   torch fwd/bwd ms")
best = {}
for shape in ("conv1", "conv2"):
    for side in ("graft", "torch"):
        best[shape, side] = max((r for r in runs if r["shape"] == shape and r["framework"] == side),
                                key=lambda r: r["samples_per_s"])
    g, t = best[shape, "graft"], best[shape, "torch"]
    c, h, w = g["input"]
    name = f"{shape} ({c},{h},{w})->{g['out_channels']}{'' if g['needs_dx'] else ', no dx'}"
    print(f"{name:32s} {g['samples_per_s']:16.0f} {t['samples_per_s']:16.0f} "
          f"{g['samples_per_s'] / t['samples_per_s']:6.2f}x   "
          f"{g['forward_ms']:7.1f} {g['backward_ms']:7.1f}    "
          f"{t['forward_ms']:7.1f} {t['backward_ms']:7.1f}")
# Both convolutions per sample: the CNN's whole convolution time.
rate = {side: 1.0 / sum(1.0 / best[s, side]["samples_per_s"] for s in ("conv1", "conv2"))
        for side in ("graft", "torch")}
print(f"{'both (the CNN per sample)':32s} {rate['graft']:16.0f} {rate['torch']:16.0f} "
      f"{rate['graft'] / rate['torch']:6.2f}x")
slower = [s for s in ("conv1", "conv2")
          if best[s, "graft"]["samples_per_s"] < best[s, "torch"]["samples_per_s"]]
if slower:
    print(f"\nGOAL MISSED: graft is slower than torch on {', '.join(slower)} (goal >= 1.0x)")
    sys.exit(1)
print("\ngoal met: graft >= 1.0x torch on each shape")
EOF
