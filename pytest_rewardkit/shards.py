"""`--rk-shard i/n`: a deterministic share of every suite's rows, for runs that span several CI
machines (merge.py combines their results).

A row's shard is a hash of its id, so adding or removing rows never moves the others, and every
machine agrees without talking to the others. The CI matrix is the scheduler.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_rewardkit.dataset import DatasetEntry


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ValueError(f"expected i/n with 1 <= i <= n, e.g. 2/4 (got {text!r})")
        return cls(index=int(match.group(1)), count=int(match.group(2)))

    def holds(self, row_id: str) -> bool:
        return shard_of(row_id, self.count) == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(row_id: str, count: int) -> int:
    """The 0-based shard of a row: its id's SHA-256, so it depends on nothing but the id."""
    return int.from_bytes(hashlib.sha256(row_id.encode("utf-8")).digest()[:8], "big") % count


def select_shard(entries: list[DatasetEntry], shard: ShardSpec | None) -> list[DatasetEntry]:
    return entries if shard is None else [e for e in entries if shard.holds(e.row_id)]
