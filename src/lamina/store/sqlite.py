"""Metadata store on SQLite (WAL): functions and their versions, plus small key/value settings.

One connection, used from the event loop thread; every call is short. Writes commit before they
return, so a restart keeps every function.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from lamina.errors import ResourceConflict
from lamina.model import FunctionConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS function_versions (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    config      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS function_tags (
    name        TEXT PRIMARY KEY,
    tags        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # functions -----------------------------------------------------------------------------

    def get_function(self, name: str, version: str) -> FunctionConfig | None:
        row = self._db.execute(
            "SELECT config FROM function_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return FunctionConfig.from_record(json.loads(row[0])) if row else None

    def create_function(self, config: FunctionConfig, tags: dict[str, str]) -> None:
        """Insert a new function; raises ResourceConflict when the name is taken."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO function_versions (name, version, config) VALUES (?, ?, ?)",
                    (config.name, config.version, json.dumps(config.to_record())),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO function_tags (name, tags) VALUES (?, ?)",
                    (config.name, json.dumps(tags)),
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise ResourceConflict.function_exists(config.name) from exc

    def update_function(self, config: FunctionConfig, expected_revision: str) -> bool:
        """Replace a version's config if its revision is still `expected_revision`."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE function_versions SET config = ? "
                "WHERE name = ? AND version = ? AND json_extract(config, '$.revision_id') = ?",
                (json.dumps(config.to_record()), config.name, config.version, expected_revision),
            )
            return cur.rowcount == 1

    def delete_function(self, name: str) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute("DELETE FROM function_versions WHERE name = ?", (name,))
            self._db.execute("DELETE FROM function_tags WHERE name = ?", (name,))
            self._db.execute("COMMIT")
            return cur.rowcount > 0

    def list_functions(self, after: str | None, limit: int) -> list[FunctionConfig]:
        """$LATEST of each function, by name, starting after `after`."""
        rows = self._db.execute(
            "SELECT config FROM function_versions WHERE version = '$LATEST' AND name > ? "
            "ORDER BY name LIMIT ?",
            (after or "", limit),
        ).fetchall()
        return [FunctionConfig.from_record(json.loads(r[0])) for r in rows]

    def function_tags(self, name: str) -> dict[str, str]:
        row = self._db.execute("SELECT tags FROM function_tags WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else {}

    def code_shas_in_use(self) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT json_extract(config, '$.code_sha256') FROM function_versions"
        ).fetchall()
        return {r[0] for r in rows}

    def usage(self) -> tuple[int, int]:
        """(number of functions, total code size in bytes)."""
        row = self._db.execute(
            "SELECT COUNT(DISTINCT name), COALESCE(SUM(json_extract(config, '$.code_size')), 0) "
            "FROM function_versions"
        ).fetchone()
        return int(row[0]), int(row[1])

    # meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
