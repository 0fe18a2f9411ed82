"""The stall rule, with time passed in."""

from __future__ import annotations

from streams.pipeline.liveness import Check, StallDetector, interval_s


def test_lagging_without_progress_stalls_after_the_timeout() -> None:
    d = StallDetector(timeout_s=60)
    assert d.observe(0, Check(True, lag=5, progress=10)) == 0  # first look: no verdict
    assert d.observe(10, Check(True, lag=5, progress=10)) == 10  # stuck since the last good look
    assert d.observe(40, Check(True, lag=5, progress=10)) == 40
    assert not d.expired(40)
    assert d.observe(60, Check(True, lag=5, progress=10)) == 60
    assert d.expired(60) and "5 records wait" in d.reason


def test_progress_or_no_lag_resets_the_clock() -> None:
    d = StallDetector(timeout_s=60)
    d.observe(0, Check(True, lag=5, progress=1))
    assert d.observe(50, Check(True, lag=5, progress=1)) == 50
    assert d.observe(55, Check(True, lag=5, progress=2)) == 0  # it read something
    assert d.observe(200, Check(True, lag=0, progress=2)) == 0  # idle, nothing to read
    assert d.observe(300, Check(True, lag=None, progress=2)) == 0  # no assignment yet


def test_recovery_is_not_a_stall_but_an_unreachable_broker_is() -> None:
    d = StallDetector(timeout_s=30)
    d.observe(0, Check(True, lag=9, progress=0, recovering=True))
    assert d.observe(100, Check(True, lag=9, progress=0, recovering=True)) == 0
    assert d.observe(110, Check(False, lag=None, progress=0, recovering=True)) == 10
    assert d.observe(140, Check(False, lag=None, progress=7)) == 40  # well last at 100
    assert d.expired(40) and "unreachable" in d.reason
    assert d.observe(141, Check(True, lag=0, progress=7)) == 0  # back


def test_checks_often_enough_to_exit_near_the_timeout() -> None:
    assert interval_s(300) == 5 and interval_s(8) == 2 and interval_s(1) == 0.5


def test_a_recovery_that_reads_nothing_stalls_after_the_timeout() -> None:
    """Faust's recovery can wait forever on changelog partitions it never
    fetches: when the recovery's own progress is known and stands still for
    the timeout, the worker exits (a new process recovers in bulk)."""
    d = StallDetector(timeout_s=30)
    d.observe(0, Check(True, lag=9, progress=0, recovering=True, recovery_progress=-2))
    assert d.observe(10, Check(True, lag=9, progress=0, recovering=True, recovery_progress=5)) == 0
    assert d.observe(20, Check(True, lag=9, progress=0, recovering=True, recovery_progress=5)) == 10
    assert not d.expired(10)
    assert d.observe(50, Check(True, lag=9, progress=0, recovering=True, recovery_progress=5)) == 40
    assert d.expired(40) and "no changelog record" in d.reason
    # Reading again, or done recovering, is well.
    assert d.observe(55, Check(True, lag=9, progress=0, recovering=True, recovery_progress=6)) == 0
    assert d.observe(90, Check(True, lag=0, progress=0)) == 0
    # A later recovery is judged afresh, not against the last one's progress.
    assert d.observe(95, Check(True, lag=0, progress=0, recovering=True, recovery_progress=6)) == 0
