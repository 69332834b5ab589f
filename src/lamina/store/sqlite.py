"""Metadata store on SQLite (WAL): functions and their versions, plus small key/value settings.

One connection, used from the event loop thread; every call is short. Writes commit before they
return, so a restart keeps every function. The other aggregates (aliases, layers, resource
policies) have their own table modules next to this one, on the same connection; every table is
created here, in SCHEMA, with CREATE TABLE IF NOT EXISTS, so opening an older data directory adds
the tables it lacks.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lamina.errors import ResourceConflict
from lamina.model import LATEST, FunctionConfig

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
-- the last version number handed out per function: numbers are never reused
CREATE TABLE IF NOT EXISTS function_counters (
    name        TEXT PRIMARY KEY,
    last        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
-- qualifier is '$LATEST' for the unqualified function, else a version number or an alias name
CREATE TABLE IF NOT EXISTS function_policies (
    name        TEXT NOT NULL,
    qualifier   TEXT NOT NULL,
    statements  TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);
CREATE TABLE IF NOT EXISTS layer_counters (
    name        TEXT PRIMARY KEY,
    last        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layer_versions (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS layer_policies (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    policy      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # shared by the table modules ------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    @staticmethod
    def bump_counter(db: sqlite3.Connection, table: str, name: str) -> int:
        """Inside a transaction: the next number of a never-reused sequence."""
        db.execute(f"INSERT INTO {table} (name, last) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
        db.execute(f"UPDATE {table} SET last = last + 1 WHERE name = ?", (name,))
        return int(db.execute(f"SELECT last FROM {table} WHERE name = ?", (name,)).fetchone()[0])

    # functions -----------------------------------------------------------------------------

    def get_function(self, name: str, version: str) -> FunctionConfig | None:
        row = self._db.execute(
            "SELECT config FROM function_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return FunctionConfig.from_record(json.loads(row[0])) if row else None

    def create_function(self, config: FunctionConfig, tags: dict[str, str]) -> None:
        """Insert a new function; raises ResourceConflict when the name is taken."""
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO function_versions (name, version, config) VALUES (?, ?, ?)",
                    (config.name, config.version, json.dumps(config.to_record())),
                )
                db.execute(
                    "INSERT OR REPLACE INTO function_tags (name, tags) VALUES (?, ?)",
                    (config.name, json.dumps(tags)),
                )
        except sqlite3.IntegrityError as exc:
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
        """Delete a function with everything it owns: versions, aliases, policies, tags, counter."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM function_versions WHERE name = ?", (name,))
            for table in ("function_tags", "function_counters", "aliases", "function_policies"):
                db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
            return cur.rowcount > 0

    def set_function_tags(self, name: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO function_tags (name, tags) VALUES (?, ?)",
                             (name, json.dumps(tags)))

    # versions -------------------------------------------------------------------------------

    def publish_version(self, latest: FunctionConfig, make: Callable[[str], FunctionConfig],
                        new_latest_revision: str) -> FunctionConfig | None:
        """Take the next version number, store `make(number)` as that version and give $LATEST a new
        revision, in one transaction; None (nothing written) when $LATEST is no longer `latest`."""
        with self.transaction() as db:
            row = db.execute("SELECT config FROM function_versions WHERE name = ? AND version = ?",
                             (latest.name, LATEST)).fetchone()
            if row is None or json.loads(row[0])["revision_id"] != latest.revision_id:
                return None
            number = self.bump_counter(db, "function_counters", latest.name)
            version = make(str(number))
            db.execute("INSERT INTO function_versions (name, version, config) VALUES (?, ?, ?)",
                       (version.name, version.version, json.dumps(version.to_record())))
            db.execute("UPDATE function_versions SET config = ? WHERE name = ? AND version = ?",
                       (json.dumps(latest.replace(revision_id=new_latest_revision).to_record()),
                        latest.name, LATEST))
            return version

    def latest_version(self, name: str) -> FunctionConfig | None:
        """The highest published version of a function, if any."""
        row = self._db.execute(
            "SELECT config FROM function_versions WHERE name = ? AND version != '$LATEST' "
            "ORDER BY CAST(version AS INTEGER) DESC LIMIT 1", (name,),
        ).fetchone()
        return FunctionConfig.from_record(json.loads(row[0])) if row else None

    def list_versions(self, name: str, after: str | None, limit: int) -> list[FunctionConfig]:
        """$LATEST first, then published versions in ascending order, starting after `after`."""
        start = -1 if after is None else (0 if after == LATEST else int(after))
        rows = self._db.execute(
            "SELECT config FROM function_versions WHERE name = ? "
            "AND (CASE version WHEN '$LATEST' THEN 0 ELSE CAST(version AS INTEGER) END) > ? "
            "ORDER BY (CASE version WHEN '$LATEST' THEN 0 ELSE CAST(version AS INTEGER) END) LIMIT ?",
            (name, start, limit),
        ).fetchall()
        return [FunctionConfig.from_record(json.loads(r[0])) for r in rows]

    def delete_version(self, name: str, version: str) -> bool:
        """Delete a published version and the policy attached to it."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM function_versions WHERE name = ? AND version = ?", (name, version))
            db.execute("DELETE FROM function_policies WHERE name = ? AND qualifier = ?", (name, version))
            return cur.rowcount > 0

    def list_functions(self, after: str | None, limit: int) -> list[FunctionConfig]:
        """$LATEST of each function, by name, starting after `after`."""
        rows = self._db.execute(
            "SELECT config FROM function_versions WHERE version = '$LATEST' AND name > ? "
            "ORDER BY name LIMIT ?",
            (after or "", limit),
        ).fetchall()
        return [FunctionConfig.from_record(json.loads(r[0])) for r in rows]

    def list_all_versions(self, after: tuple[str, str] | None, limit: int) -> list[FunctionConfig]:
        """Every version of every function ($LATEST first within a function), starting after
        (name, version)."""
        order = "(CASE version WHEN '$LATEST' THEN 0 ELSE CAST(version AS INTEGER) END)"
        name, version = after or ("", "")
        start = -1 if not version else (0 if version == "$LATEST" else int(version))
        rows = self._db.execute(
            f"SELECT config FROM function_versions WHERE name > ? OR (name = ? AND {order} > ?) "
            f"ORDER BY name, {order} LIMIT ?",
            (name, name, start, limit),
        ).fetchall()
        return [FunctionConfig.from_record(json.loads(r[0])) for r in rows]

    def function_tags(self, name: str) -> dict[str, str]:
        row = self._db.execute("SELECT tags FROM function_tags WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else {}

    def code_shas_in_use(self) -> set[str]:
        """Every package some function version or layer version still needs (functions keep the
        layers they were configured with even after the layer version is deleted)."""
        rows = self._db.execute(
            "SELECT DISTINCT json_extract(config, '$.code_sha256') FROM function_versions "
            "UNION SELECT DISTINCT json_extract(layer.value, '$.code_sha256') "
            "FROM function_versions, json_each(function_versions.config, '$.layers') AS layer "
            "UNION SELECT DISTINCT json_extract(record, '$.code_sha256') FROM layer_versions"
        ).fetchall()
        return {r[0] for r in rows if r[0]}

    def layer_stacks_in_use(self) -> set[tuple[str, ...]]:
        """The ordered layer lists of every function version that has layers."""
        rows = self._db.execute(
            "SELECT config FROM function_versions WHERE json_array_length(config, '$.layers') > 0"
        ).fetchall()
        return {tuple(layer["code_sha256"] for layer in json.loads(r[0])["layers"]) for r in rows}

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
