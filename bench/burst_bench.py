#!/usr/bin/env python3
"""Burst and density: N concurrent invokes of a function that sleeps 1 s, lamina beside serverless-offline.

    .venv/bin/python bench/burst_bench.py [-n 200] [--peers-dir /tmp/lamina-peers] [--only lamina|peer]

For each target: wall time until all N invokes answered, how many failed (none may be lost), the CPU the
whole host spent meanwhile (every process and the kernel, the load generator included; the time the
hypervisor stole from this VM's CPUs is shown apart, as steal, since on a shared host it varies run to
run), how many environments were started (each concurrent request needs one; an environment that has finished its
1-s invoke takes a waiting request, as on Lambda, so fewer than N are started) and at what rate, the
CPU each request cost by process, and the peak memory (RSS sum of the server's process tree, sampled
every 50 ms, plus for lamina the high-water mark of its environments' parent cgroup, which also counts
their /tmp page cache; processes inside an environment's cgroup are counted by that figure only); afterwards the PSS of everything per idle environment, i.e. environments per GB. An environment
is counted by its runtime process (for lamina: the one running as the environment's own uid). The load
is N boto3-free raw HTTP invokes over N connections, sent by bench/loadgen.c (one request per connection;
`--client asyncio`: Python asyncio streams, which took ~0.5 s of this 2-CPU host's CPU per burst of 1,000
from the targets under test, and whose first requests trickled in while it opened connections).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.invoke_bench import c_throughput, lamina_server, raw_request, read_reply, wait_port, zip_of  # noqa: E402

#: The burst's client: "c" (bench/loadgen.c with no duration: each connection's request once) or "asyncio".
CLIENT = {"kind": "c"}

SLEEPER_PY = 'import time\ndef hello(event, context):\n    time.sleep(1)\n    return {"statusCode": 200, "body": "hi"}\n'
SLEEPER_YML = """service: burst
frameworkVersion: "3"
provider: {name: aws, region: us-east-1, stage: dev}
functions:
  pySleep: {runtime: python3.11, handler: handlers/sleeper.hello, timeout: 30}
plugins: [serverless-offline]
"""


def environment_pids() -> set[int]:
    """Every process in a lamina environment's cgroup (v1 or v2). Environments forked by a zygote outlive
    it (each retires after 64 forks), so they are not all in the server's process tree."""
    pids: set[int] = set()
    for procs in glob.glob("/sys/fs/cgroup/*/lamina-*/env-*/cgroup.procs") + glob.glob(
            "/sys/fs/cgroup/lamina-*/env-*/cgroup.procs"):
        try:
            with open(procs) as f:
                pids.update(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return pids


def tree(root_pid: int) -> list[psutil.Process]:
    """The server, its descendants, and every process of its environments."""
    root = psutil.Process(root_pid)
    procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
    for pid in environment_pids() - procs.keys():
        try:
            procs[pid] = psutil.Process(pid)
        except psutil.Error:
            continue
    return list(procs.values())


def environments_peak_mb() -> float:
    """Peak memory of lamina's environments together: their parent cgroup's high-water mark (cheap to read,
    unlike sampling hundreds of processes, which would load the host it measures)."""
    total = 0
    for parent, peak in (("/sys/fs/cgroup/memory", "memory.max_usage_in_bytes"), ("/sys/fs/cgroup", "memory.peak")):
        for group in glob.glob(f"{parent}/lamina-*"):
            live = any(Path(procs).read_text().strip() for procs in glob.glob(f"{group}/env-*/cgroup.procs"))
            if live and os.path.exists(f"{group}/{peak}"):  # this server's (others' leftovers are empty)
                total += int(Path(group, peak).read_text())
    return total / 2**20


def in_environment(proc: psutil.Process) -> bool:
    """Whether the process runs in one of lamina's environment cgroups (counted by environments_peak_mb:
    the runtimes a zygote forked are still its children, and summing their RSS too would count each
    environment twice, its pages shared with the zygote once per process)."""
    try:
        with open(f"/proc/{proc.pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return False
    return "/lamina-" in text and "/env-" in text


class Sampler(threading.Thread):
    """Peak RSS of a process tree (not the processes inside environments), sampled every 50 ms. The tree itself is listed again every 0.5 s only:
    psutil finds children by reading every process on the host, which with a thousand environments up
    would make the sampler a big part of the load it measures."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_mb = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        procs: list[psutil.Process] = []
        listed = 0.0
        while not self.stop.is_set():
            if time.monotonic() - listed >= 0.5:
                try:
                    procs = [p for p in [self.root, *self.root.children(recursive=True)] if not in_environment(p)]
                except psutil.Error:
                    pass
                listed = time.monotonic()
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            time.sleep(0.05)


async def _burst(port: int, request: bytes, n: int, timeout: float) -> tuple[int, int]:
    failures: list[str] = []

    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, body = await read_reply(reader)
            writer.close()
            good = b" 200 " in status and b"hi" in body
            if not good and len(failures) < 3:
                failures.append((status + body[:300]).decode(errors="replace"))
            return good
        except (OSError, asyncio.IncompleteReadError) as exc:
            if len(failures) < 3:
                failures.append(repr(exc))
            return False

    results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout)
    if failures:
        print("failures (first 3):", *failures, sep="\n  ", file=sys.stderr)
    return sum(results), n - sum(results)


def burst(port: int, request: bytes, n: int, timeout: float) -> tuple[int, int]:
    """(answered, failed) of n concurrent requests, one per connection, by the client CLIENT names."""
    if CLIENT["kind"] == "c":
        done = int(c_throughput(port, request, n, 0)["done"])
        return done, n - done
    return asyncio.run(_burst(port, request, n, timeout))


def client_cpu_s() -> float:
    """CPU seconds of this process and its finished children (the C client)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def pss_per_env_kb(root_pid: int, runtime_name: str, sandboxed: bool) -> tuple[int, float]:
    """(environments, PSS of the whole tree below the server per environment). An environment is counted
    by its runtime process: for lamina the one running as an environment's own uid (not the zygotes,
    the inits or bubblewrap, which are root), for the peer every runtime process."""
    envs, total = 0, 0
    for proc in tree(root_pid)[1:]:
        try:
            with open(f"/proc/{proc.pid}/smaps_rollup") as f:
                pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        total += pss
        try:
            envs += proc.name() == runtime_name and (not sandboxed or proc.uids().real != 0)
        except psutil.Error:
            continue
    return envs, total / max(envs, 1)


def run_lamina(n: int) -> dict[str, object]:
    with lamina_server({"LAMINA_CONCURRENCY_LIMIT": str(max(1000, n))}) as (proc, port, client):
        client.create_function(FunctionName="pySleep", Runtime="python3.11", Handler="handler.hello",
                               Role="arn:aws:iam::000000000000:role/x", Timeout=60,
                               Code={"ZipFile": zip_of("handler.py", SLEEPER_PY)})
        return measure(proc.pid, port, raw_request(port, "pySleep", True), n, "python3.11", True)


def run_serverless_offline(peers: Path, n: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="so-burst-"))
    (work / "handlers").mkdir()
    (work / "handlers" / "sleeper.py").write_text(SLEEPER_PY)
    (work / "serverless.yml").write_text(SLEEPER_YML)
    (work / "node_modules").symlink_to(peers / "serverless-offline" / "node_modules")
    env = dict(os.environ, SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", AWS_ACCESS_KEY_ID="x",
               AWS_SECRET_ACCESS_KEY="x", VIRTUAL_ENV=str(peers / ".venv"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(["node", "node_modules/serverless/bin/serverless.js", "offline", "start", "--host",
                             "127.0.0.1", "--httpPort", "3010", "--lambdaPort", "3012", "--noSponsor"],
                            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_port(3012, 120)
        return measure(proc.pid, 3012, raw_request(3012, "burst-dev-pySleep", False), n, "python3", False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


def cpu_by_name(root_pid: int) -> dict[str, float]:
    """CPU seconds of a process tree by process name (exited children counted in their parent's)."""
    out: dict[str, float] = {}
    root = psutil.Process(root_pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.name()] = out.get(proc.name(), 0.0) + t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return out


def host_cpu_s() -> tuple[float, float]:
    """(CPU seconds the whole host spent busy so far — every process, the kernel, the load generator —,
    seconds the hypervisor took from this VM's CPUs meanwhile: steal, counted apart, not as busy)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def measure(pid: int, port: int, request: bytes, n: int, runtime_name: str, sandboxed: bool) -> dict[str, object]:
    sampler = Sampler(pid)
    sampler.start()
    cpu_before = cpu_by_name(pid)
    busy_before, steal_before = host_cpu_s()
    own_before = client_cpu_s()
    started = time.monotonic()
    ok, failed = burst(port, request, n, 600)
    wall = time.monotonic() - started
    busy, steal = (after - before for after, before in zip(host_cpu_s(), (busy_before, steal_before)))
    own = client_cpu_s() - own_before
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_by_name(pid).items()}
    sampler.stop.set()
    sampler.join()
    envs, pss_kb = pss_per_env_kb(pid, runtime_name, sandboxed)
    peak_mb = sampler.peak_mb + (environments_peak_mb() if sandboxed else 0.0)
    return {"n": n, "ok": ok, "failed": failed, "wall_s": round(wall, 2), "host_cpu_s": round(busy, 1),
            "steal_s": round(steal, 1),
            "load_generator_cpu_s": round(own, 1),
            "envs_per_s": round(envs / max(wall - 1.0, 0.001), 1), "peak_rss_mb": round(peak_mb),
            "idle_envs": envs, "pss_per_env_mb": round(pss_kb / 1024, 2),
            "envs_per_gb": round(1024 * 1024 / pss_kb) if pss_kb else None,
            "cpu_ms_per_request": {k: round(v * 1000 / n, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
                                   if v > 0.01}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--peers-dir", type=Path, default=Path("/tmp/lamina-peers"))
    parser.add_argument("--only", choices=("lamina", "peer"))
    parser.add_argument("--client", choices=("c", "asyncio"), default="c",
                        help="the load generator: bench/loadgen.c (default) or Python asyncio streams")
    args = parser.parse_args()
    CLIENT["kind"] = args.client
    results = {}
    if args.only != "peer":
        results["lamina"] = run_lamina(args.n)
        print(json.dumps({"lamina": results["lamina"]}), file=sys.stderr)
    if args.only != "lamina" and (args.peers_dir / "serverless-offline" / "node_modules").exists():
        results["serverless-offline"] = run_serverless_offline(args.peers_dir, args.n)
    print(json.dumps(results, indent=1))
    print("| target | N | answered | failed | wall s | host CPU s | steal s | environments | envs / (wall − 1 s) "
          "| peak memory MB | PSS per idle env MB | envs per GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['n']} | {r['ok']} | {r['failed']} | {r['wall_s']} | {r['host_cpu_s']} | {r['steal_s']} "
              f"| {r['idle_envs']} "
              f"| {r['envs_per_s']} | {r['peak_rss_mb']} | {r['pss_per_env_mb']} | {r['envs_per_gb']} |")
    print("\nCPU ms per request, by process (the whole tree, exited children in their parent):")
    for name, r in results.items():
        print(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_request"].items())
              + f"; the load generator: {r['load_generator_cpu_s']} s in all")


if __name__ == "__main__":
    main()
