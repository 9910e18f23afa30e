"""Whether the store can report a period: every source read past its end.

Kept apart from the report package, which loads its renderers: ``status`` reads the waiting
state on every call, and the daemon checks it before it builds anything.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from sync_agent.config import Settings
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.runs import get_cursor
from sync_agent.store.state import forget_state, read_state, write_state
from sync_agent.store.tables import deliveries

if TYPE_CHECKING:
    from sync_agent.report.period import Period


def sources_behind(engine: Engine, settings: Settings, period: Period) -> tuple[str, ...]:
    """The enabled sources not yet read up to the end of ``period`` (their cursor is before the
    midnight after its last day, or they never synced): a report now would miss their records."""
    end = dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time(0), tzinfo=settings.agent.timezone)
    # a source configured to start after the period has nothing of it to wait for
    names = [c.name for c in settings.connectors
             if c.enabled and (c.start_date is None or c.start_date <= period.end)]
    with read_connection(engine) as conn:
        cursors = {name: get_cursor(conn, name) for name in names}
    return tuple(name for name, cursor in cursors.items() if cursor is None or cursor < end)


#: ``agent_state`` row naming the report that waits for its sources (``status`` shows it)
REPORT_WAITING_STATE = "report_waiting"


def mark_report_waiting(engine: Engine, period: Period, behind: tuple[str, ...], now: dt.datetime) -> None:
    """Remember that ``period``'s report waits for the sources ``behind`` (since when: the first
    time it waited), or forget it once none is behind."""
    with write_transaction(engine) as conn:
        row = read_state(conn, REPORT_WAITING_STATE)
        old = json.loads(row) if row else None
        if not behind:
            if old is not None and old.get("period") == period.label:  # not another period's wait
                forget_state(conn, REPORT_WAITING_STATE)
            return
        since = old["since"] if old and old.get("period") == period.label else now.isoformat()
        value = json.dumps({"period": period.label, "sources": list(behind), "since": since})
        write_state(conn, REPORT_WAITING_STATE, value, now)


def report_waiting(engine: Engine) -> dict[str, Any] | None:
    """``{"period", "sources", "since"}`` of a report waiting for its sources, else ``None``;
    also ``None`` once that report went (or is going) out, sent by hand meanwhile: the daemon
    forgets the wait only at its next check."""
    with read_connection(engine) as conn:
        row = read_state(conn, REPORT_WAITING_STATE)
        if not row:
            return None
        waiting: dict[str, Any] = json.loads(row)
        d = deliveries.c
        gone = conn.execute(select(d.id).where(d.key == f"report:{waiting.get('period')}",
                                               d.status.in_(("sending", "sent"))).limit(1)).first()
    return None if gone is not None else waiting
