"""``check-config``: validate the configuration, open the store, try each source's login."""

from __future__ import annotations

import click

from connectors.base import build_connector
from sync_agent.cli.context import AgentContext
from sync_agent.errors import SourceError, WorkFailed
from sync_agent.model import RECEPTION_SOURCE
from sync_agent.redaction import redact_message
from sync_agent.store.engine import read_connection
from sync_agent.store.records import count_records
from sync_agent.sync import connector_context


@click.command("check-config")
@click.option("--offline", is_flag=True, help="Validate only; do not contact the sources.")
@click.pass_obj
def command(ctx: AgentContext, offline: bool) -> None:
    """Validate the configuration and try each source's login."""
    settings = ctx.settings
    ctx.engine  # noqa: B018 - opening (and migrating) the store is part of the check
    click.echo(f"configuration {ctx.config_path}: valid")
    click.echo(f"database: ok ({redact_message(ctx.engine.url.render_as_string(hide_password=True))})")
    with read_connection(ctx.engine) as conn:
        stored = count_records(conn)
    for source in sorted(set(stored) - {cs.name for cs in settings.connectors}):  # disabled ones too
        # a table renamed on a store in use: the new name reads the records again, the old still count
        click.echo(f"warning: the store holds {stored[source]} record(s) of the source {source!r}, which no "
                   "[connectors] table names now; they still count in reports")
    if not any(cs.name == RECEPTION_SOURCE for cs in settings.connectors):
        click.echo(f"warning: no [connectors.{RECEPTION_SOURCE}] (the Centre's reception register): every dossier "
                   "will be reported as not received at the Centre")
    if offline:
        return
    failed = []
    for cs in settings.connectors:
        if not cs.enabled:
            click.echo(f"{cs.name:<20} disabled")
            continue
        connector = build_connector(cs, connector_context(settings, cs))
        try:
            connector.login()
            click.echo(f"{cs.name:<20} login ok ({redact_message(cs.base_url)})")
        except SourceError as exc:
            failed.append(cs.name)
            click.echo(f"{cs.name:<20} login FAILED: {redact_message(str(exc))}")
        finally:
            connector.close()
    if failed:
        raise WorkFailed(f"cannot log in to {', '.join(failed)}")
