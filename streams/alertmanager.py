"""Forwarding alert events to Alertmanager (``POST /api/v2/alerts``).

The alerts topic stays the source of truth; this is a convenience for users
who route notifications with Alertmanager. Alertmanager expects a client to
keep re-sending every firing alert (otherwise it resolves it by itself after
``endsAt``/``resolve_timeout``) and to send each resolution at least once, so
the forwarder remembers:

* active alerts, re-posted every ``resend_interval_s`` (default 60 s) with
  ``endsAt`` = now + 4 intervals, like Prometheus: if this worker dies, its
  alerts expire a few minutes later instead of firing forever;
* resolved alerts, posted until Alertmanager has acknowledged them once.

New or changed alerts are posted at once. When Alertmanager is unreachable or
answers 5xx/429, posting is retried with exponential back-off (1 s doubling to
60 s by default); nothing is lost meanwhile except what exceeds ``max_alerts``.
An alert Alertmanager rejects as invalid (4xx) is dropped with a log line,
since re-sending it cannot succeed. No method raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429})


def _rfc3339(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _RejectedError(Exception):
    """Alertmanager refused the payload itself (a 4xx other than 408/429)."""


class AlertmanagerForwarder:
    """Posts alert events to one Alertmanager (or a load balancer in front of several)."""

    def __init__(
        self,
        url: str,
        *,
        resend_interval_s: float = 60.0,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        generator_url: str | None = None,
        max_alerts: int = 10_000,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"
        self.resend_interval_s = resend_interval_s
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.generator_url = generator_url
        self.max_alerts = max_alerts
        self._wall = wall_clock
        # fingerprint -> (version, postable alert); versions tell a post that
        # succeeded apart from a submit that replaced the alert meanwhile.
        self._active: dict[str, tuple[int, dict[str, Any]]] = {}
        self._resolved: dict[str, tuple[int, dict[str, Any]]] = {}
        self._unsent: set[str] = set()  # active alerts never posted in their current form
        self._version = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self.failed_posts_total = 0  # every failed attempt, for cx_alertmanager_post_failures_total
        self.dropped_total = 0  # alerts Alertmanager refused
        self._retry_at = 0.0  # loop time; 0 = not backing off
        self._next_resend = 0.0  # loop time of the next periodic re-post of active alerts

    # -- feeding ----------------------------------------------------------------

    def submit(self, event: Mapping[str, Any]) -> None:
        """Record one alert event (contract section 6). Returns at once."""
        try:
            self._submit(event)
        except Exception as exc:  # a malformed event must not stop the pipeline
            log.warning(
                "alertmanager: ignoring a malformed alert event: %s: %s", type(exc).__name__, exc
            )
            return
        self._wake.set()

    async def submit_bytes(self, data: bytes) -> None:
        """``submit`` for an alert event as published on the alerts topic."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            log.warning("alertmanager: ignoring an alert event that is not JSON: %s", exc)
            return
        if isinstance(doc, Mapping):
            self.submit(doc)
        else:
            log.warning("alertmanager: ignoring an alert event that is not a JSON object")

    def _submit(self, event: Mapping[str, Any]) -> None:
        labels = {str(k): str(v) for k, v in event["labels"].items()}
        annotations = {str(k): str(v) for k, v in (event.get("annotations") or {}).items()}
        fp = str(event.get("fingerprint") or _label_key(labels))
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": str(event["startsAt"]),
        }
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        self._version += 1
        if event.get("status") == "resolved":
            alert["endsAt"] = str(event.get("endsAt") or _rfc3339(self._wall()))
            self._active.pop(fp, None)
            self._unsent.discard(fp)
            self._resolved[fp] = (self._version, alert)
            _bound(self._resolved, self.max_alerts, "resolved")
        else:
            self._resolved.pop(fp, None)  # fired again before its resolution went out
            current = self._active.get(fp)
            if current is not None and current[1] == alert:
                return  # a repeat (e.g. a re-sync) changes nothing
            self._active[fp] = (self._version, alert)
            self._unsent.add(fp)
            for dropped in _bound(self._active, self.max_alerts, "active"):
                self._unsent.discard(dropped)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the background posting loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        self._task = asyncio.create_task(self._run(), name="alertmanager-forwarder")
        log.info("alertmanager: forwarding alerts to %s", self.endpoint)

    async def stop(self) -> None:
        """Stop the loop; one last attempt to deliver pending resolutions."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=self.timeout_s + 1)
            except TimeoutError:
                log.warning("alertmanager: forwarding loop did not stop in time; cancelled")
            except Exception:  # the loop itself never raises; belt and braces
                log.exception("alertmanager: forwarding loop failed")
        if self._resolved:
            # Resolutions are the one thing Alertmanager cannot infer soon
            # enough (it would wait for endsAt); firing ones expire on their own.
            await self._post_now(include_active=False)
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    async def flush(self) -> bool:
        """Post every active and resolved alert now, ignoring back-off.
        True when Alertmanager accepted them (or there was nothing to post)."""
        return await self._post_now(include_active=True)

    def as_service(self) -> Any:
        """A ``mode.Service`` that starts and stops this forwarder with a Faust app."""
        from mode import Service

        forwarder = self

        class AlertmanagerService(Service):
            async def on_start(self) -> None:
                await forwarder.start()

            async def on_stop(self) -> None:
                await forwarder.stop()

        return AlertmanagerService()

    # -- state for tests and health ----------------------------------------------

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def pending_resolved_count(self) -> int:
        return len(self._resolved)

    @property
    def failing(self) -> bool:
        """Whether the last attempt to post failed."""
        return self._failures > 0

    # -- posting ------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if self._stopping:
                return
            now = loop.time()
            resend_due = bool(self._active) and now >= self._next_resend
            if now >= self._retry_at and (self._unsent or self._resolved or resend_due):
                try:
                    await self._post_due(resend_all=resend_due)
                except Exception:  # a bug here must not end forwarding for good
                    log.exception("alertmanager: unexpected error while posting")
                    self._backoff(loop.time())
                continue
            wake_at = self._retry_at if self._retry_at > now else self._next_resend
            timeout = None if not self._active and self._retry_at <= now else wake_at - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _post_due(self, resend_all: bool) -> None:
        async with self._lock:
            active = list(self._active) if resend_all else sorted(self._unsent)
            ok = await self._post(active, list(self._resolved))
        if ok and resend_all:
            self._next_resend = asyncio.get_running_loop().time() + self.resend_interval_s

    async def _post_now(self, include_active: bool) -> bool:
        try:
            async with self._lock:
                active = list(self._active) if include_active else []
                ok = await self._post(active, list(self._resolved))
            if ok and include_active:
                self._next_resend = asyncio.get_running_loop().time() + self.resend_interval_s
            return ok
        except Exception:
            log.exception("alertmanager: unexpected error while posting")
            return False

    async def _post(self, active_fps: list[str], resolved_fps: list[str]) -> bool:
        """Post the named alerts; updates bookkeeping; True on success."""
        loop = asyncio.get_running_loop()
        ends_at = _rfc3339(self._wall() + 4 * self.resend_interval_s)
        batch: list[tuple[str, str, int, dict[str, Any]]] = []  # (kind, fp, version, alert)
        for fp in active_fps:
            if fp in self._active:
                version, alert = self._active[fp]
                batch.append(("active", fp, version, {**alert, "endsAt": ends_at}))
        for fp in resolved_fps:
            if fp in self._resolved:
                version, alert = self._resolved[fp]
                batch.append(("resolved", fp, version, alert))
        if not batch:
            return True
        try:
            await self._send([alert for *_, alert in batch])
        except _RejectedError as exc:
            if len(batch) == 1:
                self._drop(batch[0][0], batch[0][1], batch[0][2], str(exc))
                self._recovered()  # Alertmanager answered: it is reachable
                return True
            # One bad alert must not block the others: post them one by one.
            ok = True
            for kind, fp, version, alert in batch:
                try:
                    await self._send([alert])
                except _RejectedError as one:
                    self._drop(kind, fp, version, str(one))
                    continue
                except Exception as one:
                    self._failed(loop.time(), one)
                    ok = False
                    break
                self._acknowledged(kind, fp, version)
            if ok:
                self._recovered()
            return ok
        except Exception as exc:
            self._failed(loop.time(), exc)
            return False
        for kind, fp, version, _ in batch:
            self._acknowledged(kind, fp, version)
        self._recovered()
        return True

    async def _send(self, alerts: list[dict[str, Any]]) -> None:
        session = self._session
        if session is None or session.closed:
            # flush() before start(), or after stop(): a short-lived session.
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as temp:
                await self._send_with(temp, alerts)
            return
        await self._send_with(session, alerts)

    async def _send_with(
        self, session: aiohttp.ClientSession, alerts: list[dict[str, Any]]
    ) -> None:
        async with session.post(self.endpoint, json=alerts) as resp:
            if 200 <= resp.status < 300:
                return
            body = (await resp.text())[:300].strip()
            if 400 <= resp.status < 500 and resp.status not in _RETRY_STATUSES:
                raise _RejectedError(f"HTTP {resp.status}: {body}")
            raise RuntimeError(f"HTTP {resp.status}: {body}")

    def _acknowledged(self, kind: str, fp: str, version: int) -> None:
        if kind == "active":
            current = self._active.get(fp)
            if current is not None and current[0] == version:
                self._unsent.discard(fp)
        else:
            current = self._resolved.get(fp)
            if current is not None and current[0] == version:
                del self._resolved[fp]

    def _drop(self, kind: str, fp: str, version: int, reason: str) -> None:
        log.warning("alertmanager: rejected alert %s (%s), dropping it: %s", fp, kind, reason)
        self.dropped_total += 1
        store = self._active if kind == "active" else self._resolved
        current = store.get(fp)
        if current is not None and current[0] == version:
            del store[fp]
            self._unsent.discard(fp)

    def _failed(self, now: float, exc: BaseException) -> None:
        self.failed_posts_total += 1
        delay = self._backoff(now)
        reason = f"{type(exc).__name__}: {exc}".strip()
        # One warning when posting starts failing, then quietly retry: a down
        # Alertmanager must not flood the worker's log.
        if self._failures == 1:
            log.warning(
                "alertmanager: cannot post to %s (%s); retrying with back-off",
                self.endpoint,
                reason[:200],
            )
        else:
            log.debug(
                "alertmanager: attempt %d failed (%s); next in %.1fs",
                self._failures,
                reason[:200],
                delay,
            )

    def _backoff(self, now: float) -> float:
        self._failures += 1
        doublings = min(self._failures - 1, 30)  # no float overflow after days of failures
        delay = min(self.backoff_max_s, self.backoff_initial_s * 2.0**doublings)
        # Jitter so that several workers do not retry in lock-step.
        delay *= random.uniform(0.8, 1.0)
        self._retry_at = now + delay
        return delay

    def _recovered(self) -> None:
        if self._failures:
            log.info("alertmanager: posting to %s works again", self.endpoint)
        self._failures = 0
        self._retry_at = 0.0


def _label_key(labels: Mapping[str, str]) -> str:
    return json.dumps(sorted(labels.items()), separators=(",", ":"))


def _bound(store: dict[str, tuple[int, dict[str, Any]]], limit: int, what: str) -> list[str]:
    """Drop the oldest entries beyond ``limit`` (memory stays bounded when
    Alertmanager is down for long); returns the dropped fingerprints."""
    dropped: list[str] = []
    while len(store) > limit:
        fp = next(iter(store))
        del store[fp]
        dropped.append(fp)
    if dropped:
        log.warning("alertmanager: over %d %s alerts; dropped %d oldest", limit, what, len(dropped))
    return dropped
