"""Provisioned concurrency: Put/Get/Delete/ListProvisionedConcurrencyConfigs on a version or an alias.

lamina starts the requested environments ahead (with AWS_LAMBDA_INITIALIZATION_TYPE=
provisioned-concurrency), reports IN_PROGRESS until they are all past their init and READY after,
keeps them warm (never reaped, never evicted) and serves invocations of that version from them. The
settings are kept in the store and re-applied when the server starts.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from lamina.api import parse
from lamina.api.request import json_body, no_content, reply
from lamina.clock import Clock
from lamina.errors import ApiError, InvalidParameterValue, ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import LATEST, aws_timestamp, is_version
from lamina.scheduler.scheduler import Scheduler
from lamina.service.functions import FunctionService
from lamina.service.invoke import InvokeService
from lamina.store.sqlite import SqliteStore

META_KEY = "provisioned_concurrency"
PATH = "/2019-09-30/functions/{name}/provisioned-concurrency"


class ProvisionedConfigNotFound(ApiError):
    http_status = 404
    aws_code = "ProvisionedConcurrencyConfigNotFoundException"

    def __init__(self) -> None:
        super().__init__("No Provisioned Concurrency Config found for this function")


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    name: str
    qualifier: str
    requested: int
    last_modified: float


class ProvisionedService:
    def __init__(self, functions: FunctionService, invoker: InvokeService, scheduler: Scheduler,
                 store: SqliteStore, clock: Clock) -> None:
        self._functions = functions
        self._invoker = invoker
        self._scheduler = scheduler
        self._store = store
        self._clock = clock

    def _load(self) -> dict[str, dict[str, Any]]:
        raw = self._store.get_meta(META_KEY)
        return json.loads(raw) if raw else {}

    def _save(self, saved: dict[str, dict[str, Any]]) -> None:
        self._store.set_meta(META_KEY, json.dumps(saved))

    def _version(self, name: str, qualifier: str) -> str:
        if qualifier == LATEST:
            raise InvalidParameterValue(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
        if is_version(qualifier):
            self._functions.get(name, qualifier)  # 404 for an unknown version
            return qualifier
        return self._functions.aliases.target(name, qualifier)

    def _apply(self, name: str, qualifier: str, requested: int) -> None:
        deployed = self._functions.deployed(name, self._version(name, qualifier))
        self._scheduler.provision(deployed.recipe(self._invoker.environment_for), requested)

    def restore(self) -> None:
        for key, value in self._load().items():
            name, _, qualifier = key.partition("|")
            try:
                self._apply(name, qualifier, value["requested"])
            except ApiError:
                pass  # the function or version is gone; Get answers not found

    def put(self, name: str, qualifier: str, requested: int) -> Setting:
        self._apply(name, qualifier, requested)
        saved = self._load()
        saved[f"{name}|{qualifier}"] = {"requested": requested, "last_modified": self._clock.time()}
        self._save(saved)
        return Setting(name, qualifier, requested, self._clock.time())

    def get(self, name: str, qualifier: str) -> Setting:
        found = self._load().get(f"{name}|{qualifier}")
        if found is None:
            raise ProvisionedConfigNotFound()
        return Setting(name, qualifier, found["requested"], found["last_modified"])

    def delete(self, name: str, qualifier: str) -> None:
        saved = self._load()
        if saved.pop(f"{name}|{qualifier}", None) is None:
            raise ProvisionedConfigNotFound()
        self._save(saved)
        deployed = self._functions.deployed(name, self._version(name, qualifier))
        self._scheduler.provision(deployed.recipe(self._invoker.environment_for), 0)

    def list(self, name: str) -> list[Setting]:
        return [Setting(name, key.partition("|")[2], v["requested"], v["last_modified"])
                for key, v in sorted(self._load().items()) if key.partition("|")[0] == name]

    def status(self, setting: Setting) -> tuple[int, int]:
        version = self._version(setting.name, setting.qualifier)
        config = self._functions.get(setting.name, version)
        return self._scheduler.provisioned_status(config)


class ProvisionedApi:
    def __init__(self, functions: FunctionService, service: ProvisionedService) -> None:
        self._functions = functions
        self._service = service

    def routes(self) -> list[Route]:
        return [
            route("PUT", PATH, self.put),
            route("GET", PATH, self.get),
            route("DELETE", PATH, self.delete),
        ]

    def _target(self, request: Request) -> tuple[str, str]:
        ref = parse.function_ref(request.match_info["name"], request.query.get("Qualifier"))
        self._functions.get(ref.name)  # 404 for an unknown function
        if not ref.qualifier:
            raise ValidationError.field(None, "qualifier", "Member must not be null")
        return ref.name, ref.qualifier

    def _render(self, setting: Setting, with_arn: bool = False) -> dict[str, Any]:
        requested, available = self._service.status(setting)
        out: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": setting.requested,
            "AvailableProvisionedConcurrentExecutions": available,
            "AllocatedProvisionedConcurrentExecutions": available,
            "Status": "READY" if available >= setting.requested else "IN_PROGRESS",
            "LastModified": aws_timestamp(setting.last_modified),
        }
        if with_arn:
            out["FunctionArn"] = self._functions.arn(setting.name, setting.qualifier)
        return out

    async def put(self, request: Request) -> Response:
        name, qualifier = self._target(request)
        value = parse.required_int(await json_body(request), "ProvisionedConcurrentExecutions",
                                   "provisionedConcurrentExecutions", 1)
        return reply(request, self._render(self._service.put(name, qualifier, value)), 202)

    async def get(self, request: Request) -> Response:
        if request.query.get("List") == "ALL":
            ref = parse.function_ref(request.match_info["name"])
            self._functions.get(ref.name)
            configs = [self._render(s, with_arn=True) for s in self._service.list(ref.name)]
            return reply(request, {"ProvisionedConcurrencyConfigs": configs})
        name, qualifier = self._target(request)
        return reply(request, self._render(self._service.get(name, qualifier)))

    async def delete(self, request: Request) -> Response:
        name, qualifier = self._target(request)
        self._service.delete(name, qualifier)
        return no_content(request)
