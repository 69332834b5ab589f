"""Event-invoke configs (retries, event age, destinations of asynchronous invocation), one per function
qualifier ($LATEST, a version or an alias).

Kept in their own table of `lamina.db` (own connection, WAL) and in memory: the delivery path reads
them for every event, the API writes them rarely.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from lamina.store.db import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS event_invoke_configs (
    function            TEXT NOT NULL,
    qualifier           TEXT NOT NULL,
    max_retry_attempts  INTEGER,
    max_event_age_s     INTEGER,
    on_success          TEXT,
    on_failure          TEXT,
    last_modified       REAL NOT NULL,
    PRIMARY KEY (function, qualifier)
);
"""

DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_S = 21600


@dataclasses.dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """None = not set (the wire omits it; delivery uses Lambda's default)."""

    function: str
    qualifier: str
    max_retry_attempts: int | None = None
    max_event_age_s: int | None = None
    on_success: str | None = None  # destination ARN
    on_failure: str | None = None
    last_modified: float = 0.0

    @property
    def retry_attempts(self) -> int:
        return DEFAULT_RETRY_ATTEMPTS if self.max_retry_attempts is None else self.max_retry_attempts

    @property
    def event_age_s(self) -> int:
        return DEFAULT_EVENT_AGE_S if self.max_event_age_s is None else self.max_event_age_s


class EventConfigStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="FULL")
        self._lock = threading.Lock()
        rows = self._db.execute("SELECT function, qualifier, max_retry_attempts, max_event_age_s, on_success, "
                                "on_failure, last_modified FROM event_invoke_configs").fetchall()
        self._cache = {(r[0], r[1]): EventInvokeConfig(*r) for r in rows}

    def get(self, function: str, qualifier: str) -> EventInvokeConfig | None:
        return self._cache.get((function, qualifier))

    def put(self, config: EventInvokeConfig) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO event_invoke_configs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (config.function, config.qualifier, config.max_retry_attempts, config.max_event_age_s,
                 config.on_success, config.on_failure, config.last_modified))
            self._cache[(config.function, config.qualifier)] = config

    def delete(self, function: str, qualifier: str | None = None) -> bool:
        """One qualifier's config, or (qualifier None) every config of the function."""
        with self._lock:
            if qualifier is None:
                gone = self._db.execute("DELETE FROM event_invoke_configs WHERE function = ?", (function,)).rowcount
                for key in [k for k in self._cache if k[0] == function]:
                    del self._cache[key]
            else:
                gone = self._db.execute("DELETE FROM event_invoke_configs WHERE function = ? AND qualifier = ?",
                                        (function, qualifier)).rowcount
                self._cache.pop((function, qualifier), None)
        return bool(gone)

    def list(self, function: str) -> list[EventInvokeConfig]:
        """The function's configs, by qualifier ($LATEST first, then versions by number, then aliases)."""
        def order(c: EventInvokeConfig) -> tuple[int, int, str]:
            if c.qualifier == "$LATEST":
                return (0, 0, "")
            if c.qualifier.isdigit():
                return (1, int(c.qualifier), "")
            return (2, 0, c.qualifier)
        return sorted((c for k, c in self._cache.items() if k[0] == function), key=order)

    def close(self) -> None:
        with self._lock:
            self._db.close()
