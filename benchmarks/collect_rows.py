"""Rows collected per second for examples/math: the wall time of `pytest examples/math --co -q`; then
`--co -q` of a 20,000-row copy of that suite against a plain parametrized pytest file collecting the
same 20,000 JSONL rows (target: ratio <= 1.0).

Run from anywhere: `python benchmarks/collect_rows.py [--repeat N] [--rows N]`. The figures include
pytest's start-up, since that is what a user waits for; the best of N runs is reported (least noise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "math"

PLAIN_COLLECT = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pytest

    ROWS = [json.loads(line) for line in (Path(__file__).parent / "big" / "dataset.jsonl").open(encoding="utf-8")]


    @pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
    def test_row(row):
        assert row["messages"]
    """
)


def measure_pytest(args: list[str], cache_dir: Path | None = None) -> tuple[float, float, float, str]:
    """Wall time (s), peak RSS (MB) and CPU time (s, user + system: much less disturbed than wall
    time by other load on the machine) of one `python -m pytest <args>` run from the project root,
    and its output. Without `cache_dir`, pytest's cache is off (`-p no:cacheprovider`); with it,
    pytest keeps its cache there instead of in the project. A run that fails stops the benchmark:
    a broken suite has no speed."""
    cache = ["-o", f"cache_dir={cache_dir}"] if cache_dir is not None else ["-p", "no:cacheprovider"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "pytest", *cache, *args], cwd=ROOT, stdout=out, stderr=err)
        # Reaped with wait4 for this child's own peak RSS (RUSAGE_CHILDREN is the maximum over all children).
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        sys.exit(f"pytest {' '.join(args)} exited {process.returncode}:\n{stdout[-2000:]}{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, stdout


def time_pytest(args: list[str], repeat: int) -> tuple[list[float], str]:
    """Wall times of `python -m pytest <args>` run `repeat` times, and the last run's output."""
    times: list[float] = []
    output = ""
    for _ in range(repeat):
        elapsed, _peak, _cpu, output = measure_pytest(args)
        times.append(elapsed)
    return times, output


def compare_big_collection(rows: int, repeat: int) -> None:
    """`--co -q` of a `rows`-row suite (GSM8K rows repeated under new ids) against plain pytest."""
    source = [json.loads(line) for line in (EXAMPLE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = folder / "big"
        big.mkdir()
        (big / "rewardkit.yaml").write_text((EXAMPLE / "rewardkit.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        with (big / "dataset.jsonl").open("w", encoding="utf-8") as out:
            for number in range(rows):
                out.write(json.dumps({**source[number % len(source)], "id": f"row-{number:06d}"}) + "\n")
        (folder / "test_plain_collect.py").write_text(PLAIN_COLLECT, encoding="utf-8")
        timed: dict[str, list[tuple[float, float]]] = {"rewardkit": [], "plain pytest": []}
        for _ in range(repeat):
            for label, target in (("rewardkit", big), ("plain pytest", folder / "test_plain_collect.py")):
                elapsed, _peak, cpu, _ = measure_pytest([str(target), "--co", "-q"])
                timed[label].append((elapsed, cpu))
    print(f"collection of {rows:,} rows (--co -q), best of {repeat}:")
    for label, times in timed.items():
        walls = ", ".join(f"{t:.2f}" for t, _ in times)
        best_wall, best_cpu = min(t for t, _ in times), min(c for _, c in times)
        print(f"  {label:<13} wall best {best_wall:.2f} s (all: {walls})  CPU best {best_cpu:.2f} s")
    wall = min(t for t, _ in timed["rewardkit"]) / min(t for t, _ in timed["plain pytest"])
    cpu = min(c for _, c in timed["rewardkit"]) / min(c for _, c in timed["plain pytest"])
    print(f"  ratio rewardkit / plain: wall {wall:.2f}, CPU {cpu:.2f} (target <= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs to time (default 3; the best is reported)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the big collection (default 20,000)")
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
    compare_big_collection(args.rows, args.repeat)


if __name__ == "__main__":
    main()
