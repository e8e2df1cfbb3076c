"""Wall time of `pytest examples/math` (all 1,319 GSM8K reference solutions scored by the math
reward), serially and with `-n 2` (pytest-xdist).

Run from anywhere: `python benchmarks/math_suite_wall.py [--repeat N]`. Results go to a temporary
directory so the project's own rewardkit-results/ is left alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from collect_rows import EXAMPLE, ROOT, time_pytest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (default 3)")
    args = parser.parse_args()
    print(f"pytest {EXAMPLE.relative_to(ROOT)}, {args.repeat} run(s) each")
    with tempfile.TemporaryDirectory() as out:
        for label, extra in (("serial", []), ("-n 2", ["-n", "2"])):
            times, output = time_pytest([str(EXAMPLE), "-q", "--rk-output", out, *extra], args.repeat)
            verdict = output.strip().splitlines()[-1].strip("= ")
            print(
                f"  {label:<6}  median {statistics.median(times):.2f} s  best {min(times):.2f} s"
                f"  (all: {', '.join(f'{t:.2f}' for t in times)})  [{verdict}]"
            )


if __name__ == "__main__":
    main()
