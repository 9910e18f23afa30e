"""``demo``: start the bundled simulators and run the whole pipeline once on SQLite."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sync_agent.cli.context import output_folder


@click.command("demo")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo's configuration, store, log and report files.")
@click.option("--size", default=20_000, show_default=True, type=click.IntRange(100, 1_000_000),
              help="Dossiers in the generated year.")
@click.option("--seed", default=2026, show_default=True, help="Seed of the generated data set.")
def command(out_dir: Path, size: int, seed: int) -> None:
    """Start the simulators on loopback, sync, reconcile and report once on an embedded SQLite store."""
    from connectors.wardsim.demo import run_demo

    output_folder(out_dir)
    sys.exit(run_demo(out_dir, size, seed, echo=click.echo))
