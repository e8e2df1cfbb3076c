"""Live generation: 400 requests to the local fake endpoint (200 ms latency each) at concurrency 32,
through the real generation path. Ideal: 400 / 32 x 0.2 s = 2.5 s; target: ratio <= 1.15.

Run from anywhere: `python benchmarks/live.py [--repeat N]`. The fake server runs in its own process
(`python -m pytest_rewardkit.testing`) so it never competes with the client for the GIL. Two
measurements, best of N each:
  - pytest: a 400-row suite, `--rk-n 1 --rk-concurrency 32 --record-mode=all` into a temporary cassette
    folder. Reported as pytest's run loop (generation and scoring of every row, timed by a tiny plugin)
    and as the whole process (interpreter start-up and collection included).
  - Generator: the same 400 rows through `Generator.prefetch()` and `responses()` directly.
  - floor: 400 bare aiohttp POSTs at concurrency 32 to the same server, no rewardkit at all: what this
    server and machine allow, so the two figures above can be read against it as well as against 2.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from pytest_rewardkit.config import Options
from pytest_rewardkit.dataset import write_dataset
from pytest_rewardkit.evaluation import Case
from pytest_rewardkit.generation import GenerationConfig, Generator
from pytest_rewardkit.recording import RowCassette
from pytest_rewardkit.suite import load_suite

ROWS = 400
CONCURRENCY = 32
LATENCY = 0.2
IDEAL = ROWS / CONCURRENCY * LATENCY

REWARD_MODULE = textwrap.dedent(
    """
    from pytest_rewardkit import EvaluateResult, reward_function


    @reward_function
    def echoed(messages, ground_truth=None, **kwargs):
        return EvaluateResult(score=float(messages[-1].content == f"echo: {messages[-2].content}"))
    """
)
# Times pytest's run loop: every row's generation and scoring, without start-up and collection.
TIMER_PLUGIN = textwrap.dedent(
    """
    import time

    import pytest


    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(session):
        started = time.perf_counter()
        try:
            return (yield)
        finally:
            (session.config.rootpath / "runloop.txt").write_text(str(time.perf_counter() - started))
    """
)


@contextmanager
def fake_server() -> Iterator[str]:
    """The fake endpoint in a child process; yields its base URL."""
    command = [sys.executable, "-m", "pytest_rewardkit.testing", "--latency", str(LATENCY)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def write_suite(folder: Path) -> Path:
    suite = folder / "live"
    suite.mkdir()
    (suite / "rewardkit.yaml").write_text("reward: bench_reward:echoed\nthreshold: 1.0\n", encoding="utf-8")
    rows = [{"id": f"q{i:03d}", "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(ROWS)]
    write_dataset(suite / "dataset.jsonl", rows)
    (folder / "bench_reward.py").write_text(REWARD_MODULE, encoding="utf-8")
    (folder / "bench_timer.py").write_text(TIMER_PLUGIN, encoding="utf-8")
    return suite


def check_cassettes(root: Path) -> None:
    files = sorted(root.rglob("*.yaml"))
    recorded = sum(len(RowCassette.load(path).interactions) for path in files)
    if len(files) != ROWS or recorded != ROWS:
        sys.exit(f"expected {ROWS} cassettes with one interaction each, found {len(files)} with {recorded}")


def run_pytest(folder: Path, suite: Path, base_url: str, attempt: int) -> tuple[float, float]:
    """(run loop seconds, whole process seconds) of one recording run."""
    cassettes = folder / f"pytest-{attempt}"
    command = [
        sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-p", "bench_timer",
        "--rk-model", "fake", "--rk-n", "1", "--rk-base-url", base_url, "--rk-concurrency", str(CONCURRENCY),
        "--record-mode=all", "--rk-cassette-dir", str(cassettes), "--rk-output", "",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    check_cassettes(cassettes)
    return float((folder / "runloop.txt").read_text()), wall


def run_generator(folder: Path, suite: Path, base_url: str, attempt: int) -> float:
    cassettes = folder / f"generator-{attempt}"
    options = Options(model="fake", n=1, base_url=base_url, concurrency=CONCURRENCY, record_mode="all")
    settings, entries = load_suite(suite, options)
    cases = [Case(settings=settings, row=e.row, row_id=e.row_id) for e in entries if e.row is not None]
    generator = Generator(GenerationConfig(cassette_root=cassettes, record_mode="all", concurrency=CONCURRENCY))
    try:
        started = time.perf_counter()
        generator.prefetch(cases)
        responses = [generator.responses(case) for case in cases]
        elapsed = time.perf_counter() - started
    finally:
        generator.close()
    assert all(len(r) == 1 for r in responses)
    check_cassettes(cassettes)
    return elapsed


async def bare_requests(base_url: str) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> None:
            body = {"model": "fake", "messages": [{"role": "user", "content": f"question {index}"}]}
            async with limit, session.post(base_url + "/chat/completions", json=body) as response:
                await response.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(ROWS)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3; the best is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fake_server() as base_url:
        folder = Path(tmp)
        suite = write_suite(folder)
        pytest_runs = [run_pytest(folder, suite, base_url, attempt) for attempt in range(args.repeat)]
        direct = [run_generator(folder, suite, base_url, attempt) for attempt in range(args.repeat)]
        floor = [asyncio.run(bare_requests(base_url)) for _ in range(args.repeat)]
    loop, wall = min(pytest_runs)[0], min(w for _, w in pytest_runs)
    print(
        f"live: {ROWS} requests, {LATENCY * 1000:.0f} ms latency, concurrency {CONCURRENCY}; "
        f"ideal {IDEAL:.2f} s; best of {args.repeat}"
    )
    print(
        f"  pytest run loop  {loop:.2f} s  ratio {loop / IDEAL:.2f} (target <= 1.15)"
        f"  (all: {', '.join(f'{t:.2f}' for t, _ in pytest_runs)})"
    )
    print(f"  pytest process   {wall:.2f} s  ratio {wall / IDEAL:.2f} (interpreter start-up and collection included)")
    print(
        f"  Generator        {min(direct):.2f} s  ratio {min(direct) / IDEAL:.2f}"
        f"  (all: {', '.join(f'{t:.2f}' for t in direct)})"
    )
    print(
        f"  floor (bare aiohttp) {min(floor):.2f} s  ratio {min(floor) / IDEAL:.2f}"
        f"  -> pytest run loop / floor {loop / min(floor):.2f}, Generator / floor {min(direct) / min(floor):.2f}"
    )


if __name__ == "__main__":
    main()
