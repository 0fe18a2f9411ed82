"""The load driver: its own process, apart from the workers it loads.

    python bench/driver.py prefill --bootstrap B --prefix P --events N --seed S --out F
    python bench/driver.py keys    --bootstrap B --prefix P --keys K --out F
    python bench/driver.py rate    --bootstrap B --prefix P --rate R --seconds D --out F
                                   [--keys K] [--probe-every N] [--alert-every N]

``prefill`` sends n demo-mix events and writes the counts any correct
processor must publish for them; ``keys`` sends events that fill every bucket
of every window of K (channel, team) keys; ``rate`` sends events stamped now
at a constant rate, with latency probes whose send times it writes out.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BatchProducer,
    BenchTopics,
    expected_counts,
    generate_events,
    produce,
    route,
)

DAY = 86_400
#: the configured windows (cxstream's defaults) and their bucket widths (W/60)
WINDOWS_S = (3_600, DAY, 7 * DAY, 30 * DAY)
#: the (channel, team) of latency probes and of detractor-alert probes
PROBE_DIMS = ("bench", "probe")
ALERT_DIMS = ("bench", "alert")


def rfc3339(ts_s: float) -> str:
    from streams.traffic import rfc3339 as fmt

    return fmt(ts_s)


def key_dims(k: int) -> tuple[str, str]:
    """The k-th of the benchmark's (channel, team) keys: 20 channels x 50
    teams, inside the default cap of 100 values per label."""
    return f"ch{k % 20:02d}", f"team{k // 20:02d}"


def cmd_prefill(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    events = generate_events(args.events, args.seed)
    gen_s = time.perf_counter() - t0
    expected = expected_counts(events)
    topics = BenchTopics(args.prefix)
    prod_s = produce(args.bootstrap, topics, events)
    return {"events": len(events), "generate_s": gen_s, "produce_s": prod_s, "expected": expected}


def fill_events(keys: int, now_s: float, seed: int = 5) -> list[bytes]:
    """Tickets and surveys that place an observation in every bucket of every
    window of each key. A key's placements (one per bucket, newest buckets of
    the long windows being covered by the short ones) are taken in time order
    three at a time: the first agent reply, the resolution and a survey of one
    ticket, created a random while before its reply, so first-response and
    resolution sketches see spread-out durations."""
    rng = random.Random(seed)
    out: list[bytes] = []
    kinds = ("survey.nps", "survey.csat", "survey.ces")
    for k in range(keys):
        channel, team = key_dims(k)
        placements: set[float] = set()
        for w in WINDOWS_S:
            width = w / 60
            for b in range(60):
                t = now_s - 60 - (b + rng.uniform(0.05, 0.95)) * width
                if t > now_s - w + width:  # never at the window's sliding old edge
                    placements.add(t)
        times = sorted(placements)
        for i in range(0, len(times) - 2, 3):
            reply_t, resolved_t, survey_t = times[i : i + 3]
            created_t = reply_t - rng.lognormvariate(6.5, 1.2)
            tid = f"K{k}-{i}"
            kind = kinds[(i // 3) % 3]
            score = {"survey.nps": rng.randint(0, 10), "survey.csat": rng.randint(1, 5)}.get(
                kind, rng.randint(1, 7)
            )
            docs: list[dict[str, Any]] = [
                {"event_id": f"{tid}-c", "type": "ticket.created", "occurred_at": rfc3339(created_t),
                 "ticket_id": tid, "channel": channel, "team": team, "priority": "normal"},
                {"event_id": f"{tid}-r", "type": "ticket.replied", "occurred_at": rfc3339(reply_t),
                 "ticket_id": tid, "author": "agent"},
                {"event_id": f"{tid}-s", "type": "ticket.resolved",
                 "occurred_at": rfc3339(resolved_t), "ticket_id": tid},
                {"event_id": f"{tid}-v", "type": kind, "occurred_at": rfc3339(survey_t),
                 "ticket_id": tid, "score": score, "channel": channel, "team": team},
            ]  # fmt: skip
            out.extend(orjson.dumps(d) for d in docs)
    return out


def cmd_keys(args: argparse.Namespace) -> dict[str, Any]:
    events = fill_events(args.keys, time.time())
    prod_s = produce(args.bootstrap, BenchTopics(args.prefix), events)
    return {"events": len(events), "produce_s": prod_s, "expected": expected_counts(events)}


class Stories:
    """Demo-mix ticket stories, interleaved, each event stamped when it is sent."""

    def __init__(self, seed: int, keys: int, active: int = 200) -> None:
        from streams.traffic import TrafficGenerator

        self.gen = TrafficGenerator(seed=seed)
        self.rng = random.Random(seed)
        self.keys = keys
        self.pool: list[list[dict[str, Any]]] = [self._story() for _ in range(active)]

    def _story(self) -> list[dict[str, Any]]:
        story = self.gen.ticket_story(0.0)
        if self.keys:
            channel, team = key_dims(self.rng.randrange(self.keys))
            for ev in story:
                if "channel" in ev:
                    ev["channel"], ev["team"] = channel, team
                ev.pop("comment", None)
        story.reverse()
        return story

    def next(self, now_s: float) -> dict[str, Any]:
        i = self.rng.randrange(len(self.pool))
        story = self.pool[i]
        ev = story.pop()
        if not story:
            self.pool[i] = self._story()
        ev["occurred_at"] = rfc3339(now_s)
        return ev


def cmd_rate(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_rate(args))


async def _rate(args: argparse.Namespace) -> dict[str, Any]:
    """Every few milliseconds, send what is due by then. Probe send times are
    taken when their tick is sent, so batching is part of the latency."""
    topics = BenchTopics(args.prefix)
    stories = Stories(args.seed, args.keys)
    probes: list[float] = []
    alerts: dict[str, float] = {}
    sent = 0
    async with BatchProducer(args.bootstrap) as producer:
        t0 = time.time()
        end = t0 + args.seconds
        while (now := time.time()) < end:
            due = int((now - t0) * args.rate) + 1
            tick: list[tuple[str, bytes, bytes]] = []
            while sent < due:
                sent += 1
                if args.probe_every and sent % args.probe_every == 0:
                    tid = f"{args.prefix}-P{len(probes)}"
                    doc: dict[str, Any] = {
                        "event_id": tid, "type": "ticket.created", "occurred_at": rfc3339(now),
                        "ticket_id": tid, "channel": PROBE_DIMS[0], "team": PROBE_DIMS[1],
                    }  # fmt: skip
                    probes.append(now)
                elif args.alert_every and sent % args.alert_every == 0:
                    eid = f"{args.prefix}-A{len(alerts)}"
                    doc = {
                        "event_id": eid, "type": "survey.nps", "occurred_at": rfc3339(now),
                        "ticket_id": eid, "score": 1, "comment": "Nobody answered.",
                        "channel": ALERT_DIMS[0], "team": ALERT_DIMS[1],
                    }  # fmt: skip
                    alerts[eid] = now
                else:
                    doc = stories.next(now)
                raw = orjson.dumps(doc)
                tick.append((*route(topics, raw), raw))
            await producer.send(tick)
            if producer.pending > 5_000:
                await producer.flush()
            await asyncio.sleep(0.005)
    seconds = time.time() - t0
    return {"sent": sent, "started": t0, "seconds": seconds, "rate": sent / seconds, "probes": probes,
            "alerts": alerts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("prefill", "keys", "rate"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--prefix", required=True)
        p.add_argument("--out", required=True, type=Path)
        p.add_argument("--seed", type=int, default=11)
        p.add_argument("--keys", type=int, default=0)
        if name == "prefill":
            p.add_argument("--events", type=int, required=True)
        if name == "rate":
            p.add_argument("--rate", type=float, required=True)
            p.add_argument("--seconds", type=float, required=True)
            p.add_argument("--probe-every", type=int, default=0)
            p.add_argument("--alert-every", type=int, default=0)
    args = parser.parse_args()
    result = {"prefill": cmd_prefill, "keys": cmd_keys, "rate": cmd_rate}[args.cmd](args)
    args.out.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
