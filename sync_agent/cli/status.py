"""``status``: per source last success, cursor, lag, failures in a row; open flags; next jobs."""

from __future__ import annotations

import json

import click

from sync_agent.cli.context import AgentContext


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def command(ctx: AgentContext, fmt: str) -> None:
    """Health of each source, open flags, and when each job runs next (daemon running or not)."""
    from sync_agent.status import collect_status, render_text

    st = collect_status(ctx.engine, ctx.settings)
    if fmt == "json":
        click.echo(json.dumps(st.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(st))
