"""CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, and their input parsing."""

from __future__ import annotations

import re
from typing import Any

from lamina.api import parse, wire
from lamina.api.request import json_body, no_content, reply
from lamina.errors import ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import AliasChanges, NewAlias, Weights
from lamina.service.functions import FunctionService

F = "/2015-03-31/functions"
_ALIAS = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")
_VERSION = re.compile(r"^(\$LATEST|[0-9]+)$")
_ADDITIONAL_VERSION = re.compile(r"^[0-9]+$")


def alias_name(value: Any) -> str:
    if value is None:
        raise ValidationError.null("name")
    if not isinstance(value, str) or not _ALIAS.match(value):
        raise ValidationError.field(value, "name",
                                    "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
    if len(value) > 128:
        raise ValidationError.field(value, "name", "Member must have length less than or equal to 128")
    return value


def function_version(body: dict[str, Any], required: bool) -> str | None:
    value = body.get("FunctionVersion")
    if value is None and not required:
        return None
    return parse.required_str(body, "FunctionVersion", "functionVersion", 1024, _VERSION, r"(\$LATEST|[0-9]+)")


def routing(body: dict[str, Any]) -> Weights | None:
    """RoutingConfig.AdditionalVersionWeights; None when RoutingConfig is absent, () when empty."""
    config = body.get("RoutingConfig")
    if config is None:
        return None
    weights = (config or {}).get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise ValidationError.field(weights, "routingConfig.additionalVersionWeights", "Member must be a map")
    out = []
    for version, weight in weights.items():
        shown = f"{{{version}={weight}}}"
        if not isinstance(version, str) or not _ADDITIONAL_VERSION.match(version) or len(version) > 1024:
            raise ValidationError.field(
                shown, "routingConfig.additionalVersionWeights",
                "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, "
                "Member must have length greater than or equal to 1, Member must satisfy regular expression "
                "pattern: [0-9]+, Member must not be null]")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ValidationError.field(
                shown, "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                "Member must have value greater than or equal to 0.0, Member must not be null]")
        out.append((version, float(weight)))
    return tuple(out)


def new_alias(body: dict[str, Any]) -> NewAlias:
    name = alias_name(body.get("Name"))
    version = function_version(body, required=True)
    assert version is not None
    return NewAlias(name, version, parse.optional_str(body, "Description", "description", 256) or "",
                    routing(body) or ())


def alias_changes(body: dict[str, Any]) -> AliasChanges:
    return AliasChanges(
        function_version=function_version(body, required=False),
        description=parse.optional_str(body, "Description", "description", 256),
        routing=routing(body),
        revision_id=parse.optional_str(body, "RevisionId", "revisionId", 1024),
    )


class AliasesApi:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions
        self._aliases = functions.aliases

    def routes(self) -> list[Route]:
        return [
            route("POST", F + "/{name}/aliases", self.create_alias),
            route("GET", F + "/{name}/aliases", self.list_aliases),
            route("GET", F + "/{name}/aliases/{alias}", self.get_alias),
            route("PUT", F + "/{name}/aliases/{alias}", self.update_alias),
            route("DELETE", F + "/{name}/aliases/{alias}", self.delete_alias),
        ]

    def _render(self, request: Request, alias: Any) -> dict[str, Any]:
        return wire.alias_configuration(alias, self._functions.arns.in_region(request.get("region")))

    async def create_alias(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        alias = self._aliases.create(ref.name, new_alias(await json_body(request)))
        return reply(request, self._render(request, alias), 201)

    async def get_alias(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        alias = self._aliases.get(ref.name, alias_name(request.match_info["alias"]))
        return reply(request, self._render(request, alias))

    async def update_alias(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        name = alias_name(request.match_info["alias"])
        alias = self._aliases.update(ref.name, name, alias_changes(await json_body(request)))
        return reply(request, self._render(request, alias))

    async def delete_alias(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        self._aliases.delete(ref.name, alias_name(request.match_info["alias"]))
        return no_content(request)

    async def list_aliases(self, request: Request) -> Response:
        ref = parse.unqualified_ref(request.match_info["name"])
        query = request.query
        version = query.get("FunctionVersion")
        if version is not None and not _VERSION.match(version):
            raise ValidationError.field(version, "functionVersion",
                                        r"Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)")
        page, marker = self._aliases.list(ref.name, version, query.get("Marker") or None,
                                          parse.max_items(query.get("MaxItems"), 10000))
        out: dict[str, Any] = {"Aliases": [self._render(request, a) for a in page]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)
