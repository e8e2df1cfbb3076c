"""Build examples/composite/dataset.jsonl: GSM8K questions that need both a numeric answer and a
working Python function.

    python examples/composite/prepare_data.py --source path/to/gsm8k/test.jsonl [--rows 150]

GSM8K's reference solutions mark each calculation as `<<expression=value>>`. The reference
response here is the solution's prose, a function `solve()` that redoes those calculations in
order (a number equal to an earlier result becomes a reference to that step), and the answer in
`\\boxed{}`. A question is kept only when its function really computes the answer: every
expression is plain arithmetic, and evaluating the steps gives the `####` answer.

Each row: `ground_truth` is the answer (for the `math` component), `tests` is one call-style
test `solve() == answer` (for the `code` component).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import re
from pathlib import Path

from pytest_rewardkit.dataset import write_dataset

HERE = Path(__file__).parent

PROMPT = (
    "{question}\n\nSolve the problem. Give a Python function `solve()` that computes the answer, in a "
    "```python block, and end with the final answer in \\boxed{{}}."
)

_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]*)>>")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_ARITHMETIC = re.compile(r"^[\d.+\-*/() ]+$")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(node: ast.AST, steps: dict[str, float]) -> float:
    """Plain arithmetic on numbers and earlier steps; anything else is rejected."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, steps)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name) and node.id in steps:
        return steps[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, steps)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, steps), _evaluate(node.right, steps))
    raise ValueError(f"not plain arithmetic: {ast.dump(node)[:80]}")


def _literal(token: str) -> str:
    """A GSM8K number as a Python literal ('05' is not one)."""
    return repr(float(token)) if "." in token else str(int(token))


def solve_function(solution: str, answer: float) -> str | None:
    """`def solve(): ...` from the solution's calculator annotations, or None when they do not
    compute `answer`."""
    steps: dict[str, float] = {}
    lines = []
    for index, (expression, _) in enumerate(_ANNOTATION.findall(solution), start=1):
        if not _ARITHMETIC.match(expression):
            return None

        def reference(match: re.Match[str]) -> str:
            value = float(match[0])
            earlier = [name for name, result in steps.items() if math.isclose(result, value, abs_tol=1e-9)]
            return earlier[-1] if earlier else _literal(match[0])

        code = _NUMBER.sub(reference, expression.strip())
        try:
            steps[f"step{index}"] = _evaluate(ast.parse(code, mode="eval"), steps)
        except (SyntaxError, ValueError, ZeroDivisionError):
            return None
        lines.append(f"    step{index} = {code}")
    if not steps or not math.isclose(steps[f"step{len(steps)}"], answer, rel_tol=1e-9, abs_tol=1e-9):
        return None
    return "def solve():\n" + "\n".join(lines) + f"\n    return step{len(steps)}\n"


def composite_rows(lines: list[str], limit: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for index, line in enumerate(line for line in lines if line.strip()):
        item = json.loads(line)
        solution, _, final = item["answer"].rpartition("####")
        text = final.strip().replace(",", "")
        try:
            answer = float(text)
        except ValueError:
            continue
        function = solve_function(solution, answer)
        if function is None:
            continue
        prose = _ANNOTATION.sub("", solution).strip()
        expected: int | float = int(answer) if answer.is_integer() else answer
        response = f"{prose}\n\n```python\n{function}```\n\nThe answer is \\boxed{{{text}}}."
        rows.append(
            {
                "id": f"gsm8k-test-{index:04d}",
                "messages": [
                    {"role": "user", "content": PROMPT.format(question=item["question"])},
                    {"role": "assistant", "content": response},
                ],
                "ground_truth": text,
                "tests": [{"call": "solve", "args": [], "expected": expected}],
            }
        )
        if len(rows) == limit:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a local GSM8K test.jsonl")
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "dataset.jsonl")
    args = parser.parse_args()
    rows = composite_rows(args.source.read_text(encoding="utf-8").splitlines(), args.rows)
    write_dataset(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
