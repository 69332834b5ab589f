"""One metering record per invocation: what ran, for how long, billed how, at what memory size.

Buffered in memory and written by `flush()` (housekeeping, every second), like the log store: the
invoke path does no database write for metering. GB-seconds = MemorySize/1024 × billed seconds (1 ms
granularity, as Lambda bills); idle time is never billed.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

from lamina.store.db import WriteBehind, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS invocations (
    ts          INTEGER NOT NULL,
    function    TEXT NOT NULL,
    version     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    billed_ms   INTEGER NOT NULL,
    memory_mb   INTEGER NOT NULL,
    gb_s        REAL NOT NULL,
    init_ms     REAL,
    cold        INTEGER NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_ts ON invocations (ts);
"""


class Record(NamedTuple):
    """One invocation's metering record (a named tuple: made on the invoke path, several times cheaper
    than a frozen dataclass, and as immutable)."""

    ts_ms: int
    function: str
    version: str
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    init_ms: float | None
    cold: bool
    outcome: str

    @property
    def gb_s(self) -> float:
        return self.memory_mb / 1024 * self.billed_ms / 1000


@dataclasses.dataclass(frozen=True, slots=True)
class UsageRow:
    key: str  # function name or YYYY-MM-DD
    requests: int
    errors: int
    cold_starts: int
    gb_s: float
    billed_ms: int


class MeteringStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="NORMAL")
        self._lock = threading.Lock()
        self._writes: WriteBehind[Record] = WriteBehind(
            self._db, self._lock, "invocations", ("ts", "function", "version", "request_id", "duration_ms",
                                                  "billed_ms", "memory_mb", "gb_s", "init_ms", "cold", "outcome"),
            lambda records: [(r.ts_ms, r.function, r.version, r.request_id, r.duration_ms, r.billed_ms, r.memory_mb,
                              r.gb_s, r.init_ms, int(r.cold), r.outcome) for r in records])

    def record(self, record: Record) -> None:
        self._writes.add(record)

    def flush(self) -> None:
        self._writes.flush()

    def usage(self, since_ms: int, by: str) -> list[UsageRow]:
        """Totals since `since_ms`, grouped by function or by UTC day."""
        key = "function" if by == "function" else "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {key}, COUNT(*), SUM(outcome != 'success'), SUM(cold), SUM(gb_s), SUM(billed_ms) "
                f"FROM invocations WHERE ts >= ? GROUP BY 1 ORDER BY 1", (since_ms,)).fetchall()
        return [UsageRow(k, n, e or 0, c or 0, g or 0.0, b or 0) for k, n, e, c, g, b in rows]

    def per_minute(self, since_ms: int) -> list[MinuteRow]:
        """Per function and minute since `since_ms`: the dashboard's charts."""
        with self._lock:
            return _minutes(self._db, since_ms)

    def between(self, start_ms: int, end_ms: int, function: str | None = None) -> list[tuple[str, str, int, float, str]]:
        """(function, version, end ms, duration ms, outcome) of invocations that ended in [start, end)."""
        query = "SELECT function, version, ts, duration_ms, outcome FROM invocations WHERE ts >= ? AND ts < ?"
        args: tuple[object, ...] = (start_ms, end_ms)
        if function is not None:
            query, args = query + " AND function = ?", args + (function,)
        self.flush()
        with self._lock:
            return self._db.execute(query, args).fetchall()

    def functions_since(self, since_ms: int) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute(
                "SELECT DISTINCT function FROM invocations WHERE ts >= ? ORDER BY 1", (since_ms,))]

    def close(self) -> None:
        self.flush()
        self._db.close()


@dataclasses.dataclass(frozen=True, slots=True)
class MinuteRow:
    function: str
    minute: int  # epoch minutes
    requests: int
    errors: int
    cold_starts: int
    avg_ms: float
    max_ms: float
    gb_s: float


def _minutes(db: sqlite3.Connection, since_ms: int) -> list[MinuteRow]:
    rows = db.execute(
        "SELECT function, ts / 60000, COUNT(*), SUM(outcome != 'success'), SUM(cold), AVG(duration_ms), "
        "MAX(duration_ms), SUM(gb_s) FROM invocations WHERE ts >= ? GROUP BY 1, 2 ORDER BY 2", (since_ms,)).fetchall()
    return [MinuteRow(f, m, n, e or 0, c or 0, a or 0.0, x or 0.0, g or 0.0) for f, m, n, e, c, a, x, g in rows]
