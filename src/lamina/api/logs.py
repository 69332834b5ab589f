"""The CloudWatch Logs API subset (JSON 1.1, `X-Amz-Target: Logs_20140328.*`) over lamina's log store:
DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents — what `aws logs tail` and boto3's
`logs` client use to read a function's logs.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from lamina.api import paging
from lamina.errors import Json11Error
from lamina.http.server import Request, Response
from lamina.store.logs import LogEvent, LogStore

TARGET_PREFIX = "Logs_20140328"
JSON11 = "application/x-amz-json-1.1"
MAX_EVENTS = 10000


class LogsError(Json11Error):
    """JSON 1.1 errors carry the code in `__type` (and the header)."""


class LogGroupNotFound(LogsError):
    aws_code = "ResourceNotFoundException"

    def __init__(self) -> None:
        super().__init__("The specified log group does not exist.")


class InvalidParameter(LogsError):
    aws_code = "InvalidParameterException"


def matches(pattern: str, message: str) -> bool:
    """CloudWatch's plain-term filter patterns: every term must occur; `?term` makes terms
    alternatives; `-term` excludes; quoted phrases match as a whole; case-sensitive."""
    pattern = pattern.strip()
    if not pattern or pattern in ('""', "''"):
        return True
    try:
        terms = shlex.split(pattern)
    except ValueError:
        terms = pattern.split()
    any_of = [t[1:] for t in terms if t.startswith("?") and len(t) > 1]
    must = [t for t in terms if not t.startswith(("?", "-")) or len(t) == 1]
    must_not = [t[1:] for t in terms if t.startswith("-") and len(t) > 1]
    if any(t in message for t in must_not):
        return False
    if any_of and not any(t in message for t in any_of):
        return False
    return all(t in message for t in must)


class LogsApi:
    def __init__(self, store: LogStore, region: str, account: str, flush: Any) -> None:
        self._store = store
        self._region = region
        self._account = account
        self._flush = flush  # make buffered lines visible before reading
        self._operations = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }

    async def handle(self, request: Request, operation: str) -> Response:
        handler = self._operations.get(operation)
        if handler is None:
            raise InvalidParameter(f"lamina does not implement Logs {operation}")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise InvalidParameter(f"Could not parse request body: {exc}") from exc
        self._flush()
        out = handler(body)
        return Response(json.dumps(out).encode(), content_type=JSON11,
                        headers={"x-amzn-RequestId": request["request_id"]})

    def _arn(self, group: str) -> str:
        return f"arn:aws:logs:{self._region}:{self._account}:log-group:{group}:*"

    def describe_log_groups(self, body: dict[str, Any]) -> dict[str, Any]:
        groups = self._store.groups(body.get("logGroupNamePrefix") or "")
        start = paging.position(body.get("nextToken"), InvalidParameter)
        limit = int(body.get("limit") or 50)
        page = groups[start:start + limit]
        out: dict[str, Any] = {"logGroups": [
            {"logGroupName": g, "creationTime": first, "storedBytes": size or 0, "arn": self._arn(g),
             "metricFilterCount": 0} for g, first, size in page]}
        if start + limit < len(groups):
            out["nextToken"] = paging.token(start + limit)
        return out

    def _require_group(self, group: str | None) -> str:
        if not group or not self._store.groups(group) or self._store.groups(group)[0][0] != group:
            raise LogGroupNotFound()
        return group

    def describe_log_streams(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._require_group(body.get("logGroupName"))
        streams = self._store.streams(group, body.get("logStreamNamePrefix") or "")
        if body.get("orderBy") == "LastEventTime":
            streams.sort(key=lambda s: s.last_ms)
        else:
            streams.sort(key=lambda s: s.stream)
        if body.get("descending"):
            streams.reverse()
        start = paging.position(body.get("nextToken"), InvalidParameter)
        limit = int(body.get("limit") or 50)
        out: dict[str, Any] = {"logStreams": [
            {"logStreamName": s.stream, "creationTime": s.first_ms, "firstEventTimestamp": s.first_ms,
             "lastEventTimestamp": s.last_ms, "lastIngestionTime": s.last_ms, "storedBytes": s.stored_bytes,
             "arn": self._arn(group)[:-1] + f"log-stream:{s.stream}"} for s in streams[start:start + limit]]}
        if start + limit < len(streams):
            out["nextToken"] = paging.token(start + limit)
        return out

    @staticmethod
    def _event(e: LogEvent, with_stream: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.ingestion_ms}
        if with_stream:
            out["logStreamName"] = e.stream
            out["eventId"] = str(e.id)
        return out

    def get_log_events(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._require_group(body.get("logGroupName"))
        stream = body.get("logStreamName")
        limit = min(int(body.get("limit") or MAX_EVENTS), MAX_EVENTS)
        token = body.get("nextToken") or ""
        backward = token.startswith("b/") or (not token and not body.get("startFromHead"))
        after = paging.position(token, InvalidParameter)
        events = self._store.events(group, [stream] if stream else None, body.get("startTime"), body.get("endTime"),
                                    after, limit, descending=backward)
        if backward:
            events.reverse()
        first = events[0].id if events else after
        last = events[-1].id if events else after
        return {"events": [self._event(e, False) for e in events],
                "nextForwardToken": "f/" + paging.token(last), "nextBackwardToken": "b/" + paging.token(first)}

    def filter_log_events(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._require_group(body.get("logGroupName"))
        streams = body.get("logStreamNames") or None
        prefix = body.get("logStreamNamePrefix")
        if prefix:
            streams = [s.stream for s in self._store.streams(group, prefix)] or ["\0none"]
        limit = min(int(body.get("limit") or MAX_EVENTS), MAX_EVENTS)
        pattern = body.get("filterPattern") or ""
        after = paging.position(body.get("nextToken"), InvalidParameter)
        found: list[LogEvent] = []
        scanned_to = after
        while len(found) < limit:
            batch = self._store.events(group, streams, body.get("startTime"), body.get("endTime"), scanned_to, 1000)
            if not batch:
                break
            scanned_to = batch[-1].id
            found += [e for e in batch if matches(pattern, e.message)]
        out: dict[str, Any] = {"events": [self._event(e, True) for e in found[:limit]],
                               "searchedLogStreams": [{"logStreamName": s, "searchedCompletely": True}
                                                      for s in sorted({e.stream for e in found[:limit]})]}
        if len(found) > limit:
            out["nextToken"] = paging.token(found[limit - 1].id)
        return out
