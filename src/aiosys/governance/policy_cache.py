"""The decision cache: Cedar's answer by request shape and policy version, bounded (LRU).

A decision depends only on the request (principal and its attributes, action, resource and
its attributes, context) and on the policy set; the key holds both, so a new policy version
never meets an old answer (the cache is also cleared when the version changes, to free it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """Cedar's answer: ``allowed``, the ids of the policies that decided it, the errors of
    policies that could not be evaluated (they were skipped)."""

    allowed: bool
    policies: tuple[str, ...]
    errors: tuple[str, ...] = ()


class DecisionCache:
    """At most ``size`` verdicts, least recently used dropped first. Not thread-safe: the
    event loop's thread uses it."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Verdict | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, verdict: Verdict) -> None:
        if self.size <= 0:
            return
        self._entries[key] = verdict
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
