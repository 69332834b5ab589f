"""Use cases on aliases: create, read, list, update, delete, and routing an invocation through one.

An alias points to one version and may send a share of invocations to one more version
(RoutingConfig.AdditionalVersionWeights). Which version runs is decided per invocation by
`pick_version` from one uniform draw of the injected `random.Random`, so tests can fix the outcome.
"""

from __future__ import annotations

import random
import uuid

from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.model import LATEST, Alias, AliasChanges, Arns, NewAlias, Weights
from lamina.store.aliases import AliasTable
from lamina.store.sqlite import SqliteStore

LIST_MAX = 50


def pick_version(primary: str, routing: Weights, draw: float) -> str:
    """The version an invocation runs: each additional version takes `weight` of the unit interval
    from the bottom, the primary version the rest. `draw` is uniform in [0, 1)."""
    for version, weight in routing:
        if draw < weight:
            return version
        draw -= weight
    return primary


class AliasService:
    def __init__(self, store: SqliteStore, arns: Arns, rng: random.Random) -> None:
        self._store = store
        self._table = AliasTable(store)
        self._arns = arns
        self._rng = rng
        self._cache: dict[tuple[str, str], Alias] = {}  # for routing only; dropped on every change

    # reads -------------------------------------------------------------------------------------

    def get(self, function_name: str, name: str) -> Alias:
        self._function_exists(function_name)
        found = self._table.get(function_name, name)
        if found is None:
            raise ResourceNotFound.alias(self._arns.function(function_name, name))
        return found

    def list(self, function_name: str, function_version: str | None, marker: str | None,
             max_items: int | None) -> tuple[list[Alias], str | None]:
        self._function_exists(function_name)
        aliases = [a for a in self._table.list(function_name, marker, 1_000_000)
                   if function_version is None or a.function_version == function_version]
        limit = min(max_items or LIST_MAX, LIST_MAX)
        page = aliases[:limit]
        return page, (page[-1].name if len(aliases) > limit else None)

    def target(self, function_name: str, name: str) -> str:
        """The version an alias points to (GetFunction / GetFunctionConfiguration by alias)."""
        return self._cached(function_name, name).function_version

    def route(self, function_name: str, name: str) -> str:
        """The version this invocation through the alias runs (weighted when routing is set)."""
        alias = self._cached(function_name, name)
        if not alias.routing:
            return alias.function_version
        return pick_version(alias.function_version, alias.routing, self._rng.random())

    def _cached(self, function_name: str, name: str) -> Alias:
        key = (function_name, name)
        found = self._cache.get(key)
        if found is None:
            found = self._table.get(function_name, name)
            if found is None:
                raise ResourceNotFound.function(self._arns.function(function_name, name))
            self._cache[key] = found
        return found

    # writes ------------------------------------------------------------------------------------

    def create(self, function_name: str, command: NewAlias) -> Alias:
        self._function_exists(function_name)
        self._version_exists(function_name, command.function_version)
        alias_arn = self._arns.function(function_name, command.name)
        if self._table.get(function_name, command.name) is not None:
            raise ResourceConflict.alias_exists(alias_arn)
        self._check_routing(function_name, command.function_version, command.routing)
        alias = Alias(function_name, command.name, command.function_version, str(uuid.uuid4()),
                      command.description, command.routing)
        self._table.insert(alias, ResourceConflict.alias_exists(alias_arn))
        self._forget(function_name, command.name)
        return alias

    def update(self, function_name: str, name: str, changes: AliasChanges) -> Alias:
        self._function_exists(function_name)
        current = self._table.get(function_name, name)
        if current is None:
            raise ResourceNotFound.alias_to_update(self._arns.function(function_name, name))
        if changes.revision_id is not None and changes.revision_id != current.revision_id:
            raise PreconditionFailed.revision()
        version = changes.function_version if changes.function_version is not None else current.function_version
        if changes.function_version is not None:
            self._version_exists(function_name, version)
        routing = changes.routing if changes.routing is not None else current.routing
        self._check_routing(function_name, version, routing)
        updated = Alias(function_name, name, version, str(uuid.uuid4()),
                        changes.description if changes.description is not None else current.description, routing)
        if not self._table.replace(updated, current.revision_id):
            raise PreconditionFailed.revision()
        self._forget(function_name, name)
        return updated

    def delete(self, function_name: str, name: str) -> None:
        """Idempotent for the alias (AWS answers 204 for an alias that does not exist)."""
        self._function_exists(function_name)
        self._table.delete(function_name, name)
        self._forget(function_name, name)

    def forget_function(self, function_name: str) -> None:
        for key in [k for k in self._cache if k[0] == function_name]:
            del self._cache[key]

    def _forget(self, function_name: str, name: str) -> None:
        self._cache.pop((function_name, name), None)

    # checks ------------------------------------------------------------------------------------

    def _function_exists(self, function_name: str) -> None:
        if self._store.get_function(function_name, LATEST) is None:
            raise ResourceNotFound.function(self._arns.function(function_name))

    def _version_exists(self, function_name: str, version: str) -> None:
        if self._store.get_function(function_name, version) is None:
            raise ResourceNotFound.function(self._arns.function(function_name, version))

    def _check_routing(self, function_name: str, version: str, routing: Weights) -> None:
        if not routing:
            return
        if len(routing) > 1:
            raise InvalidParameterValue.too_many_weights()
        for extra, _ in routing:
            if extra == version:
                raise InvalidParameterValue.version_already_routed(version)
            if version == LATEST:
                raise InvalidParameterValue.latest_with_routing()
            self._version_exists(function_name, extra)
