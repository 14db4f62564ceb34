"""Names with bidi overrides or zero-width characters (issue #19 item 16): the page shows each such
character as a marked escape (``\\u202e``) so a name cannot pass for another; labels keep the API's bytes."""

from __future__ import annotations

import sys
import time
import unicodedata
from typing import Any

import httpx
from aiohttp import web

from exporter.server import create_app
from exporter.simulator import Simulator
from exporter.text import INVISIBLE
from tests.support.net import LOOPBACK

SPOOF = "invoice\u202egnp.exe"  # displays as "invoiceexe.png"
JOINED = "Sync\u200bCRM\ufeff"


async def test_the_page_shows_invisible_characters_and_labels_keep_them(
    sim: Simulator, harness_for: Any
) -> None:
    now = time.time()
    sim.add_workflow("wf-1", SPOOF)
    sim.add_run("wf-1", "warning", uid="run-w", name=JOINED, start_time=now - 900, finish_time=now - 600)
    harness = harness_for()
    exposition = await harness.poll()
    runner = web.AppRunner(create_app(harness.published))
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://{LOOPBACK}:{runner.addresses[0][1]}"
            page = (await client.get(f"{url}/")).text
            status = (await client.get(f"{url}/api/v1/status")).json()
    finally:
        await runner.cleanup()
    assert 'invoice<span class="inv">\\u202e</span>gnp.exe' in page
    assert 'Sync<span class="inv">\\u200b</span>CRM<span class="inv">\\ufeff</span>' in page
    assert not INVISIBLE.search(page)
    # the data keeps the API's bytes: the labels and the JSON (whose encoding escapes them anyway)
    assert exposition.find("captaindata_runs", workflow=SPOOF)
    assert status["needs_action"][0]["workflow"] == SPOOF
    assert status["needs_action"][0]["run_name"] == JOINED


def test_every_format_and_separator_character_is_invisible() -> None:
    """INVISIBLE is written as ranges (building it at import would cost a scan of all of Unicode)."""
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cf", "Zl", "Zp") and not INVISIBLE.fullmatch(chr(code))
    ]
    assert not missed
    assert not INVISIBLE.search("Extract LinkedIn People Profile é ü 漢字 \u00a0-")
