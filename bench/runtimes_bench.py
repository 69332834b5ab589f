#!/usr/bin/env python3
"""Cold start and warm invoke per runtime: the conformance suite's echo handler in every runtime here.

    .venv/bin/python bench/runtimes_bench.py [-n 200] [--cold 10] [--gap 0.3] [--only java ...] [--layer]

For each runtime family the host has (python3.11, nodejs, ruby, java, Go on provided.al2023): 1769 MB
(one vCPU), warm p50/p99 of `n` boto3 invokes, then `--cold` cold invokes (each after a configuration
change) with lamina's Init Duration. Python, Node.js, Ruby and Java cold starts use standby sandboxes; the
others start on the invoke path.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import lamina_server, pct, zip_of  # noqa: E402
from tests.integration.test_conformance import LANGS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--gap", type=float, default=0.3, metavar="S",
                        help="seconds between a configuration change and its cold invoke (standbys refill meanwhile)")
    parser.add_argument("--only", action="append", default=[], metavar="LANG",
                        help="only the conformance suite's languages named so (python, nodejs, ruby, java, go)")
    parser.add_argument("--layer", action="store_true",
                        help="functions with a layer: a custom runtime's package as the layer (its bootstrap at "
                             "/opt/bootstrap), the others' code as it is beside a one-file layer")
    args = parser.parse_args()
    print("| runtime | warm p50 / p99 ms (boto3) | cold invoke p50 / p99 ms | Init Duration p50 ms |")
    print("|---|---|---|---|")
    with lamina_server() as (_, _, client), tempfile.TemporaryDirectory() as tmp:
        for lang in LANGS:
            if args.only and not any(lang.name.startswith(only) for only in args.only):
                continue
            runtime = lang.runtime()
            if runtime is None:
                continue
            try:
                code = lang.package(Path(tmp) / lang.name)
            except BaseException as exc:  # a missing toolchain (pytest.skip) — leave the row out
                print(f"| {lang.name} | skipped: {exc} | | |")
                continue
            name = f"rt-{lang.name}"
            extra = {}
            if args.layer and runtime.startswith("provided"):
                arn = client.publish_layer_version(LayerName=name, Content={"ZipFile": code})["LayerVersionArn"]
                extra, code = {"Layers": [arn]}, zip_of("readme.txt", "the bootstrap is in a layer")
            elif args.layer:
                layer = zip_of("nodejs/node_modules/bench-layer/index.js", "module.exports = 1;\n")
                extra = {"Layers": [client.publish_layer_version(LayerName=name, Content={"ZipFile": layer})[
                    "LayerVersionArn"]]}
            client.create_function(FunctionName=name, Runtime=runtime, Handler=lang.handler("echo"),
                                   Role="arn:aws:iam::000000000000:role/x", MemorySize=1769,
                                   Code={"ZipFile": code}, Timeout=30, **extra)
            payload = json.dumps({"k": "v"}).encode()
            for _ in range(10):
                client.invoke(FunctionName=name, Payload=payload)
            warm = []
            for _ in range(args.n):
                t = time.perf_counter()
                client.invoke(FunctionName=name, Payload=payload)["Payload"].read()
                warm.append((time.perf_counter() - t) * 1000)
            cold, init = [], []
            for i in range(args.cold):
                client.update_function_configuration(FunctionName=name, Environment={"Variables": {"RUN": str(i)}})
                time.sleep(args.gap)
                t = time.perf_counter()
                out = client.invoke(FunctionName=name, Payload=payload, LogType="Tail")
                cold.append((time.perf_counter() - t) * 1000)
                log = base64.b64decode(out["LogResult"]).decode()
                init += [float(x.split("Init Duration: ")[1].split(" ms")[0]) for x in log.splitlines()
                         if "Init Duration: " in x]
            print(f"| {runtime} | {pct(warm, 50):.2f} / {pct(warm, 99):.2f} | {pct(cold, 50):.1f} / {pct(cold, 99):.1f} "
                  f"| {pct(init, 50):.1f} |" if init else f"| {runtime} | {pct(warm, 50):.2f} | – | – |", flush=True)


if __name__ == "__main__":
    main()
