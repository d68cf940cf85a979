"""The report's page in a real browser: headless Debian Chromium opens ``index.html`` of the smoke report.

Every section of both papers is there, every claim row carries a verdict, every plot loads, and every link to a
model manifest points at a file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import SmokeReport
from twin_service.report.claims import VERDICTS
from twin_service.report.plan import FIGURES

pytestmark = pytest.mark.gui

READ_PAGE = """() => ({
  sections: [...document.querySelectorAll('section.part')].map(s => s.id),
  rows: [...document.querySelectorAll('tr.claim')].map(r => ({
    id: r.id, verdict: (r.querySelector('td.verdict') || {}).textContent || '', data: r.dataset.verdict,
  })),
  images: [...document.images].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})),
  manifests: [...document.querySelectorAll("a[href$='manifest.json']")].map(a => a.href),
  headings: [...document.querySelectorAll('h2')].map(h => h.id),
})"""


def test_the_report_page_shows_every_section_verdict_and_plot(browser, smoke_report: SmokeReport) -> None:  # noqa: ANN001
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    try:
        page.goto((smoke_report.out / "index.html").as_uri(), wait_until="load")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20_000)
        view = page.evaluate(READ_PAGE)
    finally:
        page.close()
    assert view["headings"][:2] == ["paper-a", "paper-b"]
    expected = [f for f in FIGURES if f != "hamburg"]  # the smoke budget has no Hamburg recordings
    assert view["sections"] == expected
    assert len(view["rows"]) >= 40
    for row in view["rows"]:
        assert row["verdict"] in VERDICTS and row["data"] == row["verdict"], row
    assert len(view["images"]) >= 13
    broken = [i["src"] for i in view["images"] if not i["ok"]]
    assert not broken, f"broken images: {broken}"
    assert not failed, f"failed requests: {failed}"
    assert view["manifests"]
    for href in view["manifests"]:
        assert Path(unquote(urlparse(href).path)).is_file(), href
