"""Use cases on function resource policies: AddPermission, RemovePermission, GetPolicy.

A policy belongs to the unqualified function ($LATEST), to one version, or to one alias. Statements
are kept exactly as AWS renders them (`function_statement`), so GetPolicy returns what AddPermission
returned, and later consumers (Function URLs) read the same statements. Changing a policy gives the
function version or alias it belongs to a new RevisionId, as on AWS.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

from lamina.errors import (
    InvalidParameterValue, PolicyLengthExceeded, PreconditionFailed, ResourceConflict, ResourceNotFound,
)
from lamina.model import LATEST, POLICY_LIMIT_BYTES, AddPermission, Arns, Policy, Statement, is_version
from lamina.store.aliases import AliasTable
from lamina.store.policies import PolicyTable
from lamina.store.sqlite import SqliteStore

_ACCOUNT = re.compile(r"^\d{12}$")
_IAM_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam:")


def principal_block(principal: str, partition: str = "aws") -> object:
    """How a statement names its principal: a service, an account (as its root ARN), an IAM ARN or "*"."""
    if principal == "*":
        return "*"
    if principal.endswith(".amazonaws.com"):
        return {"Service": principal}
    if _ACCOUNT.match(principal):
        return {"AWS": f"arn:{partition}:iam::{principal}:root"}
    if _IAM_ARN.match(principal):
        return {"AWS": principal}
    raise InvalidParameterValue.bad_principal()


def function_statement(command: AddPermission, resource_arn: str, partition: str = "aws") -> Statement:
    """The statement AddPermission adds, rendered as AWS renders it (compact JSON, AWS's key order)."""
    statement: dict[str, object] = {
        "Sid": command.statement_id, "Effect": "Allow", "Principal": principal_block(command.principal, partition),
        "Action": command.action, "Resource": resource_arn,
    }
    equals: dict[str, str] = {}
    if command.function_url_auth_type:
        equals["lambda:FunctionUrlAuthType"] = command.function_url_auth_type
    if command.principal_org_id:
        equals["aws:PrincipalOrgID"] = command.principal_org_id
    if command.source_account:
        equals["AWS:SourceAccount"] = command.source_account
    if command.event_source_token:
        equals["lambda:EventSourceToken"] = command.event_source_token
    condition: dict[str, object] = {}
    if equals:
        condition["StringEquals"] = equals
    if command.invoked_via_function_url:
        condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    if command.source_arn:
        condition["ArnLike"] = {"AWS:SourceArn": command.source_arn}
    if condition:
        statement["Condition"] = condition
    return Statement(command.statement_id, json.dumps(statement, separators=(",", ":")))


class PolicyService:
    def __init__(self, store: SqliteStore, arns: Arns) -> None:
        self._store = store
        self._table = PolicyTable(store)
        self._aliases = AliasTable(store)
        self._arns = arns

    def add(self, name: str, qualifier: str | None, command: AddPermission, region: str | None) -> Statement:
        if qualifier == LATEST:
            raise InvalidParameterValue.latest_policy()
        self._function_exists(name)
        key, revision = self._target(name, qualifier)
        if command.revision_id is not None and command.revision_id != revision:
            raise PreconditionFailed.revision()
        policy = self._table.get(name, key) or Policy()
        if policy.find(command.statement_id) is not None:
            raise ResourceConflict.statement_exists(command.statement_id)
        arns = self._arns.in_region(region)
        statement = function_statement(command, arns.function(name, qualifier), arns.partition)
        updated = Policy(policy.statements + (statement,))
        size = len(updated.document().encode())
        if size > POLICY_LIMIT_BYTES:
            raise PolicyLengthExceeded.size(size, POLICY_LIMIT_BYTES)
        self._table.put(name, key, updated)
        self._renew_revision(name, key)
        return statement

    def get(self, name: str, qualifier: str | None) -> tuple[Policy, str]:
        """The policy and the RevisionId of the version or alias it belongs to."""
        self._function_exists(name)
        key = qualifier or LATEST
        policy = self._table.get(name, key)
        if policy is None:
            raise ResourceNotFound.resource()
        return policy, self._target(name, None if key == LATEST else key)[1]

    def remove(self, name: str, qualifier: str | None, statement_id: str, revision_id: str | None) -> None:
        if self._store.get_function(name, LATEST) is None:
            raise ResourceNotFound.no_policy_for(self._arns.function(name))
        key, revision = self._target(name, None if qualifier == LATEST else qualifier)
        policy = self._table.get(name, key)
        if policy is None:
            raise ResourceNotFound.no_policy()
        if policy.find(statement_id) is None:
            raise ResourceNotFound.statement(statement_id)
        if revision_id is not None and revision_id != revision:
            raise PreconditionFailed.revision()
        self._table.put(name, key, Policy(tuple(s for s in policy.statements if s.sid != statement_id)))
        self._renew_revision(name, key)

    # helpers -----------------------------------------------------------------------------------

    def _function_exists(self, name: str) -> None:
        if self._store.get_function(name, LATEST) is None:
            raise ResourceNotFound.function(self._arns.function(name))

    def _target(self, name: str, qualifier: str | None) -> tuple[str, str]:
        """(policy key, RevisionId) of the unqualified function, a version or an alias."""
        if qualifier is None or is_version(qualifier):
            config = self._store.get_function(name, qualifier or LATEST)
            if config is None:
                raise ResourceNotFound.function(self._arns.function(name, qualifier))
            return qualifier or LATEST, config.revision_id
        alias = self._aliases.get(name, qualifier)
        if alias is None:
            raise ResourceNotFound.alias(self._arns.function(name, qualifier))
        return qualifier, alias.revision_id

    def _renew_revision(self, name: str, key: str) -> None:
        if is_version(key):
            config = self._store.get_function(name, key)
            if config is not None:
                self._store.update_function(config.replace(revision_id=str(uuid.uuid4())), config.revision_id)
            return
        alias = self._aliases.get(name, key)
        if alias is not None:
            self._aliases.replace(dataclasses.replace(alias, revision_id=str(uuid.uuid4())), alias.revision_id)
