"""Build examples/coding/dataset.jsonl from HumanEval (164 Python problems, OpenAI, MIT licence).

    python examples/coding/prepare_data.py                          # from the copy in this folder
    python examples/coding/prepare_data.py --source path/to/HumanEval.jsonl.gz

Each row: the problem's prompt (signature and docstring) as the user turn, the canonical solution
completed into a fenced Python block as the assistant turn (what is scored when no model is given),
and one check-style test: HumanEval's `check` function called on the entry point. When the check
calls a helper the prompt defines (`poly`, `encode_cyclic`, `encode_shift`), the prompt's code
before the entry point (trusted, from the dataset) opens the check: names the check defines are its
own in the judge, so a response that redefines the helper to agree with a wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
from pathlib import Path

from pytest_rewardkit.dataset import write_dataset

HERE = Path(__file__).parent

INSTRUCTION = "Complete this Python function. Answer with the whole function in one ```python block.\n\n"


def helper_prelude(prompt: str, entry_point: str, test: str) -> str:
    """The prompt's code without the entry point, when the test calls a function the prompt defines
    besides it; otherwise nothing (the check needs no code of the prompt's)."""
    module = ast.parse(prompt)
    helpers = {
        node.name
        for node in module.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != entry_point
    }
    called = {node.id for node in ast.walk(ast.parse(test)) if isinstance(node, ast.Name)}
    if not helpers & called:
        return ""
    lines = prompt.splitlines(keepends=True)
    kept = [
        "".join(lines[_first_line(node) - 1 : node.end_lineno])
        for node in module.body
        if not (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point)
    ]
    return "\n\n".join(part.rstrip() for part in kept) + "\n\n"


def _first_line(node: ast.stmt) -> int:
    """Where a statement starts, its decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def humaneval_rows(lines: list[str]) -> list[dict[str, object]]:
    rows = []
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        solution = item["prompt"] + item["canonical_solution"]
        prelude = helper_prelude(item["prompt"], item["entry_point"], item["test"])
        rows.append(
            {
                "id": item["task_id"].replace("/", "-"),
                "messages": [
                    {"role": "user", "content": INSTRUCTION + "```python\n" + item["prompt"] + "```"},
                    {"role": "assistant", "content": "```python\n" + solution.rstrip() + "\n```"},
                ],
                "tests": [{"check": prelude + item["test"] + f"\n\ncheck({item['entry_point']})\n"}],
                "entry_point": item["entry_point"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=HERE / "HumanEval.jsonl.gz", help="HumanEval.jsonl(.gz)")
    parser.add_argument("--out", type=Path, default=HERE / "dataset.jsonl")
    args = parser.parse_args()
    raw = args.source.read_bytes()
    text = (gzip.decompress(raw) if args.source.suffix == ".gz" else raw).decode("utf-8")
    rows = humaneval_rows(text.splitlines())
    write_dataset(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
