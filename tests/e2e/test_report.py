"""Issue 19.3: `pinterest-audiences-report`, the console script, as a user runs it.

Text, JSON and HTML from an empty history, a stream with one run, and 1,000 runs; the HTML page
is one self-contained file (nothing to fetch) that holds, per stream, its charts and a table
of its latest runs. The page in a real browser: tests/e2e/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from target_pinterest_audiences.ledger import open_ledger
from target_pinterest_audiences.ledger.schema import SCHEMA_VERSION
from tests.conftest import TargetRunner, audience_messages, emails
from tests.history_support import REPORT, daily_history, mirror_run, report, report_json


class Page(HTMLParser):
    """What a browser would fetch, and what a reader would see, of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.fetched: list[str] = []  # src / href / url() of anything but in-page anchors
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._style = False
        self._css: list[str] = []
        self.feed(text)
        css = "".join(self._css)
        self.fetched += re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
        self.fetched += re.findall(r"@import\s+['\"]?([^'\";\s]+)", css)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append((tag, values))
        for name in ("src", "href", "xlink:href", "data", "poster", "srcset", "action"):
            value = values.get(name)
            if value and not value.startswith("#"):
                self.fetched.append(value)
        if tag == "style":
            self._style = True
        if values.get("style"):
            self._css.append(values["style"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self._css.append(data)
        elif data.strip():
            self.text.append(data.strip())

    def count(self, tag: str, cls: str | None = None) -> int:
        return sum(
            1
            for name, attrs in self.tags
            if name == tag and (cls is None or cls in (attrs.get("class") or "").split())
        )


def html_page(workdir: Path, *args: str) -> Page:
    out = workdir / "report.html"
    proc = report(workdir, "--format", "html", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and f"Wrote the html report to {out}" in proc.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert page.fetched == [], f"the page would fetch {page.fetched}"
    # pygal puts its charts' settings in an inline script each; nothing comes from elsewhere
    assert page.count("link") == 0 and page.count("img") == 0 and page.count("iframe") == 0
    return page


# ---- an empty history ----------------------------------------------------------------------------


def test_an_empty_history_reports_so_in_every_format(tmp_path: Path) -> None:
    proc = report(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No runs recorded yet in .target-pinterest-audiences/")
    assert report_json(tmp_path) == {"streams": {}}
    page = html_page(tmp_path)
    assert "No runs recorded yet" in page.text
    # reading made no ledger
    assert not (tmp_path / ".target-pinterest-audiences").exists()


def test_a_ledger_of_the_release_before_the_history_has_no_runs(tmp_path: Path) -> None:
    from tests.ledger_releases import build_v2, schema_version

    ledger = tmp_path / ".target-pinterest-audiences" / "ledger.sqlite"
    ledger.parent.mkdir()
    build_v2(f"sqlite:///{ledger}", {("549755885175", "1"): [b"\1" * 32]})
    assert report_json(tmp_path) == {"streams": {}}
    assert schema_version(f"sqlite:///{ledger}") == "2"  # the report changes nothing


def test_a_ledger_of_a_newer_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    daily_history(tmp_path, 1)
    ledger = tmp_path / ".target-pinterest-audiences" / "ledger.sqlite"
    import sqlite3

    newer = str(int(SCHEMA_VERSION) + 1)
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE tpa_ledger_meta SET value = ? WHERE key = 'schema_version'", (newer,))
    proc = report(tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"schema version {newer}" in proc.stderr and "upgrade" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- one run -----------------------------------------------------------------------------------


def test_a_stream_with_one_run(target: TargetRunner) -> None:
    run = target.run(audience_messages("only_once", "Only Once", emails(4)), sync_mode="mirror")
    assert run.returncode == 0, run.stderr
    text = report(target.workdir).stdout
    (line,) = [line for line in text.splitlines() if line.startswith("only_once ")]
    assert (
        " mirror " in line
        and " synced " in line
        and run.entry("only_once")["customer_list_id"] in line
    )
    data = report_json(target.workdir)
    (recorded,) = data["streams"]["only_once"]["runs"]
    assert recorded["records_added"] == 4 and recorded["members"] == 4
    page = html_page(target.workdir)
    assert page.count("section", "stream") == 1
    assert page.count("svg") == 3  # audience size and members, match rate, added and removed
    assert page.count("tr", "synced") == 2  # the latest-runs overview, the stream's table
    assert "only_once" in page.text and "Only Once" in " ".join(page.text)


# ---- 1,000 runs ----------------------------------------------------------------------------------


def test_a_thousand_runs_give_a_readable_page(tmp_path: Path) -> None:
    with open_ledger(None, base_dir=tmp_path) as ledger:
        history = ledger.history()
        for n in range(1000):
            history.add(mirror_run(n, failed=n % 17 == 16))
    started = time.monotonic()
    page = html_page(tmp_path)
    print(f"1,000 runs: HTML report in {time.monotonic() - started:.2f}s")
    size = (tmp_path / "report.html").stat().st_size
    print(f"page size {size / 1024:.0f} KiB")
    assert page.count("svg") == 3
    # the table shows the latest 25 runs (and their failures' messages); the bars the latest 60
    assert "Latest runs (25 of 1000)" in page.text
    assert page.count("tr", "synced") + page.count("tr", "failed") >= 1 + 25
    assert any("write quota is used up" in t for t in page.text)
    assert "The latest 60 of 1000 runs." in page.text
    (line,) = [line for line in report(tmp_path).stdout.splitlines() if "holiday" in line]
    assert line.endswith(" 1000 (58 not synced)  this run"), line
    data = report_json(tmp_path)
    assert len(data["streams"]["holiday_shoppers"]["runs"]) == 1000


# ---- options -----------------------------------------------------------------------------------


def test_streams_can_be_picked(tmp_path: Path) -> None:
    daily_history(tmp_path, 3)
    assert set(report_json(tmp_path)["streams"]) == {"holiday_shoppers", "lapsed_customers"}
    picked = report_json(tmp_path, "--stream", "lapsed_customers")
    assert set(picked["streams"]) == {"lapsed_customers"}
    both = report_json(tmp_path, "--stream", "lapsed_customers", "--stream", "holiday_shoppers")
    assert len(both["streams"]) == 2
    assert report_json(tmp_path, "--stream", "nobody") == {"streams": {}}


def test_the_config_names_the_ledger(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    daily_history(elsewhere, 2)
    url = f"sqlite:///{elsewhere / '.target-pinterest-audiences' / 'ledger.sqlite'}"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ad_account_id": "549755885175", "ledger_url": url}))
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert report_json(workdir) == {"streams": {}}
    assert len(report_json(workdir, "--config", str(config))["streams"]) == 2
    # --config ENV: the settings from the environment, as Meltano hands them to a command
    env = {"TARGET_PINTEREST_AUDIENCES_LEDGER_URL": url}
    proc = report(workdir, "--config", "ENV", "--format", "json", env=env)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["streams"]) == 2


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "no such file"), ("{not json", "not a JSON config"), ("[1]", "a JSON object")],
)
def test_a_bad_config_is_said_in_words(tmp_path: Path, content: str | None, says: str) -> None:
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    proc = report(tmp_path, "--config", str(config))
    assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr


def test_the_password_of_ledger_url_is_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    secret = "pw-zqx7-secret"
    config.write_text(
        json.dumps({"ledger_url": f"postgresql+psycopg://tpa:{secret}@127.0.0.1:9/nowhere"})
    )
    proc = report(tmp_path, "--config", str(config))
    assert proc.returncode == 1 and "cannot read the run history" in proc.stderr
    assert secret not in proc.stderr + proc.stdout and "***" in proc.stderr


def test_help_names_every_option() -> None:
    import subprocess

    proc = subprocess.run([str(REPORT), "--help"], capture_output=True, text=True, check=True)
    for option in ("--config", "--format", "--out", "--stream", "text", "json", "html"):
        assert option in proc.stdout
