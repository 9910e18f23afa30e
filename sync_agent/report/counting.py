"""Period counting over cases: one set-based pass, GROUP BY source and field, CASE sums.

The counting rules (``domain.md``) are applied in SQL on local calendar dates, so the same
statement runs on SQLite and PostgreSQL and the store never ships a million rows to Python. The
finest grain (reception source x field) is counted once; the totals, the per-source and the
per-field tables are sums of those cells, which is what makes the identity
received = resolved + in progress hold, or visibly fail, at every level at once.

A case whose status says it ended but that has no end date is counted as still in progress: the
report cannot place its end in a period, and reconciliation raises ``data_quality`` for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import CompoundSelect, Connection, and_, case, func, literal, not_, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from sync_agent.model import COMPLETED, ENDED, NOT_COUNTED, Status
from sync_agent.report.period import Period
from sync_agent.store.tables import cases

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")


def rate(numerator: int, denominator: int) -> Decimal | None:
    """Percent rounded half up to 2 decimals (not banker's rounding); ``None`` for 0/0."""
    if denominator == 0:
        return None
    return (Decimal(numerator) * _HUNDRED / Decimal(denominator)).quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Rates:
    """The five rates of the seed's I.1.c, in percent; ``None`` when there is nothing to divide."""

    online_submission: Decimal | None
    resolved_on_time: Decimal | None
    digitised: Decimal | None
    data_reuse: Decimal | None
    online_payment: Decimal | None

    def to_json(self) -> dict[str, float | None]:
        return {f.name: None if getattr(self, f.name) is None else float(getattr(self, f.name))
                for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts of one group of cases for one period (all integers, additive)."""

    carried_over: int = 0
    received_online: int = 0
    received_direct_or_postal: int = 0
    resolved_early: int = 0
    resolved_on_time: int = 0
    resolved_overdue: int = 0
    rejected: int = 0
    withdrawn: int = 0
    in_progress_within_due: int = 0
    in_progress_overdue: int = 0
    # numerators and denominators of the rates, and the reconciliation count
    resolved_digitised: int = 0
    received_data_reused: int = 0
    received_fee_required: int = 0
    received_paid_online: int = 0
    bypassed_reception: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def sum(cls, items: Iterable[Figures]) -> Figures:
        total = cls()
        for item in items:
            total = total + item
        return total

    @property
    def received_in_period(self) -> int:
        return self.received_online + self.received_direct_or_postal

    @property
    def received_total(self) -> int:
        return self.carried_over + self.received_in_period

    @property
    def resolved_total(self) -> int:
        return (self.resolved_early + self.resolved_on_time + self.resolved_overdue
                + self.rejected + self.withdrawn)

    @property
    def in_progress_total(self) -> int:
        return self.in_progress_within_due + self.in_progress_overdue

    @property
    def identity_holds(self) -> bool:
        """received total = resolved total + in progress total (the check the report states)."""
        return self.received_total == self.resolved_total + self.in_progress_total

    @property
    def rates(self) -> Rates:
        in_time = self.resolved_early + self.resolved_on_time
        return Rates(
            online_submission=rate(self.received_online, self.received_in_period),
            resolved_on_time=rate(in_time, in_time + self.resolved_overdue),
            digitised=rate(self.resolved_digitised, self.resolved_total),
            data_reuse=rate(self.received_data_reused, self.received_in_period),
            online_payment=rate(self.received_paid_online, self.received_fee_required),
        )

    def to_json(self) -> dict[str, dict[str, int]]:
        """The ``received`` / ``resolved`` / ``in_progress`` objects of the JSON contract."""
        return {
            "received": {"total": self.received_total, "online": self.received_online,
                         "direct_or_postal": self.received_direct_or_postal,
                         "carried_over": self.carried_over},
            "resolved": {"total": self.resolved_total, "early": self.resolved_early,
                         "on_time": self.resolved_on_time, "overdue": self.resolved_overdue,
                         "rejected": self.rejected, "withdrawn": self.withdrawn},
            "in_progress": {"total": self.in_progress_total, "within_due": self.in_progress_within_due,
                            "overdue": self.in_progress_overdue},
        }


@dataclass(frozen=True, slots=True)
class Cell:
    """The figures of the cases of one reception source in one field."""

    source: str
    field_code: str | None
    field_name: str | None
    figures: Figures


_COUNTED = tuple(s.value for s in NOT_COUNTED)
_ENDED = tuple(s.value for s in ENDED)
_COMPLETED = tuple(s.value for s in COMPLETED)


def period_filter(period: Period) -> ColumnElement[bool]:
    """The period's counted cases: counted status, received by E, not ended before S.

    An end before reception counts as the reception date, so "ended before S" needs both dates
    before S. A case that ended with no end date is never "ended before S" (see module doc).
    """
    c = cases.c
    s, e = period.start, period.end
    ended_before_start = and_(c.status.in_(_ENDED), c.ended_on.is_not(None), c.ended_on < s,
                              c.received_on < s)
    return and_(c.status.not_in(_COUNTED), c.received_on <= e, not_(ended_before_start))


def period_cases(period: Period, *columns: ColumnElement[Any],
                 where: ColumnElement[bool] | None = None) -> CompoundSelect:
    """``columns`` of the period's counted cases, read through the date indexes.

    The same set as ``period_filter`` in three disjoint parts, so that a store holding years of
    history reads only the period's rows, not the whole table:

    - received in the period (index on ``received_on``);
    - received before it, ended on or after S (index on ``ended_on``);
    - received before it, no end date: open, or ended without a date (index on ``ended_on``).

    ``coalesce(received_on, S) < S`` is ``received_on < S`` written so that no planner picks the
    ``received_on`` index for it (SQLite has no statistics unless ANALYZE ran). A case is in the
    second or third part only through its ``ended_on``; this relies on reconciliation leaving
    ``ended_on`` NULL while a case is open, as the model defines it. ``where`` is added to each
    part (a filter on the union itself may lead a planner back to a full scan).
    """
    c = cases.c
    s, e = period.start, period.end
    before = func.coalesce(c.received_on, s) < s
    parts = (
        and_(c.received_on >= s, c.received_on <= e),
        and_(c.ended_on >= s, before),
        and_(c.ended_on.is_(None), before),
    )
    counted = c.status.not_in(_COUNTED)
    extra = [where] if where is not None else []
    return union_all(*(select(*columns).where(counted, part, *extra) for part in parts))


def _effective_end() -> ColumnElement[Any]:
    """The end date by status, never before reception; NULL while open (or with no end date)."""
    c = cases.c
    return case(
        (and_(c.status.in_(_ENDED), c.ended_on.is_not(None)),
         case((c.ended_on < c.received_on, c.received_on), else_=c.ended_on)),
        else_=None,
    )


def _n(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _counted_columns() -> tuple[ColumnElement[Any], ...]:
    """What the counting reads of each of the period's cases."""
    c = cases.c
    return (c.reception_source.label("source"), c.field_code, c.field_name, c.channel, c.status,
            c.received_on, c.due_on, _effective_end().label("end_on"), c.digitised, c.data_reused,
            c.fee_required, c.paid_online, c.has_one_stop)


def figure_conditions(q: Any, period: Period, as_of: dt.date | None = None) -> dict[str, ColumnElement[bool]]:
    """For each ``Figures`` field, the condition under which a case counts in it.

    ``q`` is the columns of a subquery over ``period_cases(period, *_counted_columns())``. The
    report's sums and the list of the dossiers behind them (``counted_cases``) both use these,
    so a figure is always the number of its listed dossiers. ``as_of``: the day the figures are
    taken; in a period not over yet, a dossier in progress is overdue when its due date is before
    that day, not before the period's end, which has not come (it may well be resolved in time).
    """
    s, e = period.start, period.end
    due_by = e if as_of is None else min(e, as_of)
    in_period = q.received_on >= s
    ended = and_(q.end_on.is_not(None), q.end_on <= e)  # within the period: the filter gives >= S
    completed = and_(ended, q.status.in_(_COMPLETED))
    open_at_e = or_(q.end_on.is_(None), q.end_on > e)
    within_due = or_(q.due_on.is_(None), q.due_on >= due_by, q.status == Status.AWAITING_SUPPLEMENT.value)
    return {
        "carried_over": q.received_on < s,
        "received_online": and_(in_period, q.channel == "online"),
        "received_direct_or_postal": and_(in_period, q.channel != "online"),
        "resolved_early": and_(completed, q.due_on.is_not(None), q.end_on < q.due_on),
        "resolved_on_time": and_(completed, or_(q.due_on.is_(None), q.end_on == q.due_on)),
        "resolved_overdue": and_(completed, q.end_on > q.due_on),
        "rejected": and_(ended, q.status == Status.REJECTED.value),
        "withdrawn": and_(ended, q.status == Status.WITHDRAWN.value),
        "in_progress_within_due": and_(open_at_e, within_due),
        "in_progress_overdue": and_(open_at_e, not_(within_due)),
        "resolved_digitised": and_(ended, q.digitised == literal(True)),
        "received_data_reused": and_(in_period, q.data_reused == literal(True)),
        "received_fee_required": and_(in_period, q.fee_required == literal(True)),
        "received_paid_online": and_(in_period, q.fee_required == literal(True), q.paid_online == literal(True)),
        "bypassed_reception": q.has_one_stop == literal(False),
    }


def counted_subquery(period: Period, *extra: ColumnElement[Any]) -> Any:
    """The period's counted cases with the columns the counting reads (and ``extra``)."""
    return period_cases(period, *_counted_columns(), *extra).subquery("pc")


def count_cells(conn: Connection, period: Period, as_of: dt.date | None = None) -> list[Cell]:
    """One statement: the period's figures per (reception source, field), in a stable order."""
    q = counted_subquery(period).c
    stmt = (
        select(q.source, q.field_code, func.min(q.field_name).label("field_name"),
               *(_n(cond).label(name) for name, cond in figure_conditions(q, period, as_of).items()))
        .group_by(q.source, q.field_code)
    )
    names = [f.name for f in fields(Figures)]
    out = [
        Cell(source=r.source, field_code=r.field_code, field_name=r.field_name,
             figures=Figures(*(int(getattr(r, n) or 0) for n in names)))
        for r in conn.execute(stmt)
    ]
    out.sort(key=lambda cell: (cell.source, cell.field_code is None, cell.field_code or ""))
    return out


@dataclass(frozen=True, slots=True)
class Group:
    """A row of the per-source or per-field table."""

    key: str | None
    label: str
    figures: Figures


def by_source(cells: Sequence[Cell], labels: Mapping[str, str] | None = None,
              order: Sequence[str] = ()) -> tuple[Group, ...]:
    """Cells summed per reception source (a case with a one_stop record is one_stop's).

    Sources come in ``order`` (the configured connectors), any other after them by name.
    """
    acc: dict[str, Figures] = {}
    for cell in cells:
        acc[cell.source] = acc.get(cell.source, Figures()) + cell.figures
    labels = labels or {}
    rank = {s: i for i, s in enumerate(order)}
    keys = sorted(acc, key=lambda s: (rank.get(s, len(rank)), s))
    return tuple(Group(key=s, label=labels.get(s, s), figures=acc[s]) for s in keys)


UNKNOWN_FIELD = "Chưa xác định lĩnh vực"


def by_field(cells: Sequence[Cell]) -> tuple[Group, ...]:
    """Cells summed per field; cases with no field come last, under "field not known"."""
    acc: dict[str | None, Figures] = {}
    names: dict[str | None, str] = {}
    for cell in cells:
        acc[cell.field_code] = acc.get(cell.field_code, Figures()) + cell.figures
        if cell.field_name and (cell.field_code not in names or cell.field_name < names[cell.field_code]):
            names[cell.field_code] = cell.field_name
    keys = sorted(acc, key=lambda k: (k is None, k or ""))
    return tuple(Group(key=k, label=names.get(k) or k or UNKNOWN_FIELD, figures=acc[k]) for k in keys)


def local_date(value: dt.datetime | None, tz: dt.tzinfo) -> dt.date | None:
    return None if value is None else value.astimezone(tz).date()
