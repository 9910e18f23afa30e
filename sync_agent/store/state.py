"""Small named values the agent keeps between runs, in ``agent_state`` (one row each).

The last digest's window end, the last reconciliation, a report waiting for its sources, a
delivery to try again: each is written by one process (the daemon, a command) and read by
another (``status``), so they live in the store rather than in memory.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, select

from sync_agent.store.records import dialect_insert
from sync_agent.store.tables import agent_state


def read_state(conn: Connection, name: str) -> str | None:
    """The value named ``name``, or ``None`` when there is none."""
    value = conn.execute(select(agent_state.c.value).where(agent_state.c.name == name)).scalar()
    return None if value is None else str(value)


def read_states(conn: Connection, prefix: str) -> dict[str, str]:
    """Every value whose name starts with ``prefix``, by name."""
    rows = conn.execute(select(agent_state.c.name, agent_state.c.value)
                        .where(agent_state.c.name.startswith(prefix, autoescape=True))
                        .order_by(agent_state.c.name))
    return {str(name): str(value) for name, value in rows}


def write_state(conn: Connection, name: str, value: str, now: dt.datetime) -> None:
    """Set ``name`` to ``value`` (inserted or replaced)."""
    stmt = dialect_insert(conn, agent_state).values(name=name, value=value, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"value": stmt.excluded.value, "updated_at": now}))


def forget_state(conn: Connection, name: str) -> None:
    """Remove ``name`` (nothing happens when it is not there)."""
    conn.execute(delete(agent_state).where(agent_state.c.name == name))


def write_state_once(conn: Connection, name: str, value: str, now: dt.datetime) -> str:
    """Set ``name`` to ``value`` unless it is set; the value it holds afterwards (the first
    writer's, when two write at once: the loser's insert does nothing, on both databases)."""
    stmt = dialect_insert(conn, agent_state).values(name=name, value=value, updated_at=now)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    stored = read_state(conn, name)
    return value if stored is None else stored
