"""Run a packaged evaluator's `main.py` over samples, as the Fireworks sandbox would: the fake
server's preview runs this in a child process (`python -m pytest_rewardkit.evaluators.snippet DIR`),
samples as a JSON list of strings on stdin, one result per sample as a JSON list on stdout."""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any


def result_for(evaluate: Any, raw: str) -> dict[str, Any]:
    """A gatewayPreviewEvaluatorSampleResult for one sample; a failure is `success: false`, never a score."""
    try:
        sample = json.loads(raw)
        if not isinstance(sample, dict):
            raise TypeError(f"a sample must be a JSON object, got {type(sample).__name__}")
        outcome = evaluate(**sample)
        score = outcome["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise TypeError(f"evaluate returned score {score!r}, not a number")
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        place = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
        return {"success": False, "perMetricEvals": {"error": {"reason": f"{type(exc).__name__}: {exc}{place}"}}}
    metrics = {name: dict(value) for name, value in (outcome.get("metrics") or {}).items()}
    metrics.setdefault("reward", {"score": score, "reason": outcome.get("reason", "")})
    return {"success": True, "score": float(score), "perMetricEvals": metrics}


def main(argv: list[str]) -> int:
    # What main.py or the reward prints must not corrupt the answer: stdout carries only the JSON.
    out, sys.stdout = sys.stdout, sys.stderr
    folder = Path(argv[0]).resolve()
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("main", folder / "main.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        evaluate = module.evaluate
    except Exception as exc:
        out.write(json.dumps({"error": f"main.py failed to load: {type(exc).__name__}: {exc}"}))
        return 2
    samples = json.loads(sys.stdin.read())
    out.write(json.dumps([result_for(evaluate, raw) for raw in samples]))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
