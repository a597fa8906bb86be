"""A bounded, thread-safe least-recently-used cache: the one the pruner, the sampler, the prior
and the predictor store keep their in-process results in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING: Any = object()


class LRUCache(Generic[K, V]):
    """At most ``size`` entries; reading or writing one makes it the most recent, and a write
    past ``size`` drops the least recent. Pickling keeps the size and drops the entries.

    Args:
        size: How many entries are kept, at least 1.

    Raises:
        ValueError: For ``size < 1``.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"`size` must be at least 1, but got {size=}.")
        self.size = int(size)
        self._init_local()

    def _init_local(self) -> None:
        self._lock = threading.RLock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self._init_local()

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a kept key (made the most recent), else ``(False, None)``;
        a stored None is told apart from a missing entry."""
        with self._lock:
            value = self._entries.get(key, _MISSING)
            if value is _MISSING:
                return False, None
            self._entries.move_to_end(key)
            return True, value

    def get(self, key: K) -> V | None:
        """The kept value of ``key`` (made the most recent), or None."""
        return self.lookup(key)[1]

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` as the most recent entry; returns ``value``."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def setdefault(self, key: K, make: Callable[[], V]) -> V:
        """The kept value of ``key``, or ``make()`` kept under it (under the cache's lock)."""
        with self._lock:
            found, value = self.lookup(key)
            if found:
                return value  # type: ignore[return-value]
            return self.put(key, make())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._entries))

    def values(self) -> list[V]:
        """The kept values, least recent first."""
        with self._lock:
            return list(self._entries.values())

    def __getitem__(self, key: K) -> V:
        with self._lock:
            return self._entries[key]
