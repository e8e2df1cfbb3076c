"""Start-up cost of one sandbox run: the wall time of running an empty program (`pass`) in the
bubblewrap sandbox, against the same interpreter started bare (`python -I -S -c pass`).

Run from anywhere: `python benchmarks/sandbox_startup.py [--runs N]`. Prints the median and the
10th/90th percentiles in milliseconds; the sandbox's own cost is the difference of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from pytest_rewardkit.sandbox import Limits, Sandbox
from pytest_rewardkit.sandbox.cgroups import Cgroup


def timings(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm the page cache and the one-time probe
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def describe(label: str, times: list[float]) -> float:
    deciles = statistics.quantiles(times, n=10)
    median = statistics.median(times)
    print(f"{label:<34} median {median:6.1f} ms   p10 {deciles[0]:6.1f}   p90 {deciles[-1]:6.1f}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    executable = os.path.realpath(sys.executable)
    sandbox = Sandbox()
    sandbox.check()
    cgroup = Cgroup.create(Limits())
    if cgroup is not None:
        cgroup.remove()
    print(f"euid {os.geteuid()}, per-run cgroup: {f'yes, v{cgroup.version}' if cgroup else 'no'}")
    bare = describe(
        "bare interpreter", timings(lambda: subprocess.run([executable, "-I", "-S", "-c", "pass"]), args.runs)
    )
    boxed = describe("sandbox run (bwrap)", timings(lambda: sandbox.run("pass"), args.runs))
    print(f"sandbox start-up cost per run: {boxed - bare:.1f} ms (on top of the interpreter's {bare:.1f} ms)")


if __name__ == "__main__":
    main()
