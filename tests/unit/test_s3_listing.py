"""ListObjectsV2 paging over an in-memory key list: prefixes, delimiter groups, max-keys, tokens."""

from __future__ import annotations

from dataclasses import dataclass

from lamina.s3 import listing


@dataclass(frozen=True)
class Obj:
    key: str


KEYS = sorted(["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d"], key=str.encode)


def fetch(prefix: str):
    def inner(after: str, limit: int):
        return [Obj(k) for k in KEYS if k.encode() > after.encode() and k.startswith(prefix)][:limit]
    return inner


def walk(prefix: str, delimiter: str, max_keys: int) -> list[listing.Page]:
    pages, after = [], ""
    while True:
        page = listing.page(fetch(prefix), prefix, delimiter, after, max_keys)
        pages.append(page)
        if not page.truncated:
            return pages
        after = listing.untoken(listing.token(page.next_after))


def test_delimiter_groups_count_once():
    page = listing.page(fetch(""), "", "/", "", 1000)
    assert [o.key for o in page.contents] == ["b", "d"]
    assert page.common_prefixes == ["a/", "c/"] and not page.truncated


def test_pages_of_one_step_over_whole_groups():
    pages = walk("", "/", 1)
    seen = [(p.common_prefixes + [o.key for o in p.contents])[0] for p in pages]
    assert seen == ["a/", "b", "c/", "d"]
    assert [p.truncated for p in pages] == [True, True, True, False]


def test_prefix_and_nested_groups():
    page = listing.page(fetch("a/"), "a/", "/", "", 1000)
    assert [o.key for o in page.contents] == ["a/1", "a/2"] and page.common_prefixes == ["a/b/"]


def test_plain_pages_cover_every_key_once():
    pages = walk("", "", 3)
    assert [o.key for p in pages for o in p.contents] == KEYS
    assert len(pages) == 3


def test_exactly_max_keys_is_not_truncated():
    assert not listing.page(fetch(""), "", "", "", len(KEYS)).truncated
