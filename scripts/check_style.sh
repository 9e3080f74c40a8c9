#!/usr/bin/env bash
# Style checks the test command runs first (README "Layout"): every tracked C/C++/CUDA source is
# as clang-format 14 leaves it (.clang-format), and product code is within its line budget
# (scripts/line_budget.py). `--fix` reformats in place instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."
format=$(command -v clang-format-14 || command -v clang-format || true)
[[ -n "$format" ]] || { echo "check_style.sh: clang-format not found; run scripts/install_deps.sh" >&2; exit 2; }
# New files count before they are committed, as they will once they are.
mapfile -t sources < <(git ls-files --cached --others --exclude-standard '*.c' '*.h' '*.cpp' '*.hpp' '*.cu' '*.cuh')
if [[ "${1:-}" == "--fix" ]]; then
  "$format" -i "${sources[@]}"
  exit 0
fi
if ! "$format" --dry-run --Werror "${sources[@]}" 2>/tmp/graft_format.$$; then
  grep -E "^[^ ].*: (error|warning):" /tmp/graft_format.$$ | sed -E 's/: (error|warning): .*//' |
    sort -u | sed 's/^/not formatted: /' >&2
  rm -f /tmp/graft_format.$$
  echo "check_style.sh: run scripts/check_style.sh --fix (clang-format -i) and commit the result" >&2
  exit 1
fi
rm -f /tmp/graft_format.$$
python3 scripts/line_budget.py
