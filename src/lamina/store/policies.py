"""The function policy table: one resource policy per (function, qualifier)."""

from __future__ import annotations

import json

from lamina.model import Policy, Statement
from lamina.store.sqlite import SqliteStore


class PolicyTable:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def get(self, function_name: str, qualifier: str) -> Policy | None:
        rows = self._store.query(
            "SELECT statements FROM function_policies WHERE name = ? AND qualifier = ?", (function_name, qualifier))
        if not rows:
            return None
        return Policy(tuple(Statement(s["sid"], s["text"]) for s in json.loads(rows[0][0])))

    def put(self, function_name: str, qualifier: str, policy: Policy) -> None:
        """Store a policy (an empty one is removed, as AWS drops a policy with no statements)."""
        with self._store.transaction() as db:
            if not policy.statements:
                db.execute("DELETE FROM function_policies WHERE name = ? AND qualifier = ?",
                           (function_name, qualifier))
                return
            statements = json.dumps([{"sid": s.sid, "text": s.text} for s in policy.statements])
            db.execute("INSERT OR REPLACE INTO function_policies (name, qualifier, statements) VALUES (?, ?, ?)",
                       (function_name, qualifier, statements))
