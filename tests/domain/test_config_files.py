"""The schedules/SLA file loader (errors at FILE:LINE), the JSON Schemas of
both configuration files agreeing with their loaders on a corpus, and
``cxstream validate-config`` run as a real command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from streams.domain.rules import load_rules
from streams.domain.schedules import ALWAYS_OPEN, business_us
from streams.domain.schedules_file import load_schedules, parse_schedules
from streams.domain.sla import TargetPolicy
from streams.errors import CxError, RulesError, SchedulesError

REPO = Path(__file__).resolve().parents[2]
WINDOWS = ("1h", "24h", "7d", "30d")
H = 3600 * 1_000_000


def schema(name: str) -> Draft202012Validator:
    doc = json.loads((REPO / "schemas" / name).read_text())
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


RULES_SCHEMA = schema("rules-file.schema.json")
SCHEDULES_SCHEMA = schema("schedules-file.schema.json")


class _PlainLoader(yaml.SafeLoader):
    """YAML as JSON sees it: dates stay strings."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def as_json(text: str) -> Any:
    return yaml.load(text, Loader=_PlainLoader)


def write(tmp_path: Path, text: str, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


# ---------------------------------------------------------------------------
# The schedules file
# ---------------------------------------------------------------------------


def test_example_schedules_file_loads() -> None:
    cfg = load_schedules(str(REPO / "deploy" / "schedules" / "example-schedules.yml"))
    assert set(cfg.schedules) == {"office-berlin", "support-us"}
    berlin = cfg.schedules["office-berlin"]
    assert berlin.timezone == "Europe/Berlin" and date(2025, 12, 25) in berlin.holidays
    assert cfg.schedule_for({"channel": "chat", "team": "billing"}) is berlin
    assert cfg.schedule_for({"channel": "chat", "team": "x"}) is cfg.schedules["support-us"]
    assert cfg.schedule_for({"channel": "email", "team": "x"}) is ALWAYS_OPEN
    assert cfg.sla is not None
    assert cfg.sla.for_priority("urgent")["first_reply"] == TargetPolicy(1_800_000_000, "business")
    assert cfg.sla.for_priority("low") == {}
    # a Monday in Berlin: 09:00-12:30 and 13:30-18:00 = 8 h
    monday = 1_748_815_200_000_000  # 2025-06-02T00:00+02:00
    assert business_us(berlin, monday, monday + 24 * H) == 8 * H


def test_empty_schedules_file_is_24x7_without_sla(tmp_path: Path) -> None:
    cfg = parse_schedules("# nothing\n", "x.yml")
    assert cfg.schedules == {} and cfg.sla is None
    assert cfg.schedule_for({"team": "a"}) is ALWAYS_OPEN


HEAD = """\
schedules:
  office:
    timezone: Europe/Berlin
    hours:
      - mon-fri 09:00-17:00
"""


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        (
            HEAD.replace("Europe/Berlin", "Europe/Atlantis"),
            3,
            "office.timezone: 'Europe/Atlantis' is not an IANA",
        ),
        (
            HEAD.replace("mon-fri 09:00-17:00", "mon-fri 17:00-09:00"),
            5,
            "hours[0]: 17:00-09:00 must start",
        ),
        (HEAD.replace("mon-fri 09:00-17:00", "weekdays 09:00-17:00"), 5, "'weekdays' is not a day"),
        (HEAD + "    holidays: [2025-02-30]\n", 6, "is not a date YYYY-MM-DD"),
        (HEAD + "    holiday: [2025-12-25]\n", 6, "unknown key 'holiday'"),
        (
            HEAD.replace("    hours:\n      - mon-fri 09:00-17:00\n", ""),
            3,
            "missing required key 'hours'",
        ),
        (
            HEAD.replace("      - mon-fri 09:00-17:00\n", "      []\n"),
            5,
            "at least one open interval",
        ),
        (HEAD.replace("  office:", "  Office Hours:"), 2, "is not a schedule name"),
        (HEAD + "assign:\n  - schedule: nope\n", 7, "no schedule named 'nope' (defined: office)"),
        (
            HEAD + "assign:\n  - schedule: office\n    filters: {team: 'NOT valid!'}\n",
            8,
            "not a valid dimension value",
        ),
        (HEAD + "assign:\n  - filters: {team: a}\n", 7, "missing required key 'schedule'"),
        (
            HEAD + "sla:\n  urgent: {first_reply: 30m}\n",
            7,
            "sla.urgent.first_reply: '30m' is not a target",
        ),
        (
            HEAD + "sla:\n  urgent:\n    first_reply: 30m business\n    next_reply: 1h calendar\n",
            9,
            "'next_reply' is not an SLA target",
        ),
        (
            HEAD + "sla:\n  critical: {first_reply: 30m business}\n",
            7,
            "'critical' is not a priority",
        ),
        ("schedules: [a, b]\n", 1, "expected a mapping"),
        ("rules: []\n", 1, "unknown key 'rules'"),
        ("schedules:\n  a: {timezone: UTC, hours: [mon 09:00-10:00]\n", 3, "not valid YAML"),
    ],
)
def test_schedules_errors_name_file_line_and_key(
    tmp_path: Path, body: str, line: int, needle: str
) -> None:
    path = write(tmp_path, body, "schedules.yml")
    with pytest.raises(SchedulesError) as info:
        load_schedules(path)
    message = str(info.value)
    assert message.startswith(path), message
    match = re.match(r"^.*?\.yml:(\d+): ", message)
    assert match is not None and int(match.group(1)) == line, message
    assert needle in message, message
    assert isinstance(info.value, CxError)


def test_unreadable_schedules_file(tmp_path: Path) -> None:
    with pytest.raises(SchedulesError, match=r"nope\.yml: cannot read"):
        load_schedules(str(tmp_path / "nope.yml"))


# ---------------------------------------------------------------------------
# Schema and loader agree
# ---------------------------------------------------------------------------

RULE = "rules:\n  - alertname: A\n    metric: nps_score\n    window: 24h\n    op: '<'\n    threshold: 0\n"

#: (text, loader accepts, schema rejects too). Bad files the schema cannot
#: judge (they need the worker's windows, arithmetic or the zone database)
#: are marked False in the last column and say why.
RULES_CORPUS: list[tuple[str, bool, bool]] = [
    ("", True, False),
    ("defaults: false\n", True, False),
    ("rules:\n", True, False),
    (RULE, True, False),
    (RULE + "    confidence: true\n    for: 10m\n    filters: {team: ' Billing '}\n", True, False),
    (RULE + "    resolve_threshold: 5\n    min_samples: 30\n    severity: critical\n", True, False),
    ("rules:\n  - alertname: CxFcrLow\n    enabled: false\n", True, False),
    ("detractor: {enabled: false, resolve_after: 2h, max_open: 10}\n", True, False),
    (RULE.replace("nps_score", "nps"), False, True),
    (RULE.replace("'<'", "'=<'"), False, True),
    (RULE.replace("threshold: 0", "threshold: low"), False, True),
    (RULE.replace("    threshold: 0\n", ""), False, True),
    (RULE + "    thresold: 1\n", False, True),
    (RULE + "    min_samples: -1\n", False, True),
    (RULE + "    min_samples: 2.5\n", False, True),
    (RULE + "    for: soon\n", False, True),
    (RULE + "    severity: Loud!\n", False, True),
    (RULE + "    filters: {window: 24h}\n", False, True),
    (RULE + "    filters: {team: 'NOT valid!'}\n", False, True),
    (RULE + "    confidence: yes please\n", False, True),
    (RULE.replace("nps_score", "fcr_ratio") + "    confidence: true\n", False, True),
    ("rules:\n  - alertname: CxFcrLow\n    enabled: false\n    threshold: 3\n", False, True),
    ("rules:\n  - alertname: CxDetractorResponse\n", False, True),
    ("rules:\n  - alertname: 9lives\n", False, True),
    ("default: false\n", False, True),
    ("detractor: {colour: red}\n", False, True),
    ("detractor: {max_open: 0}\n", False, True),
    # beyond the schema:
    (RULE.replace("24h", "12h"), False, False),  # not one of the worker's windows
    (RULE + "    resolve_threshold: -5\n", False, False),  # hysteresis on the breaching side
    (RULE + RULE.replace("rules:\n", ""), False, False),  # duplicate alertname
    (RULE + "    summary: '{value:.1q}'\n", False, False),  # broken format spec
]

SCHEDULES_CORPUS: list[tuple[str, bool, bool]] = [
    ("", True, False),
    (HEAD, True, False),
    (HEAD + "    holidays: [2025-12-25, 2026-01-01]\n", True, False),
    (HEAD.replace("mon-fri 09:00-17:00", "sat,sun 10:00-12:00, 13:00-24:00"), True, False),
    (HEAD + "assign:\n  - schedule: office\n    filters: {team: billing}\n", True, False),
    (HEAD + "sla:\n  urgent: {first_reply: 30m business, resolution: 8h calendar}\n", True, False),
    ("sla:\n  low: {resolution: 5d calendar}\n", True, False),
    (HEAD.replace("Europe/Berlin", "not a zone"), False, True),
    (HEAD.replace("mon-fri 09:00-17:00", "weekdays 09:00-17:00"), False, True),
    (HEAD.replace("mon-fri 09:00-17:00", "mon-fri 9-17"), False, True),
    (HEAD.replace("mon-fri 09:00-17:00", "mon 09:00-24:30"), False, True),
    (HEAD.replace("mon-fri 09:00-17:00", "Mon 09:00-17:00"), False, True),
    (HEAD.replace("      - mon-fri 09:00-17:00\n", "      []\n"), False, True),
    (HEAD.replace("    hours:\n      - mon-fri 09:00-17:00\n", ""), False, True),
    (HEAD + "    holiday: [2025-12-25]\n", False, True),
    (HEAD + "    holidays: [christmas]\n", False, True),
    (HEAD.replace("  office:", "  Office Hours:"), False, True),
    (HEAD + "assign:\n  - filters: {team: a}\n", False, True),
    (HEAD + "assign:\n  - schedule: office\n    filters: {team: 'NOT valid!'}\n", False, True),
    (HEAD + "sla:\n  urgent: {first_reply: 30m}\n", False, True),
    (HEAD + "sla:\n  urgent: {first_reply: 0m business}\n", False, True),
    (HEAD + "sla:\n  urgent: {first_reply: 30 minutes business}\n", False, True),
    (HEAD + "sla:\n  urgent: {next_reply: 1h calendar}\n", False, True),
    (HEAD + "sla:\n  critical: {first_reply: 1h calendar}\n", False, True),
    ("rules: []\n", False, True),
    # beyond the schema:
    (HEAD.replace("Europe/Berlin", "Europe/Atlantis"), False, False),  # no such zone
    (HEAD.replace("mon-fri 09:00-17:00", "mon 17:00-09:00"), False, False),  # ends before it starts
    (HEAD + "    holidays: [2025-02-30]\n", False, False),  # no such date
    (HEAD + "assign:\n  - schedule: nope\n", False, False),  # not defined
]


def _loader_accepts(kind: str, text: str) -> bool:
    try:
        if kind == "rules":
            from streams.domain.rules import parse_rules

            parse_rules(text, "corpus.yml", WINDOWS)
        else:
            parse_schedules(text, "corpus.yml")
    except (RulesError, SchedulesError):
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "text", "loader_ok", "schema_rejects"),
    [("rules", *case) for case in RULES_CORPUS]
    + [("schedules", *case) for case in SCHEDULES_CORPUS],
)
def test_schema_and_loader_agree(
    kind: str, text: str, loader_ok: bool, schema_rejects: bool
) -> None:
    validator = RULES_SCHEMA if kind == "rules" else SCHEDULES_SCHEMA
    schema_ok = validator.is_valid(as_json(text))
    assert _loader_accepts(kind, text) is loader_ok
    if loader_ok:
        assert schema_ok, list(validator.iter_errors(as_json(text)))
    else:
        assert schema_ok is not schema_rejects


def test_shipped_examples_pass_their_schema() -> None:
    for validator, path in (
        (RULES_SCHEMA, REPO / "deploy" / "rules" / "example-rules.yml"),
        (SCHEDULES_SCHEMA, REPO / "deploy" / "schedules" / "example-schedules.yml"),
    ):
        errors = list(validator.iter_errors(as_json(path.read_text())))
        assert not errors, [e.message for e in errors]
    load_rules(str(REPO / "deploy" / "rules" / "example-rules.yml"), WINDOWS)


# ---------------------------------------------------------------------------
# cxstream validate-config
# ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "validate-config", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_validate_config_detects_the_kind_and_reports_lines(tmp_path: Path) -> None:
    ok = cli("deploy/schedules/example-schedules.yml")
    assert ok.returncode == 0, ok.stderr
    assert "valid schedules file: 2 schedules, 2 assignments" in ok.stdout
    ok = cli("deploy/rules/example-rules.yml")
    assert ok.returncode == 0 and "valid rules file: 6 rules" in ok.stdout
    bad = write(tmp_path, HEAD.replace("mon-fri 09:00-17:00", "mon-fri 17:00-09:00"), "s.yml")
    out = cli(bad)
    assert out.returncode == 2
    assert f"{bad}:5: schedules.office.hours[0]" in out.stderr
    bad_rules = write(tmp_path, RULE.replace("24h", "12h"), "r.yml")
    out = cli(bad_rules, "--windows", "1h,12h")
    assert out.returncode == 0, out.stderr  # the window exists with these settings
    out = cli(bad_rules)
    assert out.returncode == 2 and f"{bad_rules}:4: rules[0] (A).window" in out.stderr


def test_validate_config_kind_flag_and_ambiguous_files(tmp_path: Path) -> None:
    mixed = write(tmp_path, RULE + "sla: {}\n", "m.yml")
    out = cli(mixed)
    assert out.returncode == 2 and "pass --kind" in out.stderr
    out = cli(mixed, "--kind", "rules")
    assert out.returncode == 2 and f"{mixed}:7: top level: unknown key 'sla'" in out.stderr
    empty = write(tmp_path, "# nothing yet\n", "e.yml")
    assert cli(empty, "--kind", "schedules").returncode == 0
