"""The landing page in a real browser: headless Chromium (Debian's ``chromium``, installed by the README's
test command) loads it from ``--demo``; the test reads the DOM Chromium built (``--dump-dom``) and takes a
screenshot (``--screenshot``), as docs/landing-page.png was taken."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx

from exporter.status_view import RUNBOOKS_URL
from tests.support.net import LOOPBACK, free_port
from tests.support.procs import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


class Dom(HTMLParser):
    """The needs-action table's rows (cell texts and link targets) and every link of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[list[str], list[str]]] = []
        self.links: list[str] = []
        self._in_table = False
        self._cells: list[str] | None = None
        self._row_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "needs-action":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._cells, self._row_links = [], []
        elif self._in_table and tag == "td" and self._cells is not None:
            self._cells.append("")
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")
            if self._in_table:
                self._row_links.append(attributes["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag == "tr" and self._cells:
            self.rows.append((self._cells, self._row_links))
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._in_table and self._cells:
            self._cells[-1] += data


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is missing: apt-get install chromium (the README's test command does)"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_demo_page_in_chromium(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"{LOOPBACK}:{port}"]
    with running_server(argv, tmp_path / "demo.log", f"{url}/-/ready", "the demo"):
        dumped = chromium("--dump-dom", f"{url}/")
        screenshot = tmp_path / "landing.png"
        shot = chromium("--window-size=1400,1200", f"--screenshot={screenshot}", f"{url}/")
        for link in ("/metrics", "/api/v1/status", "/-/healthy", "/-/ready"):
            assert httpx.get(url + link, timeout=10).status_code == 200, link
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    statuses = {cells[0] for cells, _ in dom.rows}
    assert {"Warning", "Shutdown", "Paused", "Running too long"} <= statuses, statuses
    for cells, links in dom.rows:
        status = cells[0]
        anchor = (
            "captaindatarunrunningtoolong"
            if status == "Running too long"
            else f"captaindatarun{status.lower()}"
        )
        assert links == [f"{RUNBOOKS_URL}#{anchor}"], (cells, links)
        assert cells[4].endswith("ago"), cells  # how long ago it entered the status
        if status == "Running too long":
            continue
        if cells[1] == "demo-v4":  # the action's own call: read last_error, or resume a BLOCKED run
            assert re.fullmatch(
                r"(GET|POST) https://api\.captaindata\.com/v4/runs/[0-9a-f-]+(/resume)?", cells[7]
            )
        else:
            assert cells[7].startswith("POST https://api.captaindata.co/v3/jobs/"), cells
    assert {"/metrics", "/api/v1/status", "/-/healthy", "/-/ready"} <= set(dom.links)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
