"""Assemble one period's report: the figures, the reconciliation summary, the lists, sync health.

``build_report`` reads everything in one read transaction and returns a frozen ``PeriodReport``;
every renderer (text, HTML, JSON, xlsx, csv, email) works from that value alone, so what is
printed, attached and emailed is the same snapshot. The figures of a past period depend only on
the stored cases, so recomputing it later gives the same numbers while the data is unchanged;
only the sync-health part depends on ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from sync_agent.config import Settings
from sync_agent.flags import dossier_code, stored_details_text
from sync_agent.privacy import mask_name, redact_text
from sync_agent.report import vn
from sync_agent.report.counting import (
    Cell,
    Figures,
    Group,
    Rates,
    by_field,
    by_source,
    count_cells,
    period_cases,
)
from sync_agent.report.dossier_list import CountedDossier, UncountedDossier, counted_cases, uncounted_cases
from sync_agent.report.period import Period
from sync_agent.report.vn import FLAG_KINDS, source_label
from sync_agent.store.engine import read_connection
from sync_agent.store.quarantined import HeldCounts, held_counts
from sync_agent.store.records import chunks
from sync_agent.store.runs import source_health
from sync_agent.store.tables import cases, dossiers, flags


@dataclass(frozen=True, slots=True)
class FlaggedDossier:
    """One row of the bypassed list or the open-flags list (applicant name already masked)."""

    kind: str
    code: str
    procedure: str
    field_name: str | None
    applicant: str
    filed_on: dt.date | None
    received_on: dt.date | None
    due_on: dt.date | None
    status: str | None
    source: str
    raised_at: dt.datetime | None = None
    details: str | None = None
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Sync health of one source as the report shows it."""

    source: str
    last_success: dt.datetime | None
    stale: bool
    failures_in_a_row: int
    records: int
    #: records quarantined and not superseded: counted in no figure until the source fixes them
    quarantined: int = 0
    #: of those held, records an operator acknowledged (left as they are, with a note): still
    #: missing from the figures, no longer to check; not in ``quarantined``
    quarantined_acknowledged: int = 0

    def state(self, stale_after_hours: int) -> str:
        """Its state in a word (``vn.source_state``)."""
        return vn.source_state(self.stale, self.failures_in_a_row, self.quarantined, stale_after_hours)


@dataclass(frozen=True)
class PeriodReport:
    """Everything the period's report says, computed once."""

    ward_code: str
    ward_name: str
    period: Period
    generated_at: dt.datetime
    total: Figures
    by_source: tuple[Group, ...]
    by_field: tuple[Group, ...]
    cells: tuple[Cell, ...]
    records_by_source: tuple[tuple[str, int], ...]
    open_flags: tuple[tuple[str, int], ...]
    bypassed: tuple[FlaggedDossier, ...]
    other_flags: tuple[FlaggedDossier, ...]
    sources: tuple[SourceStatus, ...]
    stale_after_hours: int = 24
    #: how the paste-ready paragraph names the province's dossier system (``agent.province_name``)
    province_name: str = ""
    #: every counted case and the figures it counts in, when asked for (``with_dossiers``)
    dossiers: tuple[CountedDossier, ...] | None = None
    #: the period's cases no figure counts (refused, not received), with ``dossiers``
    uncounted: tuple[UncountedDossier, ...] = ()

    @property
    def rates(self) -> Rates:
        return self.total.rates

    @property
    def identity_holds(self) -> bool:
        """The identity holds for the total, every source and every field."""
        return self.total.identity_holds and all(
            g.figures.identity_holds for g in (*self.by_source, *self.by_field))

    @property
    def identity_failures(self) -> tuple[str, ...]:
        """Where the identity fails: ``tổng``, ``nguồn X``, ``lĩnh vực Y`` (empty when it holds)."""
        out = [] if self.total.identity_holds else ["tổng"]
        out += [f"hệ thống {g.label}" for g in self.by_source if not g.figures.identity_holds]
        out += [f"lĩnh vực {g.label}" for g in self.by_field if not g.figures.identity_holds]
        return tuple(out)

    @property
    def cases(self) -> int:
        """The period's counted cases (= received total)."""
        return self.total.received_total

    @property
    def over(self) -> bool:
        """Whether the period had ended when the report was made: if not, its figures are as of
        ``generated_at`` and will change."""
        return self.generated_at.date() > self.period.end

    @property
    def stale_sources(self) -> tuple[str, ...]:
        return tuple(s.source for s in self.sources if s.stale)

    def to_json(self) -> dict[str, Any]:
        """The ``report --format json`` contract (operations.md), plus a few added keys."""
        t = self.total

        def group(g: Group, key_name: str) -> dict[str, Any]:
            head: dict[str, Any] = ({"source": g.key} if key_name == "source"
                                    else {"field_code": g.key, "field_name": g.label})
            return {**head, **g.figures.to_json(), "rates": g.figures.rates.to_json(),
                    "identity_holds": g.figures.identity_holds}

        return {
            "ward": {"code": self.ward_code, "name": self.ward_name},
            "period": {"label": self.period.label, "start": self.period.start.isoformat(),
                       "end": self.period.end.isoformat(), "over": self.over},
            **t.to_json(),
            "rates": t.rates.to_json(),
            "by_source": [group(g, "source") for g in self.by_source],
            "by_field": [group(g, "field") for g in self.by_field],
            "reconciliation": {
                "cases": self.cases,
                "records_by_source": dict(self.records_by_source),
                "bypassed_reception": t.bypassed_reception,
                "open_flags": dict(self.open_flags),
                "identity_holds": self.identity_holds,
            },
            "sources": [
                {"source": s.source,
                 "last_success": None if s.last_success is None else s.last_success.isoformat(timespec="seconds"),
                 "stale": s.stale, "failures_in_a_row": s.failures_in_a_row}
                for s in self.sources
            ],
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
        }


def _local(value: dt.datetime | None, tz: dt.tzinfo) -> dt.datetime | None:
    return None if value is None else value.astimezone(tz)


def _bypassed(conn: Connection, period: Period, tz: dt.tzinfo) -> list[FlaggedDossier]:
    c = cases.c
    stmt = period_cases(
        period, c.id, c.case_key, c.reception_code, c.procedure_code, c.procedure_name, c.field_name,
        c.applicant_name, c.submitted_at, c.received_on, c.due_on, c.status, c.reception_source,
        where=c.has_one_stop.is_(False),
    )
    rows = sorted(conn.execute(stmt), key=lambda r: (r.received_on, r.id))
    flagged = _open_bypassed_flags(conn, [r.case_key for r in rows])
    out = []
    for r in rows:
        filed = r.submitted_at.astimezone(tz).date() if r.submitted_at else r.received_on
        flag = flagged.get(r.case_key)
        # a ministry record citing a code: its case has no one-stop record only because one-stop
        # has no record with that code
        cites = bool(r.reception_code) and str(r.case_key).startswith("rc:")
        out.append(FlaggedDossier(
            kind="bypassed_reception", code=redact_text(dossier_code(r.case_key, r.reception_code)),
            procedure=redact_text(r.procedure_name or r.procedure_code), field_name=r.field_name,
            applicant=redact_text(mask_name(r.applicant_name)), filed_on=filed, received_on=r.received_on,
            due_on=r.due_on, status=r.status, source=r.reception_source,
            raised_at=_local(flag.raised_at, tz) if flag else None,
            acknowledged=flag is not None and flag.acknowledged_at is not None,
            details=CITED_CODE_UNKNOWN if cites else None,
        ))
    return out


#: what a bypassed dossier's row says when its record cites a reception code
CITED_CODE_UNKNOWN = "hồ sơ ghi mã tiếp nhận này nhưng hệ thống một cửa không có mã đó"


def _open_bypassed_flags(conn: Connection, case_keys: list[str]) -> dict[str, Any]:
    """The open ``bypassed_reception`` flag of each case key that has one (its subject is the
    case key): the list of bypassed dossiers comes from the period's cases, and the Centre wants
    to see when each was detected and whether someone has already looked at it."""
    f = flags.c
    found: dict[str, Any] = {}
    for chunk in chunks(case_keys):
        for r in conn.execute(
            select(f.subject_key, f.raised_at, f.acknowledged_at)
            .where(f.kind == "bypassed_reception", f.state == "open", f.subject_key.in_(chunk))
        ):
            found[r.subject_key] = r
    return found


def _other_flags(conn: Connection, tz: dt.tzinfo) -> list[FlaggedDossier]:
    f, c, d = flags.c, cases.c, dossiers.c
    rows = conn.execute(
        select(f.kind, f.subject_key, f.details, f.raised_at, f.acknowledged_at,
               c.case_key, c.reception_code.label("c_code"), c.procedure_code.label("c_proc"),
               c.procedure_name.label("c_proc_name"), c.field_name.label("c_field"),
               c.applicant_name.label("c_name"), c.submitted_at.label("c_submitted"),
               c.received_on.label("c_received"), c.due_on.label("c_due"), c.status.label("c_status"),
               c.reception_source.label("c_source"),
               d.source.label("d_source"), d.source_id.label("d_source_id"),
               d.reception_code.label("d_code"), d.procedure_code.label("d_proc"),
               d.procedure_name.label("d_proc_name"), d.field_name.label("d_field"),
               d.applicant_name.label("d_name"), d.submitted_at.label("d_submitted"),
               d.received_on.label("d_received"), d.due_on.label("d_due"), d.status.label("d_status"))
        .select_from(flags.outerjoin(cases, c.id == f.case_id).outerjoin(dossiers, d.id == f.dossier_id))
        .where(f.state == "open", f.kind != "bypassed_reception")
        .order_by(f.kind, f.raised_at, f.id)
    )
    out = []
    for r in rows:
        # a flag about one record (e.g. an unknown reception code) describes that record
        use_dossier = r.d_source is not None
        submitted = r.d_submitted if use_dossier else r.c_submitted
        received = r.d_received if use_dossier else r.c_received
        if use_dossier:
            code = r.d_code or r.d_source_id
        elif r.case_key is not None:
            code = dossier_code(r.case_key, r.c_code)
        else:
            code = dossier_code(r.subject_key)
        source = r.d_source if use_dossier else (
            r.c_source or str(r.subject_key).removeprefix("src:").split(":")[0])
        proc = (r.d_proc_name or r.d_proc) if use_dossier else (r.c_proc_name or r.c_proc)
        out.append(FlaggedDossier(
            kind=r.kind, code=redact_text(code or ""), procedure=redact_text(proc or ""),
            field_name=r.d_field if use_dossier else r.c_field,
            applicant=redact_text(mask_name(r.d_name if use_dossier else r.c_name)),
            filed_on=submitted.astimezone(tz).date() if submitted else received,
            received_on=received, due_on=r.d_due if use_dossier else r.c_due,
            status=r.d_status if use_dossier else r.c_status, source=source or "",
            raised_at=_local(r.raised_at, tz),
            details=redact_text(stored_details_text(r.details)) if r.details else None,
            acknowledged=r.acknowledged_at is not None,
        ))
    return out


def _records_by_source(conn: Connection, configured: tuple[str, ...]) -> dict[str, int]:
    counts = {s: 0 for s in configured}
    for source, n in conn.execute(select(dossiers.c.source, func.count()).group_by(dossiers.c.source)):
        counts[source] = int(n)
    return counts


def _open_flags(conn: Connection) -> dict[str, int]:
    counts = dict.fromkeys(FLAG_KINDS, 0)
    for kind, n in conn.execute(select(flags.c.kind, func.count()).where(flags.c.state == "open")
                                .group_by(flags.c.kind)):
        counts[kind] = int(n)
    return counts


def build_report(engine: Engine, settings: Settings, period: Period,
                 now: dt.datetime | None = None, *, with_dossiers: bool = False) -> PeriodReport:
    """The report of ``period`` from the store, as of ``now`` (for sync health only).

    ``with_dossiers`` also lists the counted cases, read in the same transaction as the figures
    so that the list always adds up to them.
    """
    tz = settings.agent.timezone
    at = (now or dt.datetime.now(tz)).astimezone(tz)
    stale_after = dt.timedelta(hours=settings.report.stale_after_hours)
    configured = settings.source_names
    with read_connection(engine) as conn:
        cells = count_cells(conn, period, as_of=at.date())
        records = _records_by_source(conn, configured)
        open_flags = _open_flags(conn)
        held = held_counts(conn)
        bypassed = _bypassed(conn, period, tz)
        other = _other_flags(conn, tz)
        dossier_list = tuple(counted_cases(conn, period, tz, as_of=at.date())) if with_dossiers else None
        uncounted = tuple(uncounted_cases(conn, period, tz)) if with_dossiers else ()
        sources = []
        for name in [*configured, *sorted(set(records) - set(configured))]:
            h = source_health(conn, name)
            last = _local(h.last_success, tz)
            sources.append(SourceStatus(
                source=name, last_success=last, stale=last is None or at - last > stale_after,
                failures_in_a_row=h.failures_in_a_row,
                records=records.get(name, 0),
                quarantined=held.get(name, HeldCounts()).to_check,
                quarantined_acknowledged=held.get(name, HeldCounts()).acknowledged))
    return PeriodReport(
        ward_code=settings.agent.ward_code,
        ward_name=settings.agent.ward_name,
        province_name=settings.agent.province_name,
        period=period,
        generated_at=at,
        total=Figures.sum(cell.figures for cell in cells),
        by_source=by_source(cells, {c.source: source_label(c.source) for c in cells}, order=configured),
        by_field=by_field(cells),
        cells=tuple(cells),
        records_by_source=tuple(records.items()),
        open_flags=tuple(open_flags.items()),
        bypassed=tuple(bypassed),
        other_flags=tuple(other),
        sources=tuple(sources),
        stale_after_hours=settings.report.stale_after_hours,
        dossiers=dossier_list,
        uncounted=uncounted,
    )
