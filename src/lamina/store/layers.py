"""The layer tables: layer versions (numbers never reused per layer name) and their policies."""

from __future__ import annotations

import json
from collections.abc import Callable

from lamina.model import LayerVersion, Policy, Statement
from lamina.store.sqlite import SqliteStore


class LayerTable:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def publish(self, name: str, make: Callable[[int], LayerVersion]) -> LayerVersion:
        """Take the layer's next version number and store `make(number)`, in one transaction."""
        with self._store.transaction() as db:
            number = self._store.bump_counter(db, "layer_counters", name)
            layer = make(number)
            db.execute("INSERT INTO layer_versions (name, version, record) VALUES (?, ?, ?)",
                       (layer.name, layer.version, json.dumps(layer.to_record())))
            return layer

    def get(self, name: str, version: int) -> LayerVersion | None:
        rows = self._store.query("SELECT record FROM layer_versions WHERE name = ? AND version = ?", (name, version))
        return LayerVersion.from_record(json.loads(rows[0][0])) if rows else None

    def versions(self, name: str) -> list[LayerVersion]:
        """Every version of one layer, newest first."""
        rows = self._store.query("SELECT record FROM layer_versions WHERE name = ? ORDER BY version DESC", (name,))
        return [LayerVersion.from_record(json.loads(r[0])) for r in rows]

    def all_versions(self) -> list[LayerVersion]:
        """Every layer version, by layer name, newest first within a layer."""
        rows = self._store.query("SELECT record FROM layer_versions ORDER BY name, version DESC")
        return [LayerVersion.from_record(json.loads(r[0])) for r in rows]

    def delete(self, name: str, version: int) -> bool:
        with self._store.transaction() as db:
            cur = db.execute("DELETE FROM layer_versions WHERE name = ? AND version = ?", (name, version))
            db.execute("DELETE FROM layer_policies WHERE name = ? AND version = ?", (name, version))
            return cur.rowcount > 0

    # policies -----------------------------------------------------------------------------------

    def policy(self, name: str, version: int) -> Policy | None:
        rows = self._store.query("SELECT policy FROM layer_policies WHERE name = ? AND version = ?", (name, version))
        if not rows:
            return None
        record = json.loads(rows[0][0])
        return Policy(tuple(Statement(s["sid"], s["text"]) for s in record["statements"]), record["revision_id"])

    def set_policy(self, name: str, version: int, policy: Policy) -> None:
        """Store a layer version's policy (an empty one is removed)."""
        with self._store.transaction() as db:
            if not policy.statements:
                db.execute("DELETE FROM layer_policies WHERE name = ? AND version = ?", (name, version))
                return
            record = {"revision_id": policy.revision_id,
                      "statements": [{"sid": s.sid, "text": s.text} for s in policy.statements]}
            db.execute("INSERT OR REPLACE INTO layer_policies (name, version, policy) VALUES (?, ?, ?)",
                       (name, version, json.dumps(record)))

