"""The durable async-invoke queue: events accepted with 202, waiting for delivery, leased while they run.

Theory of operation. An event is a row. It is *available* once `available_at <= now`; `lease()` takes
available rows in (available_at, id) order and moves `available_at` to the lease expiry, so nobody else
takes them while they run. The holder then ends the lease with exactly one of `ack` (delivered: the row
goes, follow-up events such as destination records come in, atomically), `retry_later` (back to the
queue at a later time), `release` (back now, unchanged: shutdown) or `dead` (given up: the row moves to
the dead table). A holder that crashes ends nothing: its lease expires and the event is leased again
(at-least-once). `renew` keeps a long run's lease alive.

Every lease increments the row's `deliveries`; a holder names the row by (id, deliveries), so a holder
whose lease expired and was re-taken cannot end someone else's lease (the call returns False).

The SQLite implementation has its own connection to `lamina.db` (WAL, `synchronous=FULL`: a returned
`enqueue` has reached the disk) and its own tables. The same contract maps onto PostgreSQL:
`lease` = `UPDATE … WHERE id IN (SELECT id … WHERE available_at <= $now ORDER BY available_at, id
LIMIT $n FOR UPDATE SKIP LOCKED) RETURNING …`, the others are single-row statements, and `batch()` is
one transaction with a savepoint per call.

Times are epoch seconds from the caller's clock (they must survive a restart, so not monotonic).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from lamina.store.db import connect
from typing import Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS async_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id    TEXT NOT NULL,
    function      TEXT NOT NULL,
    qualifier     TEXT NOT NULL,
    invoked_arn   TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    payload       BLOB NOT NULL,
    enqueued_at   REAL NOT NULL,
    available_at  REAL NOT NULL,
    leased        INTEGER NOT NULL DEFAULT 0,
    deliveries    INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    throttles     INTEGER NOT NULL DEFAULT 0,
    last_response BLOB,
    last_error    TEXT,
    last_version  TEXT
);
CREATE INDEX IF NOT EXISTS async_events_available ON async_events (available_at, id);
CREATE TABLE IF NOT EXISTS async_dead (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT NOT NULL,
    function      TEXT NOT NULL,
    qualifier     TEXT NOT NULL,
    invoked_arn   TEXT NOT NULL,
    payload       BLOB NOT NULL,
    enqueued_at   REAL NOT NULL,
    attempts      INTEGER NOT NULL,
    died_at       REAL NOT NULL,
    reason        TEXT NOT NULL
);
"""

_COLUMNS = ("id, request_id, function, qualifier, invoked_arn, trace_id, payload, enqueued_at, deliveries, "
            "attempts, throttles, last_response, last_error, last_version")


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to queue: one asynchronous invocation of `function` at `qualifier`."""

    request_id: str
    function: str
    qualifier: str  # $LATEST, a version or an alias, as invoked
    invoked_arn: str
    trace_id: str
    payload: bytes
    enqueued_at: float
    available_at: float | None = None  # default: enqueued_at


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A leased event. `deliveries` numbers this lease (1 for the first); `attempts` counts runs that
    ended in a function error, `throttles` the times it was turned away for concurrency."""

    id: int
    request_id: str
    function: str
    qualifier: str
    invoked_arn: str
    trace_id: str
    payload: bytes
    enqueued_at: float
    deliveries: int
    attempts: int = 0
    throttles: int = 0
    last_response: bytes | None = None  # the payload of the last failed attempt
    last_error: str | None = None  # its error type
    last_version: str | None = None  # the version that ran it


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStatistics:
    ready: int  # available now (including expired leases)
    delayed: int  # waiting for a retry time
    leased: int  # being delivered
    dead: int  # given up (kept for inspection)


class EventQueue(Protocol):
    """The durable queue contract (see the module docstring). Every method is one atomic change; inside
    `batch()` several calls share one commit (a call that raises changes nothing)."""

    def enqueue(self, events: Sequence[NewEvent]) -> list[int]:
        """Store the events; when it returns they survive a crash. Returns their ids."""

    def lease(self, limit: int, now: float, until: float) -> list[QueuedEvent]:
        """Take up to `limit` available events, oldest first, leased until `until`."""

    def ack(self, event: QueuedEvent, follow_ups: Sequence[NewEvent] = ()) -> bool:
        """Delivered: remove the event and queue `follow_ups`, atomically. False (and nothing changes)
        when this lease is no longer the event's current one."""

    def retry_later(self, event: QueuedEvent, available_at: float, *, attempts: int, throttles: int,
                    last_response: bytes | None = None, last_error: str | None = None,
                    last_version: str | None = None) -> bool:
        """End the lease; the event is available again at `available_at` with the counts given."""

    def release(self, events: Sequence[QueuedEvent], now: float) -> int:
        """End these leases (those still current and not already ended) without a delivery attempt
        (shutdown): available again at `now`. How many."""

    def renew(self, events: Sequence[QueuedEvent], until: float) -> int:
        """Extend these leases (those still current) to `until`."""

    def dead(self, event: QueuedEvent, reason: str, now: float, follow_ups: Sequence[NewEvent] = ()) -> bool:
        """Give up: move the event to the dead table and queue `follow_ups`, atomically."""

    def purge_dead(self, before: float) -> int:
        """Forget dead events that died before `before`; how many."""

    def next_available(self) -> float | None:
        """When the earliest event becomes available (None: the queue is empty)."""

    def statistics(self, now: float) -> QueueStatistics: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


class SqliteQueue:
    """EventQueue on SQLite. Thread-safe (one lock); meant to be driven from one worker thread."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="FULL")
        self._lock = threading.RLock()
        self._in_batch = False
        self._savepoints = 0

    # transactions --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One commit for every call inside (group commit); nested batches join the outer one."""
        with self._lock:
            if self._in_batch:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._in_batch = True
            try:
                yield
            except BaseException:
                self._in_batch = False
                self._db.execute("ROLLBACK")
                raise
            self._in_batch = False
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._in_batch:
                with self.batch():
                    yield self._db
                return
            self._savepoints += 1
            name = f"op{self._savepoints}"
            self._db.execute(f"SAVEPOINT {name}")
            try:
                yield self._db
            except BaseException:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
                raise
            self._db.execute(f"RELEASE {name}")

    # the contract --------------------------------------------------------------------------------

    def enqueue(self, events: Sequence[NewEvent]) -> list[int]:
        with self._atomic() as db:
            return [self._insert(db, e) for e in events]

    @staticmethod
    def _insert(db: sqlite3.Connection, e: NewEvent) -> int:
        cursor = db.execute(
            "INSERT INTO async_events (request_id, function, qualifier, invoked_arn, trace_id, payload, "
            "enqueued_at, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.request_id, e.function, e.qualifier, e.invoked_arn, e.trace_id, e.payload, e.enqueued_at,
             e.enqueued_at if e.available_at is None else e.available_at))
        return int(cursor.lastrowid or 0)

    def lease(self, limit: int, now: float, until: float) -> list[QueuedEvent]:
        if limit <= 0:
            return []
        with self._atomic() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM async_events WHERE available_at <= ? ORDER BY available_at, id LIMIT ?",
                (now, limit)).fetchall()
            if not rows:
                return []
            db.executemany("UPDATE async_events SET available_at = ?, leased = 1, deliveries = deliveries + 1 "
                           "WHERE id = ?", [(until, row[0]) for row in rows])
        return [QueuedEvent(*row[:8], row[8] + 1, *row[9:]) for row in rows]

    def ack(self, event: QueuedEvent, follow_ups: Sequence[NewEvent] = ()) -> bool:
        with self._atomic() as db:
            gone = db.execute("DELETE FROM async_events WHERE id = ? AND deliveries = ?",
                              (event.id, event.deliveries)).rowcount
            if gone:
                for e in follow_ups:
                    self._insert(db, e)
        return bool(gone)

    def retry_later(self, event: QueuedEvent, available_at: float, *, attempts: int, throttles: int,
                    last_response: bytes | None = None, last_error: str | None = None,
                    last_version: str | None = None) -> bool:
        with self._atomic() as db:
            changed = db.execute(
                "UPDATE async_events SET available_at = ?, leased = 0, attempts = ?, throttles = ?, "
                "last_response = COALESCE(?, last_response), last_error = COALESCE(?, last_error), "
                "last_version = COALESCE(?, last_version) WHERE id = ? AND deliveries = ?",
                (available_at, attempts, throttles, last_response, last_error, last_version, event.id,
                 event.deliveries)).rowcount
        return bool(changed)

    def release(self, events: Sequence[QueuedEvent], now: float) -> int:
        with self._atomic() as db:
            return sum(db.execute("UPDATE async_events SET available_at = ?, leased = 0 "
                                  "WHERE id = ? AND deliveries = ? AND leased = 1",
                                  (now, e.id, e.deliveries)).rowcount for e in events)

    def renew(self, events: Sequence[QueuedEvent], until: float) -> int:
        with self._atomic() as db:
            return sum(db.execute("UPDATE async_events SET available_at = ? WHERE id = ? AND deliveries = ? AND leased = 1",
                                  (until, e.id, e.deliveries)).rowcount for e in events)

    def dead(self, event: QueuedEvent, reason: str, now: float, follow_ups: Sequence[NewEvent] = ()) -> bool:
        with self._atomic() as db:
            moved = db.execute(
                "INSERT INTO async_dead (id, request_id, function, qualifier, invoked_arn, payload, enqueued_at, "
                "attempts, died_at, reason) SELECT id, request_id, function, qualifier, invoked_arn, payload, "
                "enqueued_at, ?, ?, ? FROM async_events WHERE id = ? AND deliveries = ?",
                (event.attempts, now, reason, event.id, event.deliveries)).rowcount
            if moved:
                db.execute("DELETE FROM async_events WHERE id = ?", (event.id,))
                for e in follow_ups:
                    self._insert(db, e)
        return bool(moved)

    def purge_dead(self, before: float) -> int:
        with self._atomic() as db:
            return int(db.execute("DELETE FROM async_dead WHERE died_at < ?", (before,)).rowcount)

    def next_available(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(available_at) FROM async_events").fetchone()
        return None if row[0] is None else float(row[0])

    def statistics(self, now: float) -> QueueStatistics:
        with self._lock:
            ready, delayed, leased = self._db.execute(
                "SELECT COALESCE(SUM(available_at <= ?), 0), COALESCE(SUM(available_at > ? AND leased = 0), 0), "
                "COALESCE(SUM(available_at > ? AND leased = 1), 0) FROM async_events", (now, now, now)).fetchone()
            dead = self._db.execute("SELECT COUNT(*) FROM async_dead").fetchone()[0]
        return QueueStatistics(int(ready), int(delayed), int(leased), int(dead))

    def close(self) -> None:
        with self._lock:
            self._db.close()
