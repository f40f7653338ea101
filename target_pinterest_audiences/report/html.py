"""The HTML report: one self-contained page, charts drawn by pygal, the page from a template.

pygal draws SVG in Python and needs nothing at view time: its charts go inline into the page,
with no script (`js=[]`: its optional tooltips would load from a CDN), so the page opens offline
and works in any browser. The page itself comes from `templates/report.html.j2` (Jinja2,
autoescaped): no CDN script, no web font, no image file.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from target_pinterest_audiences.report.data import StreamRuns, moment, shown, shown_time

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger import RunRecord

LATEST_RUNS = 25  # rows of each stream's table of its latest runs
BAR_RUNS = 60  # runs in each stream's chart of what each run added and removed
DOTS_UP_TO = 120  # points per series drawn as dots; beyond, lines only
TIME_LABELS = 6  # labels on a time axis, at most
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
BLUE, GREY, RED, GREEN, ORANGE, PURPLE = (
    "#1f6fb4", "#8a8f98", "#d62728", "#2b9a3e", "#ef7b10", "#7a4fb0",
)  # fmt: skip


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str  # inline SVG, from pygal (escaped by it)
    note: str = ""


@dataclass(frozen=True)
class StreamView:
    name: str
    latest: RunRecord
    runs: int
    failures: int
    charts: list[Chart]
    table: list[RunRecord]  # newest first
    shown_runs: int


def _style(*colors: str) -> t.Any:
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#30343b",
        foreground_strong="#111418",
        foreground_subtle="#d5d8dd",
        opacity=".85",
        opacity_hover="1",
        colors=colors,
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        legend_font_family=FONT,
        title_font_family=FONT,
        value_font_family=FONT,
        tooltip_font_family=FONT,
        no_data_font_family=FONT,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        guide_stroke_color="#e6e8ec",
        major_guide_stroke_color="#d5d8dd",
        guide_stroke_dasharray="0",
        major_guide_stroke_dasharray="0",
        stroke_width=2,
    )


def _config(points: int, *colors: str, **more: t.Any) -> dict[str, t.Any]:
    return {
        "js": [],  # pygal's tooltips script would come from a CDN: none, the page stays offline
        "disable_xml_declaration": True,
        "style": _style(*colors),
        "width": 900,
        "height": 300,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 3,
        "truncate_legend": -1,
        "truncate_label": -1,
        "x_label_rotation": 0,
        "max_scale": 8,
        "show_dots": points <= DOTS_UP_TO,
        "dots_size": 3,
        "margin": 16,
        "margin_right": 56,  # room for the last label of a time axis
        "no_data_text": "no figures yet",
        "show_x_guides": False,
        **more,
    }


def _time_format(points: list[dt.datetime]) -> str:
    """The unit a span of time calls for: days, minutes or seconds."""
    span = max(points) - min(points)
    if span >= dt.timedelta(days=2):
        return "%Y-%m-%d"
    if span >= dt.timedelta(hours=1):
        return "%m-%d %H:%M"
    return "%H:%M:%S"


def _time_axis(points: list[dt.datetime]) -> dict[str, t.Any]:
    """At most `TIME_LABELS` labels on a time axis, evenly spread."""
    first, last = min(points), max(points)
    form = _time_format(points)
    steps = min(TIME_LABELS - 1, len(set(points)) - 1)
    labels = [first + (last - first) * i / steps for i in range(steps + 1)] if steps else [first]
    return {"x_labels": labels, "x_value_formatter": lambda d: d.strftime(form)}


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _sizes_chart(stream: StreamRuns) -> Chart:
    import pygal

    runs = stream.runs
    times = [moment(run.finished_at).replace(tzinfo=None) for run in runs]
    chart = pygal.DateTimeLine(
        **_config(len(runs), BLUE, GREY, RED, **_time_axis(times)),
        value_formatter=_count,
        include_x_axis=True,
    )
    size = [
        (at, r.audience_size)
        for at, r in zip(times, runs, strict=True)
        if r.audience_size is not None
    ]
    members = [(at, r.members) for at, r in zip(times, runs, strict=True) if r.members is not None]
    failed, level = [], 0
    for at, run in zip(times, runs, strict=True):
        if run.outcome == "synced":
            level = run.audience_size if run.audience_size is not None else level
        else:
            failed.append((at, level))
    chart.add("audience size", size)
    chart.add("members", members)
    chart.add("run not synced", failed, stroke=False, dots_size=4, show_dots=True)
    note = "Audience size: the users Pinterest matched."
    if not members:
        note += " Members (how many the list should hold) are known in mirror mode only."
    return Chart("Audience size and members", chart.render(is_unicode=True), note)


def _match_chart(stream: StreamRuns) -> Chart | None:
    import pygal

    points = [
        (moment(r.finished_at).replace(tzinfo=None), round(r.match_rate * 100, 2))
        for r in stream.runs
        if r.match_rate is not None
    ]
    if not points:
        return None
    chart = pygal.DateTimeLine(
        **_config(len(points), PURPLE, show_legend=False, **_time_axis([p[0] for p in points])),
        value_formatter=lambda v: f"{v:.0f}%",
        range=(0, 100),
        include_x_axis=True,
    )
    chart.add("match rate", points)
    return Chart(
        "Match rate", chart.render(is_unicode=True), "Audience size / members, in percent."
    )


def _changes_chart(stream: StreamRuns) -> Chart:
    import pygal

    runs = stream.runs[-BAR_RUNS:]
    chart = pygal.Bar(
        **_config(len(runs), GREEN, ORANGE, x_label_rotation=-45 if len(runs) > 12 else 0),
        value_formatter=_count,
        show_minor_x_labels=len(runs) <= 20,
        x_labels_major_every=max(1, len(runs) // 10),
    )
    form = _time_format([moment(r.finished_at) for r in runs])
    chart.x_labels = [
        moment(r.finished_at).strftime(form) + ("" if r.outcome == "synced" else f" {r.outcome}")
        for r in runs
    ]
    chart.add("added", [r.records_added for r in runs])
    chart.add("removed", [r.records_removed for r in runs])
    note = (
        f"The latest {len(runs)} of {len(stream.runs)} runs." if len(stream.runs) > BAR_RUNS else ""
    )
    return Chart("What each run added and removed", chart.render(is_unicode=True), note)


def stream_view(stream: StreamRuns) -> StreamView:
    charts = [_sizes_chart(stream)]
    match = _match_chart(stream)
    if match is not None:
        charts.append(match)
    charts.append(_changes_chart(stream))
    table = list(reversed(stream.runs[-LATEST_RUNS:]))
    return StreamView(
        name=stream.name,
        latest=stream.latest,
        runs=len(stream.runs),
        failures=stream.failures,
        charts=charts,
        table=table,
        shown_runs=len(table),
    )


def render_html(streams: list[StreamRuns], where: str, *, now: dt.datetime | None = None) -> str:
    """The page: every stream's charts and latest runs (no stream: a page that says so)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("target_pinterest_audiences.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["shown"] = shown
    env.filters["percent"] = lambda value: shown(value, percent=True)
    env.filters["when"] = shown_time
    env.filters["svg"] = Markup  # pygal's own output, escaped by it
    generated = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(
        streams=[stream_view(s) for s in streams],
        where=where,
        generated=generated,
        total=sum(len(s.runs) for s in streams),
    )
