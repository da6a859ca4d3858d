#!/usr/bin/env python3
"""Cerebral side by side with PostGraphile 5.1.5 on the same PostgreSQL (issue 14).

One command:

    bench/sidebyside/run.py [--quick] [--cerebral PATH] [--keep] [--flamegraph OUT.svg]

It
  1. creates its own PostgreSQL 15 cluster (initdb in a temporary directory,
     port 5499, pg_stat_statements preloaded, trust on loopback only), so the
     statement counts are its own and no other cluster is touched;
  2. creates the production roles (cerebral_owner owns the tables and
     migrates; cerebral_app serves, owns nothing, row-level security binds
     it), migrates with `cerebral migrate up`, and seeds 200
     greenfield-service projects of 20 tasks each (13 from the workflow, 7
     more with a persona) through Cerebral's GraphQL API, in a fixed order;
  3. runs Cerebral (the release binary) as the superuser and as cerebral_app,
     and PostGraphile 5.1.5 (amber preset, NODE_ENV=production, pinned in
     postgraphile/package-lock.json) as cerebral_app with the tenant set per
     request through pgSettings (`cerebral.tenant_id`), one server at a time;
  4. checks that the three queries (flat, nested, by id) answer the same rows
     on every server (field names and id formats normalised) and measures
     nothing if they differ;
  5. pins the server and PostgreSQL to core 0 and the load generator to core
     1, loads each query with wrk (64 connections, a warm-up, then 3 runs,
     median) and on 1 connection (p50/p99), and counts transactions and
     statements per request (pg_stat_database and pg_stat_statements deltas
     over a fixed number of sequential requests);
  6. writes: reportTaskProgress on 16 connections, each its own WORKING task,
     against a pgbench script of the same shape (update the task row, insert
     one event row, tenant set) on the same database and core;
  7. cold start: spawn to first /healthz 200 and /readyz 200, on PostgreSQL
     with migrations applied (serving role) and on SQLite (existing file and
     fresh), median of 5;
and prints one table with the ratios Cerebral / PostGraphile.

Every load is bounded in time and aimed at 127.0.0.1. Every process it
starts is stopped on exit (also on Ctrl-C or SIGTERM) and the cluster is
removed unless --keep. Needs: PostgreSQL 15 server binaries (PGBIN, default
/usr/lib/postgresql/15/bin), pgbench, psql, wrk, taskset, Node.js 20+ and
npm (the PostGraphile dependencies are installed with `npm ci` on first
use), python3 3.9+ (standard library only); perf and inferno for
--flamegraph. Run as root, it runs PostgreSQL as the `postgres` user.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PG_DIR = os.path.join(HERE, "postgraphile")
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
# The tenant of a server without authentication (src/auth.rs DEFAULT_TENANT).
TENANT = "00000000-0000-0000-0000-000000000001"
PROJECTS = 200
TASKS_PER_PROJECT = 20
WRITERS = 16
# Personas of the tasks added beside the workflow's (built-in catalog keys).
EXTRA_PERSONAS = ["dev", "qa", "architect", "pm", "sm", "po", "analyst"]

CEREBRAL_QUERIES = {
    "flat": "{ projects(first: 20) { nodes { id name status createdAt } } }",
    "nested": "{ projects(first: 20) { nodes { id tasks(first: 20) { nodes { id title persona { id name } } } } } }",
    "by id": '{ task(id: "Task:%s") { id title status progress priority } }',
}
POSTGRAPHILE_QUERIES = {
    "flat": "{ allProjects(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { rowId name status createdAt } } }",
    "nested": "{ allProjects(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { rowId tasksByProjectId(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { rowId title personaByPersonaId { rowId name } } } } } }",
    "by id": '{ taskByRowId(rowId: "%s") { rowId title status progress priority } }',
}
# PostGraphile's names for the same fields, mapped to Cerebral's.
RENAMES = {
    "allProjects": "projects",
    "tasksByProjectId": "tasks",
    "personaByPersonaId": "persona",
    "taskByRowId": "task",
    "rowId": "id",
}
PROGRESS_MUTATION = (
    "mutation($i: ReportTaskProgressInput!) { reportTaskProgress(input: $i) { task { progress } } }"
)


class BenchError(Exception):
    """A failure the harness explains and stops on."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes


class Procs:
    """Every process the harness starts, stopped on exit in reverse order."""

    def __init__(self) -> None:
        self.live: list[tuple[subprocess.Popen, str]] = []

    def spawn(self, argv, name, env=None, log_path=None, cwd=None) -> subprocess.Popen:
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        p = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            start_new_session=True,
        )
        if log_path:
            out.close()
        self.live.append((p, name))
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 10) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.live = [(q, n) for q, n in self.live if q is not p]

    def stop_all(self) -> None:
        for p, name in reversed(list(self.live)):
            log(f"stopping {name} (pid {p.pid})")
            self.stop(p)


# --------------------------------------------------------------------------
# HTTP


class Client:
    """One keep-alive HTTP connection to a GraphQL endpoint."""

    def __init__(self, port: int, path: str = "/graphql") -> None:
        self.port = port
        self.path = path
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, query: str, variables=None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}})
        self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise BenchError(f"HTTP {r.status} from :{self.port}: {data[:500]!r}")
        doc = json.loads(data)
        if doc.get("errors"):
            raise BenchError(f"GraphQL errors from :{self.port}: {json.dumps(doc['errors'])[:1000]}")
        return doc["data"]

    def close(self) -> None:
        self.conn.close()


def http_status(port: int, path: str) -> int | None:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        s = c.getresponse().status
        c.close()
        return s
    except OSError:
        return None


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float, what: str, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; its log:\n{tail(log_path)}")
        if http_status(port, path) == 200:
            return
        time.sleep(0.05)
    raise BenchError(f"{what} not ready on :{port}{path} after {timeout} s; its log:\n{tail(log_path)}")


def tail(path: str, n: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# The bench


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.procs = Procs()
        self.quick = args.quick
        self.duration = args.duration or (5 if self.quick else 10)
        self.warmup = 1 if self.quick else 5
        self.runs = 3
        self.count_n = 100 if self.quick else 300
        self.starts = args.starts or (3 if self.quick else 5)
        self.pin = not args.no_pin and (os.cpu_count() or 1) >= 2
        self.server_cpu = ["taskset", "-c", "0"] if self.pin else []
        self.load_cpu = ["taskset", "-c", "1"] if self.pin else []
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.cerebral = os.path.abspath(args.cerebral)
        self.port = args.pg_port
        self.tmp = tempfile.mkdtemp(prefix="cerebral-sidebyside-")
        self.pgdata = os.path.join(self.tmp, "pgdata")
        self.pg_started = False
        self.notes: list[str] = []
        self.results: dict = {}

    # ---------------------------------------------------------------- setup

    def check_tools(self) -> None:
        need = {"wrk": "apt-get install -y wrk", "pgbench": "apt-get install -y postgresql-15 (pgbench)",
                "psql": "apt-get install -y postgresql-client-15", "node": "Node.js 20+", "npm": "npm"}
        if self.pin:
            need["taskset"] = "util-linux"
        if self.as_pg:
            need["runuser"] = "util-linux"
        for tool, hint in need.items():
            if not shutil.which(tool):
                raise BenchError(f"`{tool}` not found ({hint})")
        for tool in ("initdb", "pg_ctl"):
            if not os.access(os.path.join(PGBIN, tool), os.X_OK):
                raise BenchError(f"{PGBIN}/{tool} not found: set PGBIN to PostgreSQL 15's bin directory")
        if not os.access(self.cerebral, os.X_OK):
            raise BenchError(f"no cerebral binary at {self.cerebral}: `cargo build --release` or pass --cerebral PATH")
        if not os.path.isdir(os.path.join(PG_DIR, "node_modules", "postgraphile")):
            log("installing PostGraphile (npm ci, versions from package-lock.json)")
            run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PG_DIR)
        if not self.pin:
            self.notes.append("NOT pinned to cores (fewer than 2 CPUs or --no-pin): server and load share CPUs")
        if self.args.flamegraph:
            for tool in ("perf", "inferno-collapse-perf", "inferno-flamegraph"):
                if not shutil.which(tool):
                    raise BenchError(f"--flamegraph needs `{tool}` on PATH (cargo install inferno)")
        if self.pin:
            # The harness itself (sequential counting requests, polling) runs
            # beside the load generator.
            os.sched_setaffinity(0, {1})

    def start_cluster(self) -> None:
        os.makedirs(self.pgdata)
        if self.as_pg:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(self.pgdata, "postgres")
            os.chmod(self.tmp, 0o755)
        if port_in_use(self.port):
            raise BenchError(f"port {self.port} is taken: pass --pg-port")
        log(f"initdb in {self.pgdata} (port {self.port})")
        run(self.as_pg + [f"{PGBIN}/initdb", "-D", self.pgdata, "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = f"""
port = {self.port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.pgdata}'
max_connections = 200
shared_buffers = 256MB
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.max = 10000
"""
        with open(os.path.join(self.pgdata, "postgresql.conf"), "a") as f:
            f.write(conf)
        with open(os.path.join(self.pgdata, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        log("starting PostgreSQL on core 0")
        self.pg_started = True
        run(self.server_cpu + self.as_pg + [f"{PGBIN}/pg_ctl", "-D", self.pgdata, "-l",
                                            os.path.join(self.pgdata, "server.log"), "-w", "start"])
        self.psql("postgres", """
            CREATE ROLE cerebral_owner LOGIN;
            CREATE ROLE cerebral_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
            CREATE DATABASE cerebral OWNER cerebral_owner;
            CREATE EXTENSION pg_stat_statements;
        """)
        self.dboid = self.psql("postgres", "SELECT oid FROM pg_database WHERE datname = 'cerebral'").strip()

    def stop_cluster(self) -> None:
        if self.pg_started:
            if self.args.keep or self.args.seed_only:
                log(f"--keep: PostgreSQL left running on port {self.port}, data in {self.pgdata} "
                    f"(stop: {' '.join(self.as_pg)} {PGBIN}/pg_ctl -D {self.pgdata} stop)")
                return
            log("stopping PostgreSQL")
            subprocess.run(self.as_pg + [f"{PGBIN}/pg_ctl", "-D", self.pgdata, "-m", "fast", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.pg_started = False
        if not (self.args.keep or self.args.seed_only):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, role: str, db: str = "cerebral") -> str:
        return f"postgres://{role}@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str, role: str = "postgres") -> str:
        return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                    str(self.port), "-U", role, "-d", db, "-f", "-"], stdin=sql)

    # -------------------------------------------------------------- servers

    def cerebral_env(self, database_url: str, port: int, extra=None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CEREBRAL_") and k not in ("DATABASE_URL", "RUST_LOG")}
        env.update({
            "DATABASE_URL": database_url,
            "CEREBRAL_LISTEN": f"127.0.0.1:{port}",
            "CEREBRAL_RATE_LIMIT_PER_SECOND": "0",
        })
        env.update(extra or {})
        return env

    def start_cerebral(self, name: str, role: str) -> dict:
        port = free_port()
        log_path = os.path.join(self.tmp, f"{name}.log")
        p = self.procs.spawn(self.server_cpu + [self.cerebral, "serve"], name,
                             env=self.cerebral_env(self.url(role), port), log_path=log_path)
        wait_http(port, "/readyz", p, 60, name, log_path)
        text = tail(log_path, 200)
        rls = "ROW-LEVEL SECURITY IS NOT ENFORCED" not in text
        log(f"{name} ready on :{port} (pid {p.pid}); row-level security enforced: {'yes' if rls else 'NO'}")
        return {"name": name, "proc": p, "port": port, "path": "/graphql", "kind": "cerebral", "rls": rls,
                "log": log_path}

    def start_postgraphile(self) -> dict:
        port = free_port()
        log_path = os.path.join(self.tmp, "postgraphile.log")
        env = dict(os.environ)
        env.update({"DATABASE_URL": self.url("cerebral_app"), "PORT": str(port), "NODE_ENV": "production",
                    "PG_TENANT_ID": TENANT})
        p = self.procs.spawn(self.server_cpu + ["node", "server.js"], "postgraphile", env=env,
                             log_path=log_path, cwd=PG_DIR)
        deadline = time.monotonic() + 60
        while True:
            if p.poll() is not None:
                raise BenchError(f"PostGraphile exited with {p.returncode}; its log:\n{tail(log_path)}")
            try:
                Client(port).post("{ __typename }")
                break
            except (OSError, BenchError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise BenchError(f"PostGraphile not answering after 60 s; its log:\n{tail(log_path)}")
                time.sleep(0.2)
        log(f"postgraphile ready on :{port} (pid {p.pid})")
        return {"name": "postgraphile", "proc": p, "port": port, "path": "/graphql", "kind": "postgraphile",
                "rls": True, "log": log_path}

    def servers(self):
        """(name, starter) of every server measured, in order."""
        out = [("cerebral-superuser", lambda: self.start_cerebral("cerebral-superuser", "postgres")),
               ("cerebral-rls", lambda: self.start_cerebral("cerebral-rls", "cerebral_app"))]
        if not self.args.no_postgraphile:
            out.append(("postgraphile", self.start_postgraphile))
        return out

    # ----------------------------------------------------------------- seed

    def migrate_and_seed(self) -> None:
        log("cerebral migrate up (as cerebral_owner, granting cerebral_app)")
        env = self.cerebral_env(self.url("cerebral_app"), 0,
                                {"CEREBRAL_MIGRATION_DATABASE_URL": self.url("cerebral_owner")})
        run([self.cerebral, "migrate", "up"], env=env)
        s = self.start_cerebral("cerebral-seed", "cerebral_app")
        try:
            self.seed(s["port"])
        finally:
            self.procs.stop(s["proc"])

    def seed(self, port: int) -> None:
        log(f"seeding {PROJECTS} greenfield-service projects, {TASKS_PER_PROJECT} tasks each")
        c = Client(port)
        projects = []
        for i in range(PROJECTS):
            d = c.post(
                "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id "
                "tasks(first: 100) { nodes { id dependencies { id } } } } } }",
                {"input": {"name": f"Bench project {i + 1:03}", "workflowId": "greenfield-service",
                           "productIdea": f"Idea number {i + 1} for the side-by-side benchmark"}},
            )
            projects.append(d["createProject"]["project"])
        c.close()

        def add_tasks(p):
            cl = Client(port)
            have = len(p["tasks"]["nodes"])
            for k in range(have, TASKS_PER_PROJECT):
                cl.post("mutation($input: CreateTaskInput!) { createTask(input: $input) { task { id } } }",
                        {"input": {"projectId": p["id"], "title": f"Extra task {k + 1:02}",
                                   "personaId": EXTRA_PERSONAS[k % len(EXTRA_PERSONAS)],
                                   "instructions": "Seeded by bench/sidebyside/run.py", "priority": k % 3}})
            cl.close()

        with ThreadPoolExecutor(4) as ex:
            list(ex.map(add_tasks, projects))
        # The writers' tasks: the first task without dependencies of each of
        # the last 16 projects (away from the 20 the reads return), started.
        c = Client(port)
        self.write_tasks = []
        for p in projects[-WRITERS:]:
            t = next(t for t in p["tasks"]["nodes"] if not t["dependencies"])
            c.post("mutation($input: StartTaskInput!) { startTask(input: $input) { task { status } } }",
                   {"input": {"taskId": t["id"]}})
            self.write_tasks.append(t["id"])
        c.close()
        n = self.psql("cerebral", "SELECT count(*) FROM projects; SELECT count(*) FROM tasks;").split()
        log(f"seeded: {n[0]} projects, {n[1]} tasks; {WRITERS} tasks WORKING for the writes")
        # Settle: statistics for the planner, as a database in use would have.
        self.psql("cerebral", "VACUUM ANALYZE")

    # ---------------------------------------------------------------- check

    def check_same_rows(self) -> None:
        """Every server answers the three queries with the same rows, or nothing is measured."""
        answers = {}
        for name, start in self.servers():
            s = start()
            try:
                c = Client(s["port"])
                if not hasattr(self, "task_id"):
                    nested = c.post(CEREBRAL_QUERIES["nested"])
                    first = nested["projects"]["nodes"][0]["tasks"]["nodes"][4]["id"]
                    self.task_id = first.split(":", 1)[1]
                answers[name] = {q: normalise(c.post(self.query(s, q))) for q in CEREBRAL_QUERIES}
                c.close()
            finally:
                self.procs.stop(s["proc"])
        ref_name = next(iter(answers))
        ref = answers[ref_name]
        shape = {q: describe(a) for q, a in ref.items()}
        log(f"reference answers ({ref_name}): " + "; ".join(f"{q}: {d}" for q, d in shape.items()))
        if len(ref["flat"]["projects"]["nodes"]) != 20:
            raise BenchError("the flat query does not return 20 projects")
        tasks = [t for p in ref["nested"]["projects"]["nodes"] for t in p["tasks"]["nodes"]]
        if len(tasks) != 400:
            raise BenchError("the nested query does not return 20 tasks for each of 20 projects")
        with_persona = sum(t["persona"] is not None for t in tasks)
        self.notes.append(f"nested: 20 projects x 20 tasks, {with_persona} of the 400 with a persona "
                          "(two greenfield-service steps name none)")
        for name, a in answers.items():
            for q in CEREBRAL_QUERIES:
                if a[q] != ref[q]:
                    raise BenchError(f"{name} and {ref_name} answer `{q}` with different rows; not measuring.\n"
                                     f"{ref_name}: {json.dumps(ref[q])[:1500]}\n{name}: {json.dumps(a[q])[:1500]}")
        log("every server answers the three queries with the same rows")

    def query(self, server: dict, q: str) -> str:
        text = (CEREBRAL_QUERIES if server["kind"] == "cerebral" else POSTGRAPHILE_QUERIES)[q]
        return text % self.task_id if "%s" in text else text

    # -------------------------------------------------------------- measure

    def stats(self) -> dict:
        """Committed transactions and statements so far in database cerebral."""
        out = self.psql("postgres", f"""
            SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'cerebral'),
                   coalesce(sum(calls) FILTER (WHERE query ~* '^\\s*(begin|commit|rollback|start transaction)'), 0),
                   coalesce(sum(calls) FILTER (WHERE query !~* '^\\s*(begin|commit|rollback|start transaction)'), 0),
                   coalesce(sum(calls) FILTER (WHERE query ~* 'set_config'), 0),
                   coalesce(sum(total_exec_time), 0)
            FROM pg_stat_statements WHERE dbid = {self.dboid}
        """).split("|")
        return {"xact": int(out[0]), "txctl": int(out[1]), "stmts": int(out[2]), "set_config": int(out[3]),
                "exec_ms": float(out[4])}

    def settle_stats(self) -> None:
        # A backend flushes its transaction counts to pg_stat_database at
        # most once a second while busy and within 10 s once idle
        # (PGSTAT_IDLE_INTERVAL): wait that out so a delta is complete.
        time.sleep(11)

    def background(self) -> dict:
        """What the server does to the database per second while idle (event poll, sweeper), measured once per server."""
        if self.bg is None:
            self.settle_stats()
            before = self.stats()
            time.sleep(11)
            after = self.stats()
            self.bg = {k: (after[k] - before[k]) / 11 for k in before}
            log(f"background while idle: {self.bg['xact']:.2f} transactions/s, {self.bg['stmts']:.2f} statements/s")
        return self.bg

    def count_per_request(self, send, n: int) -> dict:
        """Transactions and statements per request over n sequential requests, the idle background taken out."""
        bg = self.background()
        self.settle_stats()
        before = self.stats()
        t0 = time.monotonic()
        send(n)
        self.settle_stats()
        window = time.monotonic() - t0
        after = self.stats()
        return {k: (after[k] - before[k] - bg[k] * window) / n for k in before}

    def wrk(self, port: int, script: str, conns: int, threads: int, seconds: float) -> dict:
        out = run(self.load_cpu + ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s",
                                   "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}/graphql"])
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        b = re.search(r"BENCH bad=(\d+) requests=(\d+) p50=(\d+) p99=(\d+)", out)
        if not m or not b:
            raise BenchError(f"cannot read wrk's output:\n{out}")
        bad = int(b.group(1))
        errs = re.search(r"Socket errors: (.*)", out)
        if bad or errs:
            raise BenchError(f"wrk saw {bad} failed answers (non-200 or GraphQL errors)"
                             f"{'; socket errors: ' + errs.group(1) if errs else ''}:\n{out}")
        if int(b.group(2)) < 10:
            self.notes.append(f"a {seconds} s wrk run completed only {b.group(2)} requests: its latencies mean little")
        return {"rps": float(m.group(1)), "requests": int(b.group(2)),
                "p50": int(b.group(3)) / 1000, "p99": int(b.group(4)) / 1000}

    def lua_read(self, body: str) -> str:
        path = os.path.join(self.tmp, f"q{abs(hash(body))}.lua")
        with open(path, "w") as f:
            f.write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {lua_string(body)}
threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
{LUA_RESULTS}""")
        return path

    def lua_writes(self) -> str:
        """Each wrk thread (one connection) reports progress on a task of its own."""
        path = os.path.join(self.tmp, "writes.lua")
        ids = ", ".join(lua_string(t) for t in self.write_tasks)
        with open(path, "w") as f:
            f.write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ids = {{ {ids} }}
local mutation = {lua_string(PROGRESS_MUTATION)}
threads = {{}}
function setup(thread)
  thread:set("tid", ids[#threads % #ids + 1])
  table.insert(threads, thread)
end
function request()
  n = (n or 0) + 1
  local vars = string.format('{{"i":{{"taskId":"%s","progress":%d,"stage":"bench"}}}}', tid, n % 101)
  return wrk.format(nil, nil, nil, '{{"query":"' .. mutation .. '","variables":' .. vars .. '}}')
end
{LUA_RESULTS}""")
        return path

    def measure_reads(self, s: dict) -> None:
        port = s["port"]
        for q in CEREBRAL_QUERIES:
            body = json.dumps({"query": self.query(s, q)})
            script = self.lua_read(body)
            log(f"{s['name']} {q}: warm-up {self.warmup} s, then {self.runs} x {self.duration} s at 64 connections")
            self.wrk(port, script, 64, 1, self.warmup)
            runs = [self.wrk(port, script, 64, 1, self.duration) for _ in range(self.runs)]
            med = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
            one = self.wrk(port, script, 1, 1, self.duration)
            log(f"{s['name']} {q}: {[round(r['rps']) for r in runs]} req/s; 1 conn p50 {one['p50']} ms")

            def send(n, query=self.query(s, q)):
                c = Client(port)
                for _ in range(n):
                    c.post(query)
                c.close()

            per = self.count_per_request(send, self.count_n)
            self.results[(s["name"], q)] = {"runs": runs, "rps": med["rps"], "p50": med["p50"], "p99": med["p99"],
                                            "one_p50": one["p50"], "one_p99": one["p99"], **per}

    def measure_writes(self, s: dict) -> None:
        port = s["port"]
        script = self.lua_writes()
        log(f"{s['name']} writes: warm-up, then {self.runs} x {self.duration} s on {WRITERS} connections")
        self.wrk(port, script, WRITERS, WRITERS, self.warmup)
        runs = [self.wrk(port, script, WRITERS, WRITERS, self.duration) for _ in range(self.runs)]
        med = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        log(f"{s['name']} writes: {[round(r['rps']) for r in runs]} req/s")

        def send(n):
            c = Client(port)
            for i in range(n):
                c.post(PROGRESS_MUTATION, {"i": {"taskId": self.write_tasks[i % WRITERS], "progress": i % 101,
                                                 "stage": "count"}})
            c.close()

        per = self.count_per_request(send, self.count_n)
        self.results[(s["name"], "writes")] = {"runs": runs, "rps": med["rps"], "p50": med["p50"],
                                               "p99": med["p99"], **per}

    def pgbench_floor(self) -> None:
        """The same write in plain SQL: update the task row, insert one event row, tenant set, as cerebral_app."""
        ids = [t.split(":", 1)[1] for t in self.write_tasks]
        values = ", ".join(f"({i + 1}, '{u}')" for i, u in enumerate(ids))
        self.psql("cerebral", f"""
            CREATE SCHEMA bench;
            CREATE SEQUENCE bench.event_seq START 1000000000000;
            CREATE TABLE bench.writers (n int PRIMARY KEY, task_id uuid NOT NULL, project_id uuid NOT NULL);
            INSERT INTO bench.writers SELECT v.n, t.id, t.project_id FROM (VALUES {values}) v(n, id)
                JOIN tasks t ON t.id = v.id::uuid;
            GRANT USAGE ON SCHEMA bench TO cerebral_app;
            GRANT SELECT ON bench.writers TO cerebral_app;
            GRANT USAGE ON SEQUENCE bench.event_seq TO cerebral_app;
        """)
        script = os.path.join(self.tmp, "writes.sql")
        with open(script, "w") as f:
            f.write(f"""BEGIN;
SELECT set_config('cerebral.tenant_id', '{TENANT}', true);
UPDATE tasks SET progress = (progress + 1) % 101, stage = 'pgbench', status_message = 'floor',
  version = version + 1, updated_at = now()
  WHERE id = (SELECT task_id FROM bench.writers WHERE n = :client_id + 1);
INSERT INTO events (seq, id, tenant_id, event_type, project_id, task_id, subject_type, subject_id, actor, payload, created_at)
  SELECT nextval('bench.event_seq'), gen_random_uuid(), '{TENANT}', 'TASK_PROGRESS', project_id, task_id, 'Task',
         task_id, 'pgbench', '{{"progress": 1, "stage": "pgbench"}}'::jsonb, now()
  FROM bench.writers WHERE n = :client_id + 1;
COMMIT;
""")
        log(f"pgbench floor: {self.runs} x {self.duration} s on {WRITERS} connections as cerebral_app")
        tps = []
        for _ in range(self.runs):
            out = run(self.load_cpu + ["pgbench", "-n", "-c", str(WRITERS), "-j", "1", "-T", str(self.duration),
                                       "-f", script, "-h", "127.0.0.1", "-p", str(self.port), "-U", "cerebral_app",
                                       "cerebral"])
            m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
            fails = re.search(r"number of failed transactions: (\d+)", out)
            if not m or (fails and int(fails.group(1))):
                raise BenchError(f"pgbench failed:\n{out}")
            tps.append(float(m.group(1)))
        self.results[("pgbench", "writes")] = {"runs": tps, "rps": statistics.median(tps)}
        log(f"pgbench floor: {[round(t) for t in tps]} tps")

    def cold_start(self) -> None:
        def once(database_url: str) -> tuple[float, float]:
            port = free_port()
            log_path = os.path.join(self.tmp, "cold.log")
            t0 = time.monotonic()
            p = self.procs.spawn(self.server_cpu + [self.cerebral, "serve"], "cerebral-cold",
                                 env=self.cerebral_env(database_url, port), log_path=log_path)
            try:
                healthz = readyz = None
                deadline = t0 + 30
                while readyz is None:
                    if p.poll() is not None:
                        raise BenchError(f"cerebral exited at start:\n{tail(log_path)}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"cerebral not ready after 30 s:\n{tail(log_path)}")
                    if healthz is None and http_status(port, "/healthz") == 200:
                        healthz = time.monotonic() - t0
                    if healthz is not None and http_status(port, "/readyz") == 200:
                        readyz = time.monotonic() - t0
                    else:
                        time.sleep(0.001)
            finally:
                self.procs.stop(p)
            return healthz * 1000, readyz * 1000

        cases = {}
        log(f"cold start, median of {self.starts}")
        cases["PostgreSQL, migrated, serving role"] = [once(self.url("cerebral_app")) for _ in range(self.starts)]
        sqlite_dir = os.path.join(self.tmp, "sqlite")
        os.makedirs(sqlite_dir)
        existing = f"sqlite://{sqlite_dir}/existing.db?mode=rwc"
        once(existing)  # creates and migrates it
        cases["SQLite, existing file"] = [once(existing) for _ in range(self.starts)]
        cases["SQLite, fresh file"] = [once(f"sqlite://{sqlite_dir}/fresh{i}.db?mode=rwc")
                                       for i in range(self.starts)]
        self.results["cold"] = {k: (statistics.median(h for h, _ in v), statistics.median(r for _, r in v))
                                for k, v in cases.items()}

    def flamegraph(self, s: dict, out_svg: str) -> None:
        body = json.dumps({"query": self.query(s, "nested")})
        script = self.lua_read(body)
        perf_data = os.path.join(self.tmp, "perf.data")
        seconds = 10
        log(f"profiling {s['name']} (pid {s['proc'].pid}) under the nested load for {seconds} s")
        load = self.procs.spawn(self.load_cpu + ["wrk", "-t", "1", "-c", "64", "-d", f"{seconds + 4}s",
                                                 "--timeout", "10s", "-s", script,
                                                 f"http://127.0.0.1:{s['port']}/graphql"], "wrk-profile")
        time.sleep(2)
        rec = subprocess.run(self.load_cpu + ["perf", "record", "-F", "999", "-g", "--call-graph", self.args.call_graph,
                                              "-o", perf_data, "-p", str(s["proc"].pid), "--", "sleep",
                                              str(seconds)], capture_output=True, text=True)
        self.procs.stop(load)
        if rec.returncode != 0 or not os.path.exists(perf_data):
            self.notes.append(f"perf could not sample here: {rec.stderr.strip()[-300:]}")
            return
        with open(os.path.join(self.tmp, "perf.folded"), "w") as folded:
            script_p = subprocess.Popen(self.load_cpu + ["perf", "script", "-i", perf_data],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            subprocess.run(["inferno-collapse-perf"], stdin=script_p.stdout, stdout=folded, check=True)
            script_p.wait()
        os.makedirs(os.path.dirname(os.path.abspath(out_svg)), exist_ok=True)
        with open(os.path.join(self.tmp, "perf.folded")) as folded, open(out_svg, "w") as svg:
            subprocess.run(["inferno-flamegraph", "--title", f"{s['name']}: nested query, 64 connections"],
                           stdin=folded, stdout=svg, check=True)
        self.notes.append(f"flamegraph of {s['name']} under the nested load: {out_svg}")
        log(f"flamegraph written to {out_svg}")

    # ----------------------------------------------------------------- main

    def run(self) -> None:
        started = time.time()
        self.load_at_start = os.getloadavg()[0]
        self.check_tools()
        self.start_cluster()
        self.migrate_and_seed()
        if self.args.seed_only:
            log(f"seeded (--seed-only): the cluster stays for bench/profile_nested.sh and psql; "
                f"the writes script is {self.lua_writes()}")
            return
        self.check_same_rows()
        for name, start in self.servers():
            s = start()
            self.bg = None
            try:
                if s["kind"] == "cerebral" and not s["rls"] and name == "cerebral-rls":
                    raise BenchError("cerebral-rls is not bound by row-level security; see its log")
                self.results[("rls", name)] = s["rls"]
                self.measure_reads(s)
                if s["kind"] == "cerebral":
                    self.measure_writes(s)
                if name == "cerebral-rls" and self.args.flamegraph:
                    try:
                        self.flamegraph(s, self.args.flamegraph)
                    except (OSError, subprocess.SubprocessError) as e:
                        self.notes.append(f"no flamegraph: {e}")
            finally:
                self.procs.stop(s["proc"])
        self.pgbench_floor()
        self.cold_start()
        self.report(time.time() - started)

    def report(self, elapsed: float) -> None:
        r = self.results
        names = [n for n, _ in self.servers()]
        pg = "postgraphile" if "postgraphile" in names else None
        head = {"cerebral-superuser": "Cerebral, superuser", "cerebral-rls": "Cerebral, RLS role",
                "postgraphile": "PostGraphile 5.1.5, RLS role"}
        lines = []
        w = lines.append
        w(f"Side by side, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, cerebral = {self.cerebral}")
        w(f"{'quick' if self.quick else 'full'} run: wrk {self.runs} x {self.duration} s after {self.warmup} s "
          f"warm-up, median; counts over {self.count_n} sequential requests; "
          f"{'server + PostgreSQL on core 0, load on core 1' if self.pin else 'not pinned'}; "
          f"{os.cpu_count()} CPUs, load average {self.load_at_start:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end")
        w("")
        cols = [head[n] for n in names] + (["ratio superuser / PG", "ratio RLS / PG"] if pg else [])
        w("| query | metric | " + " | ".join(cols) + " |")
        w("|---|---|" + "---|" * len(cols))
        metrics = [
            ("req/s, 64 conn", "rps", "{:,.0f}", True),
            ("p50 / p99 ms, 64 conn", ("p50", "p99"), "{:.1f} / {:.1f}", False),
            ("p50 / p99 ms, 1 conn", ("one_p50", "one_p99"), "{:.2f} / {:.2f}", False),
            ("transactions / req", "xact", "{:.2f}", False),
            ("statements / req (+ BEGIN/COMMIT)", ("stmts", "txctl"), "{:.2f} (+{:.2f})", False),
            ("PostgreSQL exec ms / req", "exec_ms", "{:.3f}", False),
        ]
        for q in CEREBRAL_QUERIES:
            for label, key, fmt, ratio in metrics:
                cells = []
                for n in names:
                    v = r.get((n, q))
                    cells.append(fmt.format(*(v[k] for k in key)) if isinstance(key, tuple) else fmt.format(v[key]))
                if pg:
                    if ratio:
                        base = r[(pg, q)]["rps"]
                        cells += [f"{r[('cerebral-superuser', q)]['rps'] / base:.2f}x",
                                  f"{r[('cerebral-rls', q)]['rps'] / base:.2f}x"]
                    elif key == "one_p50" or key == ("one_p50", "one_p99"):
                        base = r[(pg, q)]["one_p50"]
                        cells += [f"p50 {r[('cerebral-superuser', q)]['one_p50'] / base:.2f}x",
                                  f"p50 {r[('cerebral-rls', q)]['one_p50'] / base:.2f}x"]
                    else:
                        cells += ["", ""]
                w(f"| {q} | {label} | " + " | ".join(cells) + " |")
        w("")
        floor = r[("pgbench", "writes")]["rps"]
        w("Ratios: req/s Cerebral / PostGraphile (above 1: Cerebral serves more); on the 1-connection row, "
          "p50 Cerebral / PostGraphile (above 1: Cerebral is slower). Transactions and statements: deltas of "
          "pg_stat_database and pg_stat_statements over sequential requests, minus the server's idle background.")
        w("")
        w(f"Writes: reportTaskProgress, {WRITERS} connections, each its own WORKING task; floor: pgbench "
          f"(update the task row + insert one event row, tenant set, as cerebral_app) {floor:,.0f} tps "
          f"(runs {', '.join(f'{t:,.0f}' for t in r[('pgbench', 'writes')]['runs'])})")
        w("")
        w("| server | req/s | p50 / p99 ms | transactions / req | statements / req (+ BEGIN/COMMIT) | ratio to pgbench |")
        w("|---|---|---|---|---|---|")
        for n in names:
            v = r.get((n, "writes"))
            if v:
                w(f"| {head[n]} | {v['rps']:,.0f} | {v['p50']:.1f} / {v['p99']:.1f} | {v['xact']:.2f} | "
                  f"{v['stmts']:.2f} (+{v['txctl']:.2f}) | {v['rps'] / floor:.2f}x |")
        w("")
        w(f"Cold start of {os.path.basename(self.cerebral)} (spawn to first 200), median of {self.starts}:")
        w("")
        w("| database | /healthz ms | /readyz ms |")
        w("|---|---|---|")
        for k, (h, rd) in r["cold"].items():
            w(f"| {k} | {h:.0f} | {rd:.0f} |")
        w("")
        w(f"Row-level security enforced: Cerebral superuser {'yes' if r[('rls', 'cerebral-superuser')] else 'no'}, "
          f"Cerebral RLS role {'yes' if r[('rls', 'cerebral-rls')] else 'no'}"
          + (", PostGraphile as cerebral_app with cerebral.tenant_id in pgSettings (yes)" if pg else ""))
        w("Auth: Cerebral in development mode (no token; the default tenant); PostGraphile with the same tenant "
          "in pgSettings, no JWT. Pools: Cerebral 16 connections, PostGraphile 10 (node-postgres default).")
        if self.args.note:
            w(f"Note: {self.args.note}")
        for n in self.notes:
            w(f"Note: {n}")
        w(f"Total time {elapsed / 60:.1f} min.")
        print("\n".join(lines), flush=True)


LUA_RESULTS = """function init(args)
  bad = 0
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
  end
  io.write(string.format("BENCH bad=%d requests=%d p50=%d p99=%d\\n", b, summary.requests,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def normalise(v, key=None):
    """Field names and id and timestamp formats of both servers brought to one form."""
    if isinstance(v, dict):
        return {RENAMES.get(k, k): normalise(x, RENAMES.get(k, k)) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    if isinstance(v, str):
        m = re.fullmatch(r"[A-Za-z]+:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", v)
        if key == "id" and m:
            return m.group(1)
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]00:?00)", v)
        if m:
            return f"{m.group(1)}.{(m.group(2) or '').ljust(6, '0')[:6]}Z"
        if key == "status":
            return v.upper()
    return v


def describe(a) -> str:
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k}: {describe(x)}" for k, x in a.items() if isinstance(x, (dict, list))) + "}"
    if isinstance(a, list):
        return f"{len(a)} x {describe(a[0]) if a else ''}"
    return ""


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(argv, env=None, cwd=None, stdin=None) -> str:
    p = subprocess.run(argv, env=env, cwd=cwd, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap.add_argument("--cerebral", default=os.path.join(target, "release", "cerebral"),
                    help="the cerebral binary (default: release/cerebral in $CARGO_TARGET_DIR or ./target)")
    ap.add_argument("--quick", action="store_true", help="short runs (5 s: a nested request at 64 connections can take 3 s on a busy machine) for development")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 10, --quick 5)")
    ap.add_argument("--starts", type=int, help="cold starts per case (default 5, --quick 3)")
    ap.add_argument("--pg-port", type=int, default=5499, help="port of the harness's own PostgreSQL (5499)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running and its directory in place")
    ap.add_argument("--seed-only", action="store_true",
                    help="start the cluster, migrate and seed it, then stop there and leave it running "
                         "(implies --keep): a database for bench/profile_nested.sh and psql")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and load to cores 0 and 1")
    ap.add_argument("--no-postgraphile", action="store_true", help="measure Cerebral only (no ratios)")
    ap.add_argument("--flamegraph", metavar="OUT.svg",
                    help="also profile Cerebral (RLS role) under the nested load with perf into a flamegraph")
    ap.add_argument("--call-graph", default="dwarf",
                    help="perf's --call-graph for --flamegraph: dwarf (default; 8 KB of stack per sample, so deep "
                         "async stacks end in [unknown]), dwarf,65528, or fp for a build with "
                         "RUSTFLAGS=-Cforce-frame-pointers=yes")
    ap.add_argument("--note", help="a line printed with the figures (e.g. what else the machine was doing)")
    args = ap.parse_args()
    bench = Bench(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        bench.run()
        return 0
    except BenchError as e:
        print(f"side-by-side: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("side-by-side: interrupted", file=sys.stderr)
        return 130
    finally:
        bench.procs.stop_all()
        bench.stop_cluster()


if __name__ == "__main__":
    sys.exit(main())
