"""Realistic synthetic CX traffic for the demo and benchmarks.

Tickets arrive on a few channels and teams, get bot, agent and customer
replies, resolve, sometimes reopen; customers answer NPS, CSAT and CES
surveys, usually linked to their ticket. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHANNELS = ("email", "chat", "phone", "web")
TEAMS = ("billing", "support", "onboarding", "sales")
PRIORITIES = (("low", 0.2), ("normal", 0.6), ("high", 0.15), ("urgent", 0.05))


def rfc3339(ts_s: float) -> str:
    return dt.datetime.fromtimestamp(ts_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class TrafficGenerator:
    """Yields event documents whose occurred_at follows `now` (seconds)."""

    seed: int = 7
    #: a team/channel in trouble (slow, unhappy) makes dashboards interesting
    troubled: tuple[str, str] = ("chat", "billing")

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.counter = 0

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.seed}-{self.counter}"

    def ticket_story(self, start_s: float) -> list[dict[str, Any]]:
        """All events of one ticket, times relative to start_s (may lie in the future)."""
        rng = self.rng
        channel = rng.choice(CHANNELS)
        team = rng.choice(TEAMS)
        troubled = (channel, team) == self.troubled
        ticket_id = self._id("T")
        prio = rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
        t = start_s
        events: list[dict[str, Any]] = [
            {
                "event_id": self._id("e"),
                "type": "ticket.created",
                "occurred_at": rfc3339(t),
                "ticket_id": ticket_id,
                "channel": channel,
                "team": team,
                "priority": prio,
            }
        ]

        def reply(author: str, at: float) -> None:
            events.append(
                {
                    "event_id": self._id("e"),
                    "type": "ticket.replied",
                    "occurred_at": rfc3339(at),
                    "ticket_id": ticket_id,
                    "author": author,
                }
            )

        if rng.random() < 0.5:
            reply("bot", t + rng.uniform(1, 10))
        frt = rng.lognormvariate(6.5 if not troubled else 8.5, 0.8)  # ~11 min vs ~80 min
        t += frt
        reply("agent", t)
        customer_back = rng.random() < (0.3 if not troubled else 0.6)
        if customer_back:
            t += rng.lognormvariate(6, 0.7)
            reply("customer", t)
            t += rng.lognormvariate(6, 0.7)
            reply("agent", t)
        t += rng.lognormvariate(6.5, 0.9)
        events.append(
            {
                "event_id": self._id("e"),
                "type": "ticket.resolved",
                "occurred_at": rfc3339(t),
                "ticket_id": ticket_id,
            }
        )
        if rng.random() < 0.08:
            t += rng.lognormvariate(7, 0.8)
            events.append(
                {
                    "event_id": self._id("e"),
                    "type": "ticket.reopened",
                    "occurred_at": rfc3339(t),
                    "ticket_id": ticket_id,
                }
            )
            t += rng.lognormvariate(6.5, 0.8)
            events.append(
                {
                    "event_id": self._id("e"),
                    "type": "ticket.resolved",
                    "occurred_at": rfc3339(t),
                    "ticket_id": ticket_id,
                }
            )
        if rng.random() < 0.6:
            t += rng.uniform(30, 600)
            kind = rng.choices(["survey.nps", "survey.csat", "survey.ces"], [0.5, 0.35, 0.15])[0]
            if kind == "survey.nps":
                score = min(10, max(0, round(rng.gauss(8.3 if not troubled else 4.5, 2))))
            elif kind == "survey.csat":
                score = min(5, max(1, round(rng.gauss(4.2 if not troubled else 2.6, 0.9))))
            else:
                score = min(7, max(1, round(rng.gauss(5.6 if not troubled else 3.4, 1.2))))
            survey: dict[str, Any] = {
                "event_id": self._id("s"),
                "type": kind,
                "occurred_at": rfc3339(t),
                "ticket_id": ticket_id,
                "score": score,
                "respondent_id": f"cust-{rng.randrange(100000)}",
            }
            # Survey tools wired to the desk usually copy the ticket's
            # dimensions; without them a survey processed before its
            # ticket.created would count as unknown/unknown.
            if rng.random() < 0.9:
                survey["channel"], survey["team"] = channel, team
            if kind == "survey.nps" and score <= 6 and rng.random() < 0.5:
                survey["comment"] = rng.choice(
                    ["Took far too long.", "Nobody answered my question.", "Had to explain twice."]
                )
            events.append(survey)
        return events

    def stream(
        self, start_s: float, tickets_per_s: float
    ) -> Iterator[tuple[float, dict[str, Any]]]:
        """(occurred_at seconds, event) in occurred order, forever."""
        import heapq

        heap: list[tuple[float, int, dict[str, Any]]] = []
        seq = 0
        t = start_s
        while True:
            t += self.rng.expovariate(tickets_per_s)
            for ev in self.ticket_story(t):
                occurred = dt.datetime.fromisoformat(ev["occurred_at"]).timestamp()
                heapq.heappush(heap, (occurred, seq, ev))
                seq += 1
            while heap and heap[0][0] <= t:
                occurred, _, ev = heapq.heappop(heap)
                yield occurred, ev
