"""`python -m pytest_rewardkit evaluator package|preview|create|get|delete`.

Exit status: 0 done (preview: every row agrees), 1 the API or a row said no (disagreement, failed
sample, 404 without --force, 409 without --force, ...), 2 a usage or settings problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RECORD_MODES = ("none", "once", "new_episodes", "all")
OK, FAILED, USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluator",
        help="package, preview, create, get or delete a Fireworks evaluator for a suite's reward",
        description="A suite's reward as a Fireworks evaluator (see the README's Fireworks evaluators section).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    package = actions.add_parser("package", help="write the evaluator's files for inspection")
    package.add_argument("suite", type=Path, help="suite folder or its rewardkit.yaml")
    package.add_argument("--out", type=Path, required=True, help="directory to write main.py etc. into")
    package.set_defaults(run=run_package)

    preview = actions.add_parser("preview", help="score the suite's rows remotely and compare with local scores")
    preview.add_argument("suite", type=Path, help="suite folder or its rewardkit.yaml")
    preview.add_argument("--batch-size", type=_positive, default=25, help="samples per request (default 25)")
    preview.add_argument("--limit", type=_positive, help="only the first N rows")
    preview.add_argument("--concurrency", type=_positive, default=4, help="requests in flight (default 4)")
    preview.add_argument(
        "--cassette-dir", type=Path, default=Path("cassettes"), help="cassette root (default ./cassettes)"
    )
    preview.add_argument(
        "--record-mode",
        choices=RECORD_MODES,
        default="none",
        help="none (replay only, default), once, new_episodes (record what is missing), all",
    )
    preview.add_argument("-v", "--verbose", action="store_true", help="print every row, not only problems")
    _remote_options(preview)
    preview.set_defaults(run=run_preview)

    create = actions.add_parser("create", help="create the suite's evaluator under an id")
    create.add_argument("suite", type=Path, help="suite folder or its rewardkit.yaml")
    create.add_argument("--id", dest="evaluator_id", help="evaluator id (default: the suite's name)")
    create.add_argument(
        "--force", action="store_true", help="replace an existing evaluator of that id (no-op if identical)"
    )
    _remote_options(create, cassette=True)
    create.set_defaults(run=run_create)

    for name, help_text, runner in (
        ("get", "print an evaluator as JSON", run_get),
        ("delete", "delete an evaluator", run_delete),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("evaluator_id", metavar="ID")
        if name == "delete":
            action.add_argument("--force", action="store_true", help="succeed when it does not exist")
        _remote_options(action, cassette=True)
        action.set_defaults(run=runner)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _remote_options(parser: argparse.ArgumentParser, cassette: bool = False) -> None:
    parser.add_argument(
        "--api-base", help="gateway base URL (default $FIREWORKS_API_BASE, else https://api.fireworks.ai)"
    )
    parser.add_argument(
        "--api-key-env", default="FIREWORKS_API_KEY", help="variable holding the API key (default FIREWORKS_API_KEY)"
    )
    parser.add_argument("--account-id", help="account id (default $FIREWORKS_ACCOUNT_ID, else auth.ini)")
    if cassette:
        parser.add_argument("--cassette", type=Path, help="go through this cassette file (replay / record)")
        parser.add_argument(
            "--record-mode", choices=RECORD_MODES, default="none", help="with --cassette (default none)"
        )


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _load(suite: Path, limit: int | None = None) -> Any:
    from pytest_rewardkit.config import Options
    from pytest_rewardkit.suite import load_suite

    return load_suite(suite, Options(limit=limit))


def _credentials(args: argparse.Namespace, required: bool) -> tuple[Any, str]:
    """Credentials (None when replaying needs none) and the account id."""
    from pytest_rewardkit.auth import find_api_key, load_credentials

    creds = (
        load_credentials(args.api_key_env, need_account=args.account_id is None)
        if required
        else find_api_key(args.api_key_env)
    )
    account = args.account_id or (creds.account_id if creds else None) or "-"
    return creds, account


def _api_base(args: argparse.Namespace) -> str:
    from pytest_rewardkit.evaluators.api import API_BASE_ENV, FIREWORKS_API_BASE

    return str(args.api_base or os.environ.get(API_BASE_ENV) or FIREWORKS_API_BASE)


def _package(suite: Path) -> tuple[Any, Any]:
    """The suite's settings and evaluator package; a ConfigError for the user to fix."""
    from pytest_rewardkit.evaluators.packaging import package_settings

    settings, _ = _load(suite)
    return settings, package_settings(settings)


def run_package(args: argparse.Namespace) -> int:
    from pytest_rewardkit.config import ConfigError

    try:
        _, package = _package(args.suite)
    except ConfigError as exc:
        return _fail(str(exc), USAGE)
    for path in package.write(args.out):
        print(path)
    return OK


def run_preview(args: argparse.Namespace) -> int:
    from pytest_rewardkit.auth import AuthError
    from pytest_rewardkit.config import ConfigError
    from pytest_rewardkit.evaluators.packaging import package_settings
    from pytest_rewardkit.evaluators.preview import PreviewSettings, preview

    try:
        settings, entries = _load(args.suite, args.limit)
        if settings.environment is not None:
            # Its rows hold the turns, not answers: the rollouts to send come from a model's run.
            raise ConfigError(
                f"{settings.config_path}: a suite with an environment is previewed with a model's rollouts, "
                f"from a pytest run: pytest {args.suite} --rk-model ALIAS --rk-evaluator=fireworks-preview"
            )
        package = package_settings(settings)
        creds, account = _credentials(args, required=args.record_mode != "none")
    except (ConfigError, AuthError) as exc:
        return _fail(str(exc), USAGE)
    report = preview(
        settings,
        entries,
        PreviewSettings(
            cassette_root=args.cassette_dir,
            record_mode=args.record_mode,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            api_base=_api_base(args),
            account_id=account,
        ),
        creds,
        package,
    )
    for line in [v.line() for v in report.verdicts] if args.verbose else report.problems():
        print(line)
    print(report.summary())
    return OK if report.ok else FAILED


def _remote(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Run `work(client, tape)` with a client for the account; API errors become exit status 1."""
    import aiohttp

    from pytest_rewardkit.auth import AuthError
    from pytest_rewardkit.evaluators.api import EVALUATOR_ID, EvaluatorAPIError, EvaluatorClient, Tape
    from pytest_rewardkit.recording import CassetteError

    evaluator_id = getattr(args, "evaluator_id", None)
    if evaluator_id is not None and not EVALUATOR_ID.match(evaluator_id):
        return _fail(
            f"evaluator id {evaluator_id!r}: use lowercase letters, digits and hyphens, starting with a letter "
            "(at most 63 characters)",
            USAGE,
        )
    replay_only = args.cassette is not None and args.record_mode == "none"
    try:
        creds, account = _credentials(args, required=not replay_only)
        tape = Tape(args.cassette, args.record_mode) if args.cassette is not None else None
    except (AuthError, CassetteError) as exc:
        return _fail(str(exc), USAGE)

    async def go() -> int:
        async with aiohttp.ClientSession() as session:
            return await work(EvaluatorClient(session, creds, account, api_base=_api_base(args)), tape)

    try:
        return asyncio.run(go())
    except EvaluatorAPIError as exc:
        return _fail(str(exc), FAILED)


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(existing.get(key) == value for key, value in wanted.items())


def run_create(args: argparse.Namespace) -> int:
    from pytest_rewardkit.config import ConfigError
    from pytest_rewardkit.evaluators.api import EvaluatorExists, EvaluatorNotFound

    try:
        settings, package = _package(args.suite)
    except ConfigError as exc:
        return _fail(str(exc), USAGE)
    evaluator = package.evaluator()
    if args.evaluator_id is None:
        args.evaluator_id = "".join(c if c.isalnum() else "-" for c in settings.suite.lower()).strip("-")[:63]

    async def work(client: Any, tape: Any) -> int:
        evaluator_id = args.evaluator_id
        if args.force:
            try:
                existing = await client.get(evaluator_id, tape)
            except EvaluatorNotFound:
                existing = None
            if existing is not None and _same(existing, evaluator):
                print(f"evaluator {evaluator_id} is up to date: {existing.get('name', '')}")
                return OK
            if existing is not None:
                await client.delete(evaluator_id, tape)
                print(f"deleted the outdated evaluator {evaluator_id}")
        try:
            created = await client.create(evaluator_id, evaluator, tape)
        except EvaluatorExists as exc:
            raise EvaluatorExists(f"{exc}; pass --force to replace it", exc.status) from None
        print(f"created evaluator {created.get('name', evaluator_id)}")
        return OK

    return _remote(args, work)


def run_get(args: argparse.Namespace) -> int:
    async def work(client: Any, tape: Any) -> int:
        print(json.dumps(await client.get(args.evaluator_id, tape), indent=2, sort_keys=True))
        return OK

    return _remote(args, work)


def run_delete(args: argparse.Namespace) -> int:
    from pytest_rewardkit.evaluators.api import EvaluatorNotFound

    async def work(client: Any, tape: Any) -> int:
        try:
            await client.delete(args.evaluator_id, tape)
        except EvaluatorNotFound:
            if not args.force:
                raise
            print(f"evaluator {args.evaluator_id} does not exist: nothing to delete")
            return OK
        print(f"deleted evaluator {args.evaluator_id}")
        return OK

    return _remote(args, work)
