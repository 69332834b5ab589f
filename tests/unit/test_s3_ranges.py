"""Range headers as S3 reads them: single byte ranges, suffixes, open ends, and what it ignores."""

from __future__ import annotations

import pytest

from lamina.s3.ranges import parse_range, range_length


@pytest.mark.parametrize("spec, size, expected", [
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=90-500", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-500", 100, (0, 99)),
    ("bytes=100-", 100, "unsatisfiable"),
    ("bytes=-0", 100, "unsatisfiable"),
    ("bytes=0-", 0, "unsatisfiable"),
    ("bytes=0-1,5-6", 100, None),  # several ranges: S3 sends the whole object
    ("items=0-1", 100, None),
    ("bytes=9-3", 100, None),
    ("bytes=x-3", 100, None),
])
def test_parse_range(spec, size, expected):
    assert parse_range(spec, size) == expected


def test_range_length_only_for_explicit_ranges():
    assert range_length("bytes=10-19") == 10
    assert range_length("bytes=10-") == -1 and range_length("bytes=-5") == -1
