"""Use cases on event-invoke configs: Put (replaces), Update (merges), Get, Delete, List; and the checks
on destinations. Input is typed (`EventInvokeChanges`, parsed by api/event_invoke.py); no HTTP here.

Destinations may be lamina functions (an ARN, optionally qualified); queues, topics and event buses
are refused with a message that says so, until lamina has them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from lamina.errors import ApiError, InvalidParameterValue, ResourceNotFound
from lamina.model import LATEST
from lamina.service.functions import FunctionService
from lamina.store.event_configs import EventConfigStore, EventInvokeConfig

PAGE_MAX = 50
_FUNCTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:(?P<name>[a-zA-Z0-9-_]{1,64})(:(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$"
)
_QUEUE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:[a-zA-Z0-9_-]{1,80}$")
LATER_SERVICES = {"sns": "SNS topics", "events": "EventBridge event buses", "s3": "S3 buckets"}


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionTarget:
    """A lamina function named by an ARN (a destination or a dead-letter target)."""

    name: str
    qualifier: str | None
    account: str


def function_target(arn: str) -> FunctionTarget | None:
    """The function an ARN names, or None when the ARN is not a Lambda function ARN."""
    match = _FUNCTION_ARN.match(arn)
    if match is None:
        return None
    return FunctionTarget(match["name"], match["qualifier"], match["account"])


@dataclasses.dataclass(frozen=True, slots=True)
class EventInvokeChanges:
    """Members given to Put/UpdateFunctionEventInvokeConfig (None = not given). A destination named in
    `destinations_given` was given: its value, None included (`{}` clears it), is the new one."""

    max_retry_attempts: int | None = None
    max_event_age_s: int | None = None
    on_success: str | None = None
    on_failure: str | None = None
    destinations_given: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return self.max_retry_attempts is None and self.max_event_age_s is None and not self.destinations_given


def replaced(function: str, qualifier: str, changes: EventInvokeChanges, now: float) -> EventInvokeConfig:
    """Put: the new config is exactly what was given."""
    return EventInvokeConfig(function, qualifier, changes.max_retry_attempts, changes.max_event_age_s,
                             changes.on_success, changes.on_failure, now)


def merged(current: EventInvokeConfig, changes: EventInvokeChanges, now: float) -> EventInvokeConfig:
    """Update: members given replace the current ones; the rest stay."""
    out = dataclasses.replace(current, last_modified=now)
    if changes.max_retry_attempts is not None:
        out = dataclasses.replace(out, max_retry_attempts=changes.max_retry_attempts)
    if changes.max_event_age_s is not None:
        out = dataclasses.replace(out, max_event_age_s=changes.max_event_age_s)
    if "on_success" in changes.destinations_given:
        out = dataclasses.replace(out, on_success=changes.on_success)
    if "on_failure" in changes.destinations_given:
        out = dataclasses.replace(out, on_failure=changes.on_failure)
    return out


class EventConfigService:
    def __init__(self, functions: FunctionService, store: EventConfigStore, account: str,
                 now: Callable[[], float]) -> None:
        self._functions = functions
        self._store = store
        self._account = account
        self._now = now

    def _arn(self, name: str, qualifier: str | None, region: str | None) -> str:
        return self._functions.arn(name, qualifier or LATEST, region)

    def _check_function(self, name: str, qualifier: str | None) -> None:
        try:
            self._functions.get(name, qualifier)
        except ResourceNotFound:
            raise ResourceNotFound("The function doesn't exist.") from None

    def _not_configured(self, name: str, qualifier: str | None, region: str | None) -> ResourceNotFound:
        return ResourceNotFound(f"The function {self._arn(name, qualifier, region)} doesn't have an EventInvokeConfig")

    def put(self, name: str, qualifier: str | None, changes: EventInvokeChanges) -> EventInvokeConfig:
        if changes.empty:
            raise InvalidParameterValue("You must specify at least one of error handling or destination setting.")
        self._check_function(name, qualifier)
        self._check_destinations(name, changes)
        config = replaced(name, qualifier or LATEST, changes, self._now())
        self._store.put(config)
        return config

    def update(self, name: str, qualifier: str | None, changes: EventInvokeChanges,
               region: str | None = None) -> EventInvokeConfig:
        if changes.empty:
            raise InvalidParameterValue("You must specify at least one of error handling or destination setting.")
        self._check_function(name, qualifier)
        current = self._store.get(name, qualifier or LATEST)
        if current is None:
            raise self._not_configured(name, qualifier, region)
        self._check_destinations(name, changes)
        config = merged(current, changes, self._now())
        self._store.put(config)
        return config

    def get(self, name: str, qualifier: str | None, region: str | None = None) -> EventInvokeConfig:
        found = self._store.get(name, qualifier or LATEST)
        if found is None:
            try:
                self._functions.get(name, qualifier)
            except ApiError:
                raise self._not_configured(name, qualifier, region) from None
            raise self._not_configured(name, qualifier, region)
        return found

    def delete(self, name: str, qualifier: str | None, region: str | None = None) -> None:
        self.get(name, qualifier, region)
        self._store.delete(name, qualifier or LATEST)

    def list(self, name: str, marker: str | None, max_items: int | None) -> tuple[list[EventInvokeConfig], str | None]:
        self._check_function(name, None)
        configs = self._store.list(name)
        start = 0
        if marker:
            keys = [c.qualifier for c in configs]
            if marker not in keys:
                raise InvalidParameterValue.bad_marker(marker)
            start = keys.index(marker) + 1
        limit = min(max_items or PAGE_MAX, PAGE_MAX)
        page = configs[start:start + limit]
        more = start + limit < len(configs)
        return page, (page[-1].qualifier if more and page else None)

    def forget(self, name: str, version: str | None = None) -> None:
        """A function changed (FunctionService.on_change): drop the configs of what no longer exists."""
        if version is None:
            try:
                self._functions.get(name)
            except ResourceNotFound:
                self._store.delete(name)
        elif version.isdigit():
            try:
                self._functions.get(name, version)
            except ResourceNotFound:
                self._store.delete(name, version)

    # destinations ---------------------------------------------------------------------------------

    def _check_destinations(self, name: str, changes: EventInvokeChanges) -> None:
        given = {"on_success": changes.on_success, "on_failure": changes.on_failure}
        arns = [given[k] for k in sorted(changes.destinations_given) if given[k]]
        for arn in arns:
            service = arn.split(":")[2] if arn.count(":") >= 2 else ""
            if service in LATER_SERVICES:
                raise InvalidParameterValue(
                    f"lamina cannot deliver to {LATER_SERVICES[service]} yet ({arn}); "
                    "a destination must be a lamina function or an SQS queue ARN for now.")
            if service == "sqs":  # sent with SendMessage (esm/destinations.py)
                if not _QUEUE_ARN.match(arn):
                    raise InvalidParameterValue(f"The destination ARN {arn} is invalid.")
                continue
            if service != "lambda":
                raise InvalidParameterValue(self._invalid_config(changes))
            target = function_target(arn)
            if target is None or target.account != self._account:
                raise InvalidParameterValue(f"The destination ARN {arn} is invalid.")
            try:
                self._functions.get(target.name, target.qualifier)
            except ResourceNotFound:
                raise InvalidParameterValue(f"The destination ARN {arn} is invalid.") from None
            if target.name == name:
                raise InvalidParameterValue("You can't specify the function as a destination for itself.")

    @staticmethod
    def _invalid_config(changes: EventInvokeChanges) -> str:
        success = f"OnSuccess(destination={changes.on_success})" if changes.on_success else "null"
        failure = f"OnFailure(destination={changes.on_failure})" if changes.on_failure else "null"
        return f"The provided destination config DestinationConfig(onSuccess={success}, onFailure={failure}) is invalid."
