#!/usr/bin/env python3
"""Start-up time: from spawning `cerebral serve` to the first 200 on
`/healthz` and on `/readyz`.

    python3 bench/startup.py [BINARY[:ENV=V,…] …]

Each binary given (default `target/release/cerebral`; extra environment
after a `:`) is started RUNS times (10) per case, the cases and binaries
taken in turn so a busy machine slows them alike, and the median, min and
max of each are printed:

- `sqlite-existing`: a SQLite file the server has already migrated and
  loaded the built-in catalog into;
- `sqlite-fresh`: a new, empty SQLite file each time;
- `pg-superuser`: a migrated PostgreSQL database, served by its owner (a
  superuser, one URL: the development setup);
- `pg-rls`: the same database served by a role that owns nothing, with the
  owner as `CEREBRAL_MIGRATION_DATABASE_URL` (the production setup).

The clock starts just before the process is spawned. `/healthz` is then
asked every millisecond until it answers 200, and then `/readyz` likewise
(it says ready once the database answers, every migration is applied and,
on PostgreSQL, the event listener is connected). PostgreSQL comes from
`PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); the
database `cerebral_startup_bench` and the role `cerebral_startup_app` are
created there when missing (`psql` needed). Standard library only.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("RUNS", "10"))
CASES = os.environ.get("CASES", "sqlite-existing,sqlite-fresh,pg-superuser,pg-rls").split(",")
PG_URL = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "cerebral_startup_bench"
PG_ROLE = "cerebral_startup_app"
HERE = os.path.dirname(os.path.abspath(__file__))
POLL = 0.001
GIVE_UP = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(port, path):
    """The HTTP status of GET path, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(256)
                if not chunk:
                    return None
                head += chunk
            return int(head.split(b" ", 2)[1])
    except OSError:
        return None


def psql(db, sql):
    base = PG_URL.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{db}", "-qtAc", sql], check=True, stdout=subprocess.DEVNULL)


def pg_urls():
    base = PG_URL.rsplit("/", 1)[0]
    owner = f"{base}/{PG_DB}"
    scheme, rest = owner.split("://", 1)
    serving = f"{scheme}://{PG_ROLE}@{rest.split('@', 1)[-1]}"
    return owner, serving


def start_once(binary, env, port):
    """(seconds to /healthz 200, seconds to /readyz 200) of one start."""
    env = dict(env, CEREBRAL_LISTEN=f"127.0.0.1:{port}", RUST_LOG=env.get("RUST_LOG", "warn"))
    t0 = time.perf_counter()
    srv = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = ready = None
        while health is None:
            if srv.poll() is not None:
                raise RuntimeError(f"{binary} exited: {srv.stderr.read().decode()[-2000:]}")
            if status(port, "/healthz") == 200:
                health = time.perf_counter() - t0
            elif time.perf_counter() - t0 > GIVE_UP:
                raise RuntimeError("no /healthz")
            else:
                time.sleep(POLL)
        while ready is None:
            if status(port, "/readyz") == 200:
                ready = time.perf_counter() - t0
            elif time.perf_counter() - t0 > GIVE_UP:
                raise RuntimeError("never ready")
            else:
                time.sleep(POLL)
        return health, ready
    finally:
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def prepare(case, binary, env, tmp):
    """The environment of `case` (and the database made ready for it)."""
    if case == "sqlite-existing":
        env = dict(env, DATABASE_URL=f"sqlite://{tmp}/existing.db?mode=rwc")
        start_once(binary, env, free_port())  # migrates and loads the catalog
        return env, None
    if case == "sqlite-fresh":
        return env, lambda n: dict(env, DATABASE_URL=f"sqlite://{tmp}/fresh-{n}.db?mode=rwc")
    owner, serving = pg_urls()
    if case == "pg-superuser":
        env = dict(env, DATABASE_URL=owner)
    elif case == "pg-rls":
        env = dict(env, DATABASE_URL=serving, CEREBRAL_MIGRATION_DATABASE_URL=owner)
    else:
        raise SystemExit(f"unknown case {case}")
    start_once(binary, env, free_port())  # migrates and loads the catalog
    return env, None


def setup_pg():
    subprocess.run(["psql", PG_URL, "-qtAc", f"CREATE DATABASE {PG_DB}"], stderr=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    psql("postgres", f"DO $$ BEGIN CREATE ROLE {PG_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def main():
    specs = sys.argv[1:] or [os.path.join(HERE, "..", "target", "release", "cerebral")]
    if any(c.startswith("pg") for c in CASES):
        setup_pg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            envs = []
            for i, spec in enumerate(specs):
                binary, _, extra = spec.partition(":")
                extra_env = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
                d = os.path.join(tmp, f"{case}-{i}")
                os.makedirs(d)
                envs.append((spec, binary) + prepare(case, binary, dict(os.environ, **extra_env), d))
            for n in range(RUNS):
                for spec, binary, env, per_run in envs:
                    e = per_run(n) if per_run else env
                    results.setdefault((case, spec), []).append(start_once(binary, e, free_port()))
    print(f"{'case':16} {'binary':40} {'healthz ms (min–max)':>24} {'readyz ms (min–max)':>24}")
    for (case, spec), runs in results.items():
        cols = []
        for k in (0, 1):
            xs = [r[k] * 1000 for r in runs]
            cols.append(f"{statistics.median(xs):6.1f} ({min(xs):5.1f}–{max(xs):6.1f})")
        print(f"{case:16} {spec[-40:]:40} {cols[0]:>24} {cols[1]:>24}")


if __name__ == "__main__":
    main()
