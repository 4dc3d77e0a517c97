"""Values computed from a local file (a DMG's SHA-256, a parsed known_hosts), remembered per version of it.

A run reads the same local files for every Mac; computing once per version instead of once per device saved
more controller CPU than sending the bytes cost. A version is (path, inode, size, mtime). Only a file that
was untouched for a while, and did not change while it was read, is remembered: a rewrite within the file
system's timestamp granularity would otherwise keep its key (git's "racy clean" rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
SETTLED_S = 2.0


class FileVersionCache(Generic[T]):
    """At most `limit` remembered values (all forgotten when full). Thread-safe: one thread computes, the
    callers asking for the same file at the same moment wait for its answer."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: dict[tuple[str, int, int, int], T] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, compute: Callable[[Path], T]) -> T:
        """compute(path), or what it returned for this version of the file. Raises what stat/compute raise."""
        with self._lock:
            st = path.stat()
            key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
            if key in self._values:
                return self._values[key]
            value = compute(path)
            after = path.stat()
            unchanged = (after.st_ino, after.st_size, after.st_mtime_ns) == key[1:]
            if unchanged and time.time() - st.st_mtime > SETTLED_S:
                if len(self._values) >= self._limit:
                    self._values.clear()
                self._values[key] = value
            return value
