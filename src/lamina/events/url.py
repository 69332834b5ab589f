"""Function URLs, the HTTP front door: an HTTP request becomes a payload format 2.0 event, the function's
answer becomes the HTTP response (lambda-spec 8.5), and CORS is applied as Lambda applies it.

The mapping functions (`request_event`, `map_response`, `preflight`, `cors_headers`) are pure;
`UrlFrontDoor` does the I/O: looks the URL up, authorises (NONE: the resource policy must grant
`lambda:InvokeFunctionUrl` to `*`; AWS_IAM: SigV4 for service `lambda`), invokes, renders.

URLs are path-based: `http://HOST:PORT/_lamina/url/<url-id>/<rawPath>`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl

from lamina.api import sigv4
from lamina.clock import Clock
from lamina.errors import ApiError, AuthError, RequestTooLarge, ResourceNotFound, TooManyRequests
from lamina.http.server import Request, Response
from lamina.model import InvocationType
from lamina.service.invoke import InvokeRequest, InvokeService, new_request_id
from lamina.service.policies import PolicyService
from lamina.store.urls import UrlConfig, UrlStore

log = logging.getLogger("lamina.urls")

PREFIX = "/_lamina/url/"
FORBIDDEN = ("Forbidden. For troubleshooting Function URL authorization issues, see: "
             "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/yaml", "application/graphql")


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    """What the front door got, with the URL prefix taken off the path."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponse(ValueError):
    """The function's answer is not a valid Function URL response (the caller gets a 502)."""


def _is_text(content_type: str | None, body: bytes) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and not (kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml"))):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def request_event(request: HttpRequest, *, url_id: str, region: str, account_id: str, request_id: str,
                  now_s: float, domain_name: str | None = None,
                  iam: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload format 2.0 event for one request (lambda-spec 8.5)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    event: dict[str, Any] = {"version": "2.0", "routeKey": "$default", "rawPath": request.raw_path or "/",
                             "rawQueryString": request.raw_query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    moment = datetime.fromtimestamp(now_s, tz=timezone.utc)
    context: dict[str, Any] = {
        "accountId": account_id if iam else "anonymous", "apiId": url_id,
        "domainName": domain_name or f"{url_id}.lambda-url.{region}.on.aws", "domainPrefix": url_id,
        "http": {"method": request.method, "path": request.raw_path or "/", "protocol": "HTTP/1.1",
                 "sourceIp": request.source_ip, "userAgent": headers.get("user-agent", "")},
        "requestId": request_id, "routeKey": "$default", "stage": "$default",
        "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now_s * 1000),
    }
    if iam is not None:
        context["authorizer"] = {"iam": iam}
    event["requestContext"] = context
    if request.body:
        if _is_text(headers.get("content-type"), request.body):
            event["body"] = request.body.decode("utf-8")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def map_response(payload: bytes) -> HttpReply:
    """The HTTP response for the function's answer; MalformedResponse when it cannot be one."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse("the function's response is not JSON") from exc
    if not isinstance(value, dict) or "statusCode" not in value:
        # Any other JSON value is the body of a 200, exactly as the function serialised it.
        return HttpReply(200, [("content-type", "application/json")], payload.strip())
    status = value["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status!r}")
    raw_headers = value["headers"] if value.get("headers") is not None else {}
    cookies = value["cookies"] if value.get("cookies") is not None else []
    body = value.get("body")
    encoded = value.get("isBase64Encoded", False)
    if not isinstance(raw_headers, dict) or not isinstance(cookies, list) or not isinstance(encoded, bool):
        raise MalformedResponse("headers, cookies or isBase64Encoded")
    if body is not None and not isinstance(body, str):
        raise MalformedResponse("body must be a string")
    headers: list[tuple[str, str]] = []
    for name, header_value in raw_headers.items():
        if isinstance(header_value, (dict, list)):
            raise MalformedResponse(f"header {name}")
        text = str(header_value).lower() if isinstance(header_value, bool) else str(header_value)
        headers.append((str(name).lower(), text))
    if not any(name == "content-type" for name, _ in headers):
        headers.insert(0, ("content-type", "application/json"))
    for cookie in cookies:
        if not isinstance(cookie, str):
            raise MalformedResponse("cookies must be strings")
        headers.append(("set-cookie", cookie))
    data = b""
    if body:
        try:
            data = base64.b64decode(body, validate=True) if encoded else body.encode("utf-8")
        except ValueError as exc:
            raise MalformedResponse("body is not base64") from exc
    return HttpReply(status, headers, data)


def _allowed_origin(cors: dict[str, Any], origin: str | None) -> str | None:
    if not origin:
        return None
    origins = cors.get("AllowOrigins") or []
    if "*" in origins:
        return "*" if not cors.get("AllowCredentials") else origin
    return origin if origin in origins else None


def cors_headers(cors: dict[str, Any] | None, origin: str | None) -> list[tuple[str, str]]:
    """The CORS headers Lambda adds to a response for a request from `origin` (none without CORS)."""
    if not cors:
        return []
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return []
    out = [("access-control-allow-origin", allowed)]
    if cors.get("ExposeHeaders"):
        out.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
    if cors.get("AllowCredentials"):
        out.append(("access-control-allow-credentials", "true"))
    out.append(("vary", "Origin"))
    return out


def preflight(cors: dict[str, Any] | None, method: str, headers: dict[str, str]) -> HttpReply | None:
    """Lambda's own answer to a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method)
    when the URL has a CORS config; None when the request goes to the function."""
    if not cors or method != "OPTIONS" or "origin" not in headers \
            or "access-control-request-method" not in headers:
        return None
    allowed = _allowed_origin(cors, headers["origin"])
    if allowed is None:
        return HttpReply(200, [], b"")
    wanted = headers["access-control-request-method"].upper()
    methods = [m.upper() for m in cors.get("AllowMethods") or []]
    if "*" not in methods and wanted not in methods:
        return HttpReply(200, [], b"")
    out = [("access-control-allow-origin", allowed)]
    out.append(("access-control-allow-methods", ",".join(methods) if methods else wanted))
    if cors.get("AllowHeaders"):
        out.append(("access-control-allow-headers", ",".join(cors["AllowHeaders"])))
    elif "access-control-request-headers" in headers:
        pass  # no AllowHeaders: request headers are not allowed
    if cors.get("ExposeHeaders"):
        out.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
    if cors.get("AllowCredentials"):
        out.append(("access-control-allow-credentials", "true"))
    if cors.get("MaxAge") is not None:
        out.append(("access-control-max-age", str(cors["MaxAge"])))
    out.append(("vary", "Origin"))
    return HttpReply(200, out, b"")


def is_public(statements: list[dict[str, Any]]) -> bool:
    """Whether a resource policy grants `lambda:InvokeFunctionUrl` to everyone (AuthType NONE)."""
    for statement in statements:
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if statement.get("Effect") != "Allow" or statement.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if not any(a in ("lambda:InvokeFunctionUrl", "lambda:*", "*") for a in actions):
            continue
        equals = (statement.get("Condition") or {}).get("StringEquals") or {}
        if equals.get("lambda:FunctionUrlAuthType", "NONE") == "NONE":
            return True
    return False


class UrlResponse(Response):
    """A Response that may repeat a header (one `set-cookie` per cookie)."""

    __slots__ = ("header_list",)

    def __init__(self, reply: HttpReply) -> None:
        super().__init__(reply.body, status=reply.status)
        self.header_list = reply.headers

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        saved = self.headers
        self.headers = {}
        head = super().encode(keep_alive, head_only)
        self.headers = saved
        extra = "".join(f"{n}: {v}\r\n" for n, v in self.header_list).encode("latin-1")
        line_end = head.index(b"\r\n") + 2
        return head[:line_end] + extra + head[line_end:]


def _error(status: int, code: str, message: str, request_id: str) -> UrlResponse:
    return UrlResponse(HttpReply(status, [("content-type", "application/json"), ("x-amzn-RequestId", request_id),
                                          ("x-amzn-ErrorType", code)], json.dumps({"Message": message}).encode()))


class UrlFrontDoor:
    def __init__(self, urls: UrlStore, invoker: InvokeService, policies: PolicyService, clock: Clock,
                 secret_for: Callable[[str], str | None], region: str, account_id: str) -> None:
        self._urls = urls
        self._invoker = invoker
        self._policies = policies
        self._clock = clock
        self._secret_for = secret_for
        self._region = region
        self._account = account_id

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        path, _, query = request.raw_path.partition("?")
        url_id, slash, rest = path[len(PREFIX):].partition("/")
        config = self._urls.by_id(url_id)
        if config is None:
            return _error(404, "ResourceNotFoundException", "Not Found", request_id)
        lowered = {k.lower(): v for k, v in request.headers.items()}
        early = preflight(config.cors, request.method, lowered)
        if early is not None:
            return UrlResponse(early)
        iam = None
        if config.auth_type == "AWS_IAM":
            try:
                principal = sigv4.verify(
                    method=request.method, raw_path=path, raw_query=query, headers=list(request.headers.items()),
                    body=request.body, secret_for=self._secret_for, service="lambda",
                    now=datetime.fromtimestamp(self._clock.time(), tz=timezone.utc))
            except AuthError:
                return _error(403, "AccessDeniedException", FORBIDDEN, request_id)
            iam = {"accessKey": principal.access_key_id, "accountId": self._account, "callerId": principal.access_key_id,
                   "cognitoIdentity": None, "principalOrgId": None,
                   "userArn": f"arn:aws:iam::{self._account}:root", "userId": self._account}
        elif not self._public(config):
            return _error(403, "AccessDeniedException", FORBIDDEN, request_id)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        http = HttpRequest(request.method, "/" + rest if slash else "/", query, request.headers.items(),
                           request.body, peer[0] if peer else "127.0.0.1")
        event = request_event(http, url_id=url_id, region=self._region, account_id=self._account,
                              request_id=request_id, now_s=self._clock.time(), iam=iam,
                              domain_name=lowered.get("host"))
        try:
            result = await self._invoker.invoke(InvokeRequest(
                config.function, config.qualifier or None, json.dumps(event).encode(),
                InvocationType.REQUEST_RESPONSE))
        except TooManyRequests:
            return _error(429, "TooManyRequestsException", "Rate Exceeded.", request_id)
        except RequestTooLarge as exc:
            return _error(413, "RequestEntityTooLargeException", exc.message, request_id)
        except ResourceNotFound:
            return _error(404, "ResourceNotFoundException", "Not Found", request_id)
        except ApiError as exc:
            return _error(502, exc.aws_code, "Internal Server Error", request_id)
        outcome = result.outcome
        if outcome is None or outcome.error_type is not None:
            return _error(502, "Function.Unhandled" if outcome else "ServiceException", "Internal Server Error",
                          result.request_id)
        try:
            reply = map_response(outcome.payload)
        except MalformedResponse as exc:
            log.info("function_url_malformed_response function=%s reason=%s", config.function, exc)
            return _error(502, "Function.ResponseMalformed", "Internal Server Error", result.request_id)
        headers = [h for h in reply.headers if not h[0].startswith("access-control-")]
        headers += cors_headers(config.cors, lowered.get("origin"))
        headers.append(("x-amzn-RequestId", result.request_id))
        return UrlResponse(HttpReply(reply.status, headers, reply.body))

    def _public(self, config: UrlConfig) -> bool:
        try:
            policy, _ = self._policies.get(config.function, config.qualifier or None)
        except ApiError:
            return False
        return is_public([json.loads(s.text) for s in policy.statements])


