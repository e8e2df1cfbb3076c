"""One way to turn a name from a suite into Python objects: `module:function` rewards (or built-in
names), `module:Class` environments, and a reward bound to its params.

A suite's folder is where its own modules live: `rk_rewards:exact` in a suite beside
`rk_rewards.py` imports that file, from a pytest run, a composite component, a shaping
sub-reward or the TRL adapter alike. Everything resolved is cached per folder, so a suite's
reward is imported and its params validated once, not once per row or per call.

    resolver = resolver_for(suite_folder)        # one per folder (None: only sys.path)
    resolver.load("envs:Calendar")               # any `module:attribute.path`; ConfigError if missing
    resolver.reward("rk_rewards:exact")          # a RewardFunction; UnknownReward if missing or unusable
    resolver.bind("composite", params)           # BoundReward: the reward and its prepared params
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rewardkit.errors import ConfigError, UnknownReward
from pytest_rewardkit.reward import RewardFunction, reward_function, split_import_path

__all__ = ["BoundReward", "Resolver", "resolver_for"]


@dataclass(frozen=True)
class BoundReward:
    """A reward with the params it was configured with, prepared once (`RewardFunction.prepare`).
    The caller merges them with each call's arguments: a suite's row fields win over its params,
    a composite component's params win over the row's fields."""

    name: str  # as the suite names it: a built-in's short name, or `module:function`
    reward: RewardFunction
    params: dict[str, Any] = field(default_factory=dict)


class Resolver:
    """Resolves names for the suite in `folder` (None: importable from sys.path only). Use
    `resolver_for(folder)`, which keeps one per folder, so its caches serve the whole suite."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._objects: dict[str, Any] = {}
        self._bound: dict[str, BoundReward] = {}
        self._lock = threading.RLock()  # TRL scores from threads; an import runs once

    def __repr__(self) -> str:
        return f"<Resolver {self.folder or 'sys.path'}>"

    def load(self, path: str) -> Any:
        """The object at `module:attribute.path`; a module in the suite's folder comes first."""
        with self._lock:
            if path in self._objects:
                return self._objects[path]
            try:
                module_name, attrs = split_import_path(path)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            try:
                obj: Any = self._import(module_name)
                for attr in attrs:
                    obj = getattr(obj, attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"cannot import {path!r}: {exc}") from exc
            self._objects[path] = obj
            return obj

    def _import(self, module_name: str) -> Any:
        """The module, from the suite's folder when it holds it (a `name.py` or a `name/` package),
        else from sys.path: the one place that decides where a suite's own modules come from."""
        top = module_name.partition(".")[0]
        folder = self.folder
        if folder is None or not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
            return importlib.import_module(module_name)
        held = sys.modules.get(top)
        if held is None:
            if str(folder) not in sys.path:
                # Like pytest's default "prepend" import mode does for test modules.
                sys.path.insert(0, str(folder))
            held = importlib.import_module(top)
        if _lives_in(held, folder):
            return importlib.import_module(module_name)
        # Another suite's module of the same name holds the name (`a/capitals/my_rewards.py` and
        # `b/capitals/my_rewards.py`): this suite's is imported from its file under a name of its own.
        return _import_from_folder(folder, top, module_name)

    def reward(self, name: str) -> RewardFunction:
        """A built-in by name, or any reward function by import path `module:function`."""
        from pytest_rewardkit.rewards import BUILTINS

        path = BUILTINS.get(name, name)
        if ":" not in path:
            known = ", ".join(sorted(BUILTINS))
            raise UnknownReward(f"unknown reward {name!r}: use a built-in ({known}) or 'module:function'")
        try:
            obj = self.load(path)
        except ConfigError as exc:
            raise UnknownReward(f"cannot import reward {path!r}: {exc.__cause__ or exc}") from exc
        try:
            return reward_function(obj)
        except TypeError as exc:
            raise UnknownReward(f"reward {path!r} cannot be used: {exc}") from exc

    def bind(self, name: str, params: Mapping[str, Any] | None = None) -> BoundReward:
        """The reward `name` with `params` prepared; cached, so a suite pays for it once."""
        key = _cache_key(name, params)
        cached = self._bound.get(key) if key is not None else None
        if cached is not None:
            return cached
        bound = self.bind_reward(self.reward(name), params, name)
        if key is not None:
            self._bound[key] = bound
        return bound

    def bind_reward(
        self, reward: RewardFunction, params: Mapping[str, Any] | None = None, name: str | None = None
    ) -> BoundReward:
        """`reward` with `params` prepared by its `prepare` hook, which resolves sub-rewards here.
        RewardError if the reward refuses its params."""
        prepared = dict(params or {})
        if reward.prepare is not None:
            prepared = reward.prepare(prepared, self)
        return BoundReward(name or reward.name, reward, prepared)


def _lives_in(module: Any, folder: Path) -> bool:
    """Whether `module` (a top-level module or package) was loaded from `folder`."""
    origin = getattr(module, "__file__", None)
    if origin is None:
        return False
    return Path(origin).resolve().parent in (folder.resolve(), (folder / module.__name__).resolve())


def _import_from_folder(folder: Path, top: str, module_name: str) -> Any:
    """`top` from `folder` as `<top>__rk_<hash of the folder>` (registered in sys.modules, so
    its submodules and relative imports resolve under the same unique name)."""
    unique = f"{top}__rk_{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:10]}"
    if unique not in sys.modules:
        package = folder / top / "__init__.py"
        path = package if package.is_file() else folder / f"{top}.py"
        spec = importlib.util.spec_from_file_location(
            unique, path, submodule_search_locations=[str(path.parent)] if package.is_file() else None
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique]
            raise
    return importlib.import_module(unique + module_name[len(top) :])


def _cache_key(name: str, params: Mapping[str, Any] | None) -> str | None:
    """Params from a suite's YAML are JSON; others (objects handed to the TRL adapter) are not cached."""
    try:
        return json.dumps([name, params or {}], sort_keys=True)
    except (TypeError, ValueError):
        return None


_RESOLVERS: dict[Path | None, Resolver] = {}


def resolver_for(folder: Path | None) -> Resolver:
    """The resolver of the suite in `folder` (its YAML file's parent), created once per folder."""
    if folder is not None and not folder.is_absolute():
        folder = folder.absolute()
    resolver = _RESOLVERS.get(folder)
    if resolver is None:
        resolver = _RESOLVERS.setdefault(folder, Resolver(folder))
    return resolver
