"""The reward server under load: requests/s and latency (p50, p99) for the math reward.

Run from anywhere: `python benchmarks/serve.py [--clients 32] [--requests 1319] [--workers 2] [--batch 1]`.
The server runs in its own process (`python -m pytest_rewardkit serve examples/math --port 0`, bearer
token from the environment, 127.0.0.1); the clients are one aiohttp session in this process. Each
request scores one of GSM8K's 1,319 reference solutions (or `--batch` of them), every one distinct,
so no cache flatters the figure; every answer is checked (success and score 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "examples" / "math"


def samples() -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (SUITE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{"messages": row["messages"], "ground_truth": row["ground_truth"]} for row in rows]


async def load(url: str, token: str, bodies: list[object], clients: int) -> tuple[float, list[float]]:
    queue: asyncio.Queue[object] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(f"{url}/v1/evaluate", data=json.dumps(body), headers=headers) as response:
                answer = await response.json()
            latencies.append(time.perf_counter() - started)
            results = answer["results"] if isinstance(body, dict) and "samples" in body else [answer]
            if response.status != 200 or not all(r.get("success") and r.get("score") == 1.0 for r in results):
                raise SystemExit(f"unexpected answer {response.status}: {answer}")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1319)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="the server's --concurrency")
    parser.add_argument("--batch", type=int, default=1, help="samples per request")
    args = parser.parse_args()

    token = secrets.token_urlsafe(32)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_rewardkit",
            "serve",
            str(SUITE),
            "--port",
            "0",
            "--concurrency",
            str(args.workers),
            "--max-queued",
            str(args.clients * args.batch * 2),
        ],
        env={**os.environ, "REWARDKIT_SERVER_TOKEN": token, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving ... on http://127.0.0.1:PORT (...)"
        url = line.split(" on ", 1)[1].split()[0]
        pool = samples()
        wanted = [pool[i % len(pool)] for i in range(args.requests * args.batch)]
        bodies: list[object] = (
            wanted
            if args.batch == 1
            else [{"samples": wanted[i : i + args.batch]} for i in range(0, len(wanted), args.batch)]
        )
        elapsed, latencies = asyncio.run(load(url, token, bodies, args.clients))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"math reward server: {len(bodies)} requests ({len(wanted)} samples), {args.clients} clients, "
        f"{args.workers} worker processes, {os.cpu_count()} CPUs"
    )
    print(f"  requests/s {len(bodies) / elapsed:.1f}   samples/s {len(wanted) / elapsed:.1f}")
    print(
        f"  latency p50 {statistics.median(latencies) * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms   "
        f"max {latencies[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
