"""``sync [SOURCE ...]``: one incremental sync of the named sources, then reconciliation."""

from __future__ import annotations

import click

from sync_agent.cli.context import AgentContext
from sync_agent.errors import UsageError, WorkFailed
from sync_agent.reconcile import reconcile
from sync_agent.sync import sync_sources


@click.command("sync")
@click.argument("sources", nargs=-1)
@click.pass_obj
def command(ctx: AgentContext, sources: tuple[str, ...]) -> None:
    """One incremental sync of SOURCES (all enabled sources when none), then reconcile."""
    settings = ctx.settings
    known = {c.name for c in settings.connectors}
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise UsageError(f"unknown source(s) {', '.join(unknown)}; configured: {', '.join(sorted(known))}")
    # the example says a disabled source is "never synced": a source switched off because its
    # server is retired or misbehaves is not read by a sync that names it out of habit
    disabled = [s for s in sources if not settings.connector(s).enabled]
    if disabled:
        keys = ", ".join(f"connectors.{s}.enabled" for s in disabled)
        raise UsageError(f"source(s) {', '.join(disabled)} disabled ({keys} = false): never synced; "
                         "set it to true to sync")
    results = sync_sources(ctx.engine, settings, sources or None)
    for r in results:
        click.echo(r.line())
    # The records of the sources that did sync are consistent: reconcile them even if one failed.
    click.echo(str(reconcile(ctx.engine, settings.agent.timezone)))
    # a source skipped because another sync held it is being synced by that one: not a failure
    failed = [r.source for r in results if r.failed]
    if failed:
        raise WorkFailed(f"sync failed for {', '.join(failed)} (see `sync-agent runs`)")
