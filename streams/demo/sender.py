"""The demo's traffic: a few days of history as fast as the broker takes it,
then live events at their own time, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.traffic import Incident, Seasonality, TrafficGenerator

#: tickets per second in the history: thin, so it loads in seconds, yet
#: enough for every desk's 24h and 7d windows to pass the alert guards
HISTORY_TICKETS_PER_S = 0.03
#: mean events per ticket of the generator (for turning events/s into tickets/s)
EVENTS_PER_TICKET = 5.0


@dataclass
class Progress:
    history_total: int = 0
    history_sent: int = 0
    live_sent: int = 0
    phase: str = "starting"  # history, live, done, failed
    error: str = ""

    @property
    def sent(self) -> int:
        return self.history_sent + self.live_sent


def history(seed: int, days: float, timezone: str, now_s: float) -> list[dict[str, Any]]:
    """Events of the last `days`, in arrival order, shaped by working hours."""
    gen = TrafficGenerator(seed=seed, seasonality=Seasonality(timezone), id_prefix="h")
    out = []
    for occurred, ev in gen.stream(now_s - days * 86_400, HISTORY_TICKETS_PER_S):
        if occurred > now_s - 5:
            break
        out.append(ev)
    return out


@dataclass
class Sender:
    bootstrap: str
    tickets_topic: str
    surveys_topic: str
    seed: int
    rate: float
    history_events: list[dict[str, Any]]
    incidents: Sequence[Incident] = ()
    progress: Progress = field(default_factory=Progress)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.progress.history_total = len(self.history_events)
        self.thread = threading.Thread(target=self._run, name="demo-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(15)

    def _send(self, producer: Any, ev: dict[str, Any]) -> None:
        topic = self.tickets_topic if ev["type"].startswith("ticket.") else self.surveys_topic
        key = ev.get("ticket_id") or ev["event_id"]
        producer.send(topic, key=key.encode(), value=orjson.dumps(ev))

    def _run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, acks=1)
        except Exception as exc:
            self.progress.phase, self.progress.error = "failed", str(exc)
            return
        try:
            self.progress.phase = "history"
            for ev in self.history_events:
                if self.stopping.is_set():
                    return
                self._send(producer, ev)
                self.progress.history_sent += 1
            producer.flush()
            self.progress.phase = "live"
            # Live traffic at a flat rate: the demo should look alive at night too.
            gen = TrafficGenerator(
                seed=self.seed + 1, seasonality=None, incidents=self.incidents, id_prefix="l"
            )
            for occurred, ev in gen.stream(time.time(), self.rate / EVENTS_PER_TICKET):
                while not self.stopping.is_set() and occurred - time.time() > 0:
                    self.stopping.wait(min(occurred - time.time(), 0.5))
                if self.stopping.is_set():
                    return
                self._send(producer, ev)
                self.progress.live_sent += 1
        except Exception as exc:
            self.progress.phase, self.progress.error = "failed", str(exc)
        finally:
            try:
                producer.flush(10)
                producer.close(10)
            except Exception:
                pass
            if self.progress.phase != "failed":
                self.progress.phase = "done"
