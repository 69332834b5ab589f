"""Log events per log group (`/aws/lambda/NAME`) and stream (one per environment), in SQLite.

Writers never touch the database on the invoke path: lines are buffered in memory and written in one
transaction by `flush()` (the server's housekeeping calls it every second, and at shutdown). Each line
is one event, as CloudWatch Logs keeps them. Its own connection to the data directory's database file.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from lamina.store.db import WriteBehind, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    grp         TEXT NOT NULL,
    stream      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    ingested    INTEGER NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_stream ON log_events (grp, stream, id);
CREATE INDEX IF NOT EXISTS log_events_time ON log_events (grp, ts);
DROP INDEX IF EXISTS log_events_age;
"""


@dataclasses.dataclass(frozen=True, slots=True)
class LogEvent:
    id: int
    group: str
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class StreamInfo:
    group: str
    stream: str
    first_ms: int
    last_ms: int
    stored_bytes: int


class LogStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="NORMAL")
        self._lock = threading.Lock()
        self._writes: WriteBehind[tuple[str, str, int, str]] = WriteBehind(
            self._db, self._lock, "log_events", ("grp", "stream", "ts", "ingested", "message"),
            lambda events, now_ms: [(g, s, ts, now_ms or ts, m) for g, s, ts, m in events])

    def close(self) -> None:
        self.flush(0)
        self._db.close()

    def append(self, group: str, stream: str, timestamp_ms: int, text: str) -> None:
        """Buffer the lines of `text` as events (no I/O)."""
        add = self._writes.add
        for line in text.splitlines():
            if line.strip():
                add((group, stream, timestamp_ms, line))

    def flush(self, now_ms: int) -> None:
        """Write the buffered events, ingested at `now_ms` (0: at their own timestamps)."""
        self._writes.flush(now_ms)

    def expire(self, before_ms: int) -> None:
        """Retention: drop events older than `before_ms` (group by group, along the (grp, ts) index)."""
        with self._lock:
            group = ""
            while True:  # one index seek per group, not a scan of every event
                group = self._db.execute("SELECT MIN(grp) FROM log_events WHERE grp > ?", (group,)).fetchone()[0]
                if group is None:
                    return
                self._db.execute("DELETE FROM log_events WHERE grp = ? AND ts < ?", (group, before_ms))

    def groups(self, prefix: str = "") -> list[tuple[str, int, int]]:
        """(group, first event ms, bytes) for groups starting with `prefix`."""
        with self._lock:
            return self._db.execute(
                "SELECT grp, MIN(ts), SUM(LENGTH(message)) FROM log_events WHERE grp >= ? AND grp < ? "
                "GROUP BY grp ORDER BY grp", (prefix, prefix + "\uffff")).fetchall()

    def streams(self, group: str, prefix: str = "") -> list[StreamInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT stream, MIN(ts), MAX(ts), SUM(LENGTH(message)) FROM log_events WHERE grp = ? "
                "AND stream >= ? AND stream < ? GROUP BY stream", (group, prefix, prefix + "\uffff")).fetchall()
        return [StreamInfo(group, s, first, last, size) for s, first, last, size in rows]

    def events(self, group: str, streams: list[str] | None, start_ms: int | None, end_ms: int | None,
               after_id: int, limit: int, descending: bool = False) -> list[LogEvent]:
        sql = ["SELECT id, grp, stream, ts, ingested, message FROM log_events WHERE grp = ?"]
        args: list[object] = [group]
        if streams:
            sql.append(f"AND stream IN ({','.join('?' * len(streams))})")
            args += streams
        if start_ms is not None:
            sql.append("AND ts >= ?")
            args.append(start_ms)
        if end_ms is not None:
            sql.append("AND ts < ?")
            args.append(end_ms)
        if descending:
            sql.append("AND id < ? ORDER BY id DESC LIMIT ?")
            args += [after_id or 2**62, limit]
        else:
            sql.append("AND id > ? ORDER BY id LIMIT ?")
            args += [after_id, limit]
        with self._lock:
            rows = self._db.execute(" ".join(sql), args).fetchall()
        return [LogEvent(*row) for row in rows]
