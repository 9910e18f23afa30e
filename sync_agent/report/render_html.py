"""The report as the HTML email body (also ``report --format html``).

Mail clients run no scripts and many drop ``<style>`` blocks, so every style is inline and the
charts are tables whose cells are coloured to a width: they render the same in Outlook, Gmail
and a phone without any image to block. Jinja2 autoescapes everything that came from a source
system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sync_agent.report import vn
from sync_agent.report.build import PeriodReport
from sync_agent.report.counting import Figures
from sync_agent.report.render_text import (
    COLUMNS,
    RATE_LINES,
    figure_row,
    identity_sentence,
    paragraph,
    subject,
    unfinished_note,
)

#: rows listed in the email body per list; the CSV attachment has them all. Gmail cuts an HTML
#: body longer than about 100 kB ("[Message clipped]"), so the body stays well below that.
EMAIL_LIST_LIMIT = 50

GREEN = "#2e7d32"
LIGHT_GREEN = "#81c784"
AMBER = "#f9a825"
RED = "#c62828"
GREY = "#9e9e9e"
BLUE = "#1565c0"
LIGHT_BLUE = "#90caf9"


@dataclass(frozen=True, slots=True)
class Segment:
    """One coloured cell of a bar: its width in percent of the bar's track."""

    width: int
    color: str
    title: str


def bar(parts: Sequence[tuple[int | Decimal, str, str]], scale: int | Decimal) -> tuple[Segment, ...]:
    """Segments for values on a track of ``scale``; a non-zero part is at least 1 % wide."""
    if scale <= 0:
        return ()
    out = []
    used = 0
    for value, color, title in parts:
        if value <= 0:
            continue
        width = max(1, round(float(value) * 100 / float(scale)))
        width = min(width, 100 - used)
        if width <= 0:
            break
        used += width
        out.append(Segment(width, color, title))
    return tuple(out)


def _progress_bars(f: Figures, scale: int) -> tuple[Segment, ...]:
    return bar([
        (f.resolved_early + f.resolved_on_time, GREEN, "đã giải quyết trước hạn, đúng hạn"),
        (f.resolved_overdue, RED, "đã giải quyết quá hạn"),
        (f.rejected + f.withdrawn, GREY, "từ chối, rút"),
        (f.in_progress_within_due, LIGHT_BLUE, "đang giải quyết trong hạn"),
        (f.in_progress_overdue, AMBER, "đang giải quyết quá hạn"),
    ], scale)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("sync_agent.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=vn.number, percent=vn.percent, vndate=vn.date, vndatetime=vn.datetime, vnmoment=vn.moment,
        source_label=vn.source_label, quarantined_text=vn.quarantined_text, failures_text=vn.failures_text,
        quarantined_acknowledged_text=vn.quarantined_acknowledged_text,
        flag_label=lambda k: vn.FLAG_LABELS.get(k, k),
        status_label=lambda s: vn.STATUS_LABELS.get(s or "", s or ""),
    )
    return env


_ENV = _env()


def render_html(report: PeriodReport, limit: int | None = EMAIL_LIST_LIMIT) -> str:
    """The HTML body; lists cut at ``limit`` rows (``None``: all)."""
    groups_max = max([1, *(g.figures.received_total for g in (*report.by_source, *report.by_field))])
    rates = report.rates
    rate_rows = []
    for attr, label, _joiner in RATE_LINES:
        value = getattr(rates, attr)
        color = RED if value is None or value < 80 else AMBER if value < 95 else GREEN
        rate_rows.append({"label": label, "value": value,
                          "bar": bar([(value, color, label)], 100) if value is not None else ()})
    f = report.total
    return _ENV.get_template("report.html.j2").render(
        r=report,
        f=f,
        title=subject(report),
        unfinished_note=unfinished_note(report),
        paragraph_lines=paragraph(report).split("\n"),
        identity_sentence=identity_sentence(report),
        columns=COLUMNS,
        figure_row=figure_row,
        rate_rows=rate_rows,
        source_bars=[(g, _progress_bars(g.figures, groups_max)) for g in report.by_source],
        field_bars=[(g, _progress_bars(g.figures, groups_max)) for g in report.by_field],
        legend=[(GREEN, "đã giải quyết trước hạn, đúng hạn"), (RED, "đã giải quyết quá hạn"),
                (GREY, "từ chối, rút"), (LIGHT_BLUE, "đang giải quyết trong hạn"),
                (AMBER, "đang giải quyết quá hạn")],
        bypassed=report.bypassed if limit is None else report.bypassed[:limit],
        other_flags=report.other_flags if limit is None else report.other_flags[:limit],
        limit=limit,
        colors={"green": GREEN, "red": RED, "amber": AMBER, "blue": BLUE},
    )
