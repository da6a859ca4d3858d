#!/usr/bin/env python3
"""Measures the latency of a nested query for several DataLoader windows.

Starts `cerebral` (the binary given as the first argument, default
target/release/cerebral) on a fresh SQLite file for each window, seeds
projects from the greenfield-service workflow, then times the nested query
sequentially (an unloaded server: the case where a long window hurts most).
Prints median and p95 in milliseconds per window. Standard library only.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/cerebral"
WINDOWS_US = [0, 50, 200, 1000]
PROJECTS = 20
RUNS = 200
PORT = 8099
URL = f"http://127.0.0.1:{PORT}/graphql"
NESTED = "{ projects(first: 20) { nodes { id completion { percentage } tasks(first: 20) { nodes { id persona { key name } dependencies { id } } } } } }"


def post(query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(URL, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        data = json.load(r)
    if data.get("errors"):
        raise RuntimeError(data["errors"])
    return data


def wait_ready():
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def statements():
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("cerebral_db_statements_total "):
                return int(line.split()[1])
    raise RuntimeError("no statement counter")


def measure(window_us):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, DATABASE_URL=f"sqlite://{d}/b.db?mode=rwc", CEREBRAL_LISTEN=f"127.0.0.1:{PORT}",
                   CEREBRAL_DATALOADER_DELAY_US=str(window_us), RUST_LOG="warn")
        srv = subprocess.Popen([BIN], env=env, stderr=subprocess.DEVNULL)
        try:
            wait_ready()
            for i in range(PROJECTS):
                post("mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { project { id } } }", {"n": f"p{i}"})
            for _ in range(20):
                post(NESTED)
            before = statements()
            times = []
            for _ in range(RUNS):
                t = time.perf_counter()
                post(NESTED)
                times.append((time.perf_counter() - t) * 1000)
            per_request = (statements() - before) / RUNS
            times.sort()
            return statistics.median(times), times[int(len(times) * 0.95) - 1], per_request
        finally:
            srv.terminate()
            srv.wait()


if __name__ == "__main__":
    print(f"nested query, {PROJECTS} projects x 13 tasks, {RUNS} sequential runs, binary {BIN}")
    print("window_us  median_ms  p95_ms  sql_statements_per_request")
    for w in WINDOWS_US:
        med, p95, per = measure(w)
        print(f"{w:>9}  {med:>9.2f}  {p95:>6.2f}  {per:>6.1f}")
