"""The EventBridge API subset that schedules functions (JSON 1.1, `X-Amz-Target: AWSEvents.*`, SigV4
service `events`): PutRule, DescribeRule, ListRules, EnableRule, DisableRule, DeleteRule, PutTargets,
ListTargetsByRule, RemoveTargets. Only schedule rules on the default bus; `events/ticker.py` fires them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable

from lamina.api import paging, sigv4
from lamina.clock import Clock
from lamina.errors import Json11Error
from lamina.events import schedule
from lamina.http.server import Request, Response
from lamina.store.schedules import Rule, ScheduleStore, Target

TARGET_PREFIX = "AWSEvents"
JSON11 = "application/x-amz-json-1.1"
_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_TARGET_ID = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_LAMBDA_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9-_]+(:[a-zA-Z0-9-_$]+)?$")


class EventsError(Json11Error):
    """JSON 1.1 errors carry the code in `__type` (and the header)."""


class Validation(EventsError):
    aws_code = "ValidationException"


class RuleNotFound(EventsError):
    http_status = 400
    aws_code = "ResourceNotFoundException"

    def __init__(self, name: str) -> None:
        super().__init__(f"Rule {name} does not exist on EventBus default.")


class UnknownOperation(EventsError):
    aws_code = "UnknownOperationException"


class EventBridgeApi:
    def __init__(self, store: ScheduleStore, clock: Clock, region: str, account: str,
                 secret_for: Callable[[str], str | None]) -> None:
        self._store = store
        self._clock = clock
        self._region = region
        self._account = account
        self._secret_for = secret_for
        self._operations = {
            "PutRule": self.put_rule, "DescribeRule": self.describe_rule, "ListRules": self.list_rules,
            "EnableRule": self.enable_rule, "DisableRule": self.disable_rule, "DeleteRule": self.delete_rule,
            "PutTargets": self.put_targets, "ListTargetsByRule": self.list_targets_by_rule,
            "RemoveTargets": self.remove_targets,
        }

    def rule_arn(self, name: str, region: str | None = None) -> str:
        return f"arn:aws:events:{region or self._region}:{self._account}:rule/{name}"

    async def handle(self, request: Request, operation: str) -> Response:
        handler = self._operations.get(operation)
        if handler is None:
            raise UnknownOperation(f"lamina does not implement EventBridge {operation}")
        path, _, query = request.raw_path.partition("?")
        sigv4.verify(method=request.method, raw_path=path, raw_query=query, headers=list(request.headers.items()),
                     body=request.body, secret_for=self._secret_for, service="events",
                     now=datetime.fromtimestamp(self._clock.time(), tz=timezone.utc))
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise Validation(f"Could not parse request body: {exc}") from exc
        if not isinstance(body, dict):
            raise Validation("Request body must be a JSON object")
        request["events_region"] = request.get("region") or self._region
        out = handler(request, body)
        return Response(json.dumps(out).encode(), content_type=JSON11,
                        headers={"x-amzn-RequestId": request["request_id"]})

    # rules -------------------------------------------------------------------------------------

    @staticmethod
    def _name(body: dict[str, Any], key: str = "Name") -> str:
        name = body.get(key)
        if not isinstance(name, str) or not _NAME.match(name):
            raise Validation(f"1 validation error detected: Value '{name}' at '{key[0].lower() + key[1:]}' failed "
                             "to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+")
        return name

    def _rule(self, name: str) -> Rule:
        rule = self._store.get_rule(name)
        if rule is None:
            raise RuleNotFound(name)
        return rule

    def _render(self, request: Request, rule: Rule) -> dict[str, Any]:
        out: dict[str, Any] = {"Name": rule.name, "Arn": self.rule_arn(rule.name, request["events_region"]),
                               "ScheduleExpression": rule.expression, "State": rule.state,
                               "EventBusName": "default"}
        if rule.description:
            out["Description"] = rule.description
        return out

    def put_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        name = self._name(body)
        expression = body.get("ScheduleExpression")
        if not expression:
            if body.get("EventPattern"):
                raise Validation("lamina supports schedule rules only (ScheduleExpression), not EventPattern.")
            raise Validation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        if (body.get("EventBusName") or "default") != "default":
            raise Validation("ScheduleExpression is supported only on the default event bus.")
        try:
            schedule.parse(expression)
        except schedule.InvalidSchedule:
            raise Validation("Parameter ScheduleExpression is not valid.") from None
        state = body.get("State") or "ENABLED"
        if state not in ("ENABLED", "DISABLED"):
            raise Validation(f"1 validation error detected: Value '{state}' at 'state' failed to satisfy "
                             "constraint: Member must satisfy enum value set: [ENABLED, DISABLED]")
        old = self._store.get_rule(name)
        anchor = old.anchor if old is not None and old.expression == expression else self._clock.time()
        self._store.put_rule(Rule(name, expression, state, body.get("Description"), anchor))
        return {"RuleArn": self.rule_arn(name, request["events_region"])}

    def describe_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        out = self._render(request, self._rule(self._name(body)))
        out["CreatedBy"] = self._account
        return out

    def list_rules(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        rules = self._store.rules(body.get("NamePrefix") or "")
        start = paging.position(body.get("NextToken"), Validation)
        limit = int(body.get("Limit") or 100)
        out: dict[str, Any] = {"Rules": [self._render(request, r) for r in rules[start:start + limit]]}
        if start + limit < len(rules):
            out["NextToken"] = paging.token(start + limit)
        return out

    def _set_state(self, body: dict[str, Any], state: str) -> dict[str, Any]:
        rule = self._rule(self._name(body))
        self._store.put_rule(Rule(rule.name, rule.expression, state, rule.description, rule.anchor))
        return {}

    def enable_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_state(body, "ENABLED")

    def disable_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_state(body, "DISABLED")

    def delete_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        name = self._name(body)
        if self._store.get_rule(name) is None:
            return {}  # idempotent, as on AWS
        if self._store.targets(name) and not body.get("Force"):
            raise Validation("Rule can't be deleted since it has targets.")
        for target in self._store.targets(name):
            self._store.remove_target(name, target.id)
        self._store.delete_rule(name)
        return {}

    # targets -----------------------------------------------------------------------------------

    def put_targets(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(self._name(body, "Rule"))
        targets = body.get("Targets")
        if not isinstance(targets, list) or not 1 <= len(targets) <= 10:
            raise Validation("1 validation error detected: Value at 'targets' failed to satisfy constraint: "
                             "Member must have length less than or equal to 10")
        failed = []
        for target in targets:
            target_id, arn = target.get("Id"), target.get("Arn")
            if not isinstance(target_id, str) or not _TARGET_ID.match(target_id):
                raise Validation(f"1 validation error detected: Value '{target_id}' at 'targets.1.member.id' "
                                 "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                                 "[\\.\\-_A-Za-z0-9]+")
            if not isinstance(arn, str) or not _LAMBDA_ARN.match(arn):
                failed.append({"TargetId": target_id, "ErrorCode": "ValidationException",
                               "ErrorMessage": f"lamina can only target Lambda functions, not {arn}"})
                continue
            text = target.get("Input")
            if text is not None:
                try:
                    json.loads(text)
                except (TypeError, ValueError):
                    raise Validation("Input is not valid JSON text.") from None
            self._store.put_target(Target(rule.name, target_id, arn, text))
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def list_targets_by_rule(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(self._name(body, "Rule"))
        out = []
        for target in self._store.targets(rule.name):
            item = {"Id": target.id, "Arn": target.arn}
            if target.input is not None:
                item["Input"] = target.input
            out.append(item)
        return {"Targets": out}

    def remove_targets(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(self._name(body, "Rule"))
        failed = []
        for target_id in body.get("Ids") or []:
            if not self._store.remove_target(rule.name, target_id):
                failed.append({"TargetId": target_id, "ErrorCode": "ResourceNotFoundException",
                               "ErrorMessage": f"Target {target_id} does not exist on rule {rule.name}."})
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}
