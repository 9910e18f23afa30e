"""``reconcile``: recompute cases and flags (incremental; ``--full`` rebuilds everything)."""

from __future__ import annotations

import click

from sync_agent.cli.context import AgentContext
from sync_agent.flags import summary_lines
from sync_agent.reconcile import reconcile
from sync_agent.store.engine import read_connection


@click.command("reconcile")
@click.option("--full", is_flag=True, help="Rebuild every case and flag, not only those touched since the last run.")
@click.pass_obj
def command(ctx: AgentContext, full: bool) -> None:
    """Recompute cases and flags from the stored records."""
    result = reconcile(ctx.engine, ctx.settings.agent.timezone, full=full)
    click.echo(str(result))
    with read_connection(ctx.engine) as conn:
        for line in summary_lines(conn, examples=0):
            click.echo(line)
