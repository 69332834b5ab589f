"""Small helpers every Lambda API handler module shares: JSON bodies, replies, path and query members."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from lamina.api import parse, wire
from lamina.errors import ValidationError
from lamina.http.server import Request, Response


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"Could not parse request body into json: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    return body


def reply(request: Request, body: Any, status: int = 200) -> Response:
    return wire.json_response(body, status, request["request_id"])


def no_content(request: Request) -> Response:
    return Response(status=204, headers={"x-amzn-RequestId": request["request_id"]})


def region(request: Request) -> str | None:
    """The region of the request's signature (ARNs in responses use it)."""
    return request.get("region")


def function_ref(request: Request) -> parse.FunctionRef:
    """`{name}` in the path (name, partial ARN or ARN, maybe `:qualifier`) and the Qualifier query member."""
    return parse.function_ref(request.match_info["name"], request.query.get("Qualifier"))


def query_all(request: Request, key: str) -> list[str]:
    """Every value of a repeated query member (UntagResource's tagKeys)."""
    return [v for k, v in parse_qsl(request.query_string, keep_blank_values=True) if k == key]
