#!/bin/sh
# The PostgreSQL floor for `write-path` (issue 14): pgbench running
# bench/write_path.pgbench on CLIENTS connections (default 16) for SECONDS
# (default 10), in a scratch database that is dropped afterwards.
# Usage: bench/write_path_floor.sh [admin-url] [clients] [seconds]
set -eu
ADMIN=${1:-postgres://postgres@127.0.0.1:5432/postgres}
CLIENTS=${2:-16}
SECONDS_=${3:-10}
DB=cerebral_floor_$$
BASE=${ADMIN%/*}
psql "$ADMIN" -qc "CREATE DATABASE $DB"
trap 'psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
psql "$BASE/$DB" -q <<SQL
CREATE TABLE wp_tasks (id int PRIMARY KEY, progress int NOT NULL, version int NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO wp_tasks SELECT g, 0, 0, now() FROM generate_series(0, $CLIENTS) g;
CREATE TABLE wp_events (seq bigserial PRIMARY KEY, id uuid UNIQUE NOT NULL, tenant_id uuid NOT NULL,
  event_type varchar(64) NOT NULL, project_id uuid, task_id uuid, subject_type varchar(64) NOT NULL,
  subject_id uuid NOT NULL, actor varchar NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX ON wp_events (tenant_id, seq);
CREATE INDEX ON wp_events (tenant_id, project_id, seq);
CREATE INDEX ON wp_events (tenant_id, event_type, seq);
CREATE INDEX ON wp_events (tenant_id, task_id, seq);
CREATE INDEX ON wp_events (subject_id);
SQL
pgbench -n -c "$CLIENTS" -j 1 -T "$SECONDS_" -P 5 -r -f "$(dirname "$0")/write_path.pgbench" "$BASE/$DB" 2>&1 | grep -E "tps|latency|progress"
