"""Use cases on published versions: publish, list, delete one.

A version is an immutable snapshot of $LATEST's code and configuration, numbered 1, 2, ... per
function; numbers are never reused (not even after the newest version is deleted). Publishing an
unchanged $LATEST returns the newest version instead of a new one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.model import LATEST, Arns, FunctionConfig, PublishVersion, State
from lamina.store.aliases import AliasTable
from lamina.store.sqlite import SqliteStore

LIST_MAX = 50


def code_sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class VersionService:
    def __init__(self, store: SqliteStore, arns: Arns, on_deleted: Callable[[str, str], None]) -> None:
        self._store = store
        self._aliases = AliasTable(store)
        self._arns = arns
        self._on_deleted = on_deleted

    def publish(self, name: str, command: PublishVersion) -> FunctionConfig:
        latest = self._latest(name)
        if command.revision_id is not None and command.revision_id != latest.revision_id:
            raise PreconditionFailed.revision()
        current_sha = code_sha256_b64(latest.code_sha256)
        if command.code_sha256 and command.code_sha256 != current_sha:
            raise InvalidParameterValue.code_sha_mismatch(command.code_sha256, current_sha)
        newest = self._store.latest_version(name)
        if newest is not None and newest.content_id == latest.content_id:
            return newest

        def snapshot(number: str) -> FunctionConfig:
            description = command.description if command.description is not None else latest.description
            return latest.replace(version=number, revision_id=str(uuid.uuid4()), description=description,
                                  state=State.ACTIVE, last_update_status=None)

        published = self._store.publish_version(latest, snapshot, str(uuid.uuid4()))
        if published is None:  # $LATEST changed under us
            raise PreconditionFailed.revision()
        return published

    def list(self, name: str, marker: str | None, max_items: int | None) -> tuple[list[FunctionConfig], str | None]:
        """$LATEST first, then the published versions; the marker is the last version listed."""
        self._latest(name)
        if marker is not None and marker != LATEST and not marker.isdigit():
            raise InvalidParameterValue.bad_marker(marker)
        limit = min(max_items or LIST_MAX, LIST_MAX)
        page = self._store.list_versions(name, marker, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].version if more else None)

    def delete(self, name: str, version: str) -> None:
        """Delete one published version; answers quietly when it does not exist (as AWS does), refuses
        while an alias sends invocations to it."""
        self._latest(name)
        users = self._aliases.referencing(name, version)
        if users:
            raise ResourceConflict.version_in_use(users)
        if self._store.delete_version(name, version):
            self._on_deleted(name, version)

    def _latest(self, name: str) -> FunctionConfig:
        found = self._store.get_function(name, LATEST)
        if found is None:
            raise ResourceNotFound.function(self._arns.function(name))
        return found
