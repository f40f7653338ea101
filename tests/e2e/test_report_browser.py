"""Issue 19.5: the HTML report looked at in real headless Chromium (tests/browser.py).

For an empty history, a stream with one run and 1,000 runs: the charts drew (each chart's SVG
is there, sized, with its lines or bars drawn), and the page made no network request and no
console error. The screenshot in the README (docs/report.png) is this test's page: set
TPA_UPDATE_SCREENSHOT=1 to write it again.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from target_pinterest_audiences.ledger import open_ledger
from tests.browser import Browser, headless_chromium
from tests.conftest import REPO, TargetRunner, audience_messages, emails
from tests.history_support import daily_history, mirror_run, report

SCREENSHOT = REPO / "docs" / "report.png"

# Per chart: its box, and what pygal drew in it (line paths with points, bars with a height).
CHARTS = """
[...document.querySelectorAll('.chart svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const lines = [...svg.querySelectorAll('.series path.line')]
    .filter(p => p.getTotalLength() > 0).length;
  const bars = [...svg.querySelectorAll('.series rect.rect')]
    .filter(r => r.getBBox().height > 0).length;
  const dots = svg.querySelectorAll('.series .dot').length;
  return {width: box.width, height: box.height, lines, bars, dots,
          title: svg.closest('.chart').previousElementSibling.textContent};
})
"""


@pytest.fixture(scope="module")
def browser() -> Browser:
    with headless_chromium() as opened:
        yield opened  # type: ignore[misc]


def html(workdir: Path) -> Path:
    out = workdir / "report.html"
    proc = report(workdir, "--format", "html", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def open_clean(browser: Browser, path: Path) -> list[dict]:
    page = browser.open(path)
    assert page.errors == [], page.errors
    assert page.network_requests == [], page.network_requests
    assert page.requests == [page.url]  # the page itself, and nothing else
    charts = browser.evaluate(CHARTS)
    for chart in charts:
        assert chart["width"] > 600 and chart["height"] > 150, chart
    return charts


def test_the_browser_sees_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    """The checks below can fail: a page that loads a CDN script and logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><script src='https://cdn.example.invalid/chart.js'></script>"
        "<link rel='stylesheet' href='https://fonts.example.invalid/css?family=Roboto'>"
        "</head><body><script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    page = browser.open(bad)
    assert "https://cdn.example.invalid/chart.js" in page.network_requests
    assert any(u.startswith("https://fonts.example.invalid/") for u in page.network_requests)
    assert any("boom" in e for e in page.errors)
    assert any("undefinedFunction" in e for e in page.errors)


def test_an_empty_history_opens_clean(browser: Browser, tmp_path: Path) -> None:
    assert open_clean(browser, html(tmp_path)) == []
    assert "No runs recorded yet" in browser.evaluate("document.body.innerText")


def test_one_run_draws_its_charts(browser: Browser, target: TargetRunner) -> None:
    run = target.run(audience_messages("once", "Once", emails(5)), sync_mode="mirror")
    assert run.returncode == 0, run.stderr
    charts = open_clean(browser, html(target.workdir))
    titles = [c["title"] for c in charts]
    assert titles == ["Audience size and members", "Match rate", "What each run added and removed"]
    sizes, match, changes = charts
    assert sizes["dots"] >= 2 and match["dots"] >= 1  # one point each: a dot, no line
    assert changes["bars"] == 1  # 5 added, none removed


def test_a_thousand_runs_draw_and_the_readme_screenshot(browser: Browser, tmp_path: Path) -> None:
    with open_ledger(None, base_dir=tmp_path) as ledger:
        history = ledger.history()
        for n in range(1000):
            history.add(mirror_run(n, failed=n % 17 == 16))
    charts = open_clean(browser, html(tmp_path))
    sizes, match, changes = charts
    assert sizes["lines"] >= 2 and sizes["dots"] >= 58  # size and members; every failure marked
    assert match["lines"] == 1
    assert changes["bars"] >= 2 * 55  # the latest 60 runs' adds and removes (failures: none)

    # The README's picture: 90 days of a mirror stream and an explicit one.
    readme = tmp_path / "readme"
    daily_history(readme, 90)
    open_clean(browser, html(readme))
    shot = browser.screenshot(tmp_path / "report.png", height=1500)
    width, height, colours = png_summary(shot)
    assert (width, height) == (1280, 1500) and colours > 50, "a blank screenshot"
    if os.environ.get("TPA_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())
    assert SCREENSHOT.exists(), "docs/report.png: run with TPA_UPDATE_SCREENSHOT=1"


def png_summary(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct pixel values the first rows hold (8-bit RGB/RGBA)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    seen: set[bytes] = set()
    for row in range(min(height, 600)):  # unfiltered values are enough to tell blank from not
        line = raw[row * stride + 1 : (row + 1) * stride]
        seen.update(line[i : i + channels] for i in range(0, len(line), channels * 7))
    return width, height, len(seen)
