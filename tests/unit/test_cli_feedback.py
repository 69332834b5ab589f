"""clihints (error code + hint) and progress (step lines) without a server."""

from __future__ import annotations

import io

from botocore.exceptions import ClientError, EndpointConnectionError

from lamina import clihints, progress


def test_client_errors_keep_their_code_and_message_and_get_a_hint():
    exc = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."}}, "Invoke")
    explained = clihints.explain(exc)
    assert explained is not None
    assert clihints.lines(explained) == ["error: TooManyRequestsException: Rate Exceeded.",
                                         f"hint: {clihints.HINTS['TooManyRequestsException']}"]


def test_unknown_codes_print_without_a_hint_and_other_errors_are_not_ours():
    exc = ClientError({"Error": {"Code": "SomethingNew", "Message": "m"}}, "Op")
    assert clihints.lines(clihints.explain(exc)) == ["error: SomethingNew: m"]
    assert clihints.explain(KeyError("x")) is None


def test_connection_failures_point_at_lamina_serve():
    explained = clihints.explain(EndpointConnectionError(endpoint_url="http://127.0.0.1:1/x"))
    assert explained.headline == "cannot connect to http://127.0.0.1:1/x"
    assert explained.hint == clihints.CONNECT_HINT


def test_a_step_off_a_terminal_prints_start_and_end_with_its_detail():
    out = io.StringIO()
    with progress.step("package src", stream=out) as shown:
        shown.update("3 files, 1.0 KB")
    lines = out.getvalue().splitlines()
    assert lines[0] == "  → package src …"
    assert lines[1].startswith("  ✓ package src 3 files, 1.0 KB (") and lines[1].endswith(" s)")


def test_sizes_read_like_people_write_them():
    assert [progress.size(n) for n in (12, 2048, 5 * 1024 * 1024)] == ["12 B", "2.0 KB", "5.0 MB"]
