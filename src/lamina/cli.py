"""The `lamina` command: argv -> Config -> app. No business logic here."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from lamina import config as config_mod
from lamina.app import Lamina


@click.group()
@click.version_option(package_name="lamina")
def main() -> None:
    """lamina: a self-hosted AWS Lambda."""


@main.command()
@click.option("--host", default=None, help="Address to listen on [LAMINA_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port of the Lambda API [LAMINA_PORT; default 9001].")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where functions, code and logs live [LAMINA_DATA_DIR; default ./.lamina].")
@click.option("--sandbox", type=click.Choice(config_mod.SANDBOX_MODES), default=None,
              help="Execution environment driver [LAMINA_SANDBOX; default auto].")
def serve(host: str | None, port: int | None, data_dir: Path | None, sandbox: str | None) -> None:
    """Run the Lambda API and execution environments."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_mod.load(host=host, port=port, data_dir=data_dir, sandbox=sandbox)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(config))
    else:
        uvloop.run(_serve(config))


async def _serve(config: config_mod.Config) -> None:
    async with Lamina(config) as app:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.stop)
        creds = app.credentials
        echo = click.echo
        echo(f"lamina listening on {config.base_url}  (data: {app.data_dir})")
        echo(f"sandbox: {app.driver.name} — {app.driver_reason}")
        for protection in app.driver.protections():
            if not protection.enforced:
                echo(f"  NOT enforced: {protection.name} ({protection.why})")
        echo(f"runtimes: {', '.join(app.registry.ids())}")
        echo("use it with:" + ("  (a new key pair was generated and kept in the data directory)"
                               if creds.generated else ""))
        echo(f"  aws configure set aws_access_key_id {creds.access_key_id}")
        echo(f"  aws configure set aws_secret_access_key {creds.secret_access_key}")
        echo(f"  aws configure set region {config.region}")
        echo(f"  aws --endpoint-url {config.base_url} lambda list-functions")
        sys.stdout.flush()
        await app.wait_closed()
        echo("lamina: shutting down")


@main.command()
@click.option("--sandbox", type=click.Choice(config_mod.SANDBOX_MODES), default=None,
              help="Driver to check [LAMINA_SANDBOX; default auto].")
def doctor(sandbox: str | None) -> None:
    """Say what this host enforces for functions, and which runtimes it has."""
    from lamina.app import choose_driver
    from lamina.runtimes.registry import RuntimeRegistry

    config = config_mod.load(sandbox=sandbox)
    driver, reason = choose_driver(config, config.data_dir.resolve() / "work", probe_only=True)
    click.echo(f"sandbox driver: {driver.name} ({reason})\n")
    rows = [(p.name, "enforced" if p.enforced else "NOT enforced", p.why) for p in driver.protections()]
    _table(("protection", "status", "why"), rows)
    click.echo("")
    _runtime_table(RuntimeRegistry.discover())


@main.command()
def runtimes() -> None:
    """List the Lambda runtime ids this host can run, and the interpreter behind each."""
    from lamina.runtimes.registry import RuntimeRegistry

    _runtime_table(RuntimeRegistry.discover())


def _runtime_table(registry) -> None:  # type: ignore[no-untyped-def]
    rows = [(r.id, str(r.interpreter or "bootstrap in the package"),
             f"bound at /var/lang from {r.lang_root}" if r.lang_root else "") for r in registry.all()]
    _table(("runtime", "interpreter", "note"), rows)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
