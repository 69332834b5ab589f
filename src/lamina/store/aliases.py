"""The aliases table: one row per (function, alias), on the metadata store's connection."""

from __future__ import annotations

import json
import sqlite3

from lamina.errors import ResourceConflict
from lamina.model import Alias
from lamina.store.sqlite import SqliteStore


class AliasTable:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def get(self, function_name: str, name: str) -> Alias | None:
        rows = self._store.query("SELECT record FROM aliases WHERE name = ? AND alias = ?", (function_name, name))
        return Alias.from_record(function_name, name, json.loads(rows[0][0])) if rows else None

    def list(self, function_name: str, after: str | None, limit: int) -> list[Alias]:
        """Aliases of a function by name, starting after `after`."""
        rows = self._store.query(
            "SELECT alias, record FROM aliases WHERE name = ? AND alias > ? ORDER BY alias LIMIT ?",
            (function_name, after or "", limit),
        )
        return [Alias.from_record(function_name, r[0], json.loads(r[1])) for r in rows]

    def referencing(self, function_name: str, version: str) -> list[str]:
        """Names of the aliases that send invocations to `version` (directly or by weight)."""
        rows = self._store.query("SELECT alias, record FROM aliases WHERE name = ? ORDER BY alias", (function_name,))
        found = []
        for name, record in rows:
            alias = Alias.from_record(function_name, name, json.loads(record))
            if alias.function_version == version or any(v == version for v, _ in alias.routing):
                found.append(name)
        return found

    def insert(self, alias: Alias, conflict: ResourceConflict) -> None:
        """Add a new alias; raises `conflict` when the name is taken."""
        try:
            with self._store.transaction() as db:
                db.execute("INSERT INTO aliases (name, alias, record) VALUES (?, ?, ?)",
                           (alias.function_name, alias.name, json.dumps(alias.to_record())))
        except sqlite3.IntegrityError as exc:
            raise conflict from exc

    def replace(self, alias: Alias, expected_revision: str) -> bool:
        """Store `alias` if the stored one still has `expected_revision`."""
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE aliases SET record = ? WHERE name = ? AND alias = ? "
                "AND json_extract(record, '$.revision_id') = ?",
                (json.dumps(alias.to_record()), alias.function_name, alias.name, expected_revision),
            )
            return cur.rowcount == 1

    def delete(self, function_name: str, name: str) -> bool:
        """Delete an alias and the policy attached to it."""
        with self._store.transaction() as db:
            cur = db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (function_name, name))
            db.execute("DELETE FROM function_policies WHERE name = ? AND qualifier = ?", (function_name, name))
            return cur.rowcount > 0
