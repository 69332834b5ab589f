"""Use cases on layers: publish, read, list and delete layer versions; resolve the layers a function
names; the (simple) layer version policies.

A layer version is an immutable zip with a number that is never reused for its name. Its package is
stored like function code but not unpacked on its own: the function's layers are merged into one
tree at run time (store/blobs.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from lamina.clock import Clock
from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.model import (
    AddLayerPermission, Arns, FunctionLayer, LayerVersion, LayerVersionRef, NewLayerVersion, Policy, Statement,
)
from lamina.store.blobs import BlobStore
from lamina.store.layers import LayerTable
from lamina.store.sqlite import SqliteStore

LIST_MAX = 50
MAX_LAYERS = 5


def remove_unused_packages(store: SqliteStore, blobs: BlobStore) -> None:
    """Drop every package and merged layer tree that no function or layer version needs any more."""
    blobs.remove_unused(store.code_shas_in_use(), store.layer_stacks_in_use())


def layer_statement(arns: Arns, name: str, version: int, command: AddLayerPermission) -> Statement:
    """A layer version policy statement, rendered as AWS renders it."""
    principal: object = command.principal
    if command.principal.isdigit():
        principal = {"AWS": f"arn:{arns.partition}:iam::{command.principal}:root"}
    elif command.principal != "*":
        principal = {"AWS": command.principal}
    statement: dict[str, object] = {
        "Sid": command.statement_id, "Effect": "Allow", "Principal": principal, "Action": command.action,
        "Resource": arns.layer_version(name, version),
    }
    if command.organization_id:
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": command.organization_id}}
    return Statement(command.statement_id, json.dumps(statement, separators=(",", ":")))


class LayerService:
    def __init__(self, store: SqliteStore, blobs: BlobStore, clock: Clock, arns: Arns) -> None:
        self._store = store
        self._table = LayerTable(store)
        self._blobs = blobs
        self._clock = clock
        self._arns = arns

    # layer versions ------------------------------------------------------------------------------

    def publish(self, command: NewLayerVersion, zip_bytes: bytes) -> LayerVersion:
        package = self._blobs.put(zip_bytes, unpack=False)
        created = self._clock.time()

        def make(number: int) -> LayerVersion:
            return LayerVersion(
                name=command.name, version=number, code_sha256=package.sha256_hex, code_size=package.size,
                unzipped_size=package.unzipped_size, created=created, description=command.description,
                compatible_runtimes=command.compatible_runtimes,
                compatible_architectures=command.compatible_architectures, license_info=command.license_info,
            )

        return self._table.publish(command.name, make)

    def get(self, name: str, version: int) -> LayerVersion:
        found = self._table.get(name, version)
        if found is None:
            raise ResourceNotFound.resource()
        return found

    def list_layers(self, runtime: str | None, architecture: str | None, marker: str | None,
                    max_items: int | None) -> tuple[list[LayerVersion], str | None]:
        """The newest matching version of each layer, by layer name; the marker is a layer name."""
        latest: dict[str, LayerVersion] = {}
        for layer in self._table.all_versions():
            if layer.name not in latest and layer.matches(runtime, architecture):
                latest[layer.name] = layer
        names = sorted(n for n in latest if marker is None or n > marker)
        limit = min(max_items or LIST_MAX, LIST_MAX)
        page = [latest[n] for n in names[:limit]]
        return page, (page[-1].name if len(names) > limit else None)

    def list_versions(self, name: str, runtime: str | None, architecture: str | None, marker: str | None,
                      max_items: int | None) -> tuple[list[LayerVersion], str | None]:
        """A layer's matching versions, newest first; the marker is a version number."""
        after = int(marker) if marker and marker.isdigit() else None
        versions = [v for v in self._table.versions(name)
                    if v.matches(runtime, architecture) and (after is None or v.version < after)]
        limit = min(max_items or LIST_MAX, LIST_MAX)
        page = versions[:limit]
        return page, (str(page[-1].version) if len(versions) > limit else None)

    def delete(self, name: str, version: int) -> None:
        """Idempotent. Functions configured with the version keep working (they hold its package)."""
        if self._table.delete(name, version):
            remove_unused_packages(self._store, self._blobs)

    # functions' layers ---------------------------------------------------------------------------

    def resolve(self, refs: Sequence[LayerVersionRef]) -> tuple[FunctionLayer, ...]:
        """The layer versions a function names, checked: at most five, all existing, one version per layer."""
        if len(refs) > MAX_LAYERS:
            raise InvalidParameterValue.too_many_layers()
        seen: dict[str, str] = {}
        layers = []
        for ref in refs:
            found = self._table.get(ref.name, ref.version) if ref.account == self._arns.account else None
            if found is None:
                raise InvalidParameterValue.missing_layer(ref.arn)
            if ref.name in seen:
                raise InvalidParameterValue.layer_conflict(seen[ref.name], ref.arn)
            seen[ref.name] = ref.arn
            layers.append(FunctionLayer(ref.name, ref.version, found.code_sha256, found.code_size,
                                        found.unzipped_size))
        return tuple(layers)

    # layer version policies -----------------------------------------------------------------------

    def add_permission(self, name: str, version: int, command: AddLayerPermission,
                       region: str | None) -> tuple[Statement, str]:
        """Add a statement; returns it and the policy's new revision id."""
        arns = self._arns.in_region(region)
        self._existing(name, version, arns)
        policy = self._table.policy(name, version) or Policy()
        if policy.find(command.statement_id) is not None:
            raise ResourceConflict.statement_exists(command.statement_id)
        if command.revision_id is not None and command.revision_id != policy.revision_id:
            raise PreconditionFailed.layer_policy_revision()
        statement = layer_statement(arns, name, version, command)
        updated = Policy(policy.statements + (statement,), str(uuid.uuid4()))
        self._table.set_policy(name, version, updated)
        return statement, updated.revision_id

    def policy(self, name: str, version: int, region: str | None) -> Policy:
        self._existing(name, version, self._arns.in_region(region))
        policy = self._table.policy(name, version)
        if policy is None:
            raise ResourceNotFound.no_policy()
        return policy

    def remove_permission(self, name: str, version: int, statement_id: str, revision_id: str | None,
                          region: str | None) -> None:
        self._existing(name, version, self._arns.in_region(region))
        policy = self._table.policy(name, version) or Policy()
        if revision_id is not None and revision_id != policy.revision_id:
            raise PreconditionFailed.layer_policy_revision()
        if policy.find(statement_id) is None:
            raise ResourceNotFound.statement(statement_id)
        kept = tuple(s for s in policy.statements if s.sid != statement_id)
        self._table.set_policy(name, version, Policy(kept, str(uuid.uuid4())))

    def _existing(self, name: str, version: int, arns: Arns) -> LayerVersion:
        found = self._table.get(name, version)
        if found is None:
            raise ResourceNotFound.layer_version(arns.layer_version(name, version))
        return found
