"""Programs the code reward runs in the sandbox (shipped as files beside `plain.py`, not imported
by the package): `candidate.py` serves the response's functions, `check.py` runs a row's trusted
check against them from another sandbox, so nothing of the candidate's can reach the verdict."""

from pathlib import Path

HERE = Path(__file__).parent
