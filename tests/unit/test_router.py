"""Route matching: exact paths, `{name}` patterns, and the memory of pattern matches."""

from __future__ import annotations

from lamina.http import router
from lamina.http.router import Router, route


async def invoke(request):  # type: ignore[no-untyped-def]
    return None


async def get_function(request):  # type: ignore[no-untyped-def]
    return None


async def list_functions(request):  # type: ignore[no-untyped-def]
    return None


ROUTES = [
    route("GET", "/2015-03-31/functions/", list_functions),
    route("GET", "/2015-03-31/functions/{name}", get_function),
    route("POST", "/2015-03-31/functions/{name}/invocations", invoke),
]


def test_exact_and_pattern_routes() -> None:
    r = Router(ROUTES)
    assert r.match("GET", "/2015-03-31/functions/") == (list_functions, {})
    assert r.match("GET", "/2015-03-31/functions/f1") == (get_function, {"name": "f1"})
    assert r.match("POST", "/2015-03-31/functions/f1/invocations") == (invoke, {"name": "f1"})
    assert r.match("PUT", "/2015-03-31/functions/f1") is None
    assert r.match("GET", "/2015-03-31/functions/f1/x") is None


def test_a_remembered_match_is_the_same_and_its_groups_are_a_copy() -> None:
    r = Router(ROUTES)
    first = r.match("POST", "/2015-03-31/functions/f1/invocations")
    assert first is not None
    first[1]["name"] = "changed by a handler"
    again = r.match("POST", "/2015-03-31/functions/f1/invocations")
    assert again == (invoke, {"name": "f1"})
    assert r.match("POST", "/2015-03-31/functions/f2/invocations") == (invoke, {"name": "f2"})


def test_the_memory_of_matches_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(router, "MATCH_CACHE_SIZE", 8)
    r = Router(ROUTES)
    for i in range(50):
        assert r.match("GET", f"/2015-03-31/functions/f{i}") == (get_function, {"name": f"f{i}"})
        assert len(r._cache) <= 8
    assert r.match("GET", "/2015-03-31/functions/f3") == (get_function, {"name": "f3"})
