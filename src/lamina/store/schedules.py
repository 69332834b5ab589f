"""EventBridge rules and their targets, in two tables of the data directory's SQLite file (own
connection). Rules keep their anchor: the moment a rate schedule counts its periods from."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from lamina.store.db import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS event_rules (
    name        TEXT PRIMARY KEY,
    expression  TEXT NOT NULL,
    state       TEXT NOT NULL,
    description TEXT,
    anchor      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event_targets (
    rule        TEXT NOT NULL,
    id          TEXT NOT NULL,
    arn         TEXT NOT NULL,
    input       TEXT,
    PRIMARY KEY (rule, id)
);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    name: str
    expression: str
    state: str  # ENABLED | DISABLED
    description: str | None
    anchor: float


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    rule: str
    id: str
    arn: str
    input: str | None


class ScheduleStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def put_rule(self, rule: Rule) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO event_rules (name, expression, state, description, anchor) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET expression=excluded.expression, state=excluded.state, "
                "description=excluded.description, anchor=excluded.anchor",
                (rule.name, rule.expression, rule.state, rule.description, rule.anchor))

    def get_rule(self, name: str) -> Rule | None:
        with self._lock:
            row = self._db.execute("SELECT name, expression, state, description, anchor FROM event_rules "
                                   "WHERE name = ?", (name,)).fetchone()
        return Rule(*row) if row else None

    def rules(self, prefix: str = "") -> list[Rule]:
        with self._lock:
            rows = self._db.execute("SELECT name, expression, state, description, anchor FROM event_rules "
                                    "ORDER BY name").fetchall()
        return [Rule(*r) for r in rows if r[0].startswith(prefix)]

    def delete_rule(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM event_rules WHERE name = ?", (name,))

    def put_target(self, target: Target) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO event_targets (rule, id, arn, input) VALUES (?, ?, ?, ?)",
                             (target.rule, target.id, target.arn, target.input))

    def targets(self, rule: str) -> list[Target]:
        with self._lock:
            rows = self._db.execute("SELECT rule, id, arn, input FROM event_targets WHERE rule = ? ORDER BY id",
                                    (rule,)).fetchall()
        return [Target(*r) for r in rows]

    def remove_target(self, rule: str, target_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM event_targets WHERE rule = ? AND id = ?", (rule, target_id))
        return cur.rowcount > 0
