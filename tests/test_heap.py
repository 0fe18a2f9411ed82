"""Freed heap memory goes back to the OS when the worker asks (heap.py)."""

from __future__ import annotations

import sys

import pytest

from streams.pipeline import heap


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 1e6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_returns_freed_heap_pages_that_glibc_would_keep() -> None:
    # 128 MB in blocks below glibc's mmap threshold (so they come from the
    # heap), the last one kept: the heap cannot shrink from its top, and the
    # freed pages stay in the process until released.
    blocks = [bytes(64 * 1024) for _ in range(2000)]
    last = blocks[-1]
    del blocks
    before = _rss_mb()
    assert heap.release() is True
    assert before - _rss_mb() > 60
    assert len(last) == 64 * 1024
