"""`cxstream board`: the wallboard page and its JSON, read from Prometheus.

The board asks Prometheus, not a worker: each worker publishes only the keys
it owns, and Prometheus is where all workers' series meet (and where the
history for the sparklines and the firing alerts live).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from streams.board.snapshot import (
    SELECTOR,
    document,
    matrix_by_time,
    sla_summary,
    vector_samples,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def _pipeline_queries(job: str) -> dict[str, str]:
    return {
        "events": "sum by (outcome) (cx_events_total)",
        "events_rate": "sum(rate(cx_events_total[1m]))",
        "targets": f'up{{job="{job}"}}',
        "engine_alerts": "sum by (alertname, severity) (cx_alerts_firing) > 0",
    }


#: the SLA strip's queries (empty results when the workers run without SLAs)
SLA_QUERIES = (
    "sum by (state) (cx_sla_pending)",
    'min by (target) (cx_sla_achieved_ratio{window="24h"})',
    "sum by (target) (cx_sla_breaches_total)",
)


class PrometheusError(Exception):
    pass


class Prometheus:
    """The few Prometheus HTTP API calls the board makes."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            async with self.session.get(self.url + path, params=params) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PrometheusError(f"{self.url}{path}: {exc or type(exc).__name__}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(f"{self.url}{path}: {body!r:.300}")
        return body["data"]

    async def instant(self, query: str) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query", {"query": query})
        return list(data["result"])

    async def range(self, query: str, start: float, end: float, step: float) -> list[Any]:
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = await self._get("/api/v1/query_range", params)
        return list(data["result"])

    async def alerts(self) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/alerts", {})
        return list(data["alerts"])


class Board:
    """Builds the board document; sparkline data is cached between page polls."""

    def __init__(
        self,
        prom: Prometheus,
        job: str,
        trend_range_s: float = 3600,
        points: int = 120,
        confidence: float = 0.95,
    ) -> None:
        self.prom = prom
        self.confidence = confidence
        self.queries = _pipeline_queries(job)
        self.trend_range_s = trend_range_s
        self.points = points
        self._trend: tuple[float, Any] | None = None

    async def _trends(self, now: float) -> Any:
        if self._trend is not None and now - self._trend[0] < 15:
            return self._trend[1]
        step = max(self.trend_range_s / self.points, 1.0)
        result = await self.prom.range(SELECTOR, now - self.trend_range_s, now, step)
        by_time = matrix_by_time(result)
        self._trend = (now, by_time)
        return by_time

    async def _pipeline(self) -> dict[str, Any]:
        names = list(self.queries)
        results = await asyncio.gather(*(self.prom.instant(self.queries[n]) for n in names))
        raw = dict(zip(names, results, strict=True))
        return {
            "events": {
                r["metric"].get("outcome", "?"): float(r["value"][1]) for r in raw["events"]
            },
            "events_per_s": float(raw["events_rate"][0]["value"][1]) if raw["events_rate"] else 0.0,
            "targets": [
                {"instance": r["metric"].get("instance"), "up": r["value"][1] == "1"}
                for r in raw["targets"]
            ],
            "engine_alerts": [
                {**r["metric"], "firing": float(r["value"][1])} for r in raw["engine_alerts"]
            ],
        }

    async def document(self) -> dict[str, Any]:
        now = time.time()
        instant, by_time, alerts, pipeline, *sla = await asyncio.gather(
            self.prom.instant(SELECTOR),
            self._trends(now),
            self.prom.alerts(),
            self._pipeline(),
            *(self.prom.instant(q) for q in SLA_QUERIES),
        )
        doc = document(
            vector_samples(instant),
            by_time,
            alerts,
            pipeline,
            now,
            self.confidence,
            sla_summary(*sla),
        )
        doc["prometheus"] = self.prom.url
        return doc


def build_app(
    prometheus_url: str,
    job: str = "cxstream",
    trend_range_s: float = 3600,
    confidence: float = 0.95,
) -> web.Application:
    app = web.Application()

    async def on_startup(app: web.Application) -> None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app["session"] = session
        app["board"] = Board(
            Prometheus(session, prometheus_url), job, trend_range_s, confidence=confidence
        )

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def api(request: web.Request) -> web.Response:
        try:
            doc = await request.app["board"].document()
        except PrometheusError as exc:
            return web.json_response({"error": str(exc), "prometheus": prometheus_url}, status=502)
        return web.json_response(doc, headers={"Cache-Control": "no-store"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/", index)
    app.router.add_get("/api/board", api)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC)
    return app


def run_board(
    prometheus_url: str,
    host: str,
    port: int,
    job: str = "cxstream",
    trend_range_s: float = 3600,
    confidence: float = 0.95,
) -> int:
    log.info("wallboard on http://%s:%d/ reading %s", host, port, prometheus_url)
    app = build_app(prometheus_url, job, trend_range_s, confidence)
    web.run_app(app, host=host, port=port, print=None)
    return 0
