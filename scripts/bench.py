#!/usr/bin/env python3
"""keygate load benchmark (run it through ./scripts/bench, which builds and installs what it needs).

One gateway with ONE proxy worker thread pinned to CPU 0; wrk (one thread) and the keygate-echo
upstream pinned to CPU 1. Arms, interleaved within the same run, each measured ROUNDS times:
  a  wrk -> upstream directly                       (the upstream's own ceiling)
  b  wrk -> keygate public route -> upstream          (pingora's ceiling: no key work)
  c  wrk -> keygate with 1,000 rotating valid keys    (allowlist + rate limit that never trigger)
  d  wrk -> keygate with garbage keys                 (refused inline, never proxied)
For each: requests/s, p50/p99 latency, and the gateway's CPU microseconds per request (utime+stime
from /proc before and after). Median of the rounds. Then the scale figures: durable creates/s with
8 concurrent admin clients, store writes during arm c, a filtered list over 100k keys, cold start
and resident memory with 1M keys. Prints a markdown report and writes it to target/bench/report.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
TOKEN = "bench-" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv]


class Gateway:
    def __init__(self, workdir: Path, upstream: str, store: Path | None = None, access_log: str = "off"):
        self.ports = {name: free_port() for name in ("proxy", "admin", "metrics")}
        self.store = store or workdir / "store"
        config = {
            "proxy": {"listen": [f"127.0.0.1:{self.ports['proxy']}"], "threads": 1, "upstream_timeout": "10s",
                      "failed_auth_limit": {"per_second": 1_000_000_000}},
            "environments": {"production": {"upstreams": [upstream], "rate_limit": {"per_second": 1_000_000}}},
            "routes": [{"path": "/public", "public": True}],
            "tenants": {"default_key_limit": 100_000},
            "admin": {"listen": f"127.0.0.1:{self.ports['admin']}"},
            "metrics": {"listen": f"127.0.0.1:{self.ports['metrics']}"},
            "log": {"access": access_log, "level": "warn"},
            "storage": {"path": str(self.store), "usage_flush_interval": "1s"},
        }
        self.config_path = workdir / f"keygate-{self.ports['proxy']}.yaml"
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env["KEYGATE_ADMIN_TOKEN"] = TOKEN
        self.started = time.monotonic()
        self.proc = subprocess.Popen(pinned(0, [str(BIN / "keygate"), "serve", "--config", str(self.config_path)]),
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / "keygate.err", "ab"))
        self.ready_after = self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> float:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"keygate exited with {self.proc.returncode}")
            try:
                if self.admin("GET", "/readyz")[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.01)
        raise SystemExit("keygate not ready")

    def admin(self, method: str, path: str, body: dict | None = None, conn: http.client.HTTPConnection | None = None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.ports["admin"], timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if own:
            conn.close()
        return r.status, data

    def metric(self, name: str) -> float:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["metrics"], timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def create_keys(g: Gateway, count: int, clients: int = 8) -> tuple[list[str], float]:
    """Creates `count` keys with 8 concurrent admin clients; returns the secrets and creates/s."""
    def worker(n: int) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", g.ports["admin"], timeout=30)
        out = []
        for i in range(n, count, clients):
            status, data = g.admin("POST", "/v1/keys", {
                "name": f"bench key {i}", "kind": "service", "environment": "production",
                "ip_allowlist": ["127.0.0.0/8"], "rate_limit": {"per_second": 1_000_000}}, conn)
            if status != 201:
                raise SystemExit(f"create failed: {status} {data[:200]!r}")
            out.append(json.loads(data)["secret"])
        conn.close()
        return out
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        secrets = [s for chunk in pool.map(worker, range(clients)) for s in chunk]
    return secrets, count / (time.monotonic() - started)


def wrk_argv(port: int, path: str, seconds: int, connections: int, script: Path | None = None) -> list[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        argv += ["-s", str(script)]
    return pinned(1, argv + [f"http://127.0.0.1:{port}{path}"])


def wrk(port: int, path: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    out = subprocess.run(wrk_argv(port, path, seconds, connections, script), capture_output=True, text=True, check=True).stdout
    return wrk_summary(out)


def wrk_summary(out: str) -> dict:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out)[1])
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50": latency("50"), "p99": latency("99"),
            "requests": total, "errors": errors, "non2xx": int(non2xx[1]) if non2xx else 0}


def lua_with_keys(path: Path, keys: list[str], delay_ms: float | None = None) -> Path:
    """A wrk script rotating over `keys`; with `delay_ms`, each connection waits that long between requests."""
    pace = f"delay = function()\n  return {delay_ms:.3f}\nend\n" if delay_ms is not None else ""
    path.write_text("local keys = {" + ",".join(json.dumps(k) for k in keys) + "}\n"
                    "local i = 0\n"
                    "request = function()\n  i = i % #keys + 1\n"
                    "  return wrk.format('GET', '/api/resource', {['X-API-Key'] = keys[i]})\nend\n" + pace)
    return path


def garbage(n: int) -> list[str]:
    alnum = string.ascii_letters + string.digits
    return ["kg_prod_" + "".join(random.choices(alnum, k=16)) + "_" + "".join(random.choices(alnum, k=38)) for _ in range(n)]


def soak(g: Gateway, keys: list[str], work: Path, minutes: float, connections: int) -> list[str]:
    """Arm c paced at 80 % of its measured maximum for `minutes`: errors and the gateway's resident memory."""
    unpaced = lua_with_keys(work / "soak-max.lua", keys)
    wrk(g.ports["proxy"], "/api/resource", 2, connections, unpaced)  # warm-up
    peak = wrk(g.ports["proxy"], "/api/resource", 10, connections, unpaced)["rps"]
    target = 0.8 * peak
    # wrk has no rate option: each connection waits DELAY ms between requests, and the number of
    # connections sets the rate (about connections x 1000 / (DELAY + latency)), calibrated on short runs.
    delay_ms = 10
    paced = lua_with_keys(work / "soak-paced.lua", keys, delay_ms)
    paced_connections = max(1, round(target * delay_ms / 1000))
    for _ in range(4):
        rate = wrk(g.ports["proxy"], "/api/resource", 5, paced_connections, paced)["rps"]
        if abs(rate / target - 1) < 0.02:
            break
        paced_connections = max(1, round(paced_connections * target / rate))
    seconds = int(minutes * 60)
    load = subprocess.Popen(wrk_argv(g.ports["proxy"], "/api/resource", seconds, paced_connections, paced),
                            stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    while load.poll() is None:
        samples.append((time.monotonic() - started, rss_bytes(g.proc.pid)))
        time.sleep(5)
    r = wrk_summary(load.stdout.read())
    warm_up = min(60.0, seconds / 5)
    steady = [rss for t, rss in samples if t >= warm_up] or [samples[-1][1]]
    mean = statistics.mean(steady)
    low, high = (min(steady) / mean - 1) * 100, (max(steady) / mean - 1) * 100
    lines = [
        f"Soak: arm c (1,000 rotating valid keys) paced at 80 % of its maximum ({peak:,.0f} req/s measured just before) "
        f"for {seconds} s: {paced_connections} connections, each waiting {delay_ms} ms between requests.\n",
        "| req/s | share of max | requests | p50 ms | p99 ms | errors | non-2xx | RSS after warm-up (min / mean / max MiB) | drift |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|",
        f"| {r['rps']:,.0f} | {r['rps'] / peak:.0%} | {r['requests']:,} | {r['p50']:.3f} | {r['p99']:.3f} | {r['errors']} "
        f"| {r['non2xx']} | {min(steady) / 2**20:.1f} / {mean / 2**20:.1f} / {max(steady) / 2**20:.1f} "
        f"| {low:+.1f} % / {high:+.1f} % |",
        "",
        f"Resident memory, sampled every 5 s (the first {warm_up:.0f} s are warm-up): "
        + ", ".join(f"{t:.0f}s {rss / 2**20:.1f}" for t, rss in samples[:: max(1, len(samples) // 24)]) + " MiB",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="measurement time per arm and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--scale-keys", type=int, default=1_000_000, help="keys for the cold-start/memory figure")
    ap.add_argument("--quick", action="store_true", help="short smoke run: 2 s arms, 1 round, 20k scale keys")
    ap.add_argument("--soak", type=float, metavar="MINUTES",
                    help="instead of the arms: arm c at 80%% of its maximum for MINUTES; errors and memory drift")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.scale_keys = 2, 1, 20_000
    report: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="keygate-bench-"))
    upstream_port = free_port()
    echo = subprocess.Popen(pinned(1, [str(BIN / "keygate-echo"), "--listen", f"127.0.0.1:{upstream_port}", "--name", "production"]),
                            stdout=subprocess.DEVNULL)
    wait_port(upstream_port)
    g = Gateway(work, f"127.0.0.1:{upstream_port}")
    try:
        secrets, creates_per_s = create_keys(g, 10_000)
        if args.soak:
            finish(soak(g, secrets[:1000], work, args.soak, args.connections), "soak.md")
            echo.terminate()
            return
        keys_script = lua_with_keys(work / "keys.lua", secrets[:1000])
        garbage_script = lua_with_keys(work / "garbage.lua", garbage(1000))
        arms = {
            "a: direct to upstream": lambda: (upstream_port, "/api/resource", None, None),
            "b: public route (no key)": lambda: (g.ports["proxy"], "/public/resource", None, g.proc.pid),
            "c: 1,000 valid keys": lambda: (g.ports["proxy"], "/api/resource", keys_script, g.proc.pid),
            "d: garbage keys": lambda: (g.ports["proxy"], "/api/resource", garbage_script, g.proc.pid),
        }
        results: dict[str, list[dict]] = {name: [] for name in arms}
        flushes_c = requests_c = 0.0
        for _ in range(args.rounds):
            for name, arm in arms.items():
                port, path, script, pid = arm()
                wrk(port, path, 1, args.connections, script)  # warm-up
                before = cpu_ticks(pid) if pid else 0
                flushes_before = g.metric("keygate_usage_flushes_total")
                r = wrk(port, path, args.seconds, args.connections, script)
                if pid:
                    r["cpu_us"] = (cpu_ticks(pid) - before) / CLK_TCK * 1e6 / max(r["requests"], 1)
                if name.startswith("c"):
                    flushes_c += g.metric("keygate_usage_flushes_total") - flushes_before
                    requests_c += r["requests"]
                results[name].append(r)
        med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in results.items()}

        report.append(f"Machine: {os.cpu_count()} CPUs ({platform_cpu()}), gateway pinned to CPU 0 with 1 proxy worker thread; "
                      f"wrk (1 thread, {args.connections} connections) and keygate-echo pinned to CPU 1. "
                      f"{args.rounds} round(s) of {args.seconds} s per arm, arms interleaved; medians.\n")
        report.append("| arm | req/s | p50 ms | p99 ms | gateway CPU µs/req | errors | non-2xx |")
        report.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, m in med.items():
            cpu = f"{m['cpu_us']:.1f}" if "cpu_us" in m else "—"
            report.append(f"| {name} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {cpu} | {m['errors']:.0f} | {m['non2xx']:.0f} |")
        b, c, d = med["b: public route (no key)"], med["c: 1,000 valid keys"], med["d: garbage keys"]
        report.append("")
        report.append(f"- c/b throughput: **{c['rps'] / b['rps']:.3f}×** (target ≥ 0.97); c/b CPU per request: "
                      f"**{c['cpu_us'] / b['cpu_us']:.3f}×** (target ≤ 1.03)")
        report.append(f"- d/c throughput: **{d['rps'] / c['rps']:.2f}×** (target ≥ 1.5)")
        report.append(f"- store writes during arm c: {flushes_c:.0f} usage flushes for {requests_c:,.0f} requests "
                      f"({flushes_c / max(requests_c, 1):.6f} per request; zero writes happen per request, one batch per "
                      f"usage_flush_interval)")
        report.append(f"- durable creates, 8 concurrent admin clients over HTTP: **{creates_per_s:,.0f}/s** (10,000 keys; target ≥ 1,000)")
    finally:
        g.stop()

    # Filtered list over 100k keys: 10k from above + 90k bulk-loaded.
    subprocess.run([str(ROOT / "target/release/examples/fill_store"), str(g.store), "90000"], check=True, stdout=subprocess.DEVNULL)
    g2 = Gateway(work, f"127.0.0.1:{upstream_port}", store=g.store)
    try:
        timings = []
        for _ in range(7):
            started = time.monotonic()
            status, data = g2.admin("GET", "/v1/keys?status=active&q=NIGHTLY&limit=50")
            timings.append((time.monotonic() - started) * 1000)
            assert status == 200, data[:200]
        total = json.loads(data)["total"]
        report.append(f"- filtered list over 100,000 keys (`status=active&q=NIGHTLY`, {total} matches, first page of 50): "
                      f"**{statistics.median(timings):.1f} ms** median of 7 (target < 100 ms)")
    finally:
        g2.stop()

    # Cold start and memory: empty store vs. a store of N keys.
    empty = Gateway(work, f"127.0.0.1:{upstream_port}", store=work / "empty")
    rss_empty = rss_bytes(empty.proc.pid)
    empty.stop()
    big = work / "big"
    subprocess.run([str(ROOT / "target/release/examples/fill_store"), str(big), str(args.scale_keys)], check=True, stdout=subprocess.DEVNULL)
    full = Gateway(work, f"127.0.0.1:{upstream_port}", store=big)
    rss_full = rss_bytes(full.proc.pid)
    full.stop()
    per_key = (rss_full - rss_empty) / args.scale_keys
    report.append(f"- {args.scale_keys:,} keys: cold start to ready **{full.ready_after:.2f} s** (target ≤ 2 s); resident "
                  f"{rss_full / 2**20:.0f} MiB vs {rss_empty / 2**20:.0f} MiB empty = **{per_key:.0f} bytes/key** (target ≤ 300)")
    echo.terminate()
    finish(report, "report.md")


def finish(report: list[str], name: str) -> None:
    """Prints the report and writes it to target/bench/`name`."""
    text = "\n".join(report) + "\n"
    out = ROOT / "target" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text)
    print(text)


def platform_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
