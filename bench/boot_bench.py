#!/usr/bin/env python3
"""Start-up: `lamina serve` to its port open, and the `lamina` client command (`--help`), N times each.

    .venv/bin/python bench/boot_bench.py [-n 7] [TREE ...]

Each TREE (a checkout: TREE/src goes on PYTHONPATH; default this one) is measured in turn, alternating
round by round so the host's drift falls on all alike. Both figures are mostly Python importing lamina:
where PYTHONDONTWRITEBYTECODE is set, what `make install` compiled ahead (`make bytecode`) is all the
bytecode there is. Prints the medians and every sample, in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import KEY, ROOT, SECRET, free_port, wait_port  # noqa: E402


def serve_ms(tree: Path) -> float:
    port, data = free_port(), tempfile.mkdtemp(prefix="lamina-boot-")
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET)
    started = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                             "--data-dir", data], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return (time.monotonic() - started) * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def cli_ms(tree: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    started = time.monotonic()
    subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "lamina", "--help"], env=env, check=True,
                   capture_output=True)
    return (time.monotonic() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", type=Path, nargs="*", default=[ROOT])
    parser.add_argument("-n", type=int, default=7)
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = {str(t): {"serve": [], "cli": []} for t in args.trees}
    for r in range(args.n):
        for tree in (args.trees if r % 2 == 0 else args.trees[::-1]):
            samples[str(tree)]["serve"].append(round(serve_ms(tree.resolve())))
            samples[str(tree)]["cli"].append(round(cli_ms(tree.resolve())))
    print(json.dumps(samples))
    print("| tree | `lamina serve` to port open, median ms | `lamina --help`, median ms |")
    print("|---|---|---|")
    for tree, s in samples.items():
        print(f"| {tree} | {statistics.median(s['serve']):.0f} | {statistics.median(s['cli']):.0f} |")


if __name__ == "__main__":
    main()
