"""Function URL configurations (2021-10-31): Create/Get/Update/Delete/ListFunctionUrlConfigs.
The URLs themselves are served by `events/url.py` under `/_lamina/url/<url-id>/`."""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime, timezone
from typing import Any

from lamina.api.request import function_ref, json_body, no_content, reply
from lamina.clock import Clock
from lamina.errors import ResourceConflict, ResourceNotFound, ValidationError
from lamina.events.url import PREFIX
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import LATEST
from lamina.service.functions import FunctionService
from lamina.store.urls import UrlConfig, UrlStore

U = "/2021-10-31/functions/{name}"
_ALIAS = re.compile(r"^(?!\d+$)[0-9a-zA-Z_-]+$")
_ID_ALPHABET = string.ascii_lowercase + string.digits
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
_CORS_LISTS = {"AllowHeaders": 100, "AllowMethods": 6, "AllowOrigins": 100, "ExposeHeaders": 100}


def new_url_id() -> str:
    """32 characters of [a-z0-9], as AWS's URL ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def _cors(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError.field(value, "cors", "Member must be a structure")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key == "AllowCredentials":
            if not isinstance(raw, bool):
                raise ValidationError.field(raw, "cors.allowCredentials", "Member must be a boolean")
            out[key] = raw
        elif key == "MaxAge":
            if not isinstance(raw, int) or not 0 <= raw <= 86400:
                raise ValidationError.field(raw, "cors.maxAge", "Member must have value less than or equal to 86400")
            out[key] = raw
        elif key in _CORS_LISTS:
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw) or len(raw) > _CORS_LISTS[key]:
                raise ValidationError.field(raw, "cors." + key[0].lower() + key[1:],
                                            f"Member must have length less than or equal to {_CORS_LISTS[key]}")
            out[key] = raw
    return out


class UrlsApi:
    def __init__(self, functions: FunctionService, urls: UrlStore, clock: Clock, base_url: str) -> None:
        self._functions = functions
        self._urls = urls
        self._clock = clock
        self._base_url = base_url

    def routes(self) -> list[Route]:
        return [
            route("POST", U + "/url", self.create),
            route("GET", U + "/url", self.get),
            route("PUT", U + "/url", self.update),
            route("DELETE", U + "/url", self.delete),
            route("GET", U + "/urls", self.list),
        ]

    # helpers -----------------------------------------------------------------------------------

    def _target(self, request: Request) -> tuple[str, str]:
        """(function name, qualifier or "") after checking the function (and alias) exist."""
        ref = function_ref(request)
        qualifier = ref.qualifier
        if qualifier is not None and (qualifier == LATEST or not _ALIAS.match(qualifier)):
            raise ValidationError.field(qualifier, "qualifier",
                                        r"Member must satisfy regular expression pattern: ((?!^\d+$)^[0-9a-zA-Z-_]+$)")
        self._functions.get(ref.name, qualifier)  # 404 for an unknown function or alias
        return ref.name, qualifier or ""

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock.time(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _render(self, request: Request, config: UrlConfig, *, created: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionUrl": f"{self._base_url}{PREFIX}{config.url_id}/",
            "FunctionArn": self._functions.arn(config.function, config.qualifier or None, request.get("region")),
            "AuthType": config.auth_type,
        }
        if config.cors is not None:
            out["Cors"] = config.cors
        out["CreationTime"] = config.created
        if not created:
            out["LastModifiedTime"] = config.modified
        out["InvokeMode"] = config.invoke_mode
        return out

    def _existing(self, name: str, qualifier: str) -> UrlConfig:
        config = self._urls.get(name, qualifier)
        if config is None:
            raise ResourceNotFound.resource()
        return config

    @staticmethod
    def _auth_type(value: Any) -> str:
        if value is None:
            raise ValidationError.null("authType")
        if value not in AUTH_TYPES:
            raise ValidationError.field(value, "authType", "Member must satisfy enum value set: [AWS_IAM, NONE]")
        return str(value)

    @staticmethod
    def _invoke_mode(value: Any) -> str:
        if value not in INVOKE_MODES:
            raise ValidationError.field(value, "invokeMode",
                                        "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]")
        return str(value)

    # handlers ----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        name, qualifier = self._target(request)
        body = await json_body(request)
        auth_type = self._auth_type(body.get("AuthType"))
        cors = _cors(body.get("Cors"))
        mode = self._invoke_mode(body.get("InvokeMode", "BUFFERED"))
        if self._urls.get(name, qualifier) is not None:
            raise ResourceConflict(
                f"Failed to create function url config for [functionArn = "
                f"{self._functions.arn(name, qualifier or None, request.get('region'))}]. "
                "Error message:  FunctionUrlConfig exists for this Lambda function")
        now = self._now()
        config = UrlConfig(new_url_id(), name, qualifier, auth_type, cors, mode, now, now)
        self._urls.put(config)
        return reply(request, self._render(request, config, created=True), 201)

    async def get(self, request: Request) -> Response:
        return reply(request, self._render(request, self._existing(*self._target(request))))

    async def update(self, request: Request) -> Response:
        old = self._existing(*self._target(request))
        body = await json_body(request)
        auth_type = self._auth_type(body["AuthType"]) if "AuthType" in body else old.auth_type
        cors = _cors(body["Cors"]) if "Cors" in body else old.cors
        mode = self._invoke_mode(body["InvokeMode"]) if "InvokeMode" in body else old.invoke_mode
        config = UrlConfig(old.url_id, old.function, old.qualifier, auth_type, cors, mode, old.created, self._now())
        self._urls.put(config)
        return reply(request, self._render(request, config))

    async def delete(self, request: Request) -> Response:
        name, qualifier = self._target(request)
        self._existing(name, qualifier)
        self._urls.delete(name, qualifier)
        return no_content(request)

    async def list(self, request: Request) -> Response:
        ref = function_ref(request)
        self._functions.get(ref.name)
        max_items = request.query.get("MaxItems")
        limit = 50
        if max_items is not None:
            if not max_items.isdigit() or not 1 <= int(max_items) <= 50:
                raise ValidationError.field(max_items, "maxItems", "Member must have value less than or equal to 50")
            limit = int(max_items)
        configs = self._urls.of_function(ref.name)
        marker = request.query.get("Marker")
        start = int(marker) if marker and marker.isdigit() else 0
        page = configs[start:start + limit]
        out: dict[str, Any] = {"FunctionUrlConfigs": [self._render(request, c) for c in page]}
        if start + limit < len(configs):
            out["NextMarker"] = str(start + limit)
        return reply(request, out)

