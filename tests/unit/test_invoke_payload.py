"""The invoke path's payload check: JSON or InvalidRequestContent, the verdict json.loads would give."""

from __future__ import annotations

import json

import pytest

from lamina.errors import InvalidRequestContent, RequestTooLarge
from lamina.model import InvocationType
from lamina.service.invoke import EVENT_LIMIT, _check_payload, _plainly_json

PAYLOADS = [
    b'{"a": 1}', b'{"a": 1}  \n', b' {"a": 1}', b'\n[1, 2]\t', b'"x"', b"1", b"null", b"NaN", b'{"a": 1} x',
    b'{"a":', b"nul", b'{"a": 1}{}', b"\xff", "{\"é\": \"ü\"}".encode(), "{\"a\": 1}".encode("utf-16"),
    b"\xef\xbb\xbf{}", b"{}\x00", b"[" * 50 + b"]" * 50, b'"\\ud800"',
]


def _loads_verdict(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_payload_check_agrees_with_json_loads(payload: bytes) -> None:
    if _plainly_json(payload):  # the shortcut may only say yes where json.loads does
        assert _loads_verdict(payload)
    if _loads_verdict(payload):
        assert _check_payload(payload, InvocationType.REQUEST_RESPONSE) == payload
    else:
        with pytest.raises(InvalidRequestContent, match="^Could not parse request body into json"):
            _check_payload(payload, InvocationType.REQUEST_RESPONSE)


def test_sdk_payloads_take_the_shortcut_and_an_empty_one_is_an_empty_object() -> None:
    assert _plainly_json(b'{"key": [1, 2.5, true, null, "v\\u00e9"]}')
    assert _check_payload(b"", InvocationType.REQUEST_RESPONSE) == b"{}"
    with pytest.raises(RequestTooLarge):
        _check_payload(b"[" + b"1," * EVENT_LIMIT + b"1]", InvocationType.EVENT)
