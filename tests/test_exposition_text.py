"""The fast text exposition (streams/exposition/text.py) writes exactly what
prometheus_client's ``generate_latest`` writes: compared byte for byte on a
worker-like registry (window, counter and histogram families of real states
built by the stages from generated traffic, the pipeline's own metrics,
process and platform collectors) and on the cases it hands back to
prometheus_client (``_created`` samples, timestamps) or must escape."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import orjson
from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from streams.domain.clock import ManualClock
from streams.domain.confidence import WindowBounds
from streams.domain.model import Observation
from streams.domain.windows import obs_id
from streams.exposition.collectors import CxCollector, KeyView
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.exposition.text import generate
from streams.generate import generate as generate_events
from streams.pipeline.aggregate_stage import AggregateStage
from streams.pipeline.envelope import Provenance, dims_from_key
from streams.pipeline.ingest import Ingest
from streams.pipeline.records import Record
from streams.pipeline.tables import key_partition
from streams.pipeline.tickets_stage import TicketStage
from streams.settings import Settings


class NoAlerts:
    def evaluate(self, dims: Any, state: Any, now_us: int) -> list[dict[str, Any]]:
        return []

    def detractor(self, dims: Any, state: Any, response: Any, now_us: int) -> list[dict[str, Any]]:
        return []


class Frozen:
    """The families of one collection of a registry, collected again as they were."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.families = list(reg.collect())

    def collect(self) -> list[Any]:
        return self.families


def _states(n: int = 3000) -> tuple[list[Any], int]:
    """(key, state) pairs after n generated events went through the stages."""
    now_s = time.time()
    buf = io.BytesIO()
    generate_events(buf, n, seed=5, start_s=now_s - 3 * 86_400, end_s=now_s)
    events = buf.getvalue().splitlines()
    settings = Settings(partitions=4)
    metrics = PipelineMetrics(CollectorRegistry())
    clock = ManualClock(int(now_s * 1_000_000))
    route: list[list[Record]] = [[] for _ in range(4)]
    obs: list[list[Record]] = [[] for _ in range(4)]

    def put(topic: list[list[Record]], key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        p = key_partition(key, 4)
        topic[p].append(Record(key, value, headers, p, len(topic[p])))

    async def send_route(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        put(route, key, value, dict(headers))

    async def send_obs(key: bytes, value: bytes) -> None:
        put(obs, key, value, {})

    async def dead(*_: Any) -> None:
        pass

    ingest = Ingest(settings, metrics, send_route, dead)
    tickets = TicketStage(settings, metrics, {}, send_obs, dead, clock.now_us)
    aggregate = AggregateStage(settings, metrics, {}, NoAlerts(), dead, clock.now_us)

    async def go() -> None:
        for i, raw in enumerate(events):
            source = "tickets" if orjson.loads(raw)["type"].startswith("ticket.") else "surveys"
            await ingest.handle(Provenance(source, source, 0, i, None, clock.now_us()), raw)
        for part in route:
            await tickets.handle_batch(part)
        for part in obs:
            await aggregate.handle_batch(part)

    asyncio.run(go())
    return list(aggregate.snapshot_states(set(range(4)))), clock.now_us()


def test_a_worker_registry_is_written_byte_for_byte_as_prometheus_client_writes_it() -> None:
    states, now = _states()
    assert len(states) > 10  # many (channel, team) keys, every family present

    def views() -> list[KeyView]:
        return [
            KeyView(
                dims_from_key(k), s.windows(now), s.counters(now), {("CxNpsLow", "page"): 1}, now
            )
            for k, s in states
        ]

    reg = CollectorRegistry()
    reg.register(
        CxCollector(["channel", "team"], views, WindowBounds(0.95), business=True, sla=True)
    )
    PipelineMetrics(reg).table_writes.labels("windows").inc(3)
    reg.register(PROCESS_COLLECTOR)
    reg.register(PLATFORM_COLLECTOR)
    frozen = Frozen(reg)  # one collection for both (process CPU time moves on)
    want = generate_latest(frozen)
    assert want.count(b"\n") > 1000
    assert generate(frozen) == want
    assert generate(frozen) == want  # and again, from the caches


def test_escaping_created_samples_timestamps_and_other_types_match() -> None:
    reg = CollectorRegistry()
    c = Counter("demo_events", "Events with a \\ and a\nnewline.", ["team"], registry=reg)
    c.labels('a "quoted" \\ back\nslash').inc()  # _created samples: handed over whole
    Gauge("demo_gauge", "A gauge.", ["le"], registry=reg).labels("+Inf").set(float("nan"))
    Histogram("demo_seconds", "A histogram.", registry=reg).observe(0.3)
    Info("demo_build", "Build.", registry=reg).info({"version": "1.2"})

    class Stamped:
        def collect(self) -> list[Any]:
            fam = GaugeMetricFamily("demo_stamped", "With a timestamp.", labels=["k"])
            fam.add_metric(["v"], 1.5, timestamp=1_700_000_000.25)
            return [fam]

    reg.register(Stamped())
    assert generate(reg) == generate_latest(reg)


def test_a_name_selection_keeps_exactly_the_samples_prometheus_client_keeps() -> None:
    # prometheus_client's restricted_registry only reaches collectors that
    # describe their families, so the worker-like registry is compared with
    # its own per-family restriction; plain metrics with restricted_registry.
    reg = CollectorRegistry()
    c = Counter("demo_events", "Events.", ["team"], registry=reg)
    c.labels("a").inc(2)
    c.labels("b").inc()
    Histogram("demo_seconds", "A histogram.", registry=reg).observe(0.3)
    Gauge("demo_gauge", "A gauge.", registry=reg).set(4)
    for names in (
        {"demo_events_total"},
        {"demo_seconds_count", "demo_seconds_sum"},
        {"demo_events_total", "demo_gauge", "demo_seconds_bucket"},
        {"demo_events"},  # the family's name is not a sample's: nothing
        {"no_such_metric"},
    ):
        # restricted_registry visits collectors in set order: compare families.
        want = _families(generate_latest(reg.restricted_registry(names)))
        assert _families(generate(reg, names)) == want, names

    states, now = _states(800)
    views = [KeyView(dims_from_key(k), s.windows(now), s.counters(now), {}, now) for k, s in states]
    collector = CxCollector(["channel", "team"], lambda: views, WindowBounds(0.95))
    reg = _registry_of(collector)
    frozen = Frozen(reg)
    names = {"cx_tickets_created_total", "cx_nps_score", "cx_first_response_seconds_bucket"}

    class Restricted:
        def collect(self) -> list[Any]:
            kept = (m._restricted_metric(names) for m in frozen.families)
            return [m for m in kept if m is not None]

    want = generate_latest(Restricted())
    assert want.count(b"\n") > 100  # every one of the three families has samples
    assert {line.split(b" ")[2] for line in want.splitlines() if line.startswith(b"# TYPE")} == {
        b"cx_tickets_created_total",
        b"cx_nps_score",
        b"cx_first_response_seconds",
    }
    assert generate(frozen, names) == want
    # The collector asked for the selection builds only those families.
    with collector.selecting(frozenset(names)):
        built = list(reg.collect())
        assert generate(reg, names) == want
    assert sorted(m.name for m in built) == [
        "cx_first_response_seconds",
        "cx_nps_score",
        "cx_tickets_created",
    ]
    assert generate(reg) == generate(frozen)  # and everything again after it


def _families(text: bytes) -> list[bytes]:
    """A text exposition's families, each one byte-exact block, sorted."""
    return sorted(b"# HELP " + block for block in text.split(b"# HELP ")[1:])


def _registry_of(collector: Any) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(collector)
    return reg


DAY_US = 86_400 * 1_000_000


def test_a_full_scrape_reuses_unchanged_keys_and_renders_changed_ones_afresh() -> None:
    """The collector keeps each key's lines between full scrapes: after a key
    changes, the clock crosses a bucket edge or a key leaves, the page is
    still exactly what prometheus_client writes from the same snapshot, and
    only what changed was rendered again."""
    states, now = _states(800)
    clock = [now]
    shown = dict(states)

    def views() -> list[KeyView]:
        t = clock[0]
        return [
            KeyView(dims_from_key(k), s.windows(t), s.counters(t), {}, t, s.version)
            for k, s in shown.items()
        ]

    collector = CxCollector(["channel", "team"], views, WindowBounds(0.95))
    reg = _registry_of(collector)
    rendered: list[int] = []
    real_key_texts = collector._key_texts

    def counting_key_texts(writer: Any, view: KeyView) -> Any:
        rendered.append(1)  # one key's lines
        return real_key_texts(writer, view)

    collector._key_texts = counting_key_texts  # type: ignore[method-assign]

    def page() -> bytes:
        rendered.clear()
        frozen = Frozen(reg)
        got = generate(frozen)
        assert got == generate_latest(frozen)  # samples made from the same snapshot
        return got

    first = page()
    assert len(rendered) == len(shown) > 10
    assert page() == first and rendered == []  # nothing changed: every key reused

    key, state = states[0]
    assert state.apply(
        Observation("nps", dims_from_key(key), clock[0] - 1_000_000, 10, obs_id(99, 0, 0)),
        clock[0],
    )
    changed = page()
    assert len(rendered) == 1 and changed != first
    assert changed.count(b"\n") >= first.count(b"\n")

    # A day later, buckets have left the windows of keys with recent data:
    # exactly the keys whose windows changed are rendered again.
    moved = {k for k, s in shown.items() if s.windows(clock[0] + DAY_US) is not s.windows(clock[0])}
    clock[0] += DAY_US
    after_edge = page()
    assert 0 < len(rendered) == len(moved)

    gone = states[1][0]
    channel, team = dims_from_key(gone)
    pair = b'channel="%s",team="%s"' % (channel.encode(), team.encode())
    assert pair in after_edge
    del shown[gone]
    assert pair not in page() and rendered == []
    assert dims_from_key(gone) not in collector._cache  # forgotten, not kept
