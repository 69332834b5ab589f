"""Function URL configurations, in a table of the data directory's SQLite file (own connection).
One per function and qualifier (`""` for the unqualified function); looked up by URL id on requests."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from lamina.store.db import connect
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS function_urls (
    url_id      TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    qualifier   TEXT NOT NULL,
    auth_type   TEXT NOT NULL,
    cors        TEXT,
    invoke_mode TEXT NOT NULL,
    created     TEXT NOT NULL,
    modified    TEXT NOT NULL,
    UNIQUE (function, qualifier)
);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class UrlConfig:
    url_id: str
    function: str
    qualifier: str  # "" for the unqualified function
    auth_type: str  # NONE | AWS_IAM
    cors: dict[str, Any] | None
    invoke_mode: str  # BUFFERED | RESPONSE_STREAM
    created: str
    modified: str


_COLUMNS = "url_id, function, qualifier, auth_type, cors, invoke_mode, created, modified"


def _row(row: tuple[Any, ...] | None) -> UrlConfig | None:
    if row is None:
        return None
    values = list(row)
    values[4] = json.loads(values[4]) if values[4] else None
    return UrlConfig(*values)


class UrlStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def put(self, config: UrlConfig) -> None:
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO function_urls ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
                config.url_id, config.function, config.qualifier, config.auth_type,
                json.dumps(config.cors) if config.cors is not None else None, config.invoke_mode,
                config.created, config.modified))

    def get(self, function: str, qualifier: str) -> UrlConfig | None:
        with self._lock:
            return _row(self._db.execute(f"SELECT {_COLUMNS} FROM function_urls WHERE function = ? AND qualifier = ?",
                                         (function, qualifier)).fetchone())

    def by_id(self, url_id: str) -> UrlConfig | None:
        with self._lock:
            return _row(self._db.execute(f"SELECT {_COLUMNS} FROM function_urls WHERE url_id = ?",
                                         (url_id,)).fetchone())

    def of_function(self, function: str) -> list[UrlConfig]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM function_urls WHERE function = ? ORDER BY qualifier",
                                    (function,)).fetchall()
        return [c for c in map(_row, rows) if c is not None]

    def delete(self, function: str, qualifier: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM function_urls WHERE function = ? AND qualifier = ?", (function, qualifier))

    def delete_function(self, function: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM function_urls WHERE function = ?", (function,))
