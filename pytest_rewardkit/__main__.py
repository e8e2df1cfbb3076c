"""`python -m pytest_rewardkit <command> ...`: one dispatcher for the package's commands.

A command is a module with `register(subparsers)`, which adds its parser and sets `run` (a
function taking the parsed arguments and returning the exit status) as a default. Add a module
to COMMANDS to add a command; each imports its heavy dependencies only inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = (
    "pytest_rewardkit.evaluators.cli",  # evaluator package / preview / create / get / delete
    "pytest_rewardkit.server",  # serve
    "pytest_rewardkit.merge",  # merge the results folders of a sharded run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rewardkit", description="pytest-rewardkit commands (pytest itself runs the suites)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
