"""Pipeline stages without Faust or a broker: dict tables, recorded sends.

These pin the at-least-once guarantees: a replayed batch changes nothing, a
bug in one event dead-letters it with `processing_error` and the rest go on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.domain import ticket_state as tickets_mod
from streams.domain.clock import ManualClock
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.aggregate_stage import AggregateStage
from streams.pipeline.envelope import Provenance
from streams.pipeline.ingest import Ingest
from streams.pipeline.records import Record
from streams.pipeline.tickets_stage import TicketStage
from streams.settings import Settings

NOW_US = 1_800_000_000 * 1_000_000


def iso(us: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")


class NoAlerts:
    def evaluate(self, dims: Any, state: Any, now_us: int) -> list[dict[str, Any]]:
        return []

    def detractor(self, dims: Any, state: Any, response: Any, now_us: int) -> list[dict[str, Any]]:
        return []

    def firing(self, state: Any) -> dict[tuple[str, str], int]:
        return {}


class Harness:
    """Ingest -> ticket stage -> aggregate stage with in-memory 'topics'."""

    def __init__(self, in_place: bool = False) -> None:
        self.settings = Settings(partitions=1)
        self.in_place: list[Record] = []  # records ingest handed straight to the ticket stage
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.clock = ManualClock(NOW_US)
        self.route: list[Record] = []
        self.obs: list[Record] = []
        self.dead: list[tuple[Provenance, bytes | None, str, str]] = []
        self.tickets_table: dict[bytes, bytes] = {}
        self.windows_table: dict[bytes, bytes] = {}
        self.ingest = Ingest(
            self.settings,
            self.metrics,
            self._route,
            self._dead,
            frozenset({"cx.tickets", "cx.surveys"}) if in_place else frozenset(),
        )
        self.tickets = TicketStage(
            self.settings,
            self.metrics,
            self.tickets_table,
            self._obs,
            self._dead,
            self.clock.now_us,
        )
        self.internal_dead: list[tuple[Record, str, str]] = []
        self.aggregate = AggregateStage(
            self.settings,
            self.metrics,
            self.windows_table,
            NoAlerts(),
            self._alert,
            self.clock.now_us,
            self._internal_dead,
        )

    async def _route(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.route.append(Record(key, value, dict(headers), 0, len(self.route)))

    async def _obs(self, key: bytes, value: bytes) -> None:
        self.obs.append(Record(key, value, {}, 0, len(self.obs)))

    async def _internal_dead(self, rec: Record, reason: str, detail: str) -> None:
        self.internal_dead.append((rec, reason, detail))

    async def _alert(self, key: bytes, value: bytes) -> None:
        pass

    async def _dead(self, prov: Provenance, value: bytes | None, reason: str, detail: str) -> None:
        self.dead.append((prov, value, reason, detail))

    def feed(self, source: str, docs: list[dict[str, Any]]) -> None:
        async def run() -> None:
            for i, doc in enumerate(docs):
                key = doc.get("ticket_id")  # as `cxstream produce` keys records
                prov = Provenance(
                    source,
                    f"cx.{source}",
                    0,
                    i,
                    key.encode() if isinstance(key, str) else None,
                    self.clock.now_us(),
                )
                rec = await self.ingest.handle(prov, orjson.dumps(doc))
                if rec is not None:
                    self.in_place.append(rec)

        asyncio.run(run())

    def run_tickets(self, records: list[Record]) -> None:
        asyncio.run(self.tickets.handle_batch(records))

    def run_aggregate(self, records: list[Record]) -> None:
        asyncio.run(self.aggregate.handle_batch(records))

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, state in self.aggregate.snapshot_states({0}):
            c = state.counters()
            out.setdefault("nps", {})
            for k, v in c.nps.items():
                out["nps"][k] = out["nps"].get(k, 0) + v
            out.setdefault("created", 0)
            out["created"] += sum(c.created.values())
            out.setdefault("frt_count", 0)
            out["frt_count"] += sum(h.count for h in c.first_response.values())
        return out


def _story() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    t0 = NOW_US - 600_000_000
    tickets = [
        {
            "event_id": "c1",
            "type": "ticket.created",
            "occurred_at": iso(t0),
            "ticket_id": "T1",
            "channel": "chat",
            "team": "a",
        },
        {
            "event_id": "r1",
            "type": "ticket.replied",
            "occurred_at": iso(t0 + 60_000_000),
            "ticket_id": "T1",
            "author": "agent",
        },
        {
            "event_id": "s1",
            "type": "ticket.resolved",
            "occurred_at": iso(t0 + 120_000_000),
            "ticket_id": "T1",
        },
    ]
    surveys = [
        {
            "event_id": "n1",
            "type": "survey.nps",
            "occurred_at": iso(t0 + 200_000_000),
            "score": 10,
            "ticket_id": "T1",
        },
        {
            "event_id": "n2",
            "type": "survey.nps",
            "occurred_at": iso(t0 + 200_000_000),
            "score": 2,
            "channel": "web",
        },
    ]
    return tickets, surveys


def test_replayed_batches_change_nothing() -> None:
    h = Harness()
    tickets, surveys = _story()
    h.feed("tickets", tickets)
    h.feed("surveys", surveys)
    assert not h.dead
    h.run_tickets(h.route)
    h.run_aggregate(h.obs)
    first = h.counters()
    assert first["created"] == 1 and first["frt_count"] == 1
    nps = first["nps"]
    assert (nps.get("promoter", 0), nps.get("passive", 0), nps.get("detractor", 0)) == (1, 0, 1)

    # A crash after the table writes but before the offset commit: the whole
    # route batch is delivered again; every record is at or below the state's
    # last applied offset, so nothing is re-applied or re-sent.
    before_obs = len(h.obs)
    h.run_tickets(h.route)
    assert len(h.obs) == before_obs
    assert h.registry.get_sample_value("cx_replays_skipped_total", {"stage": "tickets"}) == len(
        h.route
    )

    # A crash after the observations were delivered but before the states
    # were written: the states are recomputed from scratch and the same
    # observations are sent again with the same ids; the aggregate stage
    # applies none of them twice.
    h.tickets_table.clear()
    h.run_tickets(h.route)
    resent = h.obs[before_obs:]
    assert resent and [r.value for r in resent] == [r.value for r in h.obs[:before_obs]]
    h.run_aggregate(resent)
    # And the observations topic itself replayed from the start.
    h.run_aggregate(h.obs)
    assert h.counters() == first


def test_processing_error_is_dead_lettered_and_processing_continues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    tickets, _ = _story()
    h.feed("tickets", tickets)
    real = tickets_mod.RouteState.apply_ticket

    def buggy(self: Any, ev: Any, now_us: int, cap: Any, *rest: Any) -> Any:
        if ev.event_id == "r1":
            raise RuntimeError("boom")
        return real(self, ev, now_us, cap, *rest)

    monkeypatch.setattr(tickets_mod.RouteState, "apply_ticket", buggy)
    h.run_tickets(h.route)
    assert [(d[2], d[1]) for d in h.dead] == [("processing_error", orjson.dumps(tickets[1]))]
    assert "RuntimeError: boom" in h.dead[0][3]
    h.run_aggregate(h.obs)
    assert h.counters()["created"] == 1  # the other events of the batch were applied
    assert (
        h.registry.get_sample_value(
            "cx_events_invalid_total", {"source": "tickets", "reason": "processing_error"}
        )
        == 1
    )


@pytest.mark.parametrize("failing", ["c1", "r1"])
def test_a_bug_that_changed_the_state_leaves_it_as_before_the_event(
    monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """c1 is the first event of its ticket in the batch (its state was loaded
    for it), r1 a later one (its state was changed earlier in the batch):
    either way the state the batch writes is the one without that event."""
    tickets, _ = _story()
    expected = Harness()
    expected.feed("tickets", [t for t in tickets if t["event_id"] != failing])
    expected.run_tickets(expected.route)

    h = Harness()
    h.feed("tickets", tickets)
    real = tickets_mod.RouteState.apply_ticket

    def buggy(self: Any, ev: Any, now_us: int, cap: Any, *rest: Any) -> Any:
        outcome = real(self, ev, now_us, cap, *rest)  # the state is changed, then
        if ev.event_id == failing:
            raise RuntimeError("boom")
        return outcome

    monkeypatch.setattr(tickets_mod.RouteState, "apply_ticket", buggy)
    h.run_tickets(h.route)
    assert [d[2] for d in h.dead] == ["processing_error"]
    got = {k: tickets_mod.RouteState.from_bytes(v) for k, v in h.tickets_table.items()}
    want = {k: tickets_mod.RouteState.from_bytes(v) for k, v in expected.tickets_table.items()}
    assert got.keys() == want.keys()
    for key, state in got.items():
        assert state.seen == want[key].seen
        assert state.created == want[key].created
        assert state.agent_first_us == want[key].agent_first_us


def test_aggregate_bug_dead_letters_one_record_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.domain.windows import DimsState

    h = Harness()
    t0 = NOW_US - 60_000_000
    docs = [
        {
            "event_id": f"n{i}",
            "type": "survey.nps",
            "occurred_at": iso(t0),
            "score": s,
            "channel": "web",
        }
        for i, s in enumerate([10, 0, 9])
    ]
    h.feed("surveys", docs)
    for rec in h.route:  # one batch each: one observations record per survey
        h.run_tickets([rec])
    assert len(h.obs) == 3  # all for the same dims key
    real = DimsState.apply

    def buggy(self: Any, obs: Any, now_us: int) -> bool:
        if obs.value == 0:
            raise RuntimeError("boom")
        return bool(real(self, obs, now_us))

    monkeypatch.setattr(DimsState, "apply", buggy)
    h.run_aggregate(h.obs)
    assert [(r.offset, reason) for r, reason, _ in h.internal_dead] == [(1, "processing_error")]
    assert h.counters()["nps"] == {"promoter": 2}  # the others applied once each
    assert h.registry.get_sample_value("cx_stage_errors_total", {"stage": "aggregate"}) == 1


def test_sweep_expires_abandoned_open_ticket_once() -> None:
    from streams.pipeline.envelope import TICK_KEY

    h = Harness()
    created = {
        "event_id": "c9",
        "type": "ticket.created",
        "occurred_at": iso(NOW_US - 60_000_000),
        "ticket_id": "T9",
        "channel": "chat",
    }
    h.feed("tickets", [created])
    h.run_tickets(h.route)
    h.run_aggregate(h.obs)

    def open_now() -> int:
        return sum(
            n
            for _, state in h.aggregate.snapshot_states({0})
            for n in state.counters().open.values()
        )

    assert open_now() == 1 and len(h.tickets_table) == 1
    h.clock.advance(91 * 86_400)  # past the 90-day limit for an idle open ticket
    before = len(h.obs)
    ticks = [Record(TICK_KEY, b"", {}, 0, 100), Record(TICK_KEY, b"", {}, 0, 101)]
    h.run_tickets(ticks)  # two ticks for the same partition in one batch
    assert len(h.tickets_table) == 0
    assert len(h.obs) == before + 1
    h.run_aggregate(h.obs[before:])
    assert open_now() == 0


def _windows(h: Harness) -> list[Any]:
    now = h.clock.now_us()
    return sorted(
        (key, state.windows(now), state.counters())
        for key, state in h.aggregate.snapshot_states({0})
    )


def test_in_place_records_skip_the_route_hop_with_the_same_numbers() -> None:
    tickets, surveys = _story()
    routed, direct = Harness(), Harness(in_place=True)
    for h in (routed, direct):
        h.feed("tickets", tickets)
        h.feed("surveys", surveys)
    assert not routed.in_place
    # Everything keyed by its ticket id is in place; the unlinked survey is
    # re-keyed through the route topic.
    assert len(direct.in_place) == 4 and len(direct.route) == 1
    routed.run_tickets(routed.route)
    direct.run_tickets(direct.in_place)
    direct.run_tickets(direct.route)
    routed.run_aggregate(routed.obs)
    direct.run_aggregate(direct.obs)
    assert _windows(direct) == _windows(routed)
    assert direct.counters() == routed.counters()

    # A redelivered input batch is recognised by its input-topic offsets.
    before = len(direct.obs)
    direct.run_tickets(direct.in_place)
    assert len(direct.obs) == before
    assert direct.registry.get_sample_value(
        "cx_replays_skipped_total", {"stage": "tickets"}
    ) == len(direct.in_place)
    # Offsets of different topics never mix: route offset 0 is new.
    assert (
        direct.registry.get_sample_value(
            "cx_events_total", {"source": "surveys", "outcome": "accepted"}
        )
        == 2
    )


def test_a_fresh_stage_loads_the_same_state_from_the_table() -> None:
    h = Harness()
    tickets, surveys = _story()
    h.feed("tickets", tickets)
    h.feed("surveys", surveys)
    h.run_tickets(h.route)
    h.run_aggregate(h.obs)
    again = Harness()
    again.windows_table.update(h.windows_table)
    assert _windows(again) == _windows(h)


def test_a_late_duplicate_is_not_counted_as_late() -> None:
    h = Harness()
    old = {
        "event_id": "old-1",
        "type": "survey.nps",
        "occurred_at": iso(NOW_US - 40 * 86_400_000_000),  # beyond the 30d window
        "score": 9,
        "channel": "web",
    }
    h.feed("surveys", [old, old, old])
    h.run_tickets(h.route)
    late = h.registry.get_sample_value("cx_events_late_total", {"source": "surveys"})
    dup = h.registry.get_sample_value(
        "cx_events_total", {"source": "surveys", "outcome": "duplicate"}
    )
    assert (late, dup) == (1, 2)


def test_late_counts_once_per_accepted_event_never_for_a_duplicate() -> None:
    h = Harness()
    old = NOW_US - h.settings.longest_window_us - 3_600_000_000  # past every window
    late = {
        "event_id": "old1",
        "type": "survey.nps",
        "occurred_at": iso(old),
        "score": 9,
        "channel": "web",
    }
    fresh = {**late, "event_id": "new1", "occurred_at": iso(NOW_US - 60_000_000)}
    h.feed("surveys", [late, late, fresh, late])  # the old event three times
    assert not h.dead

    def late_total() -> float | None:
        return h.registry.get_sample_value("cx_events_late_total", {"source": "surveys"})

    assert late_total() == 0  # ingest does not know yet what is a duplicate
    h.run_tickets(h.route)
    assert late_total() == 1
    accepted = {"source": "surveys", "outcome": "accepted"}
    duplicate = {"source": "surveys", "outcome": "duplicate"}
    assert h.registry.get_sample_value("cx_events_total", accepted) == 2
    assert h.registry.get_sample_value("cx_events_total", duplicate) == 2
    h.run_tickets(h.route)  # an at-least-once replay of the batch
    assert late_total() == 1


def test_a_key_stored_after_the_build_is_loaded_never_restarted() -> None:
    """A stage that built its states before a partition's rows reached the
    table (a partition recovered after the build) must load the stored state,
    not start the key afresh and overwrite it."""
    tickets, surveys = _story()
    straight = Harness()
    straight.feed("tickets", tickets)
    straight.feed("surveys", surveys)
    for rec in straight.route:  # one batch each: one observations record per event
        straight.run_tickets([rec])
    straight.run_aggregate(straight.obs)

    h = Harness()
    stale = AggregateStage(
        h.settings, h.metrics, h.windows_table, NoAlerts(), h._alert, h.clock.now_us
    )
    assert list(stale.snapshot_states({0})) == []  # built while the table was empty
    h.feed("tickets", tickets)
    h.feed("surveys", surveys)
    for rec in h.route:
        h.run_tickets([rec])
    first, rest = h.obs[:2], h.obs[2:]
    assert {r.key for r in first} & {r.key for r in rest}  # the same key in both
    h.run_aggregate(first)  # another owner wrote this key's rows meanwhile
    asyncio.run(stale.handle_batch(rest))
    reloaded = AggregateStage(
        h.settings, h.metrics, h.windows_table, NoAlerts(), h._alert, h.clock.now_us
    )
    now = h.clock.now_us()
    got = sorted((k, s.windows(now), s.counters()) for k, s in reloaded.snapshot_states({0}))
    assert got == _windows(straight)
