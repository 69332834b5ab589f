"""Use cases on functions: create, read, list, update code and configuration, delete; and the runnable
form of a version (`deployed`), which the invoke path uses.

Works on typed input from api/parse.py and on FunctionConfig values; knows nothing of HTTP. The
function's satellites (versions, aliases, layers, policies, tags) have their own services, built here
and reachable as attributes, because they share this service's store and caches.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from pathlib import Path

from lamina.clock import Clock
from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.model import (
    LATEST, Arns, ConfigChanges, FunctionConfig, FunctionLayer, PublishVersion, State, is_version,
)
from lamina.runtimes.registry import Runtime, RuntimeRegistry
from lamina.scheduler.scheduler import Recipe
from lamina.service.aliases import AliasService
from lamina.service.layers import LayerService, remove_unused_packages
from lamina.service.policies import PolicyService
from lamina.service.tags import TagService
from lamina.service.versions import VersionService
from lamina.store.blobs import MAX_UNZIPPED, BlobStore, inspect_zip
from lamina.store.sqlite import SqliteStore

PAGE_MAX = 50


@dataclasses.dataclass(slots=True)
class Deployed:
    """A function version ready to run: its config, runtime, unpacked code (and merged layers)."""

    config: FunctionConfig
    runtime: Runtime
    code_dir: Path
    opt_dir: Path | None = None
    _recipe: Recipe | None = None

    def recipe(self, environment_for: Callable[[Deployed], dict[str, str]]) -> Recipe:
        """The scheduler's recipe, built once per deployed version."""
        if self._recipe is None:
            self._recipe = Recipe(self.config, self.runtime, self.code_dir, environment_for(self), self.opt_dir)
        return self._recipe


class FunctionService:
    def __init__(self, store: SqliteStore, blobs: BlobStore, registry: RuntimeRegistry, clock: Clock,
                 arn_prefix: str, rng: random.Random | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._registry = registry
        self._clock = clock
        self._arn_prefix = arn_prefix  # arn:aws:lambda:REGION:ACCOUNT:function:
        self.arns = Arns.from_function_prefix(arn_prefix)
        self._deployed: dict[tuple[str, str], Deployed] = {}
        #: Called with (function name, version or None for every version) when a function changes.
        self.on_change: list[Callable[[str, str | None], None]] = []
        #: Called with the runtime and memory size of a function just created or given a new runtime or size:
        #: invocations will follow.
        self.on_deploy: list[Callable[[Runtime, int], None]] = []
        self.versions = VersionService(store, self.arns, self._version_deleted)
        self.aliases = AliasService(store, self.arns, rng or random.Random())
        self.layers = LayerService(store, blobs, clock, self.arns)
        self.policies = PolicyService(store, self.arns)
        self.tagging = TagService(store, self.arns)

    def arn(self, name: str, qualifier: str | None = None, region: str | None = None) -> str:
        return self.arns.in_region(region).function(name, qualifier)

    # reads -------------------------------------------------------------------------------------

    def get(self, name: str, qualifier: str | None = None) -> FunctionConfig:
        """$LATEST, a version, or the version an alias points to."""
        version = qualifier or LATEST
        if not is_version(version):
            version = self.aliases.target(name, version)
        config = self._store.get_function(name, version)
        if config is None:
            raise ResourceNotFound.function(self.arn(name, qualifier))
        return config

    def deployed(self, name: str, qualifier: str | None) -> Deployed:
        """The runnable form of a version, cached until the function changes (the invoke path). An
        alias is resolved per call, so weighted routing picks a version for every invocation."""
        key = (name, qualifier or LATEST)
        found = self._deployed.get(key)
        if found is not None:
            return found
        if not is_version(key[1]):
            return self.deployed(name, self.aliases.route(name, key[1]))
        config = self.get(name, qualifier)
        runtime = self._runtime(config.runtime)
        opt_dir = self._blobs.merged([layer.code_sha256 for layer in config.layers]) if config.layers else None
        found = Deployed(config, runtime, self._blobs.unpack(config.code_sha256), opt_dir)
        self._deployed[key] = found
        return found

    def tags(self, name: str) -> dict[str, str]:
        return self._store.function_tags(name)

    def list(self, marker: str | None, max_items: int | None,
             all_versions: bool = False) -> tuple[list[FunctionConfig], str | None]:
        """$LATEST of each function by name; with `all_versions`, every version (the marker is then
        `name:version`)."""
        limit = min(max_items or PAGE_MAX, PAGE_MAX)
        if all_versions:
            after = None
            if marker:
                name, _, version = marker.partition(":")
                if not is_version(version):
                    raise InvalidParameterValue.bad_marker(marker)
                after = (name, version)
            page = self._store.list_all_versions(after, limit + 1)
        else:
            page = self._store.list_functions(marker, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        if not more:
            return page, None
        last = page[-1]
        return page, (f"{last.name}:{last.version}" if all_versions else last.name)

    def code_zip(self, sha: str) -> bytes:
        return self._blobs.read(sha)

    def usage(self) -> tuple[int, int]:
        return self._store.usage()

    # writes ------------------------------------------------------------------------------------

    def create(self, name: str, changes: ConfigChanges, zip_bytes: bytes, tags: dict[str, str],
               publish: bool = False) -> FunctionConfig:
        """Create $LATEST; with `publish`, also version 1, which is then what is returned."""
        if not changes.role:
            raise InvalidParameterValue("The role defined for the function cannot be assumed by Lambda.")
        if not changes.runtime:
            raise InvalidParameterValue("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        if not changes.handler:
            raise InvalidParameterValue("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        runtime = self._runtime(changes.runtime)
        if self._store.get_function(name, LATEST) is not None:
            raise ResourceConflict.function_exists(name)
        layers = self.layers.resolve(changes.layers) if changes.layers else ()
        self._check_unzipped(inspect_zip(zip_bytes).unzipped_size, layers)
        package = self._blobs.put(zip_bytes)
        given = {k: v for k, v in changes.given().items() if k not in ("runtime", "handler", "role", "layers")}
        config = FunctionConfig(
            name=name, runtime=runtime.id, handler=changes.handler, role=changes.role,
            code_sha256=package.sha256_hex, code_size=package.size, revision_id=str(uuid.uuid4()),
            last_modified=self._clock.time(), state=State.ACTIVE, last_update_status="Successful",
            layers=layers, content_id=str(uuid.uuid4()),
        ).replace(**given)
        self._store.create_function(config, tags)
        self._prepare_layers(config)
        self._deployed_runtime(runtime, config.memory_mb)
        if publish:
            return self.versions.publish(name, PublishVersion())
        return config

    def update_configuration(self, name: str, changes: ConfigChanges) -> FunctionConfig:
        current = self.get(name)
        self._check_revision(current, changes.revision_id)
        given = changes.given()
        new_runtime = self._runtime(given["runtime"]) if "runtime" in given else None
        if new_runtime is not None:
            given["runtime"] = new_runtime.id
        if changes.layers is not None:
            given["layers"] = self.layers.resolve(changes.layers)
            self._check_unzipped(self._blobs.unzipped_size(current.code_sha256), given["layers"])
        updated = current.replace(**given, revision_id=str(uuid.uuid4()), last_modified=self._clock.time(),
                                  last_update_status="Successful", content_id=str(uuid.uuid4()))
        self._prepare_layers(updated)
        saved = self._save(current, updated)
        if updated.runtime != current.runtime or updated.memory_mb != current.memory_mb:
            self._deployed_runtime(self._registry.get(updated.runtime or ""), updated.memory_mb)
        return saved

    def update_code(self, name: str, zip_bytes: bytes, revision_id: str | None, *, publish: bool = False,
                    dry_run: bool = False) -> FunctionConfig:
        """Replace $LATEST's code; with `publish`, also publish it and return the new version; with
        `dry_run`, check everything and return what $LATEST would become, changing nothing."""
        current = self.get(name)
        self._check_revision(current, revision_id)
        package = inspect_zip(zip_bytes)
        self._check_unzipped(package.unzipped_size, current.layers)
        changed = current.replace(
            code_sha256=package.sha256_hex, code_size=package.size, revision_id=str(uuid.uuid4()),
            last_modified=self._clock.time(), last_update_status="Successful", content_id=str(uuid.uuid4()),
        )
        if dry_run:
            return changed
        self._blobs.put(zip_bytes)
        updated = self._save(current, changed)
        if publish:
            return self.versions.publish(name, PublishVersion())
        return updated

    def delete(self, name: str, qualifier: str | None) -> None:
        """Delete the function with everything it owns, or one published version of it."""
        if qualifier == LATEST:
            raise InvalidParameterValue("$LATEST version cannot be deleted without deleting the function.")
        if qualifier is not None:
            if qualifier.isdigit():
                self.versions.delete(name, qualifier)
            elif self._store.get_function(name, LATEST) is None:
                raise ResourceNotFound.function(self.arn(name))
            return  # an alias name names no version: nothing to delete, as on AWS
        if not self._store.delete_function(name):
            raise ResourceNotFound.function(self.arn(name))
        self.aliases.forget_function(name)
        self._changed(name)
        remove_unused_packages(self._store, self._blobs)

    # helpers -----------------------------------------------------------------------------------

    def _save(self, current: FunctionConfig, updated: FunctionConfig) -> FunctionConfig:
        if not self._store.update_function(updated, current.revision_id):
            raise PreconditionFailed.revision()
        self._changed(updated.name, only_latest=True)
        return updated

    def _changed(self, name: str, only_latest: bool = False) -> None:
        """The function changed: drop its runnable forms (only $LATEST's when published versions,
        which are immutable, are untouched) and tell the scheduler."""
        for key in [k for k in self._deployed if k[0] == name and (not only_latest or k[1] == LATEST)]:
            del self._deployed[key]
        for callback in self.on_change:
            callback(name, LATEST if only_latest else None)

    def _version_deleted(self, name: str, version: str) -> None:
        """A published version is gone: forget its runnable form, stop its environments, and drop
        packages nothing else needs."""
        self._deployed.pop((name, version), None)
        for callback in self.on_change:
            callback(name, version)
        remove_unused_packages(self._store, self._blobs)

    def _deployed_runtime(self, runtime: Runtime | None, memory_mb: int) -> None:
        if runtime is None:
            return
        for callback in self.on_deploy:
            callback(runtime, memory_mb)

    def _prepare_layers(self, config: FunctionConfig) -> None:
        """Build the merged /opt tree now, so the first invoke does not have to."""
        if config.layers:
            self._blobs.merged([layer.code_sha256 for layer in config.layers])

    @staticmethod
    def _check_revision(current: FunctionConfig, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != current.revision_id:
            raise PreconditionFailed.revision()

    @staticmethod
    def _check_unzipped(code_unzipped: int, layers: tuple[FunctionLayer, ...]) -> None:
        """Function code plus all its layers, unzipped, must stay below Lambda's 250 MB."""
        if code_unzipped + sum(layer.unzipped_size for layer in layers) > MAX_UNZIPPED:
            raise InvalidParameterValue.unzipped_too_large(MAX_UNZIPPED)

    def _runtime(self, runtime_id: str) -> Runtime:
        runtime = self._registry.get(runtime_id)
        if runtime is None:
            raise InvalidParameterValue(
                f"The runtime parameter of {runtime_id} is not available on this lamina host. "
                f"Available runtimes: {', '.join(self._registry.ids())}"
            )
        return runtime
