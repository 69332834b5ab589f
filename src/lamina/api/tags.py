"""TagResource, UntagResource, ListTags (`/2017-03-31/tags/{ARN}`, unqualified function ARNs only)."""

from __future__ import annotations

import re
from typing import Any

from lamina.api.request import json_body, no_content, query_all, reply
from lamina.errors import InvalidParameterValue, ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.service.tags import TagService

T = "/2017-03-31/tags"
TAGGABLE_PATTERN = (
    r"arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{17}|"
    r"event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
)
_FUNCTION_ARN = re.compile(
    r"^arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"function:(?P<name>[a-zA-Z0-9-_]+)(:(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$"
)


def tagged_function(arn: str) -> str:
    """The function a tag operation names: a full, unqualified function ARN."""
    match = _FUNCTION_ARN.match(arn)
    if match is None or len(arn) > 10000:
        raise ValidationError.field(arn, "resource",
                                    f"Member must satisfy regular expression pattern: {TAGGABLE_PATTERN}")
    if match["qualifier"]:
        raise InvalidParameterValue.qualified_tag_resource()
    return match["name"]


def tags(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("Tags")
    if value is None:
        raise ValidationError.null("tags")
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError.field(value, "tags", "Member must be a map of strings")
    if not value:
        raise InvalidParameterValue.no_tags()
    return value


class TagsApi:
    def __init__(self, tagging: TagService) -> None:
        self._tags = tagging

    def routes(self) -> list[Route]:
        return [
            route("POST", T + "/{arn}", self.tag_resource),
            route("GET", T + "/{arn}", self.list_tags),
            route("DELETE", T + "/{arn}", self.untag_resource),
        ]

    async def tag_resource(self, request: Request) -> Response:
        name = tagged_function(request.match_info["arn"])
        self._tags.tag(name, tags(await json_body(request)))
        return no_content(request)

    async def untag_resource(self, request: Request) -> Response:
        name = tagged_function(request.match_info["arn"])
        keys = query_all(request, "tagKeys")
        if not keys:
            raise ValidationError.null("tagKeys")
        self._tags.untag(name, keys)
        return no_content(request)

    async def list_tags(self, request: Request) -> Response:
        return reply(request, {"Tags": self._tags.list(tagged_function(request.match_info["arn"]))})
