"""Reserved concurrency (Put/Get/DeleteFunctionConcurrency) and the Prometheus /metrics page."""

from __future__ import annotations

import json
from lamina.api import parse
from lamina.api.request import json_body, no_content, reply
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.scheduler.scheduler import Scheduler
from lamina.service.functions import FunctionService
from lamina.store.sqlite import SqliteStore

META_KEY = "reserved_concurrency"


class Reservations:
    """Reserved concurrency per function: kept in the store, enforced by the scheduler."""

    def __init__(self, store: SqliteStore, scheduler: Scheduler) -> None:
        self._store = store
        self._scheduler = scheduler
        for name, value in self._load().items():
            scheduler.set_reserved(name, value)

    def _load(self) -> dict[str, int]:
        raw = self._store.get_meta(META_KEY)
        return json.loads(raw) if raw else {}

    def put(self, name: str, value: int) -> None:
        self._scheduler.set_reserved(name, value)
        saved = self._load()
        saved[name] = value
        self._store.set_meta(META_KEY, json.dumps(saved))

    def delete(self, name: str) -> None:
        self._scheduler.set_reserved(name, None)
        saved = self._load()
        if saved.pop(name, None) is not None:
            self._store.set_meta(META_KEY, json.dumps(saved))

    def get(self, name: str) -> int | None:
        return self._scheduler.reserved(name)

    def total(self) -> int:
        return sum(self._load().values())


class ConcurrencyApi:
    def __init__(self, functions: FunctionService, reservations: Reservations, scheduler: Scheduler) -> None:
        self._functions = functions
        self._reservations = reservations
        self._scheduler = scheduler

    def routes(self) -> list[Route]:
        return [
            route("PUT", "/2017-10-31/functions/{name}/concurrency", self.put),
            route("GET", "/2019-09-30/functions/{name}/concurrency", self.get),
            route("DELETE", "/2017-10-31/functions/{name}/concurrency", self.delete),
            route("GET", "/metrics", self.metrics),
        ]

    def _name(self, request: Request) -> str:
        ref = parse.function_ref(request.match_info["name"])
        self._functions.get(ref.name)  # 404 for an unknown function
        return ref.name

    async def put(self, request: Request) -> Response:
        name = self._name(request)
        value = parse.required_int(await json_body(request), "ReservedConcurrentExecutions",
                                   "reservedConcurrentExecutions", 0)
        self._reservations.put(name, value)
        return reply(request, {"ReservedConcurrentExecutions": value})

    async def get(self, request: Request) -> Response:
        value = self._reservations.get(self._name(request))
        return reply(request, {} if value is None else {"ReservedConcurrentExecutions": value})

    async def delete(self, request: Request) -> Response:
        self._reservations.delete(self._name(request))
        return no_content(request)

    async def metrics(self, request: Request) -> Response:
        text = self._scheduler.metrics.render(self._scheduler.concurrency(),
                                              self._scheduler.environments_by_state())
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")
