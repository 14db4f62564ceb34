"""Which workspaces, and which workflows of a workspace split by workflow, this shard polls.

Rendezvous (highest random weight) hashing: a key goes to the shard whose weight for it is highest,
the weight being a stable hash of the shard number and the key (hashlib, the same on every machine and
Python, unlike ``hash()``). Going from M to M+1 shards moves only the keys the new shard wins: about
1/(M+1) of them, where ``hash % M`` would move most.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal

#: ``workspaces[].sharding.by``: the unit a workspace is sharded by.
ShardBy = Literal["workspace", "workflow"]
SHARD_BY: Final[tuple[ShardBy, ...]] = ("workspace", "workflow")
#: ``--shard auto``: the number is the StatefulSet ordinal at the end of the host name (``name-3``).
AUTO: Final = "auto"
_ORDINAL = re.compile(r"-(0|[1-9][0-9]{0,5})$")
MAX_TOTAL_SHARDS: Final = 1000


def weight(shard: int, key: str) -> int:
    """The shard's weight for ``key``: 64 bits of BLAKE2b over both."""
    digest = hashlib.blake2b(f"{shard}\x00{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


#: A split workspace asks for each of its workflows at every poll: later polls answer from memory.
@functools.lru_cache(maxsize=65_536)
def owner(key: str, total_shards: int) -> int:
    """The shard among ``0 .. total_shards - 1`` that owns ``key`` (ties, never seen in practice, go
    to the lowest shard)."""
    return max(range(total_shards), key=lambda shard: (weight(shard, key), -shard))


def ordinal(hostname: str) -> int:
    """The StatefulSet ordinal at the end of a pod's host name (``captaindata-exporter-2`` -> 2);
    ValueError when there is none."""
    match = _ORDINAL.search(hostname)
    if match is None:
        raise ValueError(
            f"--shard auto takes the shard from the StatefulSet ordinal at the end of the host name "
            f"(name-N), and the host name {hostname[:60]!r} has none"
        )
    return int(match.group(1))


@dataclass(frozen=True)
class Sharding:
    """This process's shard (0-based) among ``total`` shards."""

    shard: int = 0
    total: int = 1

    @property
    def sharded(self) -> bool:
        return self.total > 1

    def owns(self, key: str) -> bool:
        return not self.sharded or owner(key, self.total) == self.shard

    def plan(self, name: str, by: ShardBy) -> Part | None:
        """How this shard takes part in the workspace ``name``: None when it does not."""
        if self.sharded and by == "workflow":
            return Part(self.shard, self.total, split=True, owner=self.owns(name))
        if self.owns(name):
            return Part(self.shard, self.total, split=False, owner=True)
        return None


@dataclass(frozen=True)
class Part:
    """This shard's part of one workspace. ``split``: the workspace is split by workflow, and this
    shard polls the workflows it owns, with 1/total of the workspace's request budget. ``owner``: the
    workspace's name hashes to this shard, which then exports the series that hold the whole
    workspace's value (``captaindata_workflows``)."""

    shard: int
    total: int
    split: bool
    owner: bool

    def owns_workflow(self, workflow_uid: str) -> bool:
        return not self.split or owner(workflow_uid, self.total) == self.shard

    @property
    def label(self) -> str:
        """The ``shard`` label of this shard's own series of a split workspace ("" when not split)."""
        return str(self.shard) if self.split else ""

    def budget(self, requests_per_second: float, burst: int) -> tuple[float, int]:
        """This shard's share of the workspace's request budget: all of it unless split."""
        if not self.split:
            return requests_per_second, burst
        return requests_per_second / self.total, max(1, burst // self.total)


WHOLE: Final = Part(0, 1, split=False, owner=True)
