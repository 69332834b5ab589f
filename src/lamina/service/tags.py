"""Use cases on function tags: TagResource, UntagResource, ListTags (unqualified functions only)."""

from __future__ import annotations

import uuid

from lamina.errors import InvalidParameterValue, ResourceNotFound
from lamina.model import LATEST, Arns, FunctionConfig
from lamina.store.sqlite import SqliteStore

TAG_LIMIT = 50


class TagService:
    def __init__(self, store: SqliteStore, arns: Arns) -> None:
        self._store = store
        self._arns = arns

    def list(self, name: str) -> dict[str, str]:
        self._latest(name)
        return self._store.function_tags(name)

    def tag(self, name: str, tags: dict[str, str]) -> None:
        latest = self._latest(name)
        merged = {**self._store.function_tags(name), **tags}
        if len(merged) > TAG_LIMIT:
            raise InvalidParameterValue.too_many_tags()
        self._store.set_function_tags(name, merged)
        self._renew_revision(latest)

    def untag(self, name: str, keys: list[str]) -> None:
        latest = self._latest(name)
        kept = {k: v for k, v in self._store.function_tags(name).items() if k not in keys}
        self._store.set_function_tags(name, kept)
        self._renew_revision(latest)

    def _latest(self, name: str) -> FunctionConfig:
        found = self._store.get_function(name, LATEST)
        if found is None:
            raise ResourceNotFound.function(self._arns.function(name))
        return found

    def _renew_revision(self, latest: FunctionConfig) -> None:
        """Tags are part of the function resource: changing them gives $LATEST a new RevisionId."""
        self._store.update_function(latest.replace(revision_id=str(uuid.uuid4())), latest.revision_id)
