"""Event-invoke configs on the wire: Put/Update/Get/Delete/ListFunctionEventInvokeConfigs
(`/2019-09-25/functions/{name}/event-invoke-config[/list]`), and the async queue's statistics
(`GET /_lamina/async`, SigV4-signed like the Lambda API).

`LastModified` is an epoch number here (the model's `timestamp` type), unlike FunctionConfiguration's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

from lamina.api import parse
from lamina.api.request import json_body, no_content, region, reply
from lamina.errors import ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.service.event_configs import EventConfigService, EventInvokeChanges
from lamina.store.event_configs import EventInvokeConfig

PATH = "/2019-09-25/functions/{name}/event-invoke-config"
DESTINATION_PATTERN = (r"^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1})?:"
                       r"(\d{12})?:(.*)")
_DESTINATION = re.compile(DESTINATION_PATTERN)


def _destination(config: dict[str, Any], key: str, member: str) -> str | None:
    part = config.get(key)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise ValidationError.field(part, f"destinationConfig.{member}", "Member must be a structure")
    value = part.get("Destination")
    if value is None or value == "":
        return None
    path = f"destinationConfig.{member}.destination"
    if not isinstance(value, str):
        raise ValidationError.field(value, path, "Member must be a string")
    if len(value) > 350:
        raise ValidationError.field(value, path, "Member must have length less than or equal to 350")
    if not _DESTINATION.match(value):
        raise ValidationError.field(value, path, f"Member must satisfy regular expression pattern: {DESTINATION_PATTERN[1:]}")
    return value


def event_invoke_changes(body: dict[str, Any]) -> EventInvokeChanges:
    """The members of Put/UpdateFunctionEventInvokeConfig, checked (ranges and patterns: ValidationException)."""
    changes = EventInvokeChanges(
        max_retry_attempts=parse.optional_int(body, "MaximumRetryAttempts", "maximumRetryAttempts", 0, 2),
        max_event_age_s=parse.optional_int(body, "MaximumEventAgeInSeconds", "maximumEventAgeInSeconds", 60, 21600),
    )
    config = body.get("DestinationConfig")
    if config is None:
        return changes
    if not isinstance(config, dict):
        raise ValidationError.field(config, "destinationConfig", "Member must be a structure")
    given = frozenset(name for key, name in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")) if key in config)
    return dataclasses.replace(
        changes, on_success=_destination(config, "OnSuccess", "onSuccess"),
        on_failure=_destination(config, "OnFailure", "onFailure"), destinations_given=given,
    )


def render(config: EventInvokeConfig, arn: str) -> dict[str, Any]:
    out: dict[str, Any] = {"LastModified": round(config.last_modified, 3), "FunctionArn": arn}
    if config.max_retry_attempts is not None:
        out["MaximumRetryAttempts"] = config.max_retry_attempts
    if config.max_event_age_s is not None:
        out["MaximumEventAgeInSeconds"] = config.max_event_age_s
    out["DestinationConfig"] = {
        "OnSuccess": {"Destination": config.on_success} if config.on_success else {},
        "OnFailure": {"Destination": config.on_failure} if config.on_failure else {},
    }
    return out


class EventInvokeApi:
    def __init__(self, service: EventConfigService, arn: Callable[[str, str, str | None], str],
                 statistics: Callable[[], Awaitable[Any]] | None = None) -> None:
        self._service = service
        self._arn = arn  # (name, qualifier, region) -> function ARN
        self._statistics = statistics

    def routes(self) -> list[Route]:
        return [
            route("PUT", PATH, self.put),
            route("POST", PATH, self.update),
            route("GET", PATH, self.get),
            route("DELETE", PATH, self.delete),
            route("GET", PATH + "/list", self.list),
            route("GET", "/_lamina/async", self.queue_statistics),
        ]

    @staticmethod
    def _ref(request: Request) -> parse.FunctionRef:
        return parse.function_ref(request.match_info["name"], request.query.get("Qualifier"))

    def _render(self, request: Request, config: EventInvokeConfig) -> dict[str, Any]:
        return render(config, self._arn(config.function, config.qualifier, region(request)))

    async def put(self, request: Request) -> Response:
        ref = self._ref(request)
        config = self._service.put(ref.name, ref.qualifier, event_invoke_changes(await json_body(request)))
        return reply(request, self._render(request, config))

    async def update(self, request: Request) -> Response:
        ref = self._ref(request)
        changes = event_invoke_changes(await json_body(request))
        config = self._service.update(ref.name, ref.qualifier, changes, region(request))
        return reply(request, self._render(request, config))

    async def get(self, request: Request) -> Response:
        ref = self._ref(request)
        return reply(request, self._render(request, self._service.get(ref.name, ref.qualifier, region(request))))

    async def delete(self, request: Request) -> Response:
        ref = self._ref(request)
        self._service.delete(ref.name, ref.qualifier, region(request))
        return no_content(request)

    async def list(self, request: Request) -> Response:
        ref = parse.function_ref(request.match_info["name"])
        page, marker = self._service.list(ref.name, request.query.get("Marker") or None,
                                          parse.max_items(request.query.get("MaxItems"), 50))
        out: dict[str, Any] = {"FunctionEventInvokeConfigs": [self._render(request, c) for c in page]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)

    async def queue_statistics(self, request: Request) -> Response:
        if self._statistics is None:
            return reply(request, {})
        stats = await self._statistics()
        return reply(request, {**{k: v for k, v in dataclasses.asdict(stats).items() if k != "queue"},
                               "queue": dataclasses.asdict(stats.queue)})


__all__ = ["EventInvokeApi", "event_invoke_changes", "render"]
