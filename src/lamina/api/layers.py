"""Layer operations (API version 2018-10-31) and their input parsing: PublishLayerVersion,
GetLayerVersion, GetLayerVersionByArn, ListLayers, ListLayerVersions, DeleteLayerVersion, and the
layer version policy (Add/Get/RemoveLayerVersionPermission)."""

from __future__ import annotations

import re
from typing import Any

from lamina.api import parse, wire
from lamina.api.presign import CodeLinks
from lamina.api.request import json_body, no_content, reply
from lamina.clock import Clock
from lamina.errors import InvalidParameterValue, ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import AddLayerPermission, Arns, LayerVersion, NewLayerVersion
from lamina.service.layers import LayerService

L = "/2018-10-31/layers"
ARCHITECTURES = ("x86_64", "arm64")
#: CompatibleRuntime(s) enum of the Lambda model (botocore 1.43).
RUNTIMES = (
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x",
    "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x", "nodejs26.x", "java8", "java8.al2", "java11",
    "java17", "java21", "java25", "java8.al2023", "java11.al2023", "java17.al2023", "python2.7", "python3.6",
    "python3.7", "python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14",
    "python3.15", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6", "dotnet8",
    "dotnet10", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4", "ruby4.0",
    "provided", "provided.al2", "provided.al2023", "custom",
)
_LAYER_NAME = re.compile(
    r"^(arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:"
    r"(?P<arn_name>[a-zA-Z0-9-_]{1,140})|(?P<name>[a-zA-Z0-9-_]{1,140}))$"
)
_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9-_]+$")
_LAYER_PRINCIPAL = re.compile(r"^(\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root)$")
_ORGANIZATION = re.compile(r"^o-[a-z0-9]{10,32}$")
_LAYER_ACTION = re.compile(r"^lambda:GetLayerVersion$")


def layer_name(value: str) -> str:
    """A layer name or layer ARN (path member LayerName) -> the name."""
    match = _LAYER_NAME.match(value)
    if match is None:
        raise ValidationError.field(
            value, "layerName",
            "Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:"
            "layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+")
    return match["arn_name"] or match["name"]


def version_number(value: str) -> int:
    if not value.lstrip("-").isdigit():
        raise ValidationError.field(value, "versionNumber", "Member must be a number")
    number = int(value)
    if number < 1:
        raise InvalidParameterValue("Layer Version Cannot be less than 1")
    return number


def _enum_list(body: dict[str, Any], key: str, member: str, allowed: tuple[str, ...], max_len: int) -> tuple[str, ...]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError.field(value, member, "Member must be a list of strings")
    if len(value) > max_len:
        raise ValidationError.field(value, member, f"Member must have length less than or equal to {max_len}")
    if any(v not in allowed for v in value):
        raise ValidationError.field(
            "[" + ", ".join(value) + "]", member,
            f"Member must satisfy constraint: [Member must satisfy enum value set: [{', '.join(allowed)}]]")
    return tuple(value)


def _enum(value: str | None, member: str, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise ValidationError.field(value, member, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def new_layer_version(name: str, body: dict[str, Any]) -> tuple[NewLayerVersion, bytes]:
    if body.get("Content") is None:
        raise ValidationError.null("content")
    zip_bytes = parse.zip_file(body.get("Content"))
    return NewLayerVersion(
        name=name,
        description=parse.optional_str(body, "Description", "description", 256) or "",
        compatible_runtimes=_enum_list(body, "CompatibleRuntimes", "compatibleRuntimes", RUNTIMES, 15),
        compatible_architectures=_enum_list(body, "CompatibleArchitectures", "compatibleArchitectures",
                                            ARCHITECTURES, 2),
        license_info=parse.optional_str(body, "LicenseInfo", "licenseInfo", 512),
    ), zip_bytes


def add_layer_permission(body: dict[str, Any], revision_id: str | None) -> AddLayerPermission:
    return AddLayerPermission(
        statement_id=parse.required_str(body, "StatementId", "statementId", 100, _STATEMENT_ID, "([a-zA-Z0-9-_]+)"),
        action=parse.required_str(body, "Action", "action", 22, _LAYER_ACTION, "lambda:GetLayerVersion"),
        principal=parse.required_str(body, "Principal", "principal", 10000, _LAYER_PRINCIPAL,
                                     r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root"),
        organization_id=parse.optional_str(body, "OrganizationId", "organizationId", 34, _ORGANIZATION),
        revision_id=revision_id,
    )


class LayersApi:
    def __init__(self, layers: LayerService, arns: Arns, links: CodeLinks, clock: Clock) -> None:
        self._layers = layers
        self._arns = arns
        self._links = links
        self._clock = clock

    def routes(self) -> list[Route]:
        v = L + "/{layer}/versions"
        return [
            route("GET", L, self.list_layers),  # also GetLayerVersionByArn (?find=LayerVersion)
            route("POST", v, self.publish_layer_version),
            route("GET", v, self.list_layer_versions),
            route("GET", v + "/{version}", self.get_layer_version),
            route("DELETE", v + "/{version}", self.delete_layer_version),
            route("POST", v + "/{version}/policy", self.add_layer_version_permission),
            route("GET", v + "/{version}/policy", self.get_layer_version_policy),
            route("DELETE", v + "/{version}/policy/{sid}", self.remove_layer_version_permission),
        ]

    def _arns_for(self, request: Request) -> Arns:
        return self._arns.in_region(request.get("region"))

    def _render(self, request: Request, layer: LayerVersion) -> dict[str, Any]:
        location = self._links.url(layer.code_sha256, self._clock.time())
        return wire.layer_version(layer, self._arns_for(request), location)

    def _path(self, request: Request) -> tuple[str, int]:
        return layer_name(request.match_info["layer"]), version_number(request.match_info["version"])

    async def publish_layer_version(self, request: Request) -> Response:
        command, zip_bytes = new_layer_version(layer_name(request.match_info["layer"]), await json_body(request))
        return reply(request, self._render(request, self._layers.publish(command, zip_bytes)), 201)

    async def get_layer_version(self, request: Request) -> Response:
        return reply(request, self._render(request, self._layers.get(*self._path(request))))

    async def delete_layer_version(self, request: Request) -> Response:
        self._layers.delete(*self._path(request))
        return no_content(request)

    async def list_layers(self, request: Request) -> Response:
        query = request.query
        if query.get("find") == "LayerVersion":
            return await self.get_layer_version_by_arn(request)
        page, marker = self._layers.list_layers(
            _enum(query.get("CompatibleRuntime"), "compatibleRuntime", RUNTIMES),
            _enum(query.get("CompatibleArchitecture"), "compatibleArchitecture", ARCHITECTURES),
            query.get("Marker") or None, parse.max_items(query.get("MaxItems"), 50))
        arns = self._arns_for(request)
        out: dict[str, Any] = {"Layers": [
            {"LayerName": layer.name, "LayerArn": arns.layer(layer.name),
             "LatestMatchingVersion": wire.layer_versions_item(layer, arns)}
            for layer in page
        ]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)

    async def get_layer_version_by_arn(self, request: Request) -> Response:
        arn = request.query.get("Arn") or ""
        try:
            ref = parse.layer_version_ref(arn)
        except ValidationError:
            raise ValidationError.field(
                arn, "arn", "Member must satisfy regular expression pattern: " + parse.LAYER_VERSION_ARN_PATTERN,
            ) from None
        return reply(request, self._render(request, self._layers.get(ref.name, ref.version)))

    async def list_layer_versions(self, request: Request) -> Response:
        query = request.query
        name = layer_name(request.match_info["layer"])
        page, marker = self._layers.list_versions(
            name, _enum(query.get("CompatibleRuntime"), "compatibleRuntime", RUNTIMES),
            _enum(query.get("CompatibleArchitecture"), "compatibleArchitecture", ARCHITECTURES),
            query.get("Marker") or None, parse.max_items(query.get("MaxItems"), 50))
        arns = self._arns_for(request)
        out: dict[str, Any] = {"LayerVersions": [wire.layer_versions_item(v, arns) for v in page]}
        if marker:
            out["NextMarker"] = marker
        return reply(request, out)

    async def add_layer_version_permission(self, request: Request) -> Response:
        name, version = self._path(request)
        command = add_layer_permission(await json_body(request), request.query.get("RevisionId"))
        statement, revision = self._layers.add_permission(name, version, command, request.get("region"))
        return reply(request, {"Statement": statement.text, "RevisionId": revision}, 201)

    async def get_layer_version_policy(self, request: Request) -> Response:
        name, version = self._path(request)
        policy = self._layers.policy(name, version, request.get("region"))
        return reply(request, {"Policy": policy.document(), "RevisionId": policy.revision_id})

    async def remove_layer_version_permission(self, request: Request) -> Response:
        name, version = self._path(request)
        sid = request.match_info["sid"]
        if not _STATEMENT_ID.match(sid) or len(sid) > 100:
            raise ValidationError.field(sid, "statementId",
                                        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
        self._layers.remove_permission(name, version, sid, request.query.get("RevisionId"), request.get("region"))
        return no_content(request)


__all__ = ["LayersApi"]
