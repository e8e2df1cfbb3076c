"""Build examples/function_calling/dataset.jsonl from the Berkeley Function Calling Leaderboard (BFCL v4):
its simple (Python), multiple, parallel, parallel-multiple and irrelevance categories, 1,240 rows.

    python examples/function_calling/prepare_data.py --source path/to/bfcl/data
    python examples/function_calling/prepare_data.py --download      # needs network: BFCL's GitHub repository

`--source` holds `BFCL_v4_<category>.json` and `possible_answer_<category>.json` for each category
(BFCL keeps the latter as `possible_answer/BFCL_v4_<category>.json`; `--download` maps the names). Each row:

- `messages`: the question, then a reference answer (what is scored when no model is given);
- `tools`: the functions in OpenAI format, converted the way BFCL converts them for OpenAI-style
  models ("." in names becomes "_", `float` becomes `number`, `dict` becomes `object`, ...);
- `ground_truth`: BFCL's possible answer (`[]` for irrelevance: no call should be made);
- `category`: the BFCL category, for `--rk-group-by category`.

The reference answer calls each expected function with, per parameter, its first accepted value
(the first one that is not "" when the tool requires the parameter; for a dict, each key's first
accepted value); a parameter whose first
accepted value is "" (may be omitted) is left out, and so is one the tool's schema does not
declare (BFCL's answers have two, both optional). An irrelevance row's reference is a text answer.
"""

from __future__ import annotations

import argparse
import copy
import json
import urllib.request
from pathlib import Path
from typing import Any

from pytest_rewardkit.dataset import write_dataset
from pytest_rewardkit.rewards.tool_call import openai_name

HERE = Path(__file__).parent
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
SOURCE_URL = (
    "https://raw.githubusercontent.com/ShishirPatil/gorilla/main/berkeley-function-call-leaderboard/bfcl_eval/data"
)
NO_CALL_ANSWER = "None of the available functions can do this, so I will not call any of them."

# BFCL's GORILLA_TO_OPENAPI for the Python categories; an unknown type becomes "string", as in BFCL.
OPENAPI_TYPES = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
}
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."


def _openapi_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's _cast_to_openai_type: map each property's type, note floats, recurse into objects/items."""
    for schema in properties.values():
        bfcl_type = schema.get("type", "string")
        if bfcl_type == "float":
            schema["format"] = "float"
            schema["description"] = schema.get("description", "") + " This is a float type value."
        schema["type"] = OPENAPI_TYPES.get(bfcl_type, "string")
        if schema["type"] in ("array", "object"):
            if "properties" in schema:
                schema["properties"] = _openapi_properties(schema["properties"])
            elif "items" in schema:
                items = schema["items"]
                items["type"] = OPENAPI_TYPES[items["type"]]
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = OPENAPI_TYPES[items["items"]["type"]]
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _openapi_properties(items["properties"])
    return properties


def openai_tool(function: dict[str, Any]) -> dict[str, Any]:
    """One BFCL function as an OpenAI tool, as BFCL sends it to OpenAI-style models."""
    function = copy.deepcopy(function)
    function["name"] = openai_name(function["name"])
    function["description"] = function.get("description", "") + PYTHON_HINT
    function["parameters"]["type"] = "object"
    function["parameters"]["properties"] = _openapi_properties(function["parameters"].get("properties", {}))
    return {"type": "function", "function": function}


def _concrete(value: Any) -> Any:
    """An accepted value as a call passes it: an accepted dict maps each key to its accepted values."""
    if isinstance(value, dict):
        return {key: _concrete(options[0]) for key, options in value.items() if options[0] != ""}
    if isinstance(value, list):
        return [_concrete(item) if isinstance(item, dict) else item for item in value]
    return value


def reference_arguments(accepted: dict[str, list[Any]], function: dict[str, Any]) -> dict[str, Any]:
    parameters = function["parameters"]
    properties, required = parameters.get("properties", {}), parameters.get("required", [])
    arguments = {}
    for param, values in accepted.items():
        if param in required:
            arguments[param] = _concrete(next(v for v in values if v != ""))
        elif param in properties and values[0] != "":
            arguments[param] = _concrete(values[0])
    return arguments


def reference_message(ground_truth: list[dict[str, Any]], functions: list[dict[str, Any]]) -> dict[str, Any]:
    if not ground_truth:
        return {"role": "assistant", "content": NO_CALL_ANSWER}
    by_name = {f["name"]: f for f in functions}
    calls = []
    for index, expected in enumerate(ground_truth, start=1):
        ((name, accepted),) = expected.items()
        arguments = reference_arguments(accepted, by_name[name])
        calls.append(
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": openai_name(name), "arguments": json.dumps(arguments, ensure_ascii=False)},
            }
        )
    return {"role": "assistant", "content": None, "tool_calls": calls}


def bfcl_rows(category: str, questions: list[str], answers: list[str]) -> list[dict[str, Any]]:
    ground_truths = {item["id"]: item["ground_truth"] for item in map(json.loads, filter(str.strip, answers))}
    rows = []
    for line in filter(str.strip, questions):
        item = json.loads(line)
        if len(item["question"]) != 1:
            raise ValueError(f"{item['id']}: {len(item['question'])} turns; these categories have one")
        ground_truth = ground_truths.get(item["id"], []) if category != "irrelevance" else []
        if category != "irrelevance" and item["id"] not in ground_truths:
            raise ValueError(f"{item['id']}: no possible answer in possible_answer_{category}.json")
        rows.append(
            {
                "id": item["id"],
                "messages": [*item["question"][0], reference_message(ground_truth, item["function"])],
                "tools": [openai_tool(f) for f in item["function"]],
                "ground_truth": ground_truth,
                "category": category,
            }
        )
    return rows


def _read(source: Path | None, name: str) -> list[str]:
    if source is not None:
        return (source / name).read_text(encoding="utf-8").splitlines()
    folder = f"{SOURCE_URL}/possible_answer" if name.startswith("possible_answer") else SOURCE_URL
    remote = name.replace("possible_answer_", "BFCL_v4_") if name.startswith("possible_answer") else name
    with urllib.request.urlopen(f"{folder}/{remote}", timeout=60) as response:
        return str(response.read().decode("utf-8")).splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a folder with BFCL's category and possible_answer files")
    where.add_argument("--download", action="store_true", help=f"fetch the files from {SOURCE_URL}")
    parser.add_argument("--out", type=Path, default=HERE / "dataset.jsonl")
    args = parser.parse_args()
    source = None if args.download else args.source
    rows = []
    for category in CATEGORIES:
        questions = _read(source, f"BFCL_v4_{category}.json")
        answers = [] if category == "irrelevance" else _read(source, f"possible_answer_{category}.json")
        rows.extend(bfcl_rows(category, questions, answers))
    write_dataset(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
