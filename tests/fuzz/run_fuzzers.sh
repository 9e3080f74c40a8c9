#!/usr/bin/env bash
# Fuzzes each libFuzzer target of a GRAFT_FUZZ build for a fixed time, from its corpus in
# tests/fuzz/corpus/<target>, as many at once as there are cores. New inputs go to
# BUILD/fuzz-work/<target> (not the repo); a crash, a sanitizer report, a hang (-timeout)
# or memory past -rss_limit_mb is saved as BUILD/fuzz-findings/<target>/crash-* and fails the run.
# A finding, once fixed, is copied into corpus/<target>/ as a regression input (crash_<what>).
#
#   usage: tests/fuzz/run_fuzzers.sh BUILD SECONDS [TARGET ...]     (default: every target)
#   e.g.   tests/fuzz/run_fuzzers.sh build-asan 600                 (the 10-minute runs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:?usage: run_fuzzers.sh BUILD SECONDS [TARGET ...]}" && pwd)"
seconds="${2:?usage: run_fuzzers.sh BUILD SECONDS [TARGET ...]}"
shift 2
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$here"/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {
  local t="$1" work="$build/fuzz-work/$1" findings="$build/fuzz-findings/$1"
  mkdir -p "$work" "$findings"
  local dict=()
  [[ -f "$here/$t.dict" ]] && dict=(-dict="$here/$t.dict")
  "$build/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" \
    "$work" "$here/corpus/$t" >"$build/fuzz-work/$t.log" 2>&1
}

jobs_max="$(nproc)"
declare -A pid_of
for t in "${targets[@]}"; do
  [[ -x "$build/fuzz/$t" ]] || { echo "run_fuzzers: $build/fuzz/$t is not built (configure with -DGRAFT_FUZZ=ON)"; exit 2; }
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  mkdir -p "$build/fuzz-work"
  run_one "$t" &
  pid_of[$t]=$!
done

failed=0
printf '%-20s %12s %10s %s\n' target executions "exec/s" result
for t in "${targets[@]}"; do
  status=0
  wait "${pid_of[$t]}" || status=$?
  log="$build/fuzz-work/$t.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -n 1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{print $2}' | tail -n 1)
  result=ok
  if ((status != 0)); then
    result="FINDING (exit $status): see $log and $build/fuzz-findings/$t/"
    failed=1
  fi
  printf '%-20s %12s %10s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
if ((failed)); then
  for t in "${targets[@]}"; do
    log="$build/fuzz-work/$t.log"
    grep -q -E 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error|deadly signal|Test unit written' "$log" &&
      { echo "---- $t ----"; grep -E -A 30 'ERROR:|runtime error|terminate called|deadly signal' "$log" | head -n 60; }
  done
  exit 1
fi
