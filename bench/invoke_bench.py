#!/usr/bin/env python3
"""Invoke benchmarks: lamina beside serverless-offline, same client code, same run, same machine.

    .venv/bin/python bench/invoke_bench.py [--peers-dir /tmp/lamina-peers] [--quick]
    .venv/bin/python bench/invoke_bench.py --interleave 6    # c=64 windows alternating between targets

Measures, for each target:
  * warm latency, raw HTTP keep-alive (one pre-built request replayed over one connection; for lamina
    it is SigV4-signed once, which stays valid for the 15-minute window), p50/p99 over N invokes;
  * warm latency through boto3's lambda client (endpoint_url), p50/p99;
  * throughput with 1, 8 and 64 concurrent keep-alive clients, invokes/s (bench/loadgen.c, a C client
    using ~20 us of host CPU per request; --loadgen asyncio: the asyncio raw-stream client, ~50 us);
  * cold start: lamina per-invoke (a fresh sandboxed environment: configuration changed before each
    invoke), end to end, and the `Init Duration` lamina reports; and server boot to first invoke
    (the definition peers/README.md uses for serverless-offline).
serverless-offline is driven only when its install is found under --peers-dir (copy
../shared/peers there and run its install.sh). Results print as JSON and as a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import statistics
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "LKIABENCH00000000001", "bench-secret-000000000000000000000000001"
PY_HELLO = 'def hello(event, context):\n    return {"statusCode": 200, "body": "hi"}\n'
NODE_HELLO = 'exports.hello = async (event) => ({ statusCode: 200, body: "hi" });\n'
PAYLOAD = b'{"key": "value"}'
MEMORY_MB = 1769


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} did not open")


def zip_of(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return buf.getvalue()


# requests --------------------------------------------------------------------------------------

def raw_request(port: int, function: str, signed: bool) -> bytes:
    """One complete HTTP/1.1 invoke request, SigV4-signed once when the target checks signatures."""
    path = f"/2015-03-31/functions/{function}/invocations"
    headers = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(PAYLOAD))}
    if signed:
        req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}{path}", data=PAYLOAD)
        SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(req)
        headers.update({k: v for k, v in req.headers.items() if k.lower() != "content-length"})
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + PAYLOAD


def read_response(sock_file) -> bytes:
    status = sock_file.readline()
    length = 0
    while True:
        line = sock_file.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = sock_file.read(length)
    if b" 200 " not in status or b"hi" not in body:
        raise RuntimeError(f"bad response: {status!r} {body[:200]!r}")
    return body


async def read_reply(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(status line, body) of one HTTP/1.1 response with a Content-Length."""
    status = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


def client_for(port: int):  # type: ignore[no-untyped-def]
    return boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        config=BotoConfig(retries={"total_max_attempts": 1}))


@contextlib.contextmanager
def lamina_server(extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A `lamina serve` on a free port with a throw-away data directory: yields (process, port, client)."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
    env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET, **(extra_env or {}))
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "lamina", "serve", "--port", str(port),
                             "--data-dir", str(data)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield proc, port, client_for(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        shutil.rmtree(data, ignore_errors=True)


def latency_raw(port: int, request: bytes, n: int) -> dict[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    times = []
    for i in range(n + 50):
        t = time.perf_counter()
        sock.sendall(request)
        read_response(f)
        if i >= 50:
            times.append((time.perf_counter() - t) * 1000)
    sock.close()
    return {"p50_ms": round(pct(times, 50), 3), "p99_ms": round(pct(times, 99), 3), "n": n}


def latency_boto3(port: int, function: str, n: int) -> dict[str, float]:
    client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          config=BotoConfig(retries={"max_attempts": 1}))
    times = []
    for i in range(n + 20):
        t = time.perf_counter()
        out = client.invoke(FunctionName=function, Payload=PAYLOAD)
        body = out["Payload"].read()
        if b"hi" not in body or "FunctionError" in out:
            raise RuntimeError(body)
        if i >= 20:
            times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(pct(times, 50), 3), "p99_ms": round(pct(times, 99), 3), "n": n}


async def _throughput(port: int, request: bytes, clients: int, seconds: float) -> dict[str, float]:
    done = 0
    errors = 0
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                t = time.perf_counter()
                writer.write(request)
                status, body = await read_reply(reader)
                if b" 200 " in status and b"hi" in body:
                    done += 1
                    lat.append((time.perf_counter() - t) * 1000)
                else:
                    errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {"rps": round(done / elapsed), "errors": errors, "p50_ms": round(pct(lat, 50), 2),
            "p99_ms": round(pct(lat, 99), 2)}


#: The client `throughput` measures with: "c" (bench/loadgen.c, built into build/loadgen on first use:
#: ~17-24 us of host CPU per request) or "asyncio" (`_throughput`: ~50 us per request, which on a 2-CPU host the
#: load generator takes from the server under test). --loadgen sets it.
LOADGEN = {"kind": "c"}
LOADGEN_SRC, LOADGEN_BIN = ROOT / "bench/loadgen.c", ROOT / "build/loadgen"


def loadgen_binary() -> Path:
    """build/loadgen, compiled from bench/loadgen.c if missing or older."""
    if not LOADGEN_BIN.exists() or LOADGEN_BIN.stat().st_mtime < LOADGEN_SRC.stat().st_mtime:
        LOADGEN_BIN.parent.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(LOADGEN_BIN), str(LOADGEN_SRC)], check=True)
    return LOADGEN_BIN


def c_throughput(port: int, request: bytes, clients: int, seconds: float) -> dict[str, float]:
    """`_throughput`'s figures from bench/loadgen.c (same request, same checks: status 200, body has "hi")."""
    with tempfile.NamedTemporaryFile(prefix="lamina-bench-request-") as f:
        f.write(request)
        f.flush()
        out = subprocess.run([str(loadgen_binary()), str(port), str(clients), str(seconds), f.name, "hi"],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_throughput(port: int, request: bytes, clients: int, seconds: float) -> dict[str, float]:
    """One closed-loop window with the client LOADGEN names."""
    if LOADGEN["kind"] == "c":
        return c_throughput(port, request, clients, seconds)
    return asyncio.run(_throughput(port, request, clients, seconds))


def stolen_s() -> float:
    """CPU time the hypervisor took from this VM so far (all CPUs), from /proc/stat; 0 where unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU time of one process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(port: int, request: bytes, clients: int, seconds: float,
               server_pid: int | None = None) -> dict[str, float]:
    """Invokes per second with `clients` connections; `steal_s`: CPU time the hypervisor took meanwhile
    (on a noisy VM the figure to read a slow window by); `server_cpu_us`: the server process's CPU per
    invoke, and `server_rss_mb` its resident memory after the window, when its pid is given (lamina's:
    one process; the environments are not in it)."""
    before, cpu = stolen_s(), process_cpu_s(server_pid) if server_pid else 0.0
    out = run_throughput(port, request, clients, seconds)
    out["steal_s"] = round(stolen_s() - before, 2)
    if server_pid and out["rps"]:
        out["server_cpu_us"] = round((process_cpu_s(server_pid) - cpu) / (out["rps"] * seconds) * 1e6)
        with open(f"/proc/{server_pid}/status") as f:
            out["server_rss_mb"] = int(f.read().split("VmRSS:")[1].split()[0]) // 1024
    return out


# targets ---------------------------------------------------------------------------------------

class Lamina:
    name = "lamina"
    signed = True

    @property
    def server_pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __init__(self, python: Path | None = None) -> None:
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
        self.proc: subprocess.Popen[bytes] | None = None
        #: The interpreter `lamina serve` runs on (the project's venv unless another is named).
        self.python = python or ROOT / ".venv/bin/python"

    def start(self) -> float:
        env = dict(os.environ, LAMINA_ACCESS_KEY_ID=KEY, LAMINA_SECRET_ACCESS_KEY=SECRET)
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "lamina", "serve", "--port", str(self.port),
             "--data-dir", str(self.data)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                                   aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                   config=BotoConfig(retries={"max_attempts": 1}))
        # 1769 MB = one full vCPU (Lambda's CPU share): the figures are the platform's, not a CPU quota's.
        self.client.create_function(FunctionName="pyHello", Runtime="python3.11", Handler="handler.hello",
                                    Role="arn:aws:iam::000000000000:role/x", MemorySize=MEMORY_MB,
                                    Code={"ZipFile": zip_of("handler.py", PY_HELLO)})
        self.client.invoke(FunctionName="pyHello", Payload=PAYLOAD)
        boot = (time.monotonic() - t) * 1000
        node = shutil.which("node")
        if node:
            major = subprocess.run([node, "--version"], capture_output=True, text=True).stdout[1:].split(".")[0]
            self.client.create_function(FunctionName="nodeHello", Runtime=f"nodejs{major}.x", Handler="handler.hello",
                                        Role="arn:aws:iam::000000000000:role/x", MemorySize=MEMORY_MB,
                                        Code={"ZipFile": zip_of("handler.js", NODE_HELLO)})
        return boot

    def functions(self) -> dict[str, str]:
        out = {"python": "pyHello"}
        if shutil.which("node"):
            out["node"] = "nodeHello"
        return out

    def cold(self, function: str, n: int) -> dict[str, object]:
        """Cold invokes: each after a configuration change (a new environment is needed).

        `standby`: a pre-started sandbox is ready (LAMINA_PREWARM, the default), 0.2 s between invokes so
        the standby pool refills. `exec`: EphemeralStorage 1024 MB, which no standby fits, so the sandbox
        and interpreter start on the invoke path.
        """
        out: dict[str, object] = {}
        for mode, storage, pause in (("standby", 512, 0.2), ("exec", 1024, 0.05)):
            e2e, init = [], []
            for i in range(n):
                self.client.update_function_configuration(
                    FunctionName=function, Environment={"Variables": {"BENCH_RUN": f"{mode}{i}"}},
                    EphemeralStorage={"Size": storage})
                time.sleep(pause)
                t = time.perf_counter()
                result = self.client.invoke(FunctionName=function, Payload=PAYLOAD, LogType="Tail")
                e2e.append((time.perf_counter() - t) * 1000)
                log = base64.b64decode(result["LogResult"]).decode()
                init += [float(x.split("Init Duration: ")[1].split(" ms")[0]) for x in log.splitlines()
                         if "Init Duration: " in x]
            out[mode] = {"e2e_p50_ms": round(pct(e2e, 50), 1), "e2e_p99_ms": round(pct(e2e, 99), 1),
                         "init_p50_ms": round(pct(init, 50), 1) if init else None, "n": n}
        return out

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)


class ServerlessOffline:
    name = "serverless-offline 13.10.1"
    signed = False
    port = 3002
    server_pid = None  # a node process and its Python children: not one process to read

    def __init__(self, peers: Path) -> None:
        self.dir = peers / "serverless-offline"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available(peers: Path) -> bool:
        return (peers / "serverless-offline" / "node_modules" / "serverless").exists()

    def prepare(self) -> None:
        """The shared copy stores the `handlers -> ../handlers` symlink as a text file; restore the link."""
        link = self.dir / "handlers"
        if link.is_file() and not link.is_symlink():
            target = link.read_text().strip()
            os.chmod(self.dir, 0o755)
            link.unlink()
            link.symlink_to(target)

    def start(self) -> float:
        self.prepare()
        t = time.monotonic()
        self.proc = subprocess.Popen(["bash", str(self.dir / "start.sh")], cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, 120)
        req = raw_request(self.port, "peers-dev-pyHello", False)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port)) as sock:
                    sock.sendall(req)
                    read_response(sock.makefile("rb"))
                break
            except (OSError, RuntimeError):
                time.sleep(0.01)
        return (time.monotonic() - t) * 1000

    def functions(self) -> dict[str, str]:
        return {"python": "peers-dev-pyHello", "node": "peers-dev-nodeHello"}

    def cold(self, function: str, n: int) -> None:
        return None

    def stop(self) -> None:
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def measure(target, quick: bool) -> dict[str, object]:
    n_raw, n_boto, secs, n_cold = (300, 100, 3, 5) if quick else (2000, 500, 10, 20)
    result: dict[str, object] = {"target": target.name}
    try:
        result["boot_to_first_invoke_ms"] = round(target.start())
        for lang, function in target.functions().items():
            req = raw_request(target.port, function, target.signed)
            row: dict[str, object] = {
                "warm_raw": latency_raw(target.port, req, n_raw),
                "warm_boto3": latency_boto3(target.port, function, n_boto),
            }
            pid = target.server_pid
            for c in (1, 8, 64):
                row[f"throughput_c{c}"] = throughput(target.port, req, c, secs, pid)
            # The first c=64 window includes scaling out to 64 environments; this one starts warm.
            row["throughput_c64_again"] = throughput(target.port, req, 64, secs, pid)
            row["cold"] = target.cold(function, n_cold)
            result[lang] = row
            print(json.dumps({target.name: {lang: row}}), file=sys.stderr)
    finally:
        target.stop()
    return result


def interleaved(targets: list, rounds: int, clients: int, secs: float) -> dict[str, object]:
    """Both targets up at once; `rounds` throughput windows of each, alternating target by target, so
    that a slow spell of the machine (steal) falls on both alike. Per target and runtime: every window's
    rate and stolen CPU, and the median rate."""
    out: dict[str, object] = {"clients": clients, "window_s": secs, "rounds": rounds}
    try:
        for target in targets:
            target.start()
        langs = [lang for lang in ("python", "node") if all(lang in t.functions() for t in targets)]
        for lang in langs:
            requests = {t.name: raw_request(t.port, t.functions()[lang], t.signed) for t in targets}
            for t in targets:  # scale out to `clients` environments / workers first: until the rate stops rising
                rates = [throughput(t.port, requests[t.name], clients, secs)["rps"]]
                while len(rates) < 4 and rates[-1] > 1.05 * max(rates[:-1], default=0):
                    rates.append(throughput(t.port, requests[t.name], clients, secs)["rps"])
                out.setdefault("warm_up_rps", {}).setdefault(lang, {})[t.name] = rates
            windows: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
            for r in range(rounds):
                order = targets if r % 2 == 0 else list(reversed(targets))
                for t in order:
                    windows[t.name].append(throughput(t.port, requests[t.name], clients, secs, t.server_pid))
            out[lang] = {name: {"rps": [w["rps"] for w in ws], "steal_s": [w["steal_s"] for w in ws],
                                "median_rps": sorted(w["rps"] for w in ws)[len(ws) // 2]}
                         for name, ws in windows.items()}
            print(json.dumps({lang: out[lang]}), file=sys.stderr)
    finally:
        for target in targets:
            target.stop()
    return out


def interleaved_table(result: dict[str, object]) -> str:
    lines = [f"| runtime | target | inv/s per window, c={result['clients']} ({result['window_s']} s each) "
             "| steal s per window | median inv/s |", "|---|---|---|---|---|"]
    for lang in ("python", "node"):
        rows = result.get(lang) or {}
        for name, row in rows.items():
            lines.append(f"| {lang} | {name} | {', '.join(map(str, row['rps']))} "
                         f"| {', '.join(map(str, row['steal_s']))} | {row['median_rps']} |")
        if len(rows) == 2:
            (a, first), (b, second) = rows.items()
            ratios = round_ratios(first["rps"], second["rps"])
            lines.append(f"| {lang} | {a} ÷ {b}, round by round | {', '.join(f'{r:.2f}' for r in ratios)} "
                         f"| | **{statistics.median(ratios):.2f}** (of the medians: "
                         f"{first['median_rps'] / max(1, second['median_rps']):.2f}) |")
    return "\n".join(lines)


def round_ratios(a: list[float], b: list[float]) -> list[float]:
    """Each round's rate of one target over the other's: the two windows of a round ran one right after
    the other, so a spell of this VM that lasts longer than a round cancels out of its ratio (the ratio
    of the two medians can pair a fast window of one with a slow window of the other)."""
    return [x / y for x, y in zip(a, b) if y]


def table(results: list[dict[str, object]]) -> str:
    lines = ["| target | runtime | warm raw p50 / p99 ms | warm boto3 p50 / p99 ms | inv/s c=1 | c=8 | c=64 "
             "| c=64 again | steal s (c=64, again) | cold invoke p50 / p99 ms (Init Duration p50) "
             "| boot → first invoke ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for lang in ("python", "node"):
            row = r.get(lang)
            if not row:
                continue
            cold = row["cold"]
            cold_s = "; ".join(
                f"{mode}: {c['e2e_p50_ms']} / {c['e2e_p99_ms']} ({c['init_p50_ms']})" for mode, c in cold.items()
            ) if cold else "n/a"
            lines.append(
                f"| {r['target']} | {lang} | {row['warm_raw']['p50_ms']} / {row['warm_raw']['p99_ms']} "
                f"| {row['warm_boto3']['p50_ms']} / {row['warm_boto3']['p99_ms']} "
                f"| {row['throughput_c1']['rps']} | {row['throughput_c8']['rps']} | {row['throughput_c64']['rps']} "
                f"| {row['throughput_c64_again']['rps']} "
                f"| {row['throughput_c64']['steal_s']}, {row['throughput_c64_again']['steal_s']} "
                f"| {cold_s} | {r['boot_to_first_invoke_ms']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers-dir", type=Path, default=Path("/tmp/lamina-peers"))
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    parser.add_argument("--only", choices=("lamina", "peer"), default=None)
    parser.add_argument("--interleave", type=int, metavar="ROUNDS", default=0,
                        help="only throughput at 64 clients: both targets up at once, ROUNDS windows each, "
                             "alternating between them")
    parser.add_argument("--loadgen", choices=("c", "asyncio"), default="c",
                        help="the load generator: bench/loadgen.c (default) or Python asyncio streams")
    args = parser.parse_args()
    LOADGEN["kind"] = args.loadgen
    targets = []
    if args.only != "peer":
        targets.append(Lamina())
    if args.only != "lamina":
        if ServerlessOffline.available(args.peers_dir):
            targets.append(ServerlessOffline(args.peers_dir))
        else:
            print(f"serverless-offline not installed under {args.peers_dir}; skipping the peer", file=sys.stderr)
    if args.interleave:
        result = interleaved(targets, args.interleave, 64, 3 if args.quick else 5)
        print(json.dumps(result, indent=1))
        print(interleaved_table(result))
        return
    results = [measure(t, args.quick) for t in targets]
    print(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
