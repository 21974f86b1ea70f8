"""CI's coverage gate: combines the data of the test passes, reports, and holds the floor.

Usage: check_coverage.py DATA_DIR PASS [PASS ...], where each DATA_DIR/PASS holds the
data files of one pass (COVERAGE_FILE=DATA_DIR/PASS/.coverage). Prints each pass's total
and the report of all of them together, writes an HTML report to DATA_DIR/html, and
fails when the combined total is under the number in .ci/coverage-floor.

The floor only rises, and only by hand: when the total is more than SLACK points over it,
this prints the new floor to commit. SLACK absorbs the branches that depend on timing
(a reconnect, a race handled), which a run takes or not.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

FLOOR_FILE = Path(__file__).with_name("coverage-floor")
SLACK = 0.5


def coverage(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "coverage", *arguments], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"coverage {' '.join(arguments)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def total(data_file: Path) -> float:
    return float(coverage("report", "--format=total", "--precision=2", f"--data-file={data_file}"))


def main(data: Path, passes: list[str]) -> int:
    combined = data / ".coverage"
    per_pass = {}
    for name in passes:
        data_file = data / name / ".coverage"
        if any((data / name).glob(".coverage.*")):  # else combined by an earlier call
            coverage("combine", "--quiet", f"--data-file={data_file}", str(data / name))
        per_pass[name] = total(data_file)
    coverage(
        "combine",
        "--quiet",
        "--keep",
        f"--data-file={combined}",
        *(str(data / name / ".coverage") for name in passes),
    )
    print(coverage("report", f"--data-file={combined}"))
    coverage("html", "--quiet", f"--data-file={combined}", f"--directory={data / 'html'}")
    measured = total(combined)
    floor = float(FLOOR_FILE.read_text().strip())
    for name, value in per_pass.items():
        print(f"Coverage of the {name} pass: {value:.2f}%")
    print(f"Coverage of all passes: {measured:.2f}% (floor {floor:.2f}%, in {FLOOR_FILE.name})")
    print(f"HTML report: {data / 'html' / 'index.html'}")
    if measured < floor:
        print(
            f"Coverage fell under the floor: {measured:.2f}% < {floor:.2f}%. Test what the "
            "report shows as missed; the floor is never lowered to let a change in.",
            file=sys.stderr,
        )
        return 1
    raised = math.floor((measured - SLACK) * 10) / 10
    if raised > floor:
        print(
            f"Coverage rose: raise the floor to {raised:.1f} in the same commit, with\n"
            f"    echo {raised:.1f} > .ci/{FLOOR_FILE.name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
