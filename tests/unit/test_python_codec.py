"""The Python runtime's event and result JSON (bootstrap._unmarshal / _marshal): json's C scanner and encoder,
made once, give what json.loads and JSONEncoder.encode give, errors included (the same messages), and an
encoding error leaves nothing behind for the next result."""

from __future__ import annotations

import decimal
import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "src" / "lamina" / "runtimes" / "python" / "bootstrap.py"
spec = importlib.util.spec_from_file_location("lamina_python_bootstrap", PATH)
assert spec is not None and spec.loader is not None
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)


def test_c_codec_is_in_use() -> None:
    assert bootstrap._SCAN is not None and bootstrap._ENCODE is not None


@pytest.mark.parametrize("body", [
    b'{"key": "value", "n": [1, 2.5, null, true]}', b'"text"', b"42", b"[]", b'{"k": "caf\xc3\xa9 \\u00e9"}',
    b'  {"spaced": 1}\n', b'\xef\xbb\xbf{"bom": 1}', '{"utf16": 1}'.encode("utf-16"), b"{}",
])
def test_events_as_json_loads_reads_them(body: bytes) -> None:
    assert bootstrap._unmarshal(body) == json.loads(body)


@pytest.mark.parametrize("body", [b"{", b'{"a": 1} trailing', b"", b"\xff\xfe\xfd", b"NaNa"])
def test_bad_events_fail_as_before(body: bytes) -> None:
    with pytest.raises(bootstrap.Fault) as caught:
        bootstrap._unmarshal(body)
    with pytest.raises(Exception) as expected:
        json.loads(body)
    assert caught.value.error_type == "Runtime.UnmarshalError"
    assert caught.value.msg == "Unable to unmarshal input: %s" % expected.value


@pytest.mark.parametrize("result", [
    {"statusCode": 200, "body": "hi"}, "plain", 7, 1.5, None, [1, {"a": [True, False]}], {"é": "ü ✓"},
    {"d": decimal.Decimal("12"), "f": decimal.Decimal("1.25")}, float("inf"), {1: "int key"},
])
def test_results_as_the_encoder_writes_them(result: object) -> None:
    assert bootstrap._marshal(result) == (bootstrap._ENCODER.encode(result).encode("utf-8"), "application/json")


def test_bytes_results_go_as_they_are() -> None:
    assert bootstrap._marshal(b"\x00raw") == (b"\x00raw", "application/unknown")


def test_encoding_errors_keep_their_message_and_leave_no_trace() -> None:
    circular: list = []
    circular.append(circular)
    for bad, message in ((object(), "Object of type object is not JSON serializable"),
                         (circular, "Circular reference detected"),
                         ({"nested": [set()]}, "Object of type set is not JSON serializable")):
        with pytest.raises(bootstrap.Fault) as caught:
            bootstrap._marshal(bad)
        assert caught.value.error_type == "Runtime.MarshalError"
        assert caught.value.msg == "Unable to marshal response: " + message
        shared = [1, 2]  # the same object twice is not a cycle: no mark may be left from the failure
        assert bootstrap._marshal({"a": shared, "b": shared})[0] == b'{"a": [1, 2], "b": [1, 2]}'
    assert not bootstrap._MARKERS
