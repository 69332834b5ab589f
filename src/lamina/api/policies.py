"""AddPermission, RemovePermission, GetPolicy (function resource policies) and their input parsing."""

from __future__ import annotations

import re
from typing import Any

from lamina.api import parse
from lamina.api.request import function_ref, json_body, no_content, reply
from lamina.errors import ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import AddPermission
from lamina.service.policies import PolicyService

F = "/2015-03-31/functions"
_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9-_]+$")
_REMOVE_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9-_.]+$")
_ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")
_PRINCIPAL = re.compile(r"^[^\s]+$")
_SOURCE_ARN = re.compile(
    r"^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)$")
_ACCOUNT = re.compile(r"^\d{12}$")
_TOKEN = re.compile(r"^[a-zA-Z0-9._\-]+$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
AUTH_TYPES = ("NONE", "AWS_IAM")


def add_permission(body: dict[str, Any]) -> AddPermission:
    auth_type = body.get("FunctionUrlAuthType")
    if auth_type is not None and auth_type not in AUTH_TYPES:
        raise ValidationError.field(auth_type, "functionUrlAuthType",
                                    "Member must satisfy enum value set: [NONE, AWS_IAM]")
    invoked_via_url = body.get("InvokedViaFunctionUrl")
    if invoked_via_url is not None and not isinstance(invoked_via_url, bool):
        raise ValidationError.field(invoked_via_url, "invokedViaFunctionUrl", "Member must be a boolean")
    return AddPermission(
        statement_id=parse.required_str(body, "StatementId", "statementId", 100, _STATEMENT_ID, "([a-zA-Z0-9-_]+)"),
        action=parse.required_str(body, "Action", "action", 10000, _ACTION, "(lambda:[*]|lambda:[a-zA-Z]+|[*])"),
        principal=parse.required_str(body, "Principal", "principal", 2048, _PRINCIPAL, r"[^\s]+"),
        source_arn=parse.optional_str(body, "SourceArn", "sourceArn", 10000, _SOURCE_ARN),
        source_account=parse.optional_str(body, "SourceAccount", "sourceAccount", 12, _ACCOUNT),
        event_source_token=parse.optional_str(body, "EventSourceToken", "eventSourceToken", 256, _TOKEN),
        principal_org_id=parse.optional_str(body, "PrincipalOrgID", "principalOrgID", 34, _ORG),
        function_url_auth_type=auth_type,
        invoked_via_function_url=invoked_via_url,
        revision_id=parse.optional_str(body, "RevisionId", "revisionId", 1024),
    )


class PoliciesApi:
    def __init__(self, policies: PolicyService) -> None:
        self._policies = policies

    def routes(self) -> list[Route]:
        return [
            route("POST", F + "/{name}/policy", self.add_permission),
            route("GET", F + "/{name}/policy", self.get_policy),
            route("DELETE", F + "/{name}/policy/{sid}", self.remove_permission),
        ]

    async def add_permission(self, request: Request) -> Response:
        body = await json_body(request)
        ref = function_ref(request)
        if body.get("Qualifier") is not None:  # also accepted in the body by older clients
            ref = parse.function_ref(request.match_info["name"], body["Qualifier"])
        statement = self._policies.add(ref.name, ref.qualifier, add_permission(body), request.get("region"))
        return reply(request, {"Statement": statement.text}, 201)

    async def get_policy(self, request: Request) -> Response:
        ref = function_ref(request)
        policy, revision = self._policies.get(ref.name, ref.qualifier)
        return reply(request, {"Policy": policy.document(), "RevisionId": revision})

    async def remove_permission(self, request: Request) -> Response:
        ref = function_ref(request)
        sid = request.match_info["sid"]
        if len(sid) > 100 or not _REMOVE_STATEMENT_ID.match(sid):
            raise ValidationError.field(sid, "statementId",
                                        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_.]+)")
        self._policies.remove(ref.name, ref.qualifier, sid, request.query.get("RevisionId"))
        return no_content(request)


