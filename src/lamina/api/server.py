"""The Lambda REST API (2015-03-31): the route table, SigV4 on every request, handlers.

Each handler parses (api/parse.py), calls one service method, and renders (api/wire.py). Errors reach
the wire only through `wire.error_response`, in the middleware. The function routes live here; versions,
aliases, layers, policies and tags have one module each (api/versions.py ...), whose routes `routes()`
includes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lamina.api import parse, request as req, sigv4, wire
from lamina.api.aliases import AliasesApi
from lamina.api.layers import LayersApi
from lamina.api.policies import PoliciesApi
from lamina.api.presign import CodeLinks
from lamina.api.tags import TagsApi
from lamina.api.versions import VersionsApi
from lamina.clock import Clock
from lamina.http.router import Route, Router, route
from lamina.http.server import HttpServer, Request, Response, StreamPredicate
from lamina.errors import ApiError, InvalidParameterValue, RequestTooLarge, ServiceException, ValidationError
from lamina.model import InvocationType
from lamina.service.functions import FunctionService
from lamina.service.invoke import InvokeRequest, InvokeService, new_request_id

log = logging.getLogger("lamina.api")

MAX_REQUEST_BYTES = 70_167_211
UNSIGNED_PATHS = frozenset({"/metrics", "/ui"})  # scrapers and browsers do not sign (/ui has its own login)
F = "/2015-03-31/functions"
#: X-Amz-Invocation-Type values (a dict lookup: the Enum call by value costs ~1 µs per invoke).
_INVOCATION_TYPES = {t.value: t for t in InvocationType}


class UnknownOperation(ApiError):
    http_status = 404
    aws_code = "UnknownOperationException"
    error_type = None


class LambdaApi:
    def __init__(
        self,
        functions: FunctionService,
        invoker: InvokeService,
        links: CodeLinks,
        clock: Clock,
        secret_for: Callable[[str], str | None],
        concurrency_limit: int,
    ) -> None:
        self._functions = functions
        self._invoker = invoker
        self._links = links
        self._clock = clock
        self._secret_for = secret_for
        self._limit = concurrency_limit
        #: Routes of the other API modules (concurrency, metrics, ...), added by the composition root.
        self.extra_routes: list[Route] = []
        #: JSON 1.1 services on `POST /`, by the prefix of `X-Amz-Target` (`Logs_20140328`, `AWSEvents`):
        #: handler(request, operation).
        self.json_targets: dict[str, Callable[[Request, str], Awaitable[Response]]] = {}
        self.unreserved_limit: Callable[[], int] = lambda: concurrency_limit
        #: Query-protocol services (form-encoded `POST /` with `Action=`): CloudWatch for older AWS CLIs.
        self.query_protocol: Callable[[Request], Awaitable[Response]] | None = None
        #: Function URLs (`/_lamina/url/...`): their own authorisation and responses (events/url.py).
        self.url_front_door: Callable[[Request], Awaitable[Response]] | None = None
        #: Other services on lamina's port, by the service their SigV4 credential scope names (`s3`):
        #: each authorises and renders errors on its own.
        self.service_front_doors: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        #: Which requests the HTTP server streams to their handler instead of buffering (S3 uploads).
        self.stream_bodies: StreamPredicate | None = None
        #: (bucket, key) -> a code package from lamina's S3 (Code.S3Bucket/S3Key); raises InvalidParameterValue.
        self.code_from_s3: Callable[[str, str], Awaitable[bytes]] | None = None
        self._parts = [
            VersionsApi(functions), AliasesApi(functions),
            LayersApi(functions.layers, functions.arns, links, clock),
            PoliciesApi(functions.policies), TagsApi(functions.tagging),
        ]

    def routes(self) -> list[Route]:
        """The whole route table."""
        return [
            route("POST", F, self.create_function),
            route("GET", F, self.list_functions),
            route("GET", F + "/", self.list_functions),
            route("GET", F + "/{name}", self.get_function),
            route("DELETE", F + "/{name}", self.delete_function),
            route("GET", F + "/{name}/configuration", self.get_function_configuration),
            route("PUT", F + "/{name}/configuration", self.update_function_configuration),
            route("PUT", F + "/{name}/code", self.update_function_code),
            route("POST", F + "/{name}/invocations", self.invoke),
            route("POST", "/2014-11-13/functions/{name}/invoke-async/", self.invoke_async),
            route("POST", "/2014-11-13/functions/{name}/invoke-async", self.invoke_async),
            route("GET", "/2016-08-19/account-settings", self.get_account_settings),
            route("GET", "/2016-08-19/account-settings/", self.get_account_settings),
            route("GET", "/_lamina/code/{sha}.zip", self.download_code),
            route("POST", "/", self._json_target),
            *self.extra_routes,
            *(r for part in self._parts for r in part.routes()),
        ]

    async def _json_target(self, request: Request) -> Response:
        target = request.headers.get("X-Amz-Target") or ""
        form = (request.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded")
        if not target and form and self.query_protocol is not None:
            return await self.query_protocol(request)
        prefix, _, operation = target.partition(".")
        handler = self.json_targets.get(prefix)
        if handler is None:
            raise UnknownOperation(f"lamina has no service for X-Amz-Target {target!r}")
        return await handler(request, operation)

    def server(self) -> HttpServer:
        self._router = Router(self.routes())
        return HttpServer(self._dispatch, max_body=MAX_REQUEST_BYTES, stream_if=self.stream_bodies)

    # dispatch: routing, SigV4, and the one error mapping ------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        request_id = new_request_id()
        request["request_id"] = request_id
        try:
            path = request.path
            function_url = path.startswith("/_lamina/url/")  # whatever its signature names, it is a URL's
            if self.service_front_doors and not function_url:
                door = self.service_front_doors.get(
                    sigv4.scope_service(request.headers.get("authorization"), request.query_string) or "")
                if door is not None:
                    return await door(request)
            if request.get("too_large"):
                raise RequestTooLarge(
                    f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the CreateFunction operation")
            if self.url_front_door is not None and function_url:
                return await self.url_front_door(request)  # Function URLs authorise on their own
            if not (path.startswith(("/_lamina/code/", "/ui/")) or path in UNSIGNED_PATHS):
                request["region"] = self._authenticate(request, request.body)
            found = self._router.match(request.method, request.path)
            if found is None:
                raise UnknownOperation(f"lamina has no operation at {request.method} {request.path}")
            handler, request.match_info = found
            return await handler(request)
        except ApiError as exc:
            return wire.error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return wire.error_response(ServiceException("An internal error occurred in lamina."), request_id)

    def _authenticate(self, request: Request, body: bytes) -> str:
        raw = request.raw_path
        path, _, query = raw.partition("?")
        principal = sigv4.verify(
            method=request.method, raw_path=path, raw_query=query,
            headers=request.headers.items(), body=body, secret_for=self._secret_for,
            now=self._clock.time(),
        )
        return principal.region

    # helpers -------------------------------------------------------------------------------------

    async def _code_zip(self, code: Any) -> bytes:
        """The deployment package: Code.ZipFile, or the object Code.S3Bucket/S3Key names in lamina's S3."""
        location = parse.s3_location(code)
        if location is None or self.code_from_s3 is None:
            return parse.zip_file(code)
        return await self.code_from_s3(*location)

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        return await req.json_body(request)

    @staticmethod
    def _ref(request: Request) -> parse.FunctionRef:
        return req.function_ref(request)

    def _arn(self, request: Request, name: str, qualifier: str | None = None) -> str:
        return self._functions.arn(name, qualifier, request.get("region"))

    def _reply(self, request: Request, body: Any, status: int = 200) -> Response:
        return wire.json_response(body, status, request["request_id"])

    # functions -------------------------------------------------------------------------------------

    async def create_function(self, request: Request) -> Response:
        body = await self._json(request)
        name = parse.new_function_name(body.get("FunctionName"))
        changes = parse.config_changes(body)
        if body.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValue("lamina does not run container-image functions (PackageType Image).")
        zip_bytes = await self._code_zip(body.get("Code"))
        tags = body.get("Tags") or {}
        publish = parse.flag(body, "Publish", "publish")
        config = self._functions.create(name, changes, zip_bytes, tags, publish)
        # With Publish the configuration is version 1's, but the ARN stays unqualified (as on AWS).
        out = wire.function_configuration(config, self._arn(request, name), phase="create")
        return self._reply(request, out, 201)

    async def get_function(self, request: Request) -> Response:
        ref = self._ref(request)
        config = self._functions.get(ref.name, ref.qualifier)
        out: dict[str, Any] = {
            "Configuration": wire.function_configuration(config, self._arn(request, ref.name, ref.qualifier)),
            "Code": {"RepositoryType": "S3", "Location": self._links.url(config.code_sha256, self._clock.time())},
        }
        tags = self._functions.tags(ref.name)
        if tags:
            out["Tags"] = tags
        return self._reply(request, out)

    async def get_function_configuration(self, request: Request) -> Response:
        ref = self._ref(request)
        config = self._functions.get(ref.name, ref.qualifier)
        return self._reply(request, wire.function_configuration(config, self._arn(request, ref.name, ref.qualifier)))

    async def list_functions(self, request: Request) -> Response:
        max_items = request.query.get("MaxItems")
        limit = None
        if max_items is not None:
            if not max_items.isdigit() or not 1 <= int(max_items) <= 10000:
                raise ValidationError.field(max_items, "maxItems", "Member must have value between 1 and 10000")
            limit = int(max_items)
        version = request.query.get("FunctionVersion")
        if version is not None and version != "ALL":
            raise ValidationError.field(version, "functionVersion", "Member must satisfy enum value set: [ALL]")
        qualified = version == "ALL"
        page, next_marker = self._functions.list(request.query.get("Marker") or None, limit, qualified)
        out: dict[str, Any] = {"Functions": [
            wire.function_configuration(c, self._arn(request, c.name, c.version if qualified else None), listing=True)
            for c in page
        ]}
        if next_marker:
            out["NextMarker"] = next_marker
        return self._reply(request, out)

    async def update_function_configuration(self, request: Request) -> Response:
        ref = self._ref(request)
        changes = parse.config_changes(await self._json(request))
        config = self._functions.update_configuration(ref.name, changes)
        return self._reply(request, wire.function_configuration(config, self._arn(request, ref.name), phase="update"))

    async def update_function_code(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await self._json(request)
        zip_bytes = await self._code_zip(body)
        publish = parse.flag(body, "Publish", "publish")
        config = self._functions.update_code(ref.name, zip_bytes, body.get("RevisionId"), publish=publish,
                                             dry_run=parse.flag(body, "DryRun", "dryRun"))
        if publish:  # the new version's configuration, with its qualified ARN
            arn = self._arn(request, ref.name, config.version)
            return self._reply(request, wire.function_configuration(config, arn))
        return self._reply(request, wire.function_configuration(config, self._arn(request, ref.name), phase="update"))

    async def delete_function(self, request: Request) -> Response:
        ref = self._ref(request)
        self._functions.delete(ref.name, ref.qualifier)
        return Response(status=204, headers={"x-amzn-RequestId": request["request_id"]})

    async def get_account_settings(self, request: Request) -> Response:
        count, total = self._functions.usage()
        return self._reply(request, {
            "AccountLimit": {
                "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": self._limit, "UnreservedConcurrentExecutions": self.unreserved_limit(),
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": count},
        })

    async def download_code(self, request: Request) -> Response:
        sha = request.match_info["sha"]
        q = request.query
        if not self._links.valid(sha, q.get("expires", ""), q.get("signature", ""), self._clock.time()):
            return Response(status=403, text="Request has expired or the signature is invalid.")
        try:
            data = self._functions.code_zip(sha)
        except OSError:
            return Response(status=404, text="No such code package.")
        return Response(data, content_type="application/zip")

    # invoke ----------------------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        ref = self._ref(request)
        headers = request.headers
        kind = headers.get("X-Amz-Invocation-Type", "RequestResponse")
        invocation_type = _INVOCATION_TYPES.get(kind)
        if invocation_type is None:
            raise ValidationError.field(
                kind, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
        result = await self._invoker.invoke(InvokeRequest(
            name=ref.name, qualifier=ref.qualifier, payload=request.body,  # never streamed (stream_bodies)
            invocation_type=invocation_type, client_context_b64=headers.get("X-Amz-Client-Context"),
            trace_header=headers.get("X-Amzn-Trace-Id"), region=request.get("region"),
            request_id=request["request_id"],
        ))
        out = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": result.executed_version}
        if result.outcome is None:
            status = 202 if invocation_type is InvocationType.EVENT else 204
            return Response(status=status, headers=out)
        outcome = result.outcome
        if outcome.error_type is not None:
            out["X-Amz-Function-Error"] = "Unhandled"
        if headers.get("X-Amz-Log-Type") == "Tail":
            out["X-Amz-Log-Result"] = base64.b64encode(outcome.log_tail).decode()
        return Response(outcome.payload, headers=out, content_type="application/json")

    async def invoke_async(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await request.read()
        if len(body) > 262_144:
            raise RequestTooLarge(f"{len(body)} byte payload is too large for the InvokeAsync operation (limit 262144 bytes)")
        result = await self._invoker.invoke(InvokeRequest(
            name=ref.name, qualifier=ref.qualifier, payload=body, invocation_type=InvocationType.EVENT,
            region=request.get("region"), request_id=request["request_id"],
        ))
        return Response(status=202, headers={"x-amzn-RequestId": result.request_id})
