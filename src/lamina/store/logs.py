"""Log events per log group (`/aws/lambda/NAME`) and stream (one per environment), in SQLite.

Writers never touch the database on the invoke path: texts are buffered in memory and written in one
transaction by `flush()` (the server's housekeeping calls it every second, and at shutdown). Each line
is one event, as CloudWatch Logs keeps them, but a row holds all the lines of one write (an
invocation's START, its output, END and REPORT): one row and two index entries per invocation instead
of one per line, which was a fifth of the server's CPU under load. Reads split rows into events; an
event's id is its row's id times LINES_PER_ROW plus its line's index (what tokens carry). Its own
connection to the data directory's database file.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from lamina.store.db import WriteBehind, connect

#: Event ids per row: a row holds fewer lines (longer writes are cut into several rows).
LINES_PER_ROW = 1 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    grp         TEXT NOT NULL,
    stream      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    ingested    INTEGER NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_chunks_stream ON log_chunks (grp, stream, id);
CREATE INDEX IF NOT EXISTS log_chunks_time ON log_chunks (grp, ts);
"""

#: Data directories from before rows held several lines: their one-line rows move over as they are.
MIGRATE = """
INSERT INTO log_chunks (id, grp, stream, ts, ingested, text)
    SELECT id, grp, stream, ts, ingested, message FROM log_events;
DROP TABLE log_events;
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


def _lines(row_id: int, text: str) -> list[tuple[int, str]]:
    """(event id, line) of a row's non-blank lines, in order."""
    base = row_id * LINES_PER_ROW
    return [(base + i, line) for i, line in enumerate(text.splitlines()) if line.strip()]


class LogStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="NORMAL")
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_events'").fetchone():
            self._db.executescript("BEGIN;" + MIGRATE + "COMMIT;")
        self._lock = threading.Lock()
        self._writes: WriteBehind[tuple[str, str, int, str]] = WriteBehind(
            self._db, self._lock, "log_chunks", ("grp", "stream", "ts", "ingested", "text"),
            lambda chunks, now_ms: [(g, s, ts, now_ms or ts, t) for g, s, ts, t in chunks])

    def close(self) -> None:
        self.flush(0)
        self._db.close()

    def append(self, group: str, stream: str, timestamp_ms: int, text: str) -> None:
        """Buffer the lines of `text` as events (no I/O, no split: reads split rows into lines)."""
        if len(text) < LINES_PER_ROW:  # so fewer lines than a row may hold
            if text and not text.isspace():
                self._writes.add((group, stream, timestamp_ms, text))
            return
        lines = text.splitlines()  # lines hold no separator: joined by "\n", they split back the same
        for at in range(0, len(lines), LINES_PER_ROW - 1):
            self._writes.add((group, stream, timestamp_ms, "\n".join(lines[at:at + LINES_PER_ROW - 1])))

    def flush(self, now_ms: int) -> None:
        """Write the buffered events, ingested at `now_ms` (0: at their own timestamps)."""
        self._writes.flush(now_ms)

    def expire(self, before_ms: int) -> None:
        """Retention: drop events older than `before_ms` (group by group, along the (grp, ts) index)."""
        with self._lock:
            group = ""
            while True:  # one index seek per group, not a scan of every event
                group = self._db.execute("SELECT MIN(grp) FROM log_chunks WHERE grp > ?", (group,)).fetchone()[0]
                if group is None:
                    return
                self._db.execute("DELETE FROM log_chunks WHERE grp = ? AND ts < ?", (group, before_ms))

    def groups(self, prefix: str = "") -> list[tuple[str, int, int]]:
        """(group, first event ms, bytes) for groups starting with `prefix`."""
        with self._lock:
            return self._db.execute(
                "SELECT grp, MIN(ts), SUM(LENGTH(text)) FROM log_chunks WHERE grp >= ? AND grp < ? "
                "GROUP BY grp ORDER BY grp", (prefix, prefix + "\uffff")).fetchall()

    def streams(self, group: str, prefix: str = "") -> list[StreamInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT stream, MIN(ts), MAX(ts), SUM(LENGTH(text)) FROM log_chunks WHERE grp = ? "
                "AND stream >= ? AND stream < ? GROUP BY stream", (group, prefix, prefix + "\uffff")).fetchall()
        return [StreamInfo(group, s, first, last, size) for s, first, last, size in rows]

    def events(self, group: str, streams: list[str] | None, start_ms: int | None, end_ms: int | None,
               after_id: int, limit: int, descending: bool = False) -> list[LogEvent]:
        """Up to `limit` events after event id `after_id` (before it when `descending`, newest first)."""
        sql = ["SELECT id, grp, stream, ts, ingested, text FROM log_chunks WHERE grp = ?"]
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
            before = after_id or 2**62
            sql.append("AND id < ? ORDER BY id DESC LIMIT ?")
            row = (before - 1) // LINES_PER_ROW + 1  # the row of event `before - 1`, and those before it
        else:
            sql.append("AND id > ? ORDER BY id LIMIT ?")
            row = after_id // LINES_PER_ROW - 1  # the row of event `after_id` (it may hold later lines), on
        query = " ".join(sql)
        out: list[LogEvent] = []
        while len(out) < limit:
            with self._lock:
                rows = self._db.execute(query, [*args, row, limit]).fetchall()
            for row_id, grp, stream, ts, ingested, text in rows:
                lines = _lines(row_id, text)
                if descending:
                    lines.reverse()
                out += [LogEvent(event_id, grp, stream, ts, ingested, line) for event_id, line in lines
                        if (event_id < before if descending else event_id > after_id)]
            if len(rows) < limit:
                break
            row = rows[-1][0]
        return out[:limit]
