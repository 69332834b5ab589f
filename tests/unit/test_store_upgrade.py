"""Opening a data directory written before versions, aliases, layers and policies existed."""

from __future__ import annotations

import json
import sqlite3

from lamina.model import LATEST
from lamina.store.aliases import AliasTable
from lamina.store.layers import LayerTable
from lamina.store.policies import PolicyTable
from lamina.store.sqlite import SqliteStore

OLD_SCHEMA = """
CREATE TABLE function_versions (name TEXT NOT NULL, version TEXT NOT NULL, config TEXT NOT NULL,
                                PRIMARY KEY (name, version));
CREATE TABLE function_tags (name TEXT PRIMARY KEY, tags TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
OLD_CONFIG = {"name": "old", "runtime": "python3.11", "handler": "app.handler", "role": "r",
              "code_sha256": "ab" * 32, "code_size": 10, "revision_id": "rev", "last_modified": 1.0,
              "version": "$LATEST", "layers": [], "state": "Active"}


def test_an_older_database_gains_the_new_tables(tmp_path):
    path = tmp_path / "lamina.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO function_versions VALUES (?, ?, ?)", ("old", LATEST, json.dumps(OLD_CONFIG)))
    db.commit()
    db.close()
    store = SqliteStore(path)
    config = store.get_function("old", LATEST)
    assert config is not None and config.layers == () and config.content_id == ""
    assert AliasTable(store).list("old", None, 10) == []
    assert LayerTable(store).all_versions() == []
    assert PolicyTable(store).get("old", LATEST) is None
    assert store.list_versions("old", None, 10) == [config]
    assert store.code_shas_in_use() == {"ab" * 32}
    assert store.delete_function("old")
