"""Fenced-code extraction on hostile responses: the code reward's parsing happens in the caller,
before any sandbox or time limit, so it must be linear in the response.

Run from anywhere: `python benchmarks/extraction.py`. Prints, per 1 MB adversarial response, the
best of five timings of `extract_code` against the target (issue 15: under 100 ms each; the unit
test only bounds 1 s, a verdict on complexity that a loaded CI machine cannot fail), then the regex
it replaced on a fence followed by n spaces and a backtick (cubic: each doubling of n costs about
eight times more). Exits 1 when a case misses the target.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

from pytest_rewardkit.rewards.code import extract_code

ADVERSARIAL = {
    "fence then 1M spaces then a backtick": "```" + " " * 1_000_000 + "`",
    "1M backticks": "`" * 1_000_000,
    "tildes then backticks": "~~~" + "`" * 999_997,
    "100k opening fences": "```python\n" * 100_000,
    "50k fences of growing length": "".join(f"{'`' * (3 + i % 50)}python\nx = {i}\n" for i in range(50_000)),
    "10k fence lines of spaces": ("```   " + " " * 90 + "x`\n") * 10_000,
    "50k blocks opened and closed": "```python\nx = 1\n```\n" * 50_000,
}
TARGET_MS = 100.0
OLD_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[ \t]*([^`\n]*)$")


def best(fn: Callable[[], object], tries: int = 5) -> float:
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> int:
    missed = 0
    for label, text in ADVERSARIAL.items():
        took = best(lambda t=text: extract_code(t))
        verdict = "ok" if took < TARGET_MS else f"MISSES {TARGET_MS:.0f} ms"
        missed += took >= TARGET_MS
        print(f"extract_code  {label:<36} {len(text) / 1e6:4.2f} MB  {took:8.1f} ms  {verdict}")
    for n in (250, 500, 1000):
        hostile = "```" + " " * n + "`"
        took = best(lambda h=hostile: OLD_FENCE.match(h), 1)
        print(f"old regex     fence + {n:>4} spaces + backtick             {took:8.1f} ms")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
