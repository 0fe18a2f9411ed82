"""`cxstream board` as a process: the page, its assets, and a clear error
when Prometheus cannot be reached (the page shows it in a banner)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.live_stack import Board
from tests.support import free_port


def test_the_board_serves_its_page_and_reports_an_unreachable_prometheus(tmp_path: Path):
    dead = f"http://127.0.0.1:{free_port()}"
    board = Board(tmp_path, dead)
    try:
        with urllib.request.urlopen(board.url + "/", timeout=5) as resp:
            page = resp.read().decode()
        assert '<script src="/static/board.js">' in page
        for asset in ("board.js", "board.css", "favicon.svg"):
            with urllib.request.urlopen(f"{board.url}/static/{asset}", timeout=5) as resp:
                assert resp.status == 200 and resp.read()
        try:
            urllib.request.urlopen(board.url + "/api/board", timeout=15)
            raise AssertionError("expected 502")
        except urllib.error.HTTPError as err:
            assert err.code == 502
            body = json.loads(err.read())
        assert dead in body["error"] and body["prometheus"] == dead
    finally:
        board.stop()
