"""Configuration errors stop start-up with a message that names the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.domain.dimensions import DimensionCap
from streams.errors import SettingsError
from streams.settings import load_settings
from tests.support import REPO


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        ({"bootstrap": "no-port"}, {}, "--bootstrap"),
        ({}, {"CX_KAFKA_BOOTSTRAP": "host:99999"}, "CX_KAFKA_BOOTSTRAP"),
        ({"web_port": "http"}, {}, "--web-port"),
        ({}, {"CX_WINDOWS": "1h,fortnight"}, "CX_WINDOWS"),
        ({}, {"CX_DEDUP_HORIZON": "30m"}, "CX_DEDUP_HORIZON"),
        ({"rules": "/nonexistent/rules.yml"}, {}, "--rules"),
        ({}, {"CX_WEB_PROT": "6066"}, "CX_WEB_PROT"),  # a typo is not silently ignored
        ({"dimensions": "Channel,team"}, {}, "--dimensions"),
        ({}, {"CX_DELIVERY": "bulk"}, "CX_DELIVERY"),
        ({"event_loop": "trio"}, {}, "--event-loop"),
    ],
)
def test_bad_settings_name_the_setting(
    flags: dict[str, str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(flags, env)
    assert named in str(err.value)


def test_delivery_and_event_loop_take_any_case() -> None:
    s = load_settings({}, {"CX_DELIVERY": "Stream", "CX_EVENT_LOOP": "ASYNCIO"})
    assert (s.delivery, s.event_loop) == ("stream", "asyncio")
    assert (load_settings({}, {}).delivery, load_settings({}, {}).event_loop) == (
        "batch",
        "uvloop",
    )


def test_flag_beats_environment() -> None:
    s = load_settings({"web_port": "7000"}, {"CX_WEB_PORT": "8000", "CX_KAFKA_BOOTSTRAP": "k:9092"})
    assert s.web_port == 7000 and s.bootstrap == "k:9092"


def test_worker_refuses_a_bad_rules_file_naming_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("rules:\n  - alertname: X\n    metric: happiness\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--rules",
            str(rules),
            "--bootstrap",
            "127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "--rules" in result.stderr and f"{rules}:" in result.stderr


def test_label_cap_holds_under_hostile_input() -> None:
    cap = DimensionCap(max_values=100)
    labels = {cap.resolve({"channel": f"c{i}", "team": "t"})[0] for i in range(10_000)}
    assert len(labels) == 101 and "other" in labels
    assert cap.admitted_count("channel") == 100
    assert cap.resolve({"channel": "c5"})[0] == "c5"  # admitted values keep their name
    assert cap.resolve({})[0] == "unknown"


def test_schedules_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "schedules.yaml"
    bad.write_text(
        "schedules:\n  office:\n    timezone: Mars/Olympus\n    hours: [mon 09:00-17:00]\n"
    )
    with pytest.raises(SettingsError, match=rf"--schedules: {bad}:3"):
        load_settings({"schedules": str(bad)}, {})
    good = tmp_path / "ok.yaml"
    good.write_text("sla:\n  urgent: {first_reply: 30m business}\n")
    assert load_settings({}, {"CX_SCHEDULES": str(good)}).schedules == good


@pytest.mark.parametrize(("text", "share"), [("25%", 0.25), ("0.1", 0.1), ("0", 0.0)])
def test_sla_warning_is_a_share(text: str, share: float) -> None:
    assert load_settings({"sla_warning": text}, {}).sla_warning == pytest.approx(share)


@pytest.mark.parametrize("text", ["100%", "1", "-0.1", "a lot"])
def test_sla_warning_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(SettingsError, match="CX_SLA_WARNING"):
        load_settings({}, {"CX_SLA_WARNING": text})
