#!/usr/bin/env bash
# Nested query on one server, for quick before/after comparisons and
# profiles between full side-by-side runs (docs/benchmarks.md).
#
#   bench/profile_nested.sh BINARY [PERF_OUT_PREFIX]
#
# Needs the side-by-side harness's cluster left running
# (`bench/sidebyside/run.py --keep`; port 5499, seeded) or DATABASE_URL
# pointing at a seeded database, wrk, taskset; perf and inferno for a
# profile. Serves as the RLS role on core 0, loads from core 1 with 64
# connections: 3 x 5 s (req/s each), or with PERF_OUT_PREFIX one 14 s load
# recorded for 10 s (`perf record -g --call-graph fp`; build the binary with
# RUSTFLAGS=-Cforce-frame-pointers=yes for whole stacks) and folded into
# PREFIX.folded and PREFIX.svg. Q overrides the query, C the number of
# connections (the 50th percentile latency is printed too), T the number of
# wrk threads; LUA names a wrk script to run instead of the query (the
# harness leaves its writes script, one WORKING task per thread, in its
# directory: `LUA=/tmp/cerebral-sidebyside-*/writes.lua C=16 T=16`).
set -euo pipefail
BIN=$1
OUT=${2:-}
PORT=${PORT:-47111}
URL=${DATABASE_URL:-postgres://cerebral_app@127.0.0.1:5499/cerebral}
Q=${Q:-'{ projects(first: 20) { nodes { id tasks(first: 20) { nodes { id title persona { id name } } } } } }'}
TMP=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
env -u RUST_LOG DATABASE_URL="$URL" CEREBRAL_LISTEN=127.0.0.1:$PORT CEREBRAL_RATE_LIMIT_PER_SECOND=0 \
  taskset -c 0 "$BIN" serve > "$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.1; done
if [ -n "${LUA:-}" ]; then
  cp "$LUA" "$TMP/q.lua"
else
  BODY=$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$Q")
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$BODY" > "$TMP/q.lua"
fi
load() { taskset -c 1 wrk -t"${T:-1}" -c"${C:-64}" -d"$1" --latency -s "$TMP/q.lua" "http://127.0.0.1:$PORT/graphql"; }
load 3s >/dev/null
if [ -n "$OUT" ]; then
  load 14s > "$TMP/wrk.txt" &
  W=$!
  sleep 2
  perf record -F 999 -g --call-graph fp -o "$OUT.data" -p "$PID" -- sleep 10 >/dev/null 2>&1
  wait "$W"
  grep Requests/sec "$TMP/wrk.txt"
  perf script -i "$OUT.data" 2>/dev/null | inferno-collapse-perf > "$OUT.folded"
  inferno-flamegraph < "$OUT.folded" > "$OUT.svg"
else
  # Also the server's own CPU per request (user + system, from
  # /proc/PID/stat): steadier than req/s, which PostgreSQL shares.
  for _ in 1 2 3; do
    read -r u0 s0 < <(awk '{print $14, $15}' /proc/$PID/stat)
    load 5s > "$TMP/wrk.txt"
    read -r u1 s1 < <(awk '{print $14, $15}' /proc/$PID/stat)
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
    tck=$(getconf CLK_TCK)
    cpu=$(python3 -c "print(round(($u1+$s1-$u0-$s0)/$tck*1e6/max($n,1)))")
    echo "$(grep -E 'Requests/sec| 50%' "$TMP/wrk.txt" | tr -s ' ' | tr '\n' ' ') server CPU/req: ${cpu} us"
  done
fi
