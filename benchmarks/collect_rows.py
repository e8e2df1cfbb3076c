"""Rows collected per second for examples/math: the wall time of `pytest examples/math --co -q`.

Run from anywhere: `python benchmarks/collect_rows.py [--repeat N]`. The figure includes pytest's
start-up, since that is what a user waits for; the best of N runs is reported (least noise).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "math"


def time_pytest(args: list[str], repeat: int) -> tuple[list[float], str]:
    """Wall times of `python -m pytest <args>` run `repeat` times from the project root, and the
    last run's output. A run that fails stops the benchmark: a broken suite has no speed."""
    times: list[float] = []
    output = ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        output = done.stdout
        if done.returncode != 0:
            sys.exit(f"pytest {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return times, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs to time (default 3; the best is reported)")
    args = parser.parse_args()
    times, output = time_pytest([str(EXAMPLE), "--co", "-q"], args.repeat)
    found = re.search(r"(\d+) tests? collected in ([\d.]+)s", output)
    if found is None:
        sys.exit(f"no collection count in pytest's output:\n{output[-2000:]}")
    rows, session = int(found.group(1)), float(found.group(2))
    best = min(times)
    print(f"pytest {EXAMPLE.relative_to(ROOT)} --co -q: {rows} rows")
    print(f"  wall time best {best:.2f} s of {args.repeat} (all: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"  rows collected per second: {rows / best:,.0f} including pytest start-up")
    if session > 0:
        print(f"  rows collected per second: {rows / session:,.0f} in pytest's own session time ({session:.2f} s)")


if __name__ == "__main__":
    main()
