"""PublishVersion and ListVersionsByFunction (DeleteFunction with a version Qualifier lives with the
function routes in api/server.py)."""

from __future__ import annotations

from typing import Any

from lamina.api import parse, wire
from lamina.api.request import json_body, reply
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import PublishVersion
from lamina.service.functions import FunctionService

F = "/2015-03-31/functions"


def publish_version(body: dict[str, Any]) -> PublishVersion:
    return PublishVersion(
        code_sha256=parse.optional_str(body, "CodeSha256", "codeSha256", 1024),
        description=parse.optional_str(body, "Description", "description", 256),
        revision_id=parse.optional_str(body, "RevisionId", "revisionId", 1024),
    )


class VersionsApi:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    def routes(self) -> list[Route]:
        return [
            route("POST", F + "/{name}/versions", self.publish_version),
            route("GET", F + "/{name}/versions", self.list_versions),
        ]

    async def publish_version(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        version = self._functions.versions.publish(ref.name, publish_version(await json_body(request)))
        arn = self._functions.arn(ref.name, version.version, request.get("region"))
        return reply(request, wire.function_configuration(version, arn), 201)

    async def list_versions(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        query = request.query
        page, marker = self._functions.versions.list(
            ref.name, query.get("Marker") or None, parse.max_items(query.get("MaxItems"), 10000))
        region = request.get("region")
        out: dict[str, Any] = {"Versions": [
            wire.function_configuration(c, self._functions.arn(ref.name, c.version, region), listing=True)
            for c in page
        ]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)
