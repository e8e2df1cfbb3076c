"""Size and load time of the HTML report for examples/math at full size (1,319 rows x 4 responses).

Run from anywhere: `python benchmarks/html_report.py [--repeat N]`. It replays the committed cassettes
with `--rk-html`, then opens the file in headless Debian chromium (Playwright, the system browser)
and times navigation until the page has rendered its summary and first page of rows; also the time
to search all rows and to open one. Best of N loads (least noise).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        command = [
            sys.executable, "-m", "pytest", str(ROOT / "examples" / "math"), "-q", "-p", "no:cacheprovider",
            "--rk-model", "gpt3-gsm8k-solutions", "--rk-n", "4", "--rk-output", "", "--rk-html", str(report),
            "--tb=no", "-rN",
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        print(f"pytest run with --rk-html: {time.perf_counter() - start:.1f} s")
        size = report.stat().st_size
        print(f"report: {size / 1e6:.2f} MB ({size:,} bytes)")
        loads, searches, opens = [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for _ in range(args.repeat):
                page = browser.new_context(offline=True).new_page()
                start = time.perf_counter()
                page.goto(report.as_uri())
                page.wait_for_selector("body[data-ready='1']")
                loads.append(time.perf_counter() - start)
                start = time.perf_counter()
                page.fill("#rk-search", "gsm8k-test-1318")
                # Polled from Python: the report's CSP forbids the eval a JS predicate would need.
                page.locator("#rk-count", has_text=re.compile(r"^1 of")).wait_for()
                searches.append(time.perf_counter() - start)
                start = time.perf_counter()
                page.click("#rk-rows tr.row")
                page.wait_for_selector("#rk-rows tr.detail")
                opens.append(time.perf_counter() - start)
                rows = page.locator("#rk-count").inner_text()
                page.context.close()
            browser.close()
        print(f"rows: {rows}")
        print(f"load until rendered: best {min(loads) * 1000:.0f} ms of {args.repeat}")
        print(f"first search over every row: best {min(searches) * 1000:.0f} ms")
        print(f"open a row: best {min(opens) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
