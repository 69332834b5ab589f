"""One way to open the data directory's SQLite database: WAL, a busy timeout, autocommit mode.

Several stores share the file (metadata, queue, logs, metering, schedules, URLs), each with its own
connection; WAL lets readers run beside the one writer, and the timeout makes a writer wait its turn.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


def connect(path: Path, schema: str, *, synchronous_full: bool = False,
            synchronous_normal: bool = False) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise their own writes), schema applied.

    `synchronous_normal`: commits do not wait for the disk (WAL stays consistent; a power cut may lose
    the last second's rows) — for the write-behind stores (logs, metering), whose rows are a second old
    by the time they are written anyway."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous_full:
        db.execute("PRAGMA synchronous=FULL")
    elif synchronous_normal:
        db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


class WriteBehind(Generic[T]):
    """Items buffered in memory by the invoke path (no I/O there) and inserted in one transaction by
    `flush()`, from any thread: the server's housekeeping calls it every second from its writer thread,
    so SQLite's inserts and commits run beside the event loop, not on it. The whole batch goes in as one
    JSON array through `json_each`: one statement, so the writer thread releases the GIL once per batch
    (executemany takes it back for every row, and would fight the event loop for it). `lock` also
    serialises the store's other uses of the connection."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, table: str, columns: tuple[str, ...],
                 rows: Callable[..., list[tuple[Any, ...]]]) -> None:
        self._db = db
        self._lock = lock
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        self._insert = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picks} FROM json_each(?)"
        self._rows = rows
        self._pending: collections.deque[T] = collections.deque()  # append and popleft are atomic

    def add(self, item: T) -> None:
        self._pending.append(item)

    def flush(self, *context: Any) -> None:
        """Insert everything buffered so far; `rows(items, *context)` makes the rows."""
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch:
                return
            self._db.execute("BEGIN")
            try:
                self._db.execute(self._insert, (json.dumps(self._rows(batch, *context)),))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
