"""``connectors``: the connector types installed, with each one's own configuration keys.

The example configuration documents the built-in ones; a connector installed from another
package documents itself here, from what its class declares."""

from __future__ import annotations

import click

from sync_agent.errors import ConfigError
from sync_agent.model import RECEPTION_SOURCE

_TYPE_WORDS = {str: "text", int: "integer", float: "number", bool: "true/false"}


@click.command("connectors")
def command() -> None:
    """Installed connector types: name, label, package, and each type's own keys."""
    from connectors.base import available_types, connector_class, installed_from, labels_of_class

    for name in available_types():
        try:
            cls = connector_class(name)
        except ConfigError as exc:
            click.echo(f"{name}  cannot be loaded: {exc.message}")
            continue
        found = labels_of_class(cls)
        label = found.full if found else "(no label: shown by its table name)"
        click.echo(f"{name}  {label}  ({installed_from(name)})")
        if cls.reception_register:
            click.echo(f"    reception register: configure as [connectors.{RECEPTION_SOURCE}]")
        for key, opt in cls.options.items():
            traits = [_TYPE_WORDS.get(opt.type, opt.type.__name__), "required" if opt.required else
                      f"default {opt.default!r}"]
            if opt.secret:
                traits.append("secret")
            click.echo(f"    {key}  {', '.join(traits)}" + (f": {opt.help}" if opt.help else ""))
    click.echo("a secret is written ${NAME} and read from the environment; the keys every connector's table "
               "takes (type, base_url, every_minutes, ...): config/sync-agent.example.toml")
