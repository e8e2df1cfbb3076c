"""Build examples/multi_turn/dataset.jsonl and functions.json from BFCL v4's `multi_turn_base`.

    python examples/multi_turn/prepare_data.py --source path/to/bfcl_multi_turn

`--source` holds `BFCL_v4_multi_turn_base.json`, `possible_answer_multi_turn_base.json` and
`func_doc/<api>.json` (bfcl-eval's `data/` layout, flattened). Only rows whose involved APIs all
have an environment here (`bfcl_environment.py`: the Gorilla file system and the Math API) are
kept: 25 of the 200. Each row:

- `turns`: BFCL's `question`, one list of user messages per turn;
- `initial_config`, `involved_classes`: as in BFCL; the environment is built from the first;
- `excluded_function`: BFCL's, plus every function of an API the row does not involve, so the
  model is offered exactly the tools BFCL offers it;
- `ground_truth`: BFCL's ground-truth calls per turn, as Python call strings.

`functions.json` holds the two APIs' function documents as OpenAI tools, converted the way BFCL
converts them for OpenAI-style models (the function-calling example's `openai_tool`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from pytest_rewardkit.dataset import write_dataset

HERE = Path(__file__).parent
CATEGORY = "multi_turn_base"
# BFCL class name -> its function document file; the classes bfcl_environment.py implements.
APIS = {"GorillaFileSystem": "gorilla_file_system.json", "MathAPI": "math_api.json"}


def _openai_tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "function_calling_prepare", HERE.parent / "function_calling" / "prepare_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.openai_tool


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(source: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    openai_tool = _openai_tool()
    functions = {api: read_jsonl(source / "func_doc" / file) for api, file in APIS.items()}
    answers = {row["id"]: row["ground_truth"] for row in read_jsonl(source / f"possible_answer_{CATEGORY}.json")}
    rows = []
    for entry in read_jsonl(source / f"BFCL_v4_{CATEGORY}.json"):
        involved = entry["involved_classes"]
        if not set(involved) <= set(APIS):
            continue
        uninvolved = [f["name"] for api, docs in functions.items() if api not in involved for f in docs]
        rows.append(
            {
                "id": entry["id"],
                "turns": entry["question"],
                "initial_config": entry["initial_config"],
                "involved_classes": involved,
                "excluded_function": list(entry.get("excluded_function", [])) + uninvolved,
                "ground_truth": answers[entry["id"]],
            }
        )
    tools = [openai_tool(document) for docs in functions.values() for document in docs]
    return rows, tools


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="BFCL's multi-turn data folder")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    rows, tools = build(args.source)
    write_dataset(args.out / "dataset.jsonl", rows)
    (args.out / "functions.json").write_text(json.dumps(tools, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.out / 'dataset.jsonl'} and {len(tools)} tools to functions.json")


if __name__ == "__main__":
    main()
