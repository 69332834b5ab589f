"""ListObjectsV2 paging, pure: keys in order from a fetch function, grouped by delimiter into common
prefixes, cut at max-keys, with the continuation point for the next page.

Keys sort as UTF-8 bytes (SQLite's BINARY order). A common prefix counts as one entry toward max-keys;
to step over every key under it, the next fetch starts after `prefix + U+10FFFF`, which sorts after
any key beginning with the prefix.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

PAST = "\U0010ffff"
BATCH = 1000


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    contents: list[Keyed]
    common_prefixes: list[str]
    truncated: bool
    next_after: str | None  # where the next page starts (exclusive), when truncated


def page(fetch: Callable[[str, int], Sequence[Keyed]], prefix: str, delimiter: str, after: str,
         max_keys: int) -> Page:
    """One page. `fetch(after, limit)` returns up to `limit` entries with keys > after that start with
    `prefix`, in key order."""
    contents: list[Keyed] = []
    prefixes: list[str] = []
    last = after
    while True:
        batch = fetch(after, BATCH)
        if not batch:
            return Page(contents, prefixes, False, None)
        for entry in batch:
            key = entry.key
            group = None
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    group = key[:cut + len(delimiter)]
            if len(contents) + len(prefixes) >= max_keys:
                return Page(contents, prefixes, True, last)
            if group is not None:
                prefixes.append(group)
                last = after = group + PAST
                break  # fetch again past the group
            contents.append(entry)
            last = after = key
        else:
            if len(batch) < BATCH:
                return Page(contents, prefixes, False, None)


def token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode("utf-8", "surrogatepass")).decode()


def untoken(text: str) -> str:
    """The position a continuation token stands for; ValueError when it is not one of ours."""
    return base64.urlsafe_b64decode(text.encode()).decode("utf-8", "surrogatepass")
