"""Route table matching: `/2015-03-31/functions/{name}/invocations` style patterns, exact methods."""

from __future__ import annotations

import dataclasses
import re

from lamina.http.server import Handler


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, pattern, handler)


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(pattern).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile(f"^{regex}$")


#: Pattern matches remembered (a function's invoke path comes back again and again); the memory is
#: dropped whole when it is full.
MATCH_CACHE_SIZE = 4096


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self._cache: dict[tuple[str, str], tuple[Handler, dict[str, str]]] = {}
        self._exact: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Handler]] = []
        for r in routes:
            if "{" in r.pattern:
                self._patterns.append((r.method, _compile(r.pattern), r.handler))
            else:
                self._exact[(r.method, r.pattern)] = r.handler

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        key = (method, path)
        handler = self._exact.get(key)
        if handler is not None:
            return handler, {}
        cached = self._cache.get(key)
        if cached is not None:
            return cached[0], dict(cached[1])
        for route_method, regex, handler in self._patterns:
            if route_method == method:
                found = regex.match(path)
                if found:
                    if len(self._cache) >= MATCH_CACHE_SIZE:
                        self._cache.clear()
                    groups = found.groupdict()
                    self._cache[key] = (handler, groups)
                    return handler, dict(groups)
        return None
