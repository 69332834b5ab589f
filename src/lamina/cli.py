"""The `lamina` command: argv -> Config -> app. No business logic here."""

from __future__ import annotations

import asyncio
import gc
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

import click

from lamina import config as config_mod
from lamina import cpus


class _Main(click.Group):
    """Failed AWS calls print their error code, message and a one-line hint (clihints.py), not a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        from lamina import clihints

        try:
            return super().invoke(ctx)
        except Exception as exc:
            explained = clihints.explain(exc)
            if explained is None:
                raise
            for line in clihints.lines(explained):
                click.echo(line, err=True)
            ctx.exit(1)


@click.group(cls=_Main)
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
        try:
            import uvloop
        except ImportError:
            asyncio.run(_serve(config))
        else:
            uvloop.run(_serve(config))
    except ValueError as exc:  # a setting that does not fit this host (e.g. LAMINA_RUNTIMES)
        raise click.ClickException(str(exc)) from exc


def _settle_heap() -> None:
    """After start-up: move every object made so far (modules, routes, the app) out of the collector's
    sight, and collect the young generation less often. Each invoke allocates a few hundred short-lived
    objects; with CPython's default (a collection every 700 allocations, a full one re-walking the whole
    start-up heap) the collector took ~5% of the server's CPU under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10000, 20, 20)


async def _serve(config: config_mod.Config) -> None:
    from lamina.app import Lamina  # here: the client commands do without the server's ~100 modules

    async with Lamina(config) as app:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.stop)
        _settle_heap()
        loop_cpu, loop_nice = cpus.place_loop_thread(config.loop_cpu, config.loop_nice)
        fence = app.driver.cpu_fence() if loop_cpu is not None else None  # none made with LAMINA_RESERVE_LOOP_CPU=off
        fencing = None
        if fence is not None:
            fencing = asyncio.ensure_future(cpus.fence_loop_cpu(
                fence, cpus.process_cpus(), loop_cpu, config.reserve_loop_cpu))
        creds = app.credentials
        echo = click.echo
        echo(f"lamina listening on {config.base_url}  (data: {app.data_dir})")
        echo(f"sandbox: {app.driver.name} — {app.driver_reason}")
        for protection in app.driver.protections():
            if not protection.enforced:
                echo(f"  NOT enforced: {protection.name} ({protection.why})")
        echo(f"runtimes: {', '.join(app.registry.ids())}")
        if loop_cpu is not None or loop_nice is not None:
            reserve = {"auto": "kept from functions while the loop is busy", "on": "kept from functions"}
            echo(f"event loop: CPU {'any' if loop_cpu is None else loop_cpu}"
                 f"{', ' + reserve[config.reserve_loop_cpu] if fence is not None else ''}, nice "
                 f"{'as functions' if loop_nice is None else loop_nice} (LAMINA_LOOP_CPU, LAMINA_RESERVE_LOOP_CPU, "
                 f"LAMINA_LOOP_NICE)")
        echo("use it with:" + ("  (a new key pair was generated and kept in the data directory)"
                               if creds.generated else ""))
        echo(f"  aws configure set aws_access_key_id {creds.access_key_id}")
        echo(f"  aws configure set aws_secret_access_key {creds.secret_access_key}")
        echo(f"  aws configure set region {config.region}")
        echo(f"  aws --endpoint-url {config.base_url} lambda list-functions")
        sys.stdout.flush()
        await app.wait_closed()
        if fencing is not None:
            fencing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fencing
        cpus.release_loop_thread()
        echo("lamina: shutting down")


@main.command()
@click.option("--sandbox", type=click.Choice(config_mod.SANDBOX_MODES), default=None,
              help="Driver to check [LAMINA_SANDBOX; default auto].")
def doctor(sandbox: str | None) -> None:
    """Say what this host enforces for functions, and which runtimes it has."""
    from lamina.app import choose_driver
    from lamina.runtimes.registry import RuntimeRegistry, parse_overrides

    config = config_mod.load(sandbox=sandbox)
    driver, reason = choose_driver(config, config.data_dir.resolve() / "work", probe_only=True)
    click.echo(f"sandbox driver: {driver.name} ({reason})\n")
    rows = [(p.name, "enforced" if p.enforced else "NOT enforced", p.why) for p in driver.protections()]
    _table(("protection", "status", "why"), rows)
    click.echo("")
    _runtime_table(RuntimeRegistry.discover(parse_overrides(config_mod.load().runtimes)))


@main.command()
def runtimes() -> None:
    """List the Lambda runtime ids this host can run, and the interpreter behind each."""
    from lamina.runtimes.registry import JAVA_CORE_JAR, RuntimeRegistry, parse_overrides

    _runtime_table(RuntimeRegistry.discover(parse_overrides(config_mod.load().runtimes)))
    if JAVA_CORE_JAR.is_file():
        click.echo(f"java handler interfaces (compile against it): {JAVA_CORE_JAR}")


def _runtime_table(registry) -> None:  # type: ignore[no-untyped-def]
    rows = [(r.id, str(r.interpreter or "bootstrap in the package"),
             f"bound at /var/lang from {r.lang_root}" if r.lang_root else "") for r in registry.all()]
    _table(("runtime", "interpreter", "note"), rows)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def _credentials(config: config_mod.Config) -> tuple[str, str]:
    """The AWS environment's keys, else LAMINA_ACCESS_KEY_ID/SECRET, else the pair kept in the data dir."""
    import json
    import os

    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        key, secret = config.access_key_id, config.secret_access_key
    if not (key and secret):
        saved = config.data_dir / "credentials.json"
        if not saved.is_file():
            raise click.ClickException(f"no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
                                       f"`lamina serve` once so that {saved} exists")
        pair = json.loads(saved.read_text())
        key, secret = pair["access_key_id"], pair["secret_access_key"]
    return key, secret


def _client(endpoint_url: str | None, data_dir: Path | None, service: str = "lambda"):  # type: ignore[no-untyped-def]
    """A boto3 client for this lamina (endpoint from the flag or the settings)."""
    import os

    import boto3
    from botocore.config import Config as BotoConfig

    config = config_mod.load(data_dir=data_dir)
    key, secret = _credentials(config)
    return boto3.client(service, endpoint_url=endpoint_url or config.base_url,
                        region_name=os.environ.get("AWS_DEFAULT_REGION", config.region),
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=900))


_endpoint = click.option("--endpoint-url", default=None, help="lamina's URL [default: http://LAMINA_HOST:LAMINA_PORT].")
_data_dir = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                         help="Where `lamina serve` keeps its key pair [LAMINA_DATA_DIR; default ./.lamina].")


@main.command()
@click.option("--blueprint", "name", default=None, help="Blueprint to start from (see --list).")
@click.option("--list", "list_", is_flag=True, help="List the blueprints, one line each.")
@click.argument("directory", type=click.Path(path_type=Path), required=False)
def init(name: str | None, list_: bool, directory: Path | None) -> None:
    """Write a working starter function into DIRECTORY."""
    from lamina import deploy

    if list_ or not name:
        for blueprint, description in deploy.blueprints():
            click.echo(f"{blueprint:24} {description}")
        return
    if directory is None:
        raise click.UsageError("give the directory to write the function into")
    try:
        deploy.init(name, directory)
    except deploy.DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {name} into {directory}; deploy it with: lamina deploy {directory}")


@main.command("deploy")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=".")
@_endpoint
@_data_dir
def deploy_cmd(path: Path, endpoint_url: str | None, data_dir: Path | None) -> None:
    """Deploy a function directory (with lamina.json) or an AWS SAM template.yaml: create or update."""
    from lamina import deploy

    client = _client(endpoint_url, data_dir)
    try:
        template = path if path.is_file() else next(
            (p for p in (path / "template.yaml", path / "template.yml") if p.is_file()), None)
        results = (deploy.deploy_sam(client, template, _client(endpoint_url, data_dir, service="events"))
                   if template else [deploy.deploy_directory(client, path)])
    except deploy.DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    for out in results:
        click.echo(f"deployed {out['FunctionName']} ({out['Runtime']}, {out['CodeSize']} bytes, "
                   f"version {out['Version']})")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@_endpoint
@_data_dir
def dev(directory: Path, endpoint_url: str | None, data_dir: Path | None) -> None:
    """Deploy DIRECTORY, then redeploy on every save: the next invoke runs the new code."""
    from lamina import deploy

    client = _client(endpoint_url, data_dir)

    def deployed(out: dict) -> None:  # type: ignore[type-arg]
        click.echo(f"{time.strftime('%H:%M:%S')} deployed {out['FunctionName']} ({out['CodeSize']} bytes)")

    click.echo(f"watching {directory} (Ctrl-C to stop)")
    try:
        deploy.watch(client, directory, deployed)
    except deploy.DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("function")
@click.option("--payload", default="{}", help="Event JSON.")
@click.option("--tail/--no-tail", default=True, help="Print the invocation's log lines (LogType Tail).")
@_endpoint
@_data_dir
def invoke(function: str, payload: str, tail: bool, endpoint_url: str | None, data_dir: Path | None) -> None:
    """Invoke FUNCTION synchronously and print its answer (and its log lines)."""
    import base64

    client = _client(endpoint_url, data_dir)
    out = client.invoke(FunctionName=function, Payload=payload.encode(), LogType="Tail" if tail else "None")
    if tail and out.get("LogResult"):
        click.echo(base64.b64decode(out["LogResult"]).decode(errors="replace"), err=True, nl=False)
    click.echo(out["Payload"].read().decode(errors="replace"))
    if out.get("FunctionError"):
        sys.exit(1)


@main.command()
@click.argument("function")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come.")
@click.option("--since", default=3600, type=int, show_default=True, help="Seconds of history to start with.")
@click.option("--filter", "pattern", default="", help="CloudWatch filter pattern (plain terms).")
@_endpoint
@_data_dir
def logs(function: str, follow: bool, since: int, pattern: str, endpoint_url: str | None,
         data_dir: Path | None) -> None:
    """Print a function's log lines (the CloudWatch Logs group /aws/lambda/FUNCTION)."""
    client = _client(endpoint_url, data_dir, service="logs")
    group = f"/aws/lambda/{function}"
    start = int((time.time() - since) * 1000)
    seen: set[str] = set()
    while True:
        kwargs = {"logGroupName": group, "startTime": start, "filterPattern": pattern}
        try:
            while True:
                page = client.filter_log_events(**kwargs)
                for event in page["events"]:
                    if event["eventId"] not in seen:
                        seen.add(event["eventId"])
                        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
                        click.echo(f"{stamp} {event['logStreamName']} {event['message']}")
                        start = max(start, event["timestamp"])
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except client.exceptions.ResourceNotFoundException:
            if not follow:
                raise click.ClickException(f"no logs for {function} yet") from None
        if not follow:
            return
        time.sleep(1.0)


_SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@main.command()
@click.option("--since", default="30d", show_default=True, help="How far back: 90m, 12h, 7d ...")
@click.option("--by", type=click.Choice(["function", "day"]), default="function", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON lamina answers.")
@_endpoint
@_data_dir
def usage(since: str, by: str, as_json: bool, endpoint_url: str | None, data_dir: Path | None) -> None:
    """Requests, GB-seconds and cost at the price table (LAMINA_PRICE_PER_GB_S, ..._PER_MILLION_REQUESTS)."""
    import json
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    try:
        seconds = float(since[:-1]) * _SPANS[since[-1]] if since[-1] in _SPANS else float(since)
    except (ValueError, IndexError):
        raise click.UsageError(f"--since {since!r}: give a number with s, m, h or d") from None
    config = config_mod.load(data_dir=data_dir)
    url = f"{endpoint_url or config.base_url}/_lamina/usage?by={by}&since={int(seconds)}"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*_credentials(config)), "lambda", config.region).add_auth(request)
    with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers.items()))) as reply:
        data = json.load(reply)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    rows = [(r["key"], str(r["requests"]), str(r["errors"]), str(r["cold_starts"]), f"{r['gb_seconds']:.3f}",
             f"${r['cost_usd']:.6f}") for r in data["rows"]]
    total = data["total"]
    rows.append(("total", str(total["requests"]), str(total["errors"]), str(total["cold_starts"]),
                 f"{total['gb_seconds']:.3f}", f"${total['cost_usd']:.6f}"))
    _table((by, "requests", "errors", "cold starts", "GB-seconds", "cost"), rows)
