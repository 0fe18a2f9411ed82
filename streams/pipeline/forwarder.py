"""Forwarding alert events to Alertmanager (``--alertmanager URL``).

Alertmanager expects clients to re-post active alerts periodically (an alert
not heard of for its resolve timeout is considered resolved), so every
firing alert this worker owns is re-posted every ``resend_s``; resolved
alerts are posted until Alertmanager has acknowledged them once. When it is
down, posts are retried with exponential back-off; nothing is raised into
the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import orjson
from mode import Service

log = logging.getLogger(__name__)


def to_alertmanager(doc: dict[str, Any]) -> dict[str, Any]:
    """An alert event (contract section 6) as Alertmanager's v2 alert object."""
    out: dict[str, Any] = {
        "labels": dict(doc["labels"]),
        "annotations": {k: str(v) for k, v in doc.get("annotations", {}).items()},
        "startsAt": doc["startsAt"],
    }
    if doc["status"] == "resolved":
        out["endsAt"] = doc.get("endsAt", doc["startsAt"])
    return out


class AlertmanagerForwarder:
    def __init__(self, url: str, resend_s: float = 60.0, timeout_s: float = 5.0) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.resend_s = resend_s
        self.timeout_s = timeout_s
        self.active: dict[str, dict[str, Any]] = {}
        self.resolved: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self.posts_ok = 0
        self.posts_failed = 0

    def submit(self, doc: dict[str, Any]) -> None:
        fp = doc["fingerprint"]
        if doc["status"] == "firing":
            self.active[fp] = to_alertmanager(doc)
            self.resolved.pop(fp, None)
        else:
            self.active.pop(fp, None)
            self.resolved[fp] = to_alertmanager(doc)
        self._wake.set()

    def keep_active(self, doc: dict[str, Any]) -> None:
        """A firing alert found in state (e.g. after a restart): keep posting it."""
        if doc["fingerprint"] not in self.active:
            self.active[doc["fingerprint"]] = to_alertmanager(doc)
            self._wake.set()

    async def submit_bytes(self, value: bytes) -> None:
        self.submit(orjson.loads(value))

    async def post_once(self, session: aiohttp.ClientSession) -> bool:
        batch = [*self.active.values(), *self.resolved.values()]
        if not batch:
            return True
        sent_resolved = set(self.resolved)
        try:
            async with session.post(
                self.endpoint,
                data=orjson.dumps(batch),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
        except Exception as exc:
            self.posts_failed += 1
            log.warning("alertmanager post to %s failed: %s", self.endpoint, exc)
            return False
        self.posts_ok += 1
        for fp in sent_resolved:
            self.resolved.pop(fp, None)
        return True

    async def run(self) -> None:
        backoff = 1.0
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.resend_s)
                self._wake.clear()
                if await self.post_once(session):
                    backoff = 1.0
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                    self._wake.set()  # retry

    def as_service(self) -> type[Service]:
        """A mode Service class for ``app.service()``: the loop runs (and
        stops) with the worker."""
        forwarder = self

        class AlertmanagerForwarding(Service):
            @Service.task
            async def _run(self) -> None:
                await forwarder.run()

        return AlertmanagerForwarding
