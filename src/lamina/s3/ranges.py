"""HTTP byte ranges as S3 reads them, pure: `Range` for GetObject, `x-amz-copy-source-range` for
UploadPartCopy."""

from __future__ import annotations


def parse_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """A Range header against an object of `size` bytes: (first, last) inclusive; "unsatisfiable"; or
    None when S3 ignores it (not a single bytes range) and sends the whole object."""
    unit, _, ranges = spec.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in ranges:
        return None
    first, sep, last = ranges.strip().partition("-")
    if not sep:
        return None
    first, last = first.strip(), last.strip()
    if not first:
        if not last.isdigit():
            return None
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(size - count, 0), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def range_length(spec: str) -> int:
    """The length an explicit `bytes=first-last` asks for; -1 for any other form."""
    first, _, last = spec.partition("=")[2].partition("-")
    return int(last) - int(first) + 1 if first.strip().isdigit() and last.strip().isdigit() else -1
