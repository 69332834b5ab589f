"""One way to open the data directory's SQLite database: WAL, a busy timeout, autocommit mode.

Several stores share the file (metadata, queue, logs, metering, schedules, URLs), each with its own
connection; WAL lets readers run beside the one writer, and the timeout makes a writer wait its turn.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, schema: str, *, synchronous_full: bool = False) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise their own writes), schema applied."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous_full:
        db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
