"""Suites as pytest collectors: a `rewardkit.yaml` file, or a Python test marked `rewardkit`,
becomes one item (or one parametrization) per dataset row."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_rewardkit import suite
from pytest_rewardkit.auth import AuthError, find_api_key
from pytest_rewardkit.config import GateSpec, Settings
from pytest_rewardkit.dataset import DatasetEntry
from pytest_rewardkit.errors import ConfigError, RewardkitError, RowError, SessionStop
from pytest_rewardkit.evaluation import (
    Case,
    RewardFailure,
    RowOutcome,
    evaluate_case,
    suite_key,
    unscored_outcome,
    user_location,
)
from pytest_rewardkit.resolver import resolver_for
from pytest_rewardkit.reward import RewardFunction
from pytest_rewardkit.shards import select_shard
from pytest_rewardkit.state import GENERATOR_KEY, OUTCOME_KEY, PROGRESS_PLUGIN, options

if TYPE_CHECKING:
    from pytest_rewardkit.generation import Generator
    from pytest_rewardkit.report import Selection


def load_suite(config: pytest.Config, config_path: Path) -> tuple[Settings, list[DatasetEntry]]:
    """The suite's settings and the rows this run holds (its --rk-shard share, if any)."""
    opts = options(config)
    settings, entries = suite.load_suite(config_path, opts, config.rootpath)
    claim_suite(config, settings)
    check_reward(settings)
    return settings, select_shard(entries, opts.shard)


def check_reward(settings: Settings) -> None:
    """Resolve the suite's reward now (cached for its rows), so that an unknown name, a module
    that fails to import or a function the decorator refuses is one collection error naming
    the YAML, the reward and the cause in the user's file, not one traceback per row."""
    spec = settings.reward
    try:
        resolver_for(settings.config_path.parent).bind(spec.name, spec.params)
    except Exception as exc:  # a user's module may raise anything while it is imported
        raise ConfigError(f"{settings.config_path}: reward {spec.name!r}: {describe_failure(exc)}") from None


def describe_failure(exc: BaseException) -> str:
    """An exception from the user's code in one line: its type, message and the place in the
    user's file it came from (not the library's or importlib's frames)."""
    if isinstance(exc, RewardkitError) and not isinstance(exc.__cause__, (SyntaxError, RewardkitError)):
        return str(exc)
    if isinstance(exc, RewardkitError) and exc.__cause__ is not None:
        return describe_failure(exc.__cause__)
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    return f"{type(exc).__name__}: {exc}{user_location(exc)}"


def claim_suite(config: pytest.Config, settings: Settings) -> None:
    """One suite file per suite label in a run: two would share one cassette folder (recording
    one would rewrite the other's) and one line of the summary."""
    claims = config.stash.setdefault(_SUITES_KEY, {})
    other = claims.setdefault(settings.suite, settings.config_path.resolve())
    if other == settings.config_path.resolve():
        return
    if other.parent == settings.config_path.resolve().parent:
        raise ConfigError(
            f"{settings.config_path} and {other}: one suite file per folder (both would be suite "
            f"{settings.suite!r}); remove one"
        )
    from pytest_rewardkit.recording import cassette_dir

    folder = cassette_dir(cassette_root(config), settings.suite, "model").parent
    raise ConfigError(
        f"{settings.config_path} and {other} are both suite {settings.suite!r}: they would share the "
        f"cassette folder {folder} and one summary line; give one a distinct `name:` in its YAML"
    )


def generator(config: pytest.Config) -> Generator:
    """The process's generator, created on first use: suites that only score stored responses
    never import the HTTP stack."""
    existing = config.stash.get(GENERATOR_KEY, None)
    if existing is not None:
        return existing
    from pytest_rewardkit.generation import GenerationConfig, Generator

    opts = options(config)
    try:
        # Replay needs no key, so a broken auth.ini only matters when recording.
        credentials = find_api_key(opts.api_key_env) if opts.record_mode != "none" else None
    except AuthError as exc:
        raise pytest.UsageError(str(exc)) from None
    created = Generator(
        GenerationConfig(
            cassette_root=cassette_root(config),
            record_mode=opts.record_mode,
            concurrency=opts.concurrency,
            api_key=credentials.api_key if credentials else None,
            api_key_env=opts.api_key_env,
            read_timeout=opts.request_timeout,
            max_repeated_errors=opts.max_repeated_errors,
            cache_dir=_cassette_cache_dir(config),
        ),
        on_wait=_progress_tick(config),
    )
    config.stash[GENERATOR_KEY] = created
    return created


def cassette_root(config: pytest.Config) -> Path:
    opts = options(config)
    root = opts.cassette_dir or Path("cassettes")
    return root if root.is_absolute() else config.rootpath / root


def _cassette_cache_dir(config: pytest.Config) -> Path | None:
    """pytest's cache directory for parsed cassettes: None without pytest's cache (`-p no:cacheprovider`)
    or when it cannot be created (a read-only checkout), and cassettes are then parsed every time."""
    if getattr(config, "cache", None) is None:
        return None
    try:
        return config.cache.mkdir("rewardkit-cassettes")
    except OSError:
        return None


def _progress_tick(config: pytest.Config) -> Callable[[float], None] | None:
    """Where this process reports progress, and how long it has waited, while a row waits: the
    reporter of a serial run, or the file an xdist worker writes for its controller."""
    reporter = config.pluginmanager.get_plugin(PROGRESS_PLUGIN)
    if reporter is not None:
        return reporter.tick
    from pytest_rewardkit.progress import waiting_writer

    return waiting_writer(config)


def make_case(config: pytest.Config, settings: Settings, entry: DatasetEntry) -> Case | None:
    if entry.row is None:
        return None
    source = generator(config).responses if settings.model is not None else None
    return Case(settings=settings, row=entry.row, row_id=entry.row_id, source=source)


def check_recordings_exist(config: pytest.Config, settings: Settings) -> None:
    """Replay-only with no cassette at all for this suite and model is one clear error,
    not one identical failure per row."""
    opts = options(config)
    if settings.model is None or opts.record_mode != "none":
        return
    from pytest_rewardkit.recording import cassette_dir

    folder = cassette_dir(cassette_root(config), settings.suite, settings.model)
    if not folder.is_dir():
        raise ConfigError(
            f"no recorded responses for model {settings.model!r} in {folder} (record mode none replays only).\n"
            f"Record them: {opts.api_key_env}=<your key> pytest {settings.config_path.parent} "
            f"--rk-model {settings.model} --rk-n {settings.n} --record-mode=new_episodes\n"
            f"(--rk-base-url points at any other OpenAI-compatible server)"
        )


STOPPED = "not scored: rewardkit stopped the session (the reason is the run's last message)"


def run_with_stop(node: pytest.Item, evaluate: Callable[[], RowOutcome]) -> RowOutcome:
    """Evaluate the row; when no row can be (SessionStop), stop the session once, with the reason.

    Through session.shouldstop rather than pytest.exit: pytest ends serial runs with it after this
    item (exit 2), and an xdist worker hands it to the controller, which stops every worker and ends
    with the same message and exit status; pytest.exit in a worker reads as a crashed node instead."""
    try:
        return evaluate()
    except SessionStop as exc:
        if not node.session.shouldstop:
            node.session.shouldstop = f"rewardkit: {exc}"
        pytest.skip(STOPPED)


def node_name(row_id: str) -> str:
    """The row id as a node name: pytest parses '::' and '[...]' in node ids (--lf, node-id
    arguments), so they are replaced; results keep the row id itself."""
    return row_id.replace("::", ":_:").replace("[", "(").replace("]", ")")


def record(node: pytest.Item, outcome: RowOutcome) -> None:
    """Keep the outcome for the item's teardown report (see the plugin's teardown hook)."""
    node.stash[OUTCOME_KEY] = outcome


def fail_unscored(outcome: RowOutcome) -> NoReturn:
    """Fail the item (in setup: a pytest error) for a row that could not be scored. pytest's own
    exception keeps the report plain ("Failed: row ..."); the mark tells the gate it is a verdict."""
    exc = pytest.fail.Exception(outcome.verdict_message(), pytrace=False)
    exc.rewardkit_verdict = True  # type: ignore[attr-defined]
    raise exc


def is_verdict(exc: BaseException) -> bool:
    """Whether an item failed by its row's verdict (low reward, or not scorable): the gate's to
    judge, unlike any other failure of the item."""
    return isinstance(exc, (RewardFailure, RowError)) or getattr(exc, "rewardkit_verdict", False) is True


def row_of(item: pytest.Item) -> tuple[Settings, str] | None:
    """The suite settings and row id of a row item (YAML-collected or a marked test's
    parametrization); None for any other item."""
    if isinstance(item, RowItem):
        return item.settings, item.entry.row_id
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("rk_case") if callspec is not None else None
    if isinstance(param, Case):
        return param.settings, param.row_id
    if isinstance(param, tuple):
        settings, entry = param
        return settings, entry.row_id
    return None


def suite_of(item: pytest.Item) -> str:
    """The "suite/dataset/model" a row item counts under ('' for any other item)."""
    row = row_of(item)
    return "/".join(suite_key(row[0])) if row is not None else ""


def selections(items: list[pytest.Item], deselected: dict[tuple[str, str, str], set[str]]) -> list[Selection]:
    """Per (suite, dataset, model): how many rows were selected to run, and how many the user
    deselected. Rows, not items: a row a YAML item and a marked test both cover is one row."""
    from pytest_rewardkit.report import Selection

    chosen: dict[tuple[str, str, str], set[str]] = {}
    limits: dict[tuple[str, str, str], int | None] = {}
    gates: dict[tuple[str, str, str], GateSpec | None] = {}
    for item in items:
        found = row_of(item)
        if found is not None:
            settings, row_id = found
            key = suite_key(settings)
            chosen.setdefault(key, set()).add(row_id)
            limits[key] = settings.limit
            gates[key] = settings.gate
    return [
        Selection(
            suite=key[0],
            dataset=key[1],
            model=key[2],
            selected=len(chosen.get(key, ())),
            deselected=len(deselected.get(key, set()) - chosen.get(key, set())),
            limit=limits.get(key),
            gate=gates.get(key),
        )
        for key in sorted(chosen.keys() | deselected.keys())
    ]


class SuiteFile(pytest.File):
    """A `rewardkit.yaml`: its dataset's rows are the items."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            settings, entries = load_suite(self.config, self.path)
            check_recordings_exist(self.config, settings)
        except ConfigError as exc:
            raise self.CollectError(str(exc)) from exc
        for entry in entries:
            yield RowItem.from_parent(self, name=node_name(entry.row_id), settings=settings, entry=entry)


class RowItem(pytest.Item):
    def __init__(self, *, settings: Settings, entry: DatasetEntry, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.entry = entry

    @functools.cached_property
    def case(self) -> Case | None:
        """The row as a Case (None for a malformed row), built once for prefetching and scoring."""
        return make_case(self.config, self.settings, self.entry)

    def setup(self) -> None:
        # Scoring happens in setup so that rows that cannot be scored (bad row, failed
        # generation, broken reward) report as pytest ERRORs, apart from low-reward FAILUREs.
        case = self.case
        if case is None:
            outcome = unscored_outcome(self.settings, self.entry.row_id, self.entry.problem or "malformed row")
        else:
            outcome = run_with_stop(self, lambda: evaluate_case(case))
        record(self, outcome)
        if outcome.error is not None:
            fail_unscored(outcome)

    def runtest(self) -> None:
        self.stash[OUTCOME_KEY].check()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (RewardFailure, RowError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.settings.dataset_path, self.entry.line - 1, f"{self.settings.suite}::{self.entry.row_id}"


class BoundCase:
    """What a marked Python test receives as `rk_case`: the row, and `evaluate()`, which scores
    it exactly as a YAML-collected item would and records the outcome for the summary."""

    def __init__(self, node: pytest.Item, case: Case) -> None:
        self._node = node
        self.case = case
        self.row = case.row
        self.row_id = case.row_id
        self.settings = case.settings

    def evaluate(self, reward: RewardFunction | None = None, check: bool = True) -> RowOutcome:
        outcome = run_with_stop(self._node, lambda: evaluate_case(self.case, reward))
        record(self._node, outcome)
        if check:
            outcome.check()
        return outcome


def marker_cases(config: pytest.Config, test_path: Path, target: str) -> tuple[list[Any], list[str]]:
    """Parameters (a Case, or the broken entry) and ids for a test marked `rewardkit(target)`."""
    candidate = Path(target)
    if not candidate.is_absolute():
        local = test_path.parent / candidate
        candidate = local if local.exists() else config.rootpath / candidate
    settings, entries = load_suite(config, candidate)
    check_recordings_exist(config, settings)
    params: list[Any] = []
    for entry in entries:
        case = make_case(config, settings, entry)
        params.append(case if case is not None else (settings, entry))
    return params, [node_name(e.row_id) for e in entries]


def bind_case(request: pytest.FixtureRequest) -> BoundCase:
    param = getattr(request, "param", None)
    if param is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the rk_case fixture needs @pytest.mark.rewardkit('<suite folder>')"
        )
    if isinstance(param, tuple):
        settings, entry = param
        outcome = unscored_outcome(settings, entry.row_id, entry.problem or "malformed row")
        record(request.node, outcome)
        fail_unscored(outcome)
    return BoundCase(request.node, param)


def prefetch_upcoming(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Start generation for the rows this process will run next, so their model calls overlap
    while pytest runs items one at a time."""
    if options(item.config).record_mode == "none" or not isinstance(item, RowItem) or item.settings.model is None:
        return
    gen = generator(item.config)
    window = 2 * options(item.config).concurrency
    cases = []
    for upcoming in upcoming_items(item, nextitem, window):
        if isinstance(upcoming, RowItem) and upcoming.settings.model is not None and upcoming.case is not None:
            cases.append(upcoming.case)
    gen.prefetch(cases)


def upcoming_items(item: pytest.Item, nextitem: pytest.Item | None, window: int) -> list[pytest.Item]:
    """`item` and the items this process runs after it, up to `window` in all."""
    session = item.session
    if hasattr(item.config, "workerinput"):
        # An xdist worker runs only what the controller sends it, and xdist has no public view of
        # that queue; pytest's `nextitem` is the one item known to come next on this worker.
        return [item] if nextitem is None else [item, nextitem]
    positions = item.config.stash.get(_POSITIONS_KEY, None)
    if positions is None:
        positions = item.config.stash[_POSITIONS_KEY] = {id(it): n for n, it in enumerate(session.items)}
    start = positions.get(id(item), 0)
    return session.items[start : start + window]


_POSITIONS_KEY = pytest.StashKey[dict[int, int]]()
_SUITES_KEY = pytest.StashKey[dict[str, Path]]()  # suite label -> the suite file that claimed it
