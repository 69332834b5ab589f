"""Event source mappings on the wire: Create/Get/List/Update/DeleteEventSourceMapping
(`/2015-03-31/event-source-mappings/[{UUID}]`); the use cases live in esm/manager.py.

`LastModified` is an epoch number (the model's `timestamp`); SQS mappings leave out the stream-only members.
"""

from __future__ import annotations

from typing import Any

from lamina.api import parse
from lamina.api.request import json_body, region, reply
from lamina.esm.manager import EsmManager
from lamina.esm.model import Mapping
from lamina.http.router import Route, route
from lamina.http.server import Request, Response

PATH = "/2015-03-31/event-source-mappings"


def render(mapping: Mapping, function_arn: str, mapping_arn: str) -> dict[str, Any]:
    out: dict[str, Any] = {"UUID": mapping.uuid}
    if mapping.kind.is_stream:
        out["StartingPosition"] = mapping.starting_position
        if mapping.starting_timestamp is not None:
            out["StartingPositionTimestamp"] = mapping.starting_timestamp
    out["BatchSize"] = mapping.batch_size
    out["MaximumBatchingWindowInSeconds"] = mapping.batching_window_s
    if mapping.kind.is_stream:
        out["ParallelizationFactor"] = mapping.parallelization_factor
    out["EventSourceArn"] = mapping.source_arn
    if mapping.filters:
        out["FilterCriteria"] = {"Filters": [{"Pattern": p} for p in mapping.filters]}
    out["FunctionArn"] = function_arn
    out["LastModified"] = round(mapping.last_modified, 3)
    if mapping.kind.is_stream:
        out["LastProcessingResult"] = mapping.last_processing_result
    out["State"] = str(mapping.state)
    out["StateTransitionReason"] = mapping.state_reason
    if mapping.kind.is_stream:
        out["DestinationConfig"] = {"OnFailure": {"Destination": mapping.on_failure} if mapping.on_failure else {}}
        out["MaximumRecordAgeInSeconds"] = mapping.max_record_age_s
        out["BisectBatchOnFunctionError"] = mapping.bisect_on_error
        out["MaximumRetryAttempts"] = mapping.max_retry_attempts
        out["TumblingWindowInSeconds"] = mapping.tumbling_window_s
    out["FunctionResponseTypes"] = list(mapping.function_response_types)
    if mapping.max_concurrency is not None:
        out["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
    out["EventSourceMappingArn"] = mapping_arn
    return out


class EsmApi:
    def __init__(self, manager: EsmManager) -> None:
        self._manager = manager

    def routes(self) -> list[Route]:
        return [
            route("POST", PATH, self.create),
            route("POST", PATH + "/", self.create),
            route("GET", PATH, self.list),
            route("GET", PATH + "/", self.list),
            route("GET", PATH + "/{uuid}", self.get),
            route("PUT", PATH + "/{uuid}", self.update),
            route("DELETE", PATH + "/{uuid}", self.delete),
        ]

    def _render(self, request: Request, mapping: Mapping) -> dict[str, Any]:
        where = region(request)
        return render(mapping, self._manager.function_arn(mapping, where), self._manager.mapping_arn(mapping, where))

    async def create(self, request: Request) -> Response:
        mapping = await self._manager.create(await json_body(request))
        return reply(request, self._render(request, mapping), 202)

    async def get(self, request: Request) -> Response:
        return reply(request, self._render(request, self._manager.get(request.match_info["uuid"])))

    async def update(self, request: Request) -> Response:
        mapping = await self._manager.update(request.match_info["uuid"], await json_body(request))
        return reply(request, self._render(request, mapping), 202)

    async def delete(self, request: Request) -> Response:
        mapping = await self._manager.delete(request.match_info["uuid"])
        return reply(request, self._render(request, mapping), 202)

    async def list(self, request: Request) -> Response:
        query = request.query
        page, marker = self._manager.list(query.get("FunctionName") or None, query.get("EventSourceArn") or None,
                                          query.get("Marker") or None, parse.max_items(query.get("MaxItems"), 10000))
        out: dict[str, Any] = {"EventSourceMappings": [self._render(request, m) for m in page]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)


__all__ = ["EsmApi", "render"]
