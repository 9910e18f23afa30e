"""``run``: the daemon. Schedules every source, reconciliation, the digest and the report.

Two hidden options, for tests and benchmarks only: ``--every-seconds N`` replaces every
source's ``every_minutes`` with N seconds (a test sees several scheduled syncs in seconds);
``--time-scale K`` runs every interval job K times faster (``bench/idle.py`` plays an hour of
schedule in a minute).
"""

from __future__ import annotations

import sys

import click

from sync_agent.cli.context import AgentContext


@click.command("run")
@click.option("--every-seconds", type=click.FloatRange(0.5, 86400), default=None, hidden=True,
              help="TEST ONLY: sync every source every N seconds instead of every_minutes.")
@click.option("--time-scale", type=click.FloatRange(1, 3600), default=1.0, hidden=True,
              help="BENCHMARK ONLY: run every interval job this many times faster.")
@click.pass_obj
def command(ctx: AgentContext, every_seconds: float | None, time_scale: float) -> None:
    """The daemon: schedule syncs, reconciliation, alerts and the report; stop on SIGTERM/SIGINT."""
    from sync_agent.daemon import Daemon

    settings = ctx.settings
    # the operator (or the container's log collector) sees every event on stderr
    ctx.setup_logging(stderr_level="INFO")
    sys.exit(Daemon(settings, ctx.engine, every_seconds=every_seconds, time_scale=time_scale).run())
