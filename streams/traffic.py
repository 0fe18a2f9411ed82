"""Realistic synthetic CX traffic for the demo, the benchmarks and `cxstream generate`.

Tickets arrive at many support desks (every channel x team pair, each with
its own share of the volume and its own quality), more of them in the working
hours of a time zone; they get bot, agent and customer replies, resolve,
sometimes reopen; customers answer NPS, CSAT and CES surveys, usually linked
to their ticket. Incidents on demand make one desk's customers unhappy and
its first responses slow for a while, then let it recover. Deterministic for
a given seed: the same seed and arguments give the same events.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.errors import CxError

CHANNELS = ("email", "chat", "phone", "web", "social")
TEAMS = ("billing", "support", "onboarding", "sales", "technical")
PRIORITIES = (("low", 0.2), ("normal", 0.6), ("high", 0.15), ("urgent", 0.05))
_PRIO_NAMES = tuple(p for p, _ in PRIORITIES)
_PRIO_CUM = tuple(math.fsum(w for _, w in PRIORITIES[: i + 1]) for i in range(len(PRIORITIES)))
_COMMENTS = ("Took far too long.", "Nobody answered my question.", "Had to explain twice.")
_INCIDENT_KEYS = ("channel", "team")
#: share of an incident's tickets answered from a backlog hours old: enough to
#: lift the desk's first-response p90 over 4 h, few enough that the recovery's
#: fast replies bring it back down within minutes
BACKLOG_SHARE = 0.2

_day_prefix: dict[int, str] = {}


def rfc3339(ts_s: float) -> str:
    """UTC RFC 3339 with microseconds; fast (the date part is cached per day)."""
    micros = round(ts_s * 1_000_000)
    day, us_of_day = divmod(micros, 86_400_000_000)
    prefix = _day_prefix.get(day)
    if prefix is None:
        prefix = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y-%m-%dT")
        _day_prefix[day] = prefix
    secs, us = divmod(us_of_day, 1_000_000)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{prefix}{h:02d}:{m:02d}:{s:02d}.{us:06d}Z"


def _clamp(lo: int, hi: int, x: float) -> int:
    return min(hi, max(lo, round(x)))


@dataclass(frozen=True)
class Incident:
    """A desk in trouble from start_s to end_s (seconds since the epoch).

    While it lasts, the matching desks get `volume` times their contacts, the
    customers are unhappy and a share of the first replies (BACKLOG_SHARE)
    answer contacts hours old.
    For `recovery` times its length afterwards the volume stays raised with
    normal quality and fast replies (the desk clears its queue and customers
    come back), which is what brings the rolling windows back above the
    alert thresholds.
    """

    match: Mapping[str, str]
    start_s: float
    end_s: float
    volume: float = 3.0
    recovery: float = 3.0

    @classmethod
    def parse(
        cls,
        text: str,
        start_s: float,
        end_s: float,
        channels: Sequence[str] = CHANNELS,
        teams: Sequence[str] = TEAMS,
    ) -> Incident:
        """'team=billing,channel=email' -> an incident on that desk (or desks)."""
        match: dict[str, str] = {}
        known = {"channel": channels, "team": teams}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip().lower()
            if not sep or key not in known:
                raise CxError(f"--incident: {part!r} is not channel=NAME or team=NAME")
            if value not in known[key]:
                raise CxError(
                    f"--incident: unknown {key} {value!r} (one of {', '.join(known[key])})"
                )
            match[key] = value
        if not match:
            raise CxError("--incident: expected team=NAME and/or channel=NAME")
        if end_s <= start_s:
            raise CxError("--incident: the incident must last longer than 0 s")
        return cls(match, start_s, end_s)

    def matches(self, channel: str, team: str) -> bool:
        return (
            self.match.get("channel", channel) == channel and self.match.get("team", team) == team
        )

    def phase(self, channel: str, team: str, t: float) -> str | None:
        """'incident', 'recovery' or None for a ticket of that desk created at t."""
        if not self.matches(channel, team):
            return None
        if self.start_s <= t < self.end_s:
            return "incident"
        if self.end_s <= t < self.end_s + self.recovery * (self.end_s - self.start_s):
            return "recovery"
        return None

    @property
    def label(self) -> str:
        return ",".join(f"{k}={self.match[k]}" for k in _INCIDENT_KEYS if k in self.match)


@dataclass(frozen=True)
class Seasonality:
    """Contact volume by local time: working hours busiest, nights and weekends quiet.

    Multipliers are relative to a working-hours peak of 1.0; `mean` is their
    average over a week, so a mean rate can be turned into a peak rate.
    """

    timezone: str = "UTC"
    open_hour: int = 8
    close_hour: int = 18
    shoulder: float = 0.45  # two hours either side of working hours
    night: float = 0.12
    weekend: float = 0.35

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CxError(f"--timezone: unknown IANA time zone {self.timezone!r}") from None

    def hourly(self, weekday: int, hour: int) -> float:
        if self.open_hour <= hour < self.close_hour:
            level = 1.0
        elif self.open_hour - 2 <= hour < self.close_hour + 2:
            level = self.shoulder
        else:
            level = self.night
        return level * (self.weekend if weekday >= 5 else 1.0)

    @property
    def mean(self) -> float:
        return sum(self.hourly(d, h) for d in range(7) for h in range(24)) / 168


class _SeasonCache:
    """Multiplier lookups per quarter hour (zone offsets are whole quarters)."""

    def __init__(self, season: Seasonality) -> None:
        self.season = season
        self.zone = ZoneInfo(season.timezone)
        self.cache: dict[int, float] = {}

    def at(self, t: float) -> float:
        slot = int(t // 900)
        value = self.cache.get(slot)
        if value is None:
            local = dt.datetime.fromtimestamp(slot * 900, self.zone)
            value = self.season.hourly(local.weekday(), local.hour)
            self.cache[slot] = value
        return value


@dataclass(frozen=True)
class Desk:
    """One channel x team pair: its share of the volume and its quality."""

    channel: str
    team: str
    weight: float
    mood: float  # added to the mean survey scores (in NPS points; scaled for CSAT/CES)
    speed: float  # multiplies first-response times


@dataclass
class TrafficGenerator:
    """Yields event documents whose occurred_at follows `now` (seconds)."""

    seed: int = 7
    #: a team/channel in trouble (slow, unhappy) makes dashboards interesting
    troubled: tuple[str, str] = ("chat", "billing")
    channels: Sequence[str] = CHANNELS
    teams: Sequence[str] = TEAMS
    #: None: a flat rate; otherwise volume follows that zone's working hours
    seasonality: Seasonality | None = field(default_factory=Seasonality)
    incidents: Sequence[Incident] = ()
    #: event ids are f"{prefix}-{seed}-{n}"; another prefix gives another id space
    id_prefix: str = ""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.counter = 0
        self.desks = self._desks()
        self._desk_cum = [0.0] * len(self.desks)
        acc = 0.0
        for i, d in enumerate(self.desks):
            acc += d.weight
            self._desk_cum[i] = acc
        self._season = _SeasonCache(self.seasonality) if self.seasonality else None

    def _desks(self) -> list[Desk]:
        # A separate stream, so the desks do not shift with the traffic's draws.
        rng = random.Random(f"desks-{self.seed}")
        desks = []
        for channel in self.channels:
            for team in self.teams:
                desks.append(
                    Desk(
                        channel,
                        team,
                        weight=rng.lognormvariate(0, 0.5),
                        mood=rng.gauss(0, 0.5),
                        speed=rng.lognormvariate(0, 0.25),
                    )
                )
        total = sum(d.weight for d in desks)
        return [Desk(d.channel, d.team, d.weight / total, d.mood, d.speed) for d in desks]

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{self.id_prefix}{prefix}-{self.seed}-{self.counter}"

    def _pick_desk(self) -> Desk:
        x = self.rng.random() * self._desk_cum[-1]
        lo, hi = 0, len(self._desk_cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._desk_cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return self.desks[lo]

    def _phase(self, desk: Desk, t: float) -> str | None:
        for incident in self.incidents:
            phase = incident.phase(desk.channel, desk.team, t)
            if phase is not None:
                return phase
        return None

    def ticket_story(self, start_s: float) -> list[dict[str, Any]]:
        """All events of one ticket, times relative to start_s (may lie in the future)."""
        return [ev for _, ev in self.timed_story(start_s)]

    def timed_story(
        self, start_s: float, desk: Desk | None = None
    ) -> list[tuple[float, dict[str, Any]]]:
        """(occurred_at seconds, event) of one ticket arriving at start_s."""
        rng = self.rng
        desk = desk or self._pick_desk()
        channel, team = desk.channel, desk.team
        phase = self._phase(desk, start_s)
        troubled = (channel, team) == self.troubled
        unhappy = troubled or phase == "incident"
        ticket_id = self._id("T")
        r = rng.random()
        prio = _PRIO_NAMES[next(i for i, c in enumerate(_PRIO_CUM) if r < c or i == 3)]
        t = start_s
        created = t
        if phase == "incident" and rng.random() < BACKLOG_SHARE:
            # A backlog: the contact came in hours ago and is answered only now.
            created = t - rng.uniform(4.5, 7.0) * 3600
        out: list[tuple[float, dict[str, Any]]] = [
            (
                created,
                {
                    "event_id": self._id("e"),
                    "type": "ticket.created",
                    "occurred_at": rfc3339(created),
                    "ticket_id": ticket_id,
                    "channel": channel,
                    "team": team,
                    "priority": prio,
                },
            )
        ]

        def add(kind: str, at: float, **extra: Any) -> None:
            doc = {
                "event_id": self._id("e"),
                "type": kind,
                "occurred_at": rfc3339(at),
                "ticket_id": ticket_id,
            }
            doc.update(extra)
            out.append((at, doc))

        if rng.random() < 0.5:
            add("ticket.replied", created + rng.uniform(1, 10), author="bot")
        if phase is not None:
            # Incident and recovery tickets share one known cause: a canned
            # answer within minutes, a quick close, a survey soon after.
            t += rng.uniform(10, 90)
        else:
            # ~11 min median; ~80 min at the troubled desk
            t += rng.lognormvariate(6.5 if not troubled else 8.5, 0.8) * desk.speed
        add("ticket.replied", t, author="agent")
        if rng.random() < (0.6 if unhappy else 0.3):
            t += rng.uniform(10, 60) if phase else rng.lognormvariate(6, 0.7)
            add("ticket.replied", t, author="customer")
            t += rng.uniform(10, 60) if phase else rng.lognormvariate(6, 0.7)
            add("ticket.replied", t, author="agent")
        t += rng.uniform(10, 40) if phase else rng.lognormvariate(6.5, 0.9)
        add("ticket.resolved", t)
        if rng.random() < 0.08:
            t += rng.lognormvariate(7, 0.8)
            add("ticket.reopened", t)
            t += rng.lognormvariate(6.5, 0.8)
            add("ticket.resolved", t)
        if rng.random() < (0.85 if phase else 0.6):
            t += rng.uniform(10, 30) if phase else rng.uniform(30, 600)
            out.append((t, self._survey(ticket_id, desk, phase, troubled, t)))
        return out

    def _survey(
        self, ticket_id: str, desk: Desk, phase: str | None, troubled: bool, t: float
    ) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choices(["survey.nps", "survey.csat", "survey.ces"], [0.5, 0.35, 0.15])[0]
        # Customers whose problem was fixed quickly after an incident are
        # happier than usual; during one, far less happy.
        mood = desk.mood + {"incident": -3.3, "recovery": 2.0, None: 0.0}[phase]
        if troubled and phase is None:
            mood -= 3.8
        if kind == "survey.nps":
            score = _clamp(0, 10, rng.gauss(8.3 + mood, 2))
        elif kind == "survey.csat":
            score = _clamp(1, 5, rng.gauss(4.2 + mood / 2.5, 0.9))
        else:
            score = _clamp(1, 7, rng.gauss(5.6 + mood / 1.7, 1.2))
        survey: dict[str, Any] = {
            "event_id": self._id("s"),
            "type": kind,
            "occurred_at": rfc3339(t),
            "ticket_id": ticket_id,
            "score": score,
            "respondent_id": f"cust-{rng.randrange(100000)}",
        }
        # Survey tools wired to the desk usually copy the ticket's dimensions;
        # without them a survey processed before its ticket.created would
        # count as unknown/unknown.
        if rng.random() < 0.9:
            survey["channel"], survey["team"] = desk.channel, desk.team
        if kind == "survey.nps" and score <= 6 and rng.random() < 0.5:
            survey["comment"] = rng.choice(_COMMENTS)
        return survey

    def season_mean(self, start_s: float, end_s: float) -> float:
        """The mean volume multiplier between two instants (1.0 without seasonality)."""
        if self._season is None or end_s <= start_s:
            return 1.0
        steps = max(1, int((end_s - start_s) // 900))
        width = (end_s - start_s) / steps
        return sum(self._season.at(start_s + (i + 0.5) * width) for i in range(steps)) / steps

    def arrivals(
        self, start_s: float, tickets_per_s: float, mean: float | None = None
    ) -> Iterator[tuple[float, Desk]]:
        """Ticket arrival times and desks, forever: a Poisson process shaped by
        the seasonality (thinning) with `tickets_per_s` as its mean, plus the
        extra contacts of incidents. `mean` is the multiplier's mean over the
        period the rate is meant for (default: over a week)."""
        rng = self.rng
        season = self._season
        if mean is None:
            mean = self.seasonality.mean if self.seasonality else 1.0
        peak = tickets_per_s / mean
        t = start_s
        while True:
            t += rng.expovariate(peak)
            if season is not None and rng.random() >= season.at(t):
                continue
            desk = self._pick_desk()
            yield t, desk
            if self.incidents and self._phase(desk, t) is not None:
                extra = next(i.volume for i in self.incidents if i.matches(desk.channel, desk.team))
                n = int(extra - 1) + (rng.random() < (extra - 1) % 1)
                for _ in range(n):
                    yield t + rng.uniform(0, 1 / peak), desk

    def stream(
        self, start_s: float, tickets_per_s: float
    ) -> Iterator[tuple[float, dict[str, Any]]]:
        """(occurred_at seconds, event) in arrival order, forever.

        Events come out when their occurred_at is reached; an incident's
        backlog tickets carry a ticket.created from hours before.
        """
        heap: list[tuple[float, int, dict[str, Any]]] = []
        seq = 0
        for t, desk in self.arrivals(start_s, tickets_per_s):
            for occurred, ev in self.timed_story(t, desk):
                heapq.heappush(heap, (occurred, seq, ev))
                seq += 1
            while heap and heap[0][0] <= t:
                occurred, _, ev = heapq.heappop(heap)
                yield occurred, ev
