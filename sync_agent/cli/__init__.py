"""The ``sync-agent`` command line: parse, call the module that does the work, print.

Exit status: 0 success, 2 bad usage or configuration, 1 when the work itself failed. A wrong
configuration is one line naming the key, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from sync_agent.cli.context import AgentContext
from sync_agent.errors import AlreadyRunning, ConfigError, UsageError, WorkFailed, machine_failure, one_line
from sync_agent.redaction import redact_message

# Each module defines ``command`` (a click command or group) named like the module. Every command
# loads here, so a module imports what only its command needs (report rendering, the daemon's
# scheduler) inside the command: `sync` is run often and should not start up paying for them.
COMMAND_MODULES = (
    "sync", "runs", "check_config", "demo", "run", "status", "logs", "alerts", "report", "reconcile", "flags",
    "quarantine", "connectors",
)


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            # the key as it is ("client_secret: ..." is a key, not a secret); the message masked
            shown = redact_message(exc.message)
            click.echo(f"configuration error: {exc.key}: {shown}" if exc.key else f"configuration error: {shown}",
                       err=True)
            sys.exit(2)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except AlreadyRunning as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except WorkFailed as exc:
            click.echo(f"failed: {redact_message(str(exc))}", err=True)
            sys.exit(1)
        except Exception as exc:
            if not machine_failure(exc):
                raise  # the agent's own fault: its traceback is what mends it
            click.echo(f"failed: {redact_message(one_line(exc))}", err=True)
            sys.exit(1)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar=None,
              help="Configuration file (default: $SYNC_AGENT_CONFIG, else config/sync-agent.toml).")
@click.version_option(package_name="sync-agent")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Ward dossier sync agent: sync, reconcile, report, alert."""
    ctx.obj = AgentContext(config_path)
    ctx.call_on_close(ctx.obj.close)


for _name in COMMAND_MODULES:
    main.add_command(importlib.import_module(f"sync_agent.cli.{_name}").command)
