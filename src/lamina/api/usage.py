"""Usage and cost as JSON (`GET /_lamina/usage?since=SECONDS&by=function|day`, SigV4-signed like the
Lambda API): requests, errors, cold starts, GB-seconds and cost at the configured price table."""

from __future__ import annotations

from typing import Any

from lamina.api.request import reply
from lamina.clock import Clock
from lamina.errors import ValidationError
from lamina.http.router import Route, route
from lamina.http.server import Request, Response
from lamina.store.metering import MeteringStore, UsageRow


def cost(row: UsageRow, per_gb_s: float, per_million: float) -> float:
    return row.gb_s * per_gb_s + row.requests / 1_000_000 * per_million


class UsageApi:
    def __init__(self, metering: MeteringStore, clock: Clock, per_gb_s: float, per_million: float,
                 flush: Any) -> None:
        self._metering = metering
        self._clock = clock
        self._per_gb_s = per_gb_s
        self._per_million = per_million
        self._flush = flush

    def routes(self) -> list[Route]:
        return [route("GET", "/_lamina/usage", self.usage)]

    async def usage(self, request: Request) -> Response:
        by = request.query.get("by", "function")
        if by not in ("function", "day"):
            raise ValidationError.field(by, "by", "Member must satisfy enum value set: [function, day]")
        try:
            since_s = float(request.query.get("since", 30 * 86400))
        except ValueError as exc:
            raise ValidationError.field(request.query.get("since"), "since", "Member must be seconds") from exc
        self._flush()
        rows = self._metering.usage(int((self._clock.time() - since_s) * 1000), by)
        out = [{"key": r.key, "requests": r.requests, "errors": r.errors, "cold_starts": r.cold_starts,
                "gb_seconds": round(r.gb_s, 6), "billed_ms": r.billed_ms,
                "cost_usd": round(cost(r, self._per_gb_s, self._per_million), 8)} for r in rows]
        total = {k: sum(row[k] for row in out) for k in ("requests", "errors", "cold_starts", "gb_seconds",
                                                          "billed_ms", "cost_usd")}
        return reply(request, {"by": by, "since_seconds": since_s,
                               "price": {"per_gb_second": self._per_gb_s, "per_million_requests": self._per_million,
                                         "free_tier": False},
                               "rows": out, "total": total})
