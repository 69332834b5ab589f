"""One way to open the data directory's SQLite database: WAL, a busy timeout, autocommit mode.

Several stores share the file (metadata, queue, logs, metering, schedules, URLs), each with its own
connection; WAL lets readers run beside the one writer, and the timeout makes a writer wait its turn.
"""

from __future__ import annotations

import collections
import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


def connect(path: Path, schema: str, *, synchronous: str = "") -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise their own writes), schema applied.

    `synchronous`: SQLite's setting when not its default. "FULL" for what must survive a power cut once
    committed; "NORMAL": commits do not wait for the disk (WAL stays consistent; a power cut may lose
    the last second's rows) — for the write-behind stores (logs, metering), whose rows are a second old
    by the time they are written anyway."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous:
        db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(schema)
    return db


#: Bound parameters one statement may have (SQLite's limit: 32766 since 3.32, 999 before).
MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def statement_sizes(n: int, most: int) -> list[tuple[int, int]]:
    """(offset, rows) of the statements that insert `n` rows: as many as `most` at a time, the rest in
    powers of two (13 rows: 8, 4, 1), so only a few distinct statements ever exist."""
    out = []
    at = 0
    while at < n:
        size = min(most, 1 << ((n - at).bit_length() - 1))
        out.append((at, size))
        at += size
    return out


class WriteBehind(Generic[T]):
    """Items buffered in memory by the invoke path (no I/O there) and inserted in one transaction by
    `flush()`, from any thread: the server's housekeeping calls it every second from its writer thread,
    so SQLite's inserts and commits run beside the event loop, not on it. Rows go in as multi-row
    INSERTs of up to MAX_VARIABLES values each: the writer thread releases the GIL once per statement,
    where executemany takes it back for every row (and would fight the event loop for it). A batch is
    cut into statements of a power-of-two number of rows, so a table has a dozen distinct statements,
    prepared once: with one statement per batch size, the connection's statement cache (128 entries)
    kept a ~1 MB prepared statement for each of the last 128 sizes seen — the server's memory grew by
    hundreds of MB under load, and every flush re-parsed a 100 KB statement. `lock` also serialises the
    store's other uses of the connection."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, table: str, columns: tuple[str, ...],
                 rows: Callable[..., list[tuple[Any, ...]]]) -> None:
        self._db = db
        self._lock = lock
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._row = "(" + ", ".join("?" * len(columns)) + ")"
        self._chunk = 1 << (max(1, MAX_VARIABLES // len(columns)).bit_length() - 1)  # a power of two
        self._sql: dict[int, str] = {}  # rows per statement -> its SQL
        self._rows = rows
        self._pending: collections.deque[T] = collections.deque()  # append and popleft are atomic

    def add(self, item: T) -> None:
        self._pending.append(item)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        sql = self._sql.get(len(rows))
        if sql is None:
            sql = self._sql[len(rows)] = self._head + ", ".join([self._row] * len(rows))
        self._db.execute(sql, list(itertools.chain.from_iterable(rows)))  # in C: the GIL held less

    def flush(self, *context: Any) -> None:
        """Insert everything buffered so far; `rows(items, *context)` makes the rows."""
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch:
                return
            rows = self._rows(batch, *context)
            self._db.execute("BEGIN")
            try:
                for at, size in statement_sizes(len(rows), self._chunk):
                    self._insert(rows[at:at + size])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
