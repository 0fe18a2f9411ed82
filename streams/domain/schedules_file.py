"""The schedules file (``--schedules FILE`` / ``CX_SCHEDULES``): business
hours, their assignment and the SLA policy (contract 8.2, 8.3).

.. code-block:: yaml

    schedules:                       # optional; name -> schedule
      office-berlin:                 # [a-z0-9][a-z0-9_.-]*
        timezone: Europe/Berlin      # required; an IANA zone
        hours:                       # required; wall-clock time in the zone
          - mon-fri 09:00-12:00, 13:00-17:00
          - sat 10:00-14:00
        holidays: [2025-12-25, 2025-12-26]   # optional; closed all day

    assign:                          # optional; first match wins, default 24x7
      - schedule: office-berlin
        filters: {team: billing}     # labels of the (channel, team) key
      - schedule: office-berlin
        filters: {channel: email}

    sla:                             # optional; priority -> targets
      urgent: {first_reply: 30m business, resolution: 8h business}
      high:   {first_reply: 2h business, resolution: 1d calendar}

Days are ``mon`` .. ``sun``, ranges (``mon-fri``, ``fri-mon``) or lists
(``mon,wed``); times are ``HH:MM-HH:MM`` within one day (end up to
``24:00``); overlapping intervals count once. A business SLA target of a key
without a schedule is calendar time (24x7). Every error raises
``SchedulesError`` naming the file, the line and the key; the field checks
are the models' (``schedules``, ``sla``), as for the rules file.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import yaml

from streams.domain.configfile import FieldError, YamlWalker, read_text
from streams.domain.schedules import (
    Assignment,
    OpenInterval,
    Schedule,
    SchedulesConfig,
    parse_hours,
)
from streams.domain.sla import SlaPolicy, TargetPolicy, parse_target
from streams.errors import SchedulesError

__all__ = ["ASSIGN_KEYS", "SCHEDULE_KEYS", "TOP_KEYS", "load_schedules", "parse_schedules"]

TOP_KEYS: Final = ("schedules", "assign", "sla")
SCHEDULE_KEYS: Final = ("timezone", "hours", "holidays")
ASSIGN_KEYS: Final = ("schedule", "filters")


class _SchedulesFile:
    def __init__(self, path: str) -> None:
        self.yaml = YamlWalker(path, SchedulesError)
        self.path = path

    def schedule(self, name: str, name_node: yaml.Node, node: yaml.Node) -> Schedule:
        y = self.yaml
        where = f"schedules.{name}"
        keys = y.mapping(node, where, SCHEDULE_KEYS)
        for required in ("timezone", "hours"):
            if required not in keys:
                raise y.fail(node, where, f"missing required key {required!r}")
        timezone = y.text(keys["timezone"][1], f"{where}.timezone")
        hours: list[OpenInterval] = []
        for index, item in enumerate(y.sequence(keys["hours"][1], f"{where}.hours", "hours")):
            spec = y.text(item, f"{where}.hours[{index}]")
            try:
                hours.extend(parse_hours(spec))
            except FieldError as exc:
                raise y.fail(item, f"{where}.hours[{index}]", str(exc)) from None
        holidays: set[date] = set()
        if "holidays" in keys:
            items = y.sequence(keys["holidays"][1], f"{where}.holidays", "dates")
            for index, item in enumerate(items):
                holidays.add(self.holiday(item, f"{where}.holidays[{index}]"))
        built: Schedule = y.build(
            lambda: Schedule(name, timezone, tuple(hours), frozenset(holidays)),
            {"name": (name_node, name_node), **keys},
            node,
            where,
        )
        return built

    def holiday(self, node: yaml.Node, where: str) -> date:
        # The node's text, not YAML's date: 2025-02-30 must be this error.
        text = (
            self.yaml.scalar(node, where) if not isinstance(node, yaml.ScalarNode) else node.value
        )
        try:
            return date.fromisoformat(str(text).strip())
        except ValueError:
            raise self.yaml.fail(node, where, f"{text!r} is not a date YYYY-MM-DD") from None

    def sla(self, node: yaml.Node) -> SlaPolicy:
        y = self.yaml
        targets: dict[str, dict[str, TargetPolicy]] = {}
        for priority, (key_node, per_node) in y.mapping(node, "sla", None).items():
            where = f"sla.{priority}"
            per: dict[str, TargetPolicy] = {}
            for target, (_, value_node) in y.mapping(per_node, where, None).items():
                text = y.text(value_node, f"{where}.{target}")
                try:
                    per[target] = parse_target(text)
                except FieldError as exc:
                    raise y.fail(value_node, f"{where}.{target}", str(exc)) from None
            try:
                SlaPolicy({priority: per})
            except FieldError as exc:
                culprit = key_node
                if exc.key is not None:
                    culprit = y.mapping(per_node, where, None)[exc.key][0]
                raise y.fail(culprit, where, str(exc)) from None
            targets[priority] = per
        return SlaPolicy(targets)

    def assignment(self, where: str, node: yaml.Node, schedules: dict[str, Schedule]) -> Assignment:
        y = self.yaml
        keys = y.mapping(node, where, ASSIGN_KEYS)
        if "schedule" not in keys:
            raise y.fail(node, where, "missing required key 'schedule'")
        name = y.text(keys["schedule"][1], f"{where}.schedule")
        if name not in schedules:
            known = ", ".join(schedules) or "none"
            raise y.fail(
                keys["schedule"][1],
                f"{where}.schedule",
                f"no schedule named {name!r} (defined: {known})",
            )
        filters = y.filters(keys["filters"][1], f"{where}.filters") if "filters" in keys else {}
        built: Assignment = y.build(lambda: Assignment(name, filters), keys, node, where)
        return built

    def load(self, text: str) -> SchedulesConfig:
        y = self.yaml
        root = y.compose(text)
        if root is None:
            return SchedulesConfig(source=self.path)
        top = y.mapping(root, "top level", TOP_KEYS)
        schedules: dict[str, Schedule] = {}
        if "schedules" in top and not y.is_null(top["schedules"][1]):
            for name, (name_node, node) in y.mapping(
                top["schedules"][1], "schedules", None
            ).items():
                schedules[name] = self.schedule(name, name_node, node)
        assign_node = top["assign"][1] if "assign" in top else None
        assignments = tuple(
            self.assignment(f"assign[{index}]", node, schedules)
            for index, node in enumerate(
                [] if assign_node is None else y.sequence(assign_node, "assign", "assignments")
            )
        )
        sla = self.sla(top["sla"][1]) if "sla" in top and not y.is_null(top["sla"][1]) else None
        return SchedulesConfig(
            schedules=schedules, assignments=assignments, sla=sla, source=self.path
        )


def parse_schedules(text: str, path: str) -> SchedulesConfig:
    """A schedules file's text (``path`` names it in errors)."""
    return _SchedulesFile(path).load(text)


def load_schedules(path: str) -> SchedulesConfig:
    """Read a schedules file; ``SchedulesError`` names ``FILE:LINE`` and the key."""
    return parse_schedules(read_text(path, "schedules file", SchedulesError), path)
