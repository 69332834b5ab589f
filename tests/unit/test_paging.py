"""Pagination tokens of the CloudWatch Logs and EventBridge APIs (api/paging.py)."""

from __future__ import annotations

import pytest

from lamina.api import paging


class Invalid(Exception):
    pass


def test_a_token_names_its_position():
    for value in (0, 1, 50, 123456789):
        assert paging.position(paging.token(value), Invalid) == value


def test_no_token_is_the_start():
    assert paging.position(None, Invalid) == 0
    assert paging.position("", Invalid) == 0


def test_a_stream_direction_prefix_is_ignored():
    assert paging.position("f/" + paging.token(42), Invalid) == 42
    assert paging.position("b/" + paging.token(7), Invalid) == 7


@pytest.mark.parametrize("bad", ["not a token!", paging.token(1)[:-1] + "*", "Zm9v"])  # "Zm9v" is "foo"
def test_a_malformed_token_raises_the_apis_error(bad):
    with pytest.raises(Invalid, match="The specified nextToken is invalid."):
        paging.position(bad, Invalid)
