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


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Handler]] = []
        for r in routes:
            if "{" in r.pattern:
                self._patterns.append((r.method, _compile(r.pattern), r.handler))
            else:
                self._exact[(r.method, r.pattern)] = r.handler

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, {}
        for route_method, regex, handler in self._patterns:
            if route_method == method:
                found = regex.match(path)
                if found:
                    return handler, found.groupdict()
        return None
