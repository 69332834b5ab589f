"""Event source mappings and their checkpoints, in two tables of the data directory's SQLite file (own
connection, synchronous=FULL): a write returns only once it is on disk, so a 202 or a checkpoint survives
kill -9. A mapping is kept whole as JSON beside the columns it is looked up by."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

from lamina.esm.model import Mapping, SourceKind, State
from lamina.store.db import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS esm_mappings (
    uuid        TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    function    TEXT NOT NULL,
    source_arn  TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS esm_mappings_function ON esm_mappings (function);
CREATE TABLE IF NOT EXISTS esm_checkpoints (
    uuid        TEXT NOT NULL,
    shard       TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (uuid, shard)
);
"""


def _encode(mapping: Mapping) -> str:
    return json.dumps(dataclasses.asdict(mapping))


def _decode(text: str) -> Mapping:
    raw: dict[str, Any] = json.loads(text)
    raw["kind"] = SourceKind(raw["kind"])
    raw["state"] = State(raw["state"])
    raw["filters"] = tuple(raw.get("filters") or ())
    raw["function_response_types"] = tuple(raw.get("function_response_types") or ())
    known = {f.name for f in dataclasses.fields(Mapping)}
    return Mapping(**{k: v for k, v in raw.items() if k in known})


class EsmStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA, synchronous="FULL")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # mappings --------------------------------------------------------------------------------------

    def put(self, mapping: Mapping) -> None:
        """Insert or replace (a new mapping goes last in listings)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO esm_mappings (uuid, seq, function, source_arn, body) VALUES "
                "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM esm_mappings), ?, ?, ?) "
                "ON CONFLICT(uuid) DO UPDATE SET function=excluded.function, source_arn=excluded.source_arn, "
                "body=excluded.body",
                (mapping.uuid, mapping.function, mapping.source_arn, _encode(mapping)))

    def get(self, uuid: str) -> Mapping | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM esm_mappings WHERE uuid = ?", (uuid,)).fetchone()
        return _decode(row[0]) if row else None

    def all(self, function: str | None = None, source_arn: str | None = None) -> list[Mapping]:
        """Every mapping in creation order, optionally of one function and/or one source."""
        sql, args = "SELECT body FROM esm_mappings WHERE 1=1", []
        if function is not None:
            sql += " AND function = ?"
            args.append(function)
        if source_arn is not None:
            sql += " AND source_arn = ?"
            args.append(source_arn)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [_decode(r[0]) for r in rows]

    def delete(self, uuid: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM esm_mappings WHERE uuid = ?", (uuid,))
                self._db.execute("DELETE FROM esm_checkpoints WHERE uuid = ?", (uuid,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # checkpoints -----------------------------------------------------------------------------------

    def checkpoint(self, uuid: str, shard: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM esm_checkpoints WHERE uuid = ? AND shard = ?",
                                   (uuid, shard)).fetchone()
        return row[0] if row else None

    def save_checkpoint(self, uuid: str, shard: str, value: str) -> None:
        """Returns once the checkpoint is on disk."""
        with self._lock:
            self._db.execute("INSERT INTO esm_checkpoints (uuid, shard, value) VALUES (?, ?, ?) "
                             "ON CONFLICT(uuid, shard) DO UPDATE SET value=excluded.value", (uuid, shard, value))
