"""The naive Faust baseline: some of cxstream's numbers computed the
straightforward way, one table write per metric per event.

An agent per input topic takes events one at a time, decodes them, checks a
table of seen event ids (de-duplication) and adds one to a counters table per
metric the event touches; tickets' dimensions live in a tickets table so
surveys can inherit them. No windows, no alerts, no validation beyond what the
counts need: the floor a plain Faust app sets, to compare cxstream against.

It shares one thing with cxstream on purpose: the guard on where Faust starts
reading after a rebalance (streams/pipeline/offsets.py). Without it a plain
Faust app can skip records when a rebalance lands before its first commit,
and the comparison would measure a Faust defect, not a design. Its
changelog topics are created by the benchmark before it starts (as
cxstream's worker creates its own), not by Faust at start-up.

    NAIVE_BOOTSTRAP=HOST:PORT NAIVE_APP_ID=ID NAIVE_TICKETS=T NAIVE_SURVEYS=S \\
    NAIVE_DATA_DIR=DIR python bench/naive_faust.py worker -l warning --web-port N

``GET /counts`` returns the counters table as JSON: ``events|SOURCE|OUTCOME``,
``created|CHANNEL|TEAM|PRIORITY``, ``nps|CHANNEL|TEAM|CATEGORY``,
``csat|CHANNEL|TEAM|SCORE``, ``ces|CHANNEL|TEAM|SCORE``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import faust
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.pipeline.offsets import guard_stream_positions

env = os.environ.get
app = faust.App(
    env("NAIVE_APP_ID", "naive-faust"),
    broker=f"kafka://{env('NAIVE_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    datadir=env("NAIVE_DATA_DIR", "naive-faust-data"),
    autodiscover=False,
    topic_partitions=8,
    processing_guarantee="at_least_once",
    consumer_auto_offset_reset="earliest",
    key_serializer="raw",
    value_serializer="raw",
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
)
tickets_topic = app.topic(env("NAIVE_TICKETS", "cx.tickets"), key_type=bytes, value_type=bytes)
surveys_topic = app.topic(env("NAIVE_SURVEYS", "cx.surveys"), key_type=bytes, value_type=bytes)
seen = app.Table("seen", default=bool, partitions=8)
tickets = app.Table("tickets", partitions=8)
counts = app.Table("counts", default=int, partitions=8)
guard_stream_positions(app)


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def first_sighting(source: str, doc: dict[str, Any]) -> bool:
    """Marks the event id seen; counts the event as accepted or duplicate."""
    if seen[doc["event_id"]]:
        counts[f"events|{source}|duplicate"] += 1
        return False
    seen[doc["event_id"]] = True
    counts[f"events|{source}|accepted"] += 1
    return True


@app.agent(tickets_topic)
async def on_ticket(stream: Any) -> None:
    async for raw in stream:
        doc = orjson.loads(raw)
        if not first_sighting("tickets", doc) or doc["type"] != "ticket.created":
            continue
        dims = f"{doc.get('channel', 'unknown')}|{doc.get('team', 'unknown')}"
        tickets[doc["ticket_id"]] = dims
        counts[f"created|{dims}|{doc.get('priority', 'normal')}"] += 1


@app.agent(surveys_topic)
async def on_survey(stream: Any) -> None:
    async for raw in stream:
        doc = orjson.loads(raw)
        if not first_sighting("surveys", doc):
            continue
        if "channel" in doc or "team" in doc:
            dims = f"{doc.get('channel', 'unknown')}|{doc.get('team', 'unknown')}"
        else:
            dims = tickets.get(doc.get("ticket_id"), "unknown|unknown")
        kind, score = doc["type"], doc["score"]
        label = nps_category(score) if kind == "survey.nps" else str(score)
        counts[f"{kind.removeprefix('survey.')}|{dims}|{label}"] += 1


@app.page("/counts")
async def counts_view(web: Any, request: Any) -> Any:
    return web.json(dict(counts.items()))


if __name__ == "__main__":
    app.main()
