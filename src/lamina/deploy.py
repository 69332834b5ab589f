"""The developer workflow: blueprints (`lamina init`), packaging and deploying (`lamina deploy`),
and hot reload (`lamina dev`). A client of lamina's Lambda API through boto3, like any user's tooling.

A function directory holds its code and a `lamina.json` whose members are CreateFunction's
(FunctionName, Runtime, Handler, MemorySize, Timeout, Environment, Layers, ...), so what a directory
declares is exactly what the API receives. An AWS SAM `template.yaml` works too (its
`AWS::Serverless::Function` resources).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lamina import progress

BLUEPRINTS = Path(__file__).resolve().parent / "blueprints"
SPEC = "lamina.json"
SKIP_DIRS = {".git", "__pycache__", "node_modules/.cache", ".venv", ".lamina", ".aws-sam"}
SKIP_FILES = {SPEC, "event.json", "template.yaml", "template.yml", ".DS_Store"}
ROLE = "arn:aws:iam::000000000000:role/lamina"


class DeployError(Exception):
    """A function directory or template that cannot be deployed, with the reason."""


# blueprints -------------------------------------------------------------------------------------

def blueprints() -> list[tuple[str, str]]:
    """(name, one-line description) of every blueprint."""
    out = []
    for path in sorted(BLUEPRINTS.iterdir()):
        spec = path / SPEC
        if spec.is_file():
            out.append((path.name, json.loads(spec.read_text()).get("Description", path.name)))
    return out


def init(name: str, target: Path) -> Path:
    source = BLUEPRINTS / name
    if not (source / SPEC).is_file():
        known = ", ".join(n for n, _ in blueprints())
        raise DeployError(f"no blueprint {name!r}; there are: {known}")
    if target.exists() and any(target.iterdir()):
        raise DeployError(f"{target} exists and is not empty")
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


# packaging --------------------------------------------------------------------------------------

def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and str(rel_dir / d) not in SKIP_DIRS)
        for name in sorted(filenames):
            if rel_dir == Path(".") and name in SKIP_FILES:
                continue
            if name.endswith(".pyc"):
                continue
            yield Path(dirpath) / name


def package(source: Path, with_dependencies: bool = True) -> bytes:
    """A deployment zip of `source` (modes kept), with requirements.txt / package.json dependencies."""
    with tempfile.TemporaryDirectory(prefix="lamina-pkg-") as tmp:
        root = source
        if with_dependencies and ((source / "requirements.txt").is_file() or (source / "package.json").is_file()):
            root = Path(tmp) / "pkg"
            shutil.copytree(source, root, ignore=shutil.ignore_patterns(*SKIP_DIRS))
            _install_dependencies(root)
        buf = io.BytesIO()
        with progress.step(f"package {source}") as shown, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            files = read = 0
            for path in _files(root):
                info = zipfile.ZipInfo(str(path.relative_to(root)))
                info.external_attr = (0o100000 | (0o755 if os.access(path, os.X_OK) else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                data = path.read_bytes()
                archive.writestr(info, data)
                files, read = files + 1, read + len(data)
                shown.update(f"{files} files, {progress.size(read)} → {progress.size(buf.tell())}")
        return buf.getvalue()


def _install_dependencies(root: Path) -> None:
    if (root / "requirements.txt").is_file():
        _step("pip install -r requirements.txt into the package")
        _run([sys.executable, "-m", "pip", "install", "-q", "-r", str(root / "requirements.txt"), "--target", str(root)])
    if (root / "package.json").is_file():
        _step("npm install --omit=dev into the package")
        _run(["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--prefix", str(root)])


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"{' '.join(argv[:3])} failed:\n{result.stderr.strip()}")


def _step(text: str) -> None:
    print(f"  → {text}", file=sys.stderr, flush=True)


# deploying --------------------------------------------------------------------------------------

def load_spec(source: Path) -> dict[str, Any]:
    path = source / SPEC
    if not path.is_file():
        raise DeployError(f"{source} has no {SPEC} (FunctionName, Runtime, Handler, ...)")
    spec = json.loads(path.read_text())
    for member in ("FunctionName", "Runtime", "Handler"):
        if not spec.get(member):
            raise DeployError(f"{path}: {member} is required")
    return spec


CONFIG_MEMBERS = ("Runtime", "Handler", "Description", "Timeout", "MemorySize", "Environment", "Layers",
                  "EphemeralStorage", "TracingConfig", "LoggingConfig", "DeadLetterConfig", "Role")


def deploy_function(client: Any, spec: dict[str, Any], code: bytes, publish: bool = False) -> dict[str, Any]:
    """Create the function, or update its code and configuration: idempotent."""
    name = spec["FunctionName"]
    config = {k: spec[k] for k in CONFIG_MEMBERS if k in spec}
    config.setdefault("Role", ROLE)
    try:
        client.get_function_configuration(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        with progress.step(f"create {name}: upload {progress.size(len(code))}"):
            out = client.create_function(FunctionName=name, Code={"ZipFile": code}, Publish=publish, **config)
    else:
        with progress.step(f"update {name}: upload {progress.size(len(code))}"):
            client.update_function_configuration(FunctionName=name, **config)
            out = client.update_function_code(FunctionName=name, ZipFile=code, Publish=publish)
    reserved = spec.get("ReservedConcurrentExecutions")
    if reserved is not None:
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
    return out


def deploy_directory(client: Any, source: Path) -> dict[str, Any]:
    spec = load_spec(source)
    return deploy_function(client, spec, package(source))


# AWS SAM ------------------------------------------------------------------------------------------

def _sam_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: Any, suffix: str, node: Any) -> Any:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", tagged)
    return Loader


SAM_SUPPORTED_EVENTS = {"Schedule", "ScheduleV2"}
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::Partition": "aws"}


def _scalar(value: Any, template: dict[str, Any]) -> str:
    """A template value as a string: literals, !Ref to a parameter default or pseudo parameter, !Sub."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        default = ((template.get("Parameters") or {}).get(name) or {}).get("Default")
        return str(PSEUDO.get(name, default if default is not None else name))
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, default in {**PSEUDO, **{k: str((v or {}).get("Default", k)) for k, v in
                                          (template.get("Parameters") or {}).items()}}.items():
            text = text.replace("${" + name + "}", default)
        return text
    return str(value)


def deploy_sam(client: Any, template_path: Path, events: Any = None) -> list[dict[str, Any]]:
    """Deploy every AWS::Serverless::Function of a SAM template (Globals.Function applied); its
    Schedule events become EventBridge rules (through `events`, a boto3 events client) and its
    FunctionUrlConfig a Function URL."""
    import yaml

    template = yaml.load(template_path.read_text(), Loader=_sam_loader())
    if not isinstance(template, dict) or "Resources" not in template:
        raise DeployError(f"{template_path} is not a SAM/CloudFormation template (no Resources)")
    defaults = ((template.get("Globals") or {}).get("Function") or {})
    results = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **(resource.get("Properties") or {})}
        code_uri = props.get("CodeUri", ".")
        if not isinstance(code_uri, str):
            raise DeployError(f"{logical_id}: CodeUri must be a local directory for lamina")
        spec: dict[str, Any] = {"FunctionName": props.get("FunctionName") or logical_id,
                                "Runtime": props.get("Runtime"), "Handler": props.get("Handler")}
        for member in ("MemorySize", "Timeout", "Description", "Layers", "ReservedConcurrentExecutions"):
            if member in props:
                spec[member] = props[member]
        if "Environment" in props:
            spec["Environment"] = {"Variables": {k: _scalar(v, template) for k, v in
                                                 (props["Environment"].get("Variables") or {}).items()}}
        if "EphemeralStorage" in props:
            spec["EphemeralStorage"] = props["EphemeralStorage"]
        schedules = []
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") in SAM_SUPPORTED_EVENTS and events is not None:
                schedules.append((event_name, event.get("Properties") or {}))
            else:
                _step(f"{logical_id}: event {event_name} ({event.get('Type')}) is not supported by lamina yet; skipped")
        source = (template_path.parent / code_uri).resolve()
        alias = props.get("AutoPublishAlias")
        out = deploy_function(client, spec, package(source), publish=bool(alias))
        if alias:
            version = out["Version"]
            try:
                client.update_alias(FunctionName=spec["FunctionName"], Name=alias, FunctionVersion=version)
            except client.exceptions.ResourceNotFoundException:
                client.create_alias(FunctionName=spec["FunctionName"], Name=alias, FunctionVersion=version)
            _step(f"alias {alias} → version {version}")
        target_arn = out["FunctionArn"].split(":function:")[0] + f":function:{spec['FunctionName']}"
        if alias:
            target_arn += f":{alias}"
        for event_name, event_props in schedules:
            _schedule(events, f"{spec['FunctionName']}-{event_name}", event_props, target_arn)
        if props.get("FunctionUrlConfig"):
            _function_url(client, spec["FunctionName"], alias, props["FunctionUrlConfig"])
        results.append(out)
    if not results:
        raise DeployError(f"{template_path} has no AWS::Serverless::Function resources")
    return results


def _schedule(events: Any, name: str, props: dict[str, Any], target_arn: str) -> None:
    expression = props.get("Schedule") or props.get("ScheduleExpression")
    enabled = props.get("Enabled", props.get("State", "ENABLED") != "DISABLED")
    events.put_rule(Name=props.get("Name") or name, ScheduleExpression=expression,
                    State="ENABLED" if enabled else "DISABLED")
    target: dict[str, Any] = {"Id": "1", "Arn": target_arn}
    if "Input" in props:
        target["Input"] = props["Input"] if isinstance(props["Input"], str) else json.dumps(props["Input"])
    events.put_targets(Rule=props.get("Name") or name, Targets=[target])
    _step(f"schedule {props.get('Name') or name}: {expression} → {target_arn}")


def _function_url(client: Any, name: str, alias: str | None, config: dict[str, Any]) -> None:
    args: dict[str, Any] = {"FunctionName": name, "AuthType": config.get("AuthType", "AWS_IAM")}
    if alias:
        args["Qualifier"] = alias
    if "Cors" in config:
        args["Cors"] = config["Cors"]
    try:
        url = client.create_function_url_config(**args)["FunctionUrl"]
    except client.exceptions.ResourceConflictException:
        url = client.update_function_url_config(**args)["FunctionUrl"]
    if args["AuthType"] == "NONE":
        try:
            client.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                                  Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE",
                                  **({"Qualifier": alias} if alias else {}))
        except client.exceptions.ResourceConflictException:
            pass
    _step(f"function URL {url}")


# dev: watch and redeploy ----------------------------------------------------------------------

def snapshot(source: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in _files(source)}


def watch(client: Any, source: Path, on_deployed: Callable[[dict[str, Any]], None] | None = None,
          interval_s: float = 0.05, stop: Callable[[], bool] = lambda: False) -> None:
    """Deploy, then redeploy the code on every change (polling mtimes every `interval_s`)."""
    spec = load_spec(source)
    out = deploy_function(client, spec, package(source, with_dependencies=True))
    if on_deployed:
        on_deployed(out)
    seen = snapshot(source)
    while not stop():
        time.sleep(interval_s)
        now = snapshot(source)
        if now == seen:
            continue
        seen = now
        try:
            if (source / SPEC).is_file() and json.loads((source / SPEC).read_text()) != spec:
                spec = load_spec(source)
                out = deploy_function(client, spec, package(source, with_dependencies=False))
            else:
                out = client.update_function_code(FunctionName=spec["FunctionName"],
                                                  ZipFile=package(source, with_dependencies=False))
            if on_deployed:
                on_deployed(out)
        except Exception as exc:  # a broken save must not end the watch
            print(f"lamina dev: {exc}", file=sys.stderr, flush=True)
