"""CloudWatch metrics for `AWS/Lambda`: GetMetricData, GetMetricStatistics and ListMetrics, over the three
protocols CloudWatch clients speak — awsJson1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`, what
boto3 picks), `smithy-rpc-v2-cbor` (`POST /service/GraniteServiceVersion20100801/operation/<Op>`, CBOR
bodies, newer SDKs) and the query protocol (older AWS CLI v2 builds: form-encoded `POST /`, XML answers). The numbers come from
cloudwatch/engine.py over the metering records; this module only reads requests and writes answers.
"""

from __future__ import annotations

import asyncio
import json
import xml.sax.saxutils as saxutils
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from lamina.cloudwatch import cbor, engine
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.metrics import Metrics
from lamina.store.metering import MeteringStore

JSON_TARGET = "GraniteServiceVersion20100801"
JSON10 = "application/x-amz-json-1.0"
CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/{operation}"
XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
MAX_DATAPOINTS = 100_800  # per GetMetricData call, as CloudWatch
MAX_STATISTICS_POINTS = 1440


class CloudWatchError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _invalid(message: str) -> CloudWatchError:
    return CloudWatchError("InvalidParameterValue", message)


def _time(value: Any, name: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise CloudWatchError("MissingParameter" if value is None else "InvalidParameterValue",
                          f"The parameter {name} is required." if value is None else f"The parameter {name} is invalid.")


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query-protocol parameters (`A.member.1.B=x`) as nested dicts and lists."""
    root: dict[Any, Any] = {}
    for key, value in pairs:
        parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".") if p != "member"]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


class XmlMap(dict):  # type: ignore[type-arg]
    """A map member: the query protocol writes it as entry/key/value (CBOR as a plain map)."""


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_lists(node[k]) for k in sorted(node)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _xml(value: Any, name: str) -> str:
    if isinstance(value, XmlMap):
        inner = "".join(f"<entry><key>{saxutils.escape(str(k))}</key>{_xml(v, 'value')}</entry>"
                        for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml(item, "member") for item in value)
    elif isinstance(value, dict):
        inner = "".join(_xml(v, k) for k, v in value.items())
    elif isinstance(value, datetime):
        inner = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, float):
        inner = repr(value)
    else:
        inner = saxutils.escape(str(value))
    return f"<{name}>{inner}</{name}>"


class CloudWatchApi:
    def __init__(self, metering: MeteringStore, metrics: Metrics, clock: Callable[[], float]) -> None:
        self._metering = metering
        self._metrics = metrics
        self._now = clock
        self._operations = {"GetMetricData": self.get_metric_data,
                            "GetMetricStatistics": self.get_metric_statistics,
                            "ListMetrics": self.list_metrics}

    def routes(self) -> list[Route]:
        return [route("POST", CBOR_PATH, self.cbor)]

    # protocols -----------------------------------------------------------------------------------

    async def cbor(self, request: Request) -> Response:
        request_id = request.get("request_id", "")
        headers = {"smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": request_id}
        try:
            operation = self._operation(request.match_info["operation"])
            try:
                params = cbor.decode(request.body) or {}
            except cbor.CborError as exc:
                raise CloudWatchError("SerializationException", f"The request body is not CBOR: {exc}") from exc
            out = await operation(params)
        except CloudWatchError as exc:
            headers["x-amzn-query-error"] = f"{exc.code};Sender"
            body = {"__type": f"com.amazonaws.cloudwatch#{exc.code}", "message": exc.message}
            return Response(cbor.encode(body), status=exc.status, content_type="application/cbor", headers=headers)
        return Response(cbor.encode(out), content_type="application/cbor", headers=headers)

    async def json(self, request: Request, operation_name: str) -> Response:
        """awsJson1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`): what boto3 picks today."""
        request_id = request.get("request_id", "")
        headers = {"x-amzn-RequestId": request_id}
        try:
            operation = self._operation(operation_name)
            try:
                params = json.loads(request.body or b"{}")
            except ValueError as exc:
                raise CloudWatchError("SerializationException", f"The request body is not JSON: {exc}") from exc
            out = await operation(params)
        except CloudWatchError as exc:
            headers["x-amzn-query-error"] = f"{exc.code};Sender"
            body = {"__type": f"com.amazonaws.cloudwatch#{exc.code}", "message": exc.message}
            return Response(json.dumps(body).encode(), status=exc.status, content_type=JSON10, headers=headers)
        return Response(json.dumps(out, default=_epoch).encode(), content_type=JSON10, headers=headers)

    async def query(self, request: Request) -> Response:
        """The query protocol: the composition root routes form-encoded `POST /` (no X-Amz-Target) here."""
        request_id = request.get("request_id", "")
        params = unflatten(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.pop("Action", "")
        params.pop("Version", None)
        try:
            out = await self._operation(action)(params)
        except CloudWatchError as exc:
            body = (f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type><Code>{exc.code}</Code>'
                    f"<Message>{saxutils.escape(exc.message)}</Message></Error>"
                    f"<RequestId>{request_id}</RequestId></ErrorResponse>")
            return Response(body.encode(), status=exc.status, content_type="text/xml")
        result = "".join(_xml(v, k) for k, v in out.items())
        body = (f'<{action}Response xmlns="{XMLNS}"><{action}Result>{result}</{action}Result>'
                f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
        return Response(body.encode(), content_type="text/xml")

    def _operation(self, name: str) -> Callable[[dict[str, Any]], Any]:
        operation = self._operations.get(name)
        if operation is None:
            raise CloudWatchError("InvalidAction", f"lamina's CloudWatch has no operation {name!r} "
                                  f"(it has {', '.join(self._operations)})")
        return operation

    # data ----------------------------------------------------------------------------------------

    async def _records(self, start_s: float, end_s: float, function: str | None,
                       ) -> tuple[list[engine.Invocation], list[engine.Throttle]]:
        # Invocations that ended up to 15 minutes (the longest timeout) after the window may have run in it.
        rows = await asyncio.to_thread(self._metering.between, int(start_s * 1000), int((end_s + 900) * 1000), function)
        invocations = [engine.Invocation(f, v, ts / 1000, d, outcome != "success") for f, v, ts, d, outcome in rows]
        throttles = [engine.Throttle(f, t) for t, f in list(self._metrics.throttle_log) if start_s <= t < end_s]
        return invocations, throttles

    async def _series(self, metric: dict[str, Any], stat: str, start_s: float, end_s: float,
                      period: int) -> list[tuple[int, float]]:
        namespace, name = metric.get("Namespace"), metric.get("MetricName")
        if not name:
            raise CloudWatchError("MissingParameter", "The parameter MetricName is required.")
        dimensions = [(d.get("Name", ""), d.get("Value", "")) for d in metric.get("Dimensions") or []]
        if namespace != engine.NAMESPACE:
            return []  # CloudWatch answers an empty series for a namespace nobody writes to
        try:
            selector = engine.Selector.of(dimensions)
            invocations, throttles = await self._records(start_s, end_s, selector.function)
            return engine.series(name, stat, selector, invocations, throttles, start_s, end_s, period)
        except engine.MetricQueryError as exc:
            raise _invalid(str(exc)) from exc

    async def get_metric_data(self, params: dict[str, Any]) -> dict[str, Any]:
        queries = params.get("MetricDataQueries") or []
        if not queries:
            raise CloudWatchError("MissingParameter", "The parameter MetricDataQueries is required.")
        if len(queries) > 500:
            raise _invalid("The collection MetricDataQueries must not have a size greater than 500.")
        start_s, end_s = _time(params.get("StartTime"), "StartTime"), _time(params.get("EndTime"), "EndTime")
        descending = params.get("ScanBy", "TimestampDescending") != "TimestampAscending"
        results = []
        for query in queries:
            qid = query.get("Id") or ""
            if query.get("Expression"):
                raise _invalid(f"lamina does not evaluate metric math (query {qid!r}): use MetricStat")
            stat = query.get("MetricStat")
            if not stat:
                raise CloudWatchError("MissingParameter", f"Query {qid!r} needs MetricStat.")
            period = int(stat.get("Period") or 0)
            metric = stat.get("Metric") or {}
            points = await self._series(metric, str(stat.get("Stat", "")), start_s, end_s, period)
            if descending:
                points.reverse()
            if str(query.get("ReturnData", True)).lower() == "false":
                continue
            results.append({"Id": qid, "Label": query.get("Label") or metric.get("MetricName", ""),
                            "Timestamps": [datetime.fromtimestamp(t, tz=timezone.utc) for t, _ in points],
                            "Values": [v for _, v in points], "StatusCode": "Complete"})
        return {"MetricDataResults": results, "Messages": []}

    async def get_metric_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        start_s, end_s = _time(params.get("StartTime"), "StartTime"), _time(params.get("EndTime"), "EndTime")
        period = int(params.get("Period") or 0)
        stats = list(params.get("Statistics") or [])
        extended = list(params.get("ExtendedStatistics") or [])
        if not stats and not extended:
            raise CloudWatchError("MissingParameter", "Either Statistics or ExtendedStatistics must be given.")
        if period and (end_s - start_s) / period > MAX_STATISTICS_POINTS:
            raise _invalid(f"You have requested up to {int((end_s - start_s) / period)} datapoints, which exceeds "
                           f"the limit of {MAX_STATISTICS_POINTS}.")
        name = params.get("MetricName", "")
        by_time: dict[int, dict[str, Any]] = {}
        for stat in stats + extended:
            for t, value in await self._series(params, stat, start_s, end_s, period):
                point = by_time.setdefault(t, {"Timestamp": datetime.fromtimestamp(t, tz=timezone.utc),
                                               "Unit": engine.UNITS.get(name, "None")})
                if stat in extended:
                    point.setdefault("ExtendedStatistics", XmlMap())[stat] = value
                else:
                    point[stat] = value
        return {"Label": name, "Datapoints": [by_time[t] for t in sorted(by_time)]}

    async def list_metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace = params.get("Namespace")
        if namespace not in (None, engine.NAMESPACE):
            return {"Metrics": []}
        wanted = params.get("MetricName")
        since_ms = int((self._now() - 14 * 86400) * 1000)
        functions = await asyncio.to_thread(self._metering.functions_since, since_ms)
        metrics = []
        for name in engine.METRICS:
            if wanted and name != wanted:
                continue
            metrics.append({"Namespace": engine.NAMESPACE, "MetricName": name, "Dimensions": []})
            metrics += [{"Namespace": engine.NAMESPACE, "MetricName": name,
                         "Dimensions": [{"Name": "FunctionName", "Value": f}]} for f in functions]
        return {"Metrics": metrics}

