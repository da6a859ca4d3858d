#!/usr/bin/env python3
"""What the front door costs on ordinary queries: server CPU per request.

Starts each `cerebral` binary given (with optional extra settings after a
`:`, e.g. `target/release/cerebral:CEREBRAL_MAX_RESPONSE_BYTES=0`) on a fresh
SQLite file, seeds 20 greenfield-service projects (13 tasks each), warms up,
then sends each query RUNS times in a row and reads the server's CPU time
(user + system, from /proc/PID/stat) before and after: CPU per request
moves little when the machine is busy with other work, unlike latency.
The binaries are measured in turn, ROUNDS times, and the median of the
rounds is printed. Standard library only; everything stays on loopback.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

RUNS = int(os.environ.get("RUNS", "300"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
PORT = 8098
URL = f"http://127.0.0.1:{PORT}/graphql"
TICK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = {
    "flat": "{ projects(first: 20) { nodes { id name status createdAt } } }",
    "nested": "{ projects(first: 20) { nodes { id completion { percentage } tasks(first: 20) { nodes { id persona { key name } dependencies { id } } } } } }",
    "introspection": open(os.path.join(HERE, "..", "tests", "fixtures", "introspection-query.graphql")).read(),
}


def post(query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(URL, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        data = json.load(r)
    if data.get("errors"):
        raise RuntimeError(data["errors"])
    return data


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(spec):
    binary, _, extra = spec.partition(":")
    env_extra = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, DATABASE_URL=f"sqlite://{d}/b.db?mode=rwc", CEREBRAL_LISTEN=f"127.0.0.1:{PORT}",
                   CEREBRAL_RATE_LIMIT_PER_SECOND="0", RUST_LOG="warn", **env_extra)
        srv = subprocess.Popen([binary], env=env, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            for i in range(20):
                post("mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { project { id } } }", {"n": f"p{i}"})
            out = {}
            for name, q in QUERIES.items():
                for _ in range(20):
                    post(q)
                before = cpu_seconds(srv.pid)
                times = []
                for _ in range(RUNS):
                    t = time.perf_counter()
                    post(q)
                    times.append((time.perf_counter() - t) * 1000)
                out[name] = ((cpu_seconds(srv.pid) - before) / RUNS * 1000, statistics.median(times))
            return out
        finally:
            srv.terminate()
            srv.wait()


if __name__ == "__main__":
    specs = sys.argv[1:] or ["target/release/cerebral"]
    results = {s: [] for s in specs}
    for _ in range(ROUNDS):
        for s in specs:
            results[s].append(measure(s))
    print(f"{RUNS} sequential requests per query, median of {ROUNDS} rounds; server CPU ms per request (median latency ms)")
    for s in specs:
        cells = []
        for name in QUERIES:
            cpu = statistics.median(r[name][0] for r in results[s])
            lat = statistics.median(r[name][1] for r in results[s])
            cells.append(f"{name} {cpu:.3f} ({lat:.2f})")
        print(f"{s}: " + "; ".join(cells))
