"""Use cases on functions: create, read, list, update code and configuration, delete.

Works on typed input from api/parse.py and on FunctionConfig values; knows nothing of HTTP.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

from lamina.clock import Clock
from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.model import LATEST, ConfigChanges, FunctionConfig, State
from lamina.runtimes.registry import Runtime, RuntimeRegistry
from lamina.scheduler.scheduler import Recipe
from lamina.store.blobs import BlobStore
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
                 arn_prefix: str) -> None:
        self._store = store
        self._blobs = blobs
        self._registry = registry
        self._clock = clock
        self._arn_prefix = arn_prefix  # arn:aws:lambda:REGION:ACCOUNT:function:
        self._deployed: dict[tuple[str, str], Deployed] = {}
        self.on_change: list[Callable[[str], None]] = []

    def arn(self, name: str, qualifier: str | None = None, region: str | None = None) -> str:
        prefix = self._arn_prefix
        if region:
            parts = prefix.split(":")
            parts[3] = region
            prefix = ":".join(parts)
        return f"{prefix}{name}" + (f":{qualifier}" if qualifier else "")

    # reads -------------------------------------------------------------------------------------

    def get(self, name: str, qualifier: str | None = None) -> FunctionConfig:
        version = qualifier or LATEST
        config = self._store.get_function(name, version)
        if config is None:
            raise ResourceNotFound.function(self.arn(name, qualifier))
        return config

    def deployed(self, name: str, qualifier: str | None) -> Deployed:
        """The runnable form of a version, cached until the function changes (the invoke path)."""
        key = (name, qualifier or LATEST)
        found = self._deployed.get(key)
        if found is None:
            config = self.get(name, qualifier)
            runtime = self._runtime(config.runtime)
            found = Deployed(config, runtime, self._blobs.unpack(config.code_sha256))
            self._deployed[key] = found
        return found

    def tags(self, name: str) -> dict[str, str]:
        return self._store.function_tags(name)

    def list(self, marker: str | None, max_items: int | None) -> tuple[list[FunctionConfig], str | None]:
        limit = min(max_items or PAGE_MAX, PAGE_MAX)
        page = self._store.list_functions(marker, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].name if more else None)

    def code_zip(self, sha: str) -> bytes:
        return self._blobs.read(sha)

    def usage(self) -> tuple[int, int]:
        return self._store.usage()

    # writes ------------------------------------------------------------------------------------

    def create(self, name: str, changes: ConfigChanges, zip_bytes: bytes, tags: dict[str, str]) -> FunctionConfig:
        if not changes.role:
            raise InvalidParameterValue("The role defined for the function cannot be assumed by Lambda.")
        if not changes.runtime:
            raise InvalidParameterValue("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        if not changes.handler:
            raise InvalidParameterValue("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        runtime = self._runtime(changes.runtime)
        if self._store.get_function(name, LATEST) is not None:
            raise ResourceConflict.function_exists(name)
        package = self._blobs.put(zip_bytes)
        config = FunctionConfig(
            name=name, runtime=runtime.id, handler=changes.handler, role=changes.role,
            code_sha256=package.sha256_hex, code_size=package.size, revision_id=str(uuid.uuid4()),
            last_modified=self._clock.time(), state=State.ACTIVE, last_update_status="Successful",
        ).replace(**{k: v for k, v in changes.given().items() if k not in ("runtime", "handler", "role")})
        self._store.create_function(config, tags)
        return config

    def update_configuration(self, name: str, changes: ConfigChanges) -> FunctionConfig:
        current = self.get(name)
        self._check_revision(current, changes.revision_id)
        given = changes.given()
        if "runtime" in given:
            given["runtime"] = self._runtime(given["runtime"]).id
        updated = current.replace(**given, revision_id=str(uuid.uuid4()), last_modified=self._clock.time(),
                                  last_update_status="Successful")
        return self._save(current, updated)

    def update_code(self, name: str, zip_bytes: bytes, revision_id: str | None) -> FunctionConfig:
        current = self.get(name)
        self._check_revision(current, revision_id)
        package = self._blobs.put(zip_bytes)
        updated = current.replace(
            code_sha256=package.sha256_hex, code_size=package.size, revision_id=str(uuid.uuid4()),
            last_modified=self._clock.time(), last_update_status="Successful",
        )
        return self._save(current, updated)

    def delete(self, name: str, qualifier: str | None) -> None:
        if qualifier == LATEST:
            raise InvalidParameterValue("$LATEST version cannot be deleted without deleting the function.")
        if qualifier is not None:
            raise ResourceNotFound.function(self.arn(name, qualifier))
        if not self._store.delete_function(name):
            raise ResourceNotFound.function(self.arn(name))
        self._changed(name)
        self._blobs.remove_unused(self._store.code_shas_in_use())

    # helpers -----------------------------------------------------------------------------------

    def _save(self, current: FunctionConfig, updated: FunctionConfig) -> FunctionConfig:
        if not self._store.update_function(updated, current.revision_id):
            raise PreconditionFailed.revision()
        self._changed(updated.name)
        return updated

    def _changed(self, name: str) -> None:
        for key in [k for k in self._deployed if k[0] == name]:
            del self._deployed[key]
        for callback in self.on_change:
            callback(name)

    @staticmethod
    def _check_revision(current: FunctionConfig, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != current.revision_id:
            raise PreconditionFailed.revision()

    def _runtime(self, runtime_id: str) -> Runtime:
        runtime = self._registry.get(runtime_id)
        if runtime is None:
            raise InvalidParameterValue(
                f"The runtime parameter of {runtime_id} is not available on this lamina host. "
                f"Available runtimes: {', '.join(self._registry.ids())}"
            )
        return runtime
