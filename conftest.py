"""Root conftest: keeps the project's own test run offline and off generated folders."""

import os

# The tests build their tiny models and tokenizers in-process; a hub lookup would be a bug.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

collect_ignore_glob = ["cassettes/*", "benchmarks/*", "rewardkit-results/*", ".venv/*"]
