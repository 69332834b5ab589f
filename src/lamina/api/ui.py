"""The dashboard at /ui: one self-contained page (no external assets) and the JSON it reads.

Login is with the access key pair: the secret is checked once and exchanged for a random session
cookie (HttpOnly, SameSite=Strict, 12 hours); /ui/api/* then needs that cookie. Everything the page
shows comes from lamina's own stores: functions, per-minute metering (invocations, errors, duration,
cold starts, cost), a one-second sample of concurrency and throttles, log events, and an invoke box.
"""

from __future__ import annotations

import base64
import collections
import hmac
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamina.clock import Clock
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.model import InvocationType
from lamina.scheduler.scheduler import Scheduler
from lamina.service.functions import FunctionService
from lamina.service.invoke import InvokeRequest, InvokeService
from lamina.store.logs import LogStore
from lamina.store.metering import MeteringStore

PAGE = Path(__file__).resolve().parent.parent / "ui" / "index.html"
SESSION_S = 12 * 3600
COOKIE = "lamina_session"


class Dashboard:
    def __init__(self, functions: FunctionService, invoker: InvokeService, scheduler: Scheduler,
                 metering: MeteringStore, logs: LogStore, clock: Clock, secret_for: Callable[[str], str | None],
                 price_per_gb_s: float, price_per_million: float, flush: Callable[[], None]) -> None:
        self._functions = functions
        self._invoker = invoker
        self._scheduler = scheduler
        self._metering = metering
        self._logs = logs
        self._clock = clock
        self._secret_for = secret_for
        self._per_gb_s = price_per_gb_s
        self._per_million = price_per_million
        self._flush = flush
        self._sessions: dict[str, float] = {}
        #: (epoch s, invocations running, throttles so far), one sample a second for an hour.
        self.samples: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=3600)

    def sample(self) -> None:
        """Called every second by the server's housekeeping."""
        throttles = sum(self._scheduler.metrics.throttles.values())
        self.samples.append((self._clock.time(), self._scheduler.in_flight, throttles))

    def routes(self) -> list[Route]:
        return [
            route("GET", "/ui", self.page),
            route("GET", "/ui/", self.page),
            route("POST", "/ui/login", self.login),
            route("GET", "/ui/api/overview", self.overview),
            route("GET", "/ui/api/series", self.series),
            route("GET", "/ui/api/logs", self.log_tail),
            route("POST", "/ui/api/invoke", self.invoke),
        ]

    # session ---------------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return Response(PAGE.read_bytes(), content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'self' 'unsafe-inline'; img-src 'self' data:"})

    async def login(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = {}
        expected = self._secret_for(str(body.get("accessKeyId", "")))
        given = str(body.get("secretAccessKey", ""))
        if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            return self._json({"error": "unknown access key or wrong secret"}, 403)
        token = secrets.token_urlsafe(32)
        now = self._clock.time()
        self._sessions = {t: exp for t, exp in self._sessions.items() if exp > now}
        self._sessions[token] = now + SESSION_S
        return self._json({"ok": True}, headers={
            "Set-Cookie": f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={SESSION_S}"})

    def _authorized(self, request: Request) -> bool:
        for part in (request.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and self._sessions.get(value, 0) > self._clock.time():
                return True
        return False

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body).encode(), status=status, content_type="application/json",
                        headers=headers)

    def _denied(self) -> Response:
        return self._json({"error": "log in first"}, 401)

    # data --------------------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._denied()
        self._flush()
        since = int((self._clock.time() - 86400) * 1000)
        day = {row.key: row for row in self._metering.usage(since, "function")}
        functions, marker = self._functions.list(None, 50)
        while marker:
            page, marker = self._functions.list(marker, 50)
            functions += page
        out = []
        for config in functions:
            used = day.get(config.name)
            gb_s = used.gb_s if used else 0.0
            requests = used.requests if used else 0
            out.append({
                "name": config.name, "runtime": config.runtime, "handler": config.handler,
                "memory": config.memory_mb, "timeout": config.timeout_s, "codeSize": config.code_size,
                "lastModified": config.last_modified, "reserved": self._scheduler.reserved(config.name),
                "requests24h": requests, "errors24h": used.errors if used else 0,
                "coldStarts24h": used.cold_starts if used else 0, "gbSeconds24h": round(gb_s, 4),
                "cost24h": round(gb_s * self._per_gb_s + requests / 1e6 * self._per_million, 8),
            })
        states: dict[str, int] = collections.Counter()
        for (_, state), n in self._scheduler.environments_by_state().items():
            states[state] += n
        return self._json({"functions": out, "environments": states, "running": self._scheduler.in_flight,
                           "accountLimit": self._scheduler.account_limit})

    async def series(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._denied()
        self._flush()
        minutes = max(5, min(int(request.query.get("minutes", 60)), 24 * 60))
        now = self._clock.time()
        rows = self._metering.per_minute(int((now - minutes * 60) * 1000))
        by_function: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for r in rows:
            by_function[r.function].append({"minute": r.minute, "requests": r.requests, "errors": r.errors,
                                            "cold": r.cold_starts, "avgMs": round(r.avg_ms, 2),
                                            "maxMs": round(r.max_ms, 2), "gbSeconds": r.gb_s})
        samples = [s for s in self.samples if s[0] >= now - minutes * 60]
        platform = []
        for earlier, later in zip(samples, samples[1:]):
            platform.append({"t": later[0], "running": later[1], "throttles": later[2] - earlier[2]})
        return self._json({"now": now, "minutes": minutes, "functions": by_function, "platform": platform})

    async def log_tail(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._denied()
        self._flush()
        name = request.query.get("function", "")
        after = int(request.query.get("after", 0) or 0)
        group = f"/aws/lambda/{name}"
        if after:
            events = self._logs.events(group, None, None, None, after, 500)
        else:
            events = list(reversed(self._logs.events(group, None, None, None, 0, 200, descending=True)))
        return self._json({"events": [{"id": e.id, "t": e.timestamp_ms, "stream": e.stream, "message": e.message}
                                      for e in events]})

    async def invoke(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._denied()
        try:
            body = json.loads(request.body or b"{}")
            payload = json.dumps(json.loads(body.get("payload") or "{}")).encode()
        except ValueError as exc:
            return self._json({"error": f"the payload is not JSON: {exc}"}, 400)
        try:
            result = await self._invoker.invoke(InvokeRequest(
                name=str(body.get("function", "")), qualifier=None, payload=payload,
                invocation_type=InvocationType.REQUEST_RESPONSE))
        except Exception as exc:  # the page shows what the API would have answered
            return self._json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        outcome = result.outcome
        assert outcome is not None
        return self._json({"requestId": result.request_id, "functionError": outcome.error_type,
                           "payload": outcome.payload.decode("utf-8", "replace"),
                           "log": base64.b64encode(outcome.log_tail).decode(), "durationMs": outcome.duration_ms})
