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
from sync_agent.store.state import forget_state, read_states, write_state
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


#: ``agent_state`` rows of the reports that wait for their sources, one per period (the name
#: without a period: the single row an earlier release kept)
REPORT_WAITING_STATE = "report_waiting"


def mark_report_waiting(engine: Engine, period: Period, behind: tuple[str, ...], now: dt.datetime) -> None:
    """Remember that ``period``'s report waits for the sources ``behind`` (since when: the first
    time it waited), or forget it once none is behind; another period's wait is its own."""
    name = f"{REPORT_WAITING_STATE}:{period.label}"
    with write_transaction(engine) as conn:
        old = {json.loads(v).get("period"): (n, json.loads(v))
               for n, v in read_states(conn, REPORT_WAITING_STATE).items()}
        mine = old.get(period.label)
        if not behind:
            if mine is not None:
                forget_state(conn, mine[0])
            return
        since = mine[1]["since"] if mine else now.isoformat()
        if mine is not None and mine[0] != name:  # an earlier release's single row
            forget_state(conn, mine[0])
        write_state(conn, name, json.dumps({"period": period.label, "sources": list(behind), "since": since}), now)


def report_waiting(engine: Engine) -> dict[str, Any] | None:
    """``{"period", "sources", "since"}`` of the earliest report waiting for its sources, else
    ``None``; a wait whose report went (or is going) out meanwhile, sent by hand, is none: the
    daemon forgets it only at its next check."""
    with read_connection(engine) as conn:
        d = deliveries.c
        for value in sorted(read_states(conn, REPORT_WAITING_STATE).values(),
                            key=lambda v: str(json.loads(v).get("period"))):
            waiting: dict[str, Any] = json.loads(value)
            gone = conn.execute(select(d.id).where(d.key == f"report:{waiting.get('period')}",
                                                   d.status.in_(("sending", "sent"))).limit(1)).first()
            if gone is None:
                return waiting
    return None
