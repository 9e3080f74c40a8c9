#!/usr/bin/env python3
"""The line budget (as tinygrad keeps one): product code may not outgrow the budget of its area
in scripts/line_budget.toml, and no source file may pass the per-file limit unless the budget
names it with a reason. Growth is then a decision, made by editing the budget in the same
commit. Counts code lines: not blank, not only a comment. Exit 1 over budget.

    scripts/line_budget.py            # check, print the table
    scripts/line_budget.py --suggest  # the budgets that would pass today (for an intended growth)
"""
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUFFIXES = {".c", ".h", ".cpp", ".hpp", ".cu", ".cuh"}


def code_lines(text: str) -> int:
    """Lines that are not blank and not only a // or /* */ comment."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.strip().startswith("//"))


def tracked_files():
    # Files not yet committed count too, as they will once they are.
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if pathlib.PurePath(p).suffix in SUFFIXES]


def main() -> int:
    budget = tomllib.loads((ROOT / "scripts/line_budget.toml").read_text())
    limit = budget["file"]["max_lines"]
    allowed = budget["file"].get("allowed", {})
    areas = budget["areas"]
    used = {area: 0 for area in areas}
    failures = []
    for path in tracked_files():
        text = (ROOT / path).read_text(errors="replace")
        for area in areas:
            if path.startswith(area + "/"):
                used[area] += code_lines(text)
        lines = text.count("\n")
        if lines > limit and path not in allowed and not path.startswith("tests/"):
            failures.append(f"{path}: {lines} lines, over the per-file limit of {limit}; split it "
                            f"by concern, or add it to [file.allowed] in "
                            f"scripts/line_budget.toml with the reason")
    suggest = "--suggest" in sys.argv[1:]
    print(f"{'area':<16}{'code lines':>12}{'budget':>10}")
    for area, budget_lines in areas.items():
        mark = "" if used[area] <= budget_lines else "  OVER"
        print(f"{area:<16}{used[area]:>12}{budget_lines:>10}{mark}")
        if used[area] > budget_lines:
            failures.append(f"{area}/: {used[area]} code lines, over its budget of {budget_lines}; "
                            f"shrink the change, or raise [areas] {area} in "
                            f"scripts/line_budget.toml in the same commit, saying why")
    if suggest:
        print("\n[areas]")
        for area in areas:
            print(f'"{area}" = {used[area]}')
    for f in failures:
        print("line budget: " + f, file=sys.stderr)
    return 1 if failures and not suggest else 0


if __name__ == "__main__":
    sys.exit(main())
