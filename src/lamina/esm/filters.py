"""Lambda's event filtering (FilterCriteria): the EventBridge-style pattern syntax, pure (lambda-spec §9.2).

A pattern is a JSON object whose keys address the record: metadata fields directly (`messageId`,
`attributes.ApproximateReceiveCount`, `eventName`, ...) and the payload under its data key: `body` (SQS),
`data` (Kinesis, base64 of JSON), `dynamodb` (DynamoDB Streams). A key maps to a nested pattern or to a list
of rules, OR-ed; all keys must match (AND). Up to five patterns per mapping, OR-ed.

    rule                              matches
    "x" / 5 / true                    equal value (numbers by their JSON text)
    null  /  ""                       a null value / an empty string
    {"anything-but": v | [v, ...]}    a present value other than these (or {"prefix": p} / {"suffix": s})
    {"numeric": [">", 0, "<=", 5]}    a number in range (also "=" for equality)
    {"exists": true | false}          the key is present / absent
    {"prefix": p} {"suffix": s}       a string starting / ending so
    {"equals-ignore-case": s}         a string equal, case ignored

A JSON payload is matched against a nested pattern and a plain-text payload against a list of rules; a
payload whose format differs from the pattern's does not match (Lambda drops such messages).

    compile_filters(['{"body": {"kind": ["order"]}}'])  ->  a RecordFilter (record dict -> bool)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any

from lamina.errors import InvalidParameterValue

MAX_FILTERS = 5
PATTERN_MAX = 4096
DATA_KEYS = ("body", "data")  # payloads carried as text: matched as JSON when they are JSON objects
_NUMERIC_OPS = {"=", "<", "<=", ">", ">="}
_MISSING = object()


class InvalidPattern(ValueError):
    pass


def invalid() -> InvalidParameterValue:
    return InvalidParameterValue("Invalid filter pattern definition.")


# checking a pattern -------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_numeric(spec: Any) -> None:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise InvalidPattern("numeric takes one or two (operator, number) pairs")
    ops = spec[0::2]
    if any(op not in _NUMERIC_OPS for op in ops) or not all(_is_number(n) for n in spec[1::2]):
        raise InvalidPattern("numeric: bad operator or operand")
    if len(spec) == 4 and ("=" in ops or ops[0][0] == ops[1][0]):
        raise InvalidPattern("numeric: a range needs one lower and one upper bound")


def _check_rule(rule: Any) -> None:
    if rule is None or isinstance(rule, (str, bool)) or _is_number(rule):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise InvalidPattern(f"bad rule {rule!r}")
    (op, arg), = rule.items()
    if op == "exists":
        if not isinstance(arg, bool):
            raise InvalidPattern("exists takes true or false")
    elif op in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(arg, str):
            raise InvalidPattern(f"{op} takes a string")
    elif op == "numeric":
        _check_numeric(arg)
    elif op == "anything-but":
        if isinstance(arg, dict):
            if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix") or not isinstance(next(iter(arg.values())), str):
                raise InvalidPattern("anything-but takes values, or one prefix/suffix")
        elif isinstance(arg, list):
            if not arg or not all(v is None or isinstance(v, (str, bool)) or _is_number(v) for v in arg):
                raise InvalidPattern("anything-but takes a non-empty list of values")
        elif not (isinstance(arg, (str, bool)) or _is_number(arg)):
            raise InvalidPattern("anything-but takes a value")
    else:
        raise InvalidPattern(f"unknown operator {op}")


def _check_node(node: Any) -> None:
    if not isinstance(node, dict) or not node:
        raise InvalidPattern("a pattern level must be a non-empty object")
    for value in node.values():
        if isinstance(value, dict):
            _check_node(value)
        elif isinstance(value, list):
            if not value:
                raise InvalidPattern("an empty list of rules matches nothing")
            for rule in value:
                _check_rule(rule)
        else:
            raise InvalidPattern("a pattern's leaves must be lists of rules")


def parse_pattern(text: Any) -> dict[str, Any]:
    """One FilterCriteria pattern, checked; InvalidParameterValue for anything Lambda would refuse."""
    if not isinstance(text, str) or not text or len(text) > PATTERN_MAX:
        raise invalid()
    try:
        node = json.loads(text)
        _check_node(node)
    except (ValueError, InvalidPattern) as exc:
        raise invalid() from exc
    return node


# matching -----------------------------------------------------------------------------------------

def _same(rule: Any, value: Any) -> bool:
    if rule is None or value is None:
        return rule is None and value is None
    if isinstance(rule, bool) or isinstance(value, bool):
        return rule is value
    if _is_number(rule):
        return _is_number(value) and json.dumps(rule) == json.dumps(value)
    return isinstance(value, str) and rule == value


def _numeric(spec: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    for op, bound in zip(spec[0::2], spec[1::2]):
        ok = {"=": value == bound, "<": value < bound, "<=": value <= bound,
              ">": value > bound, ">=": value >= bound}[op]
        if not ok:
            return False
    return True


def _rule_matches(rule: Any, value: Any) -> bool:
    """`value` is present (not _MISSING) and a scalar."""
    if not isinstance(rule, dict):
        return _same(rule, value)
    (op, arg), = rule.items()
    if op == "exists":
        return arg is True
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if op == "numeric":
        return _numeric(arg, value)
    # anything-but
    if isinstance(arg, dict):
        (kind, text), = arg.items()
        if not isinstance(value, str):
            return True
        return not (value.startswith(text) if kind == "prefix" else value.endswith(text))
    values = arg if isinstance(arg, list) else [arg]
    return not any(_same(v, value) for v in values)


def _leaf_matches(rules: list[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(r, dict) and r.get("exists") is False for r in rules)
    candidates = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if rule["exists"] is True:
                return True
            continue
        if any(_rule_matches(rule, v) for v in candidates if not isinstance(v, dict)):
            return True
    return False


def _node_matches(node: dict[str, Any], record: Any) -> bool:
    for key, sub in node.items():
        value = record.get(key, _MISSING) if isinstance(record, dict) else _MISSING
        if isinstance(sub, dict):
            if not isinstance(value, dict) or not _node_matches(sub, value):
                return False
        elif not _leaf_matches(sub, value):
            return False
    return True


def _payload_text(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if key == "data":  # Kinesis: base64
        try:
            return base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    return value


def matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """One checked pattern against one record (as it appears in the function's event)."""
    for key, sub in pattern.items():
        value = record.get(key, _MISSING)
        if key in DATA_KEYS and value is not _MISSING:
            text = _payload_text(key, value)
            try:
                decoded = json.loads(text) if text is not None else _MISSING
            except ValueError:
                decoded = _MISSING
            if isinstance(sub, dict):  # a JSON pattern: only JSON-object payloads can match
                if not isinstance(decoded, dict) or not _node_matches(sub, decoded):
                    return False
            elif isinstance(decoded, dict) or text is None or not _leaf_matches(sub, text):
                return False  # a plain-text pattern: only plain-text payloads can match
            continue
        if not _node_matches({key: sub}, record):
            return False
    return True


def compile_filters(patterns: Sequence[str]) -> Callable[[dict[str, Any]], bool] | None:
    """FilterCriteria's patterns (OR-ed) as one predicate; None when there are none (keep everything)."""
    if len(patterns) > MAX_FILTERS:
        raise invalid()
    parsed = [parse_pattern(p) for p in patterns]
    if not parsed:
        return None

    def keep(record: dict[str, Any]) -> bool:
        return any(matches(p, record) for p in parsed)

    return keep
