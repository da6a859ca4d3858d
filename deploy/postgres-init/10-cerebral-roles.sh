#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory
# (/docker-entrypoint-initdb.d, compose.yaml). Creates the two roles of the
# reference setup and their database:
#   cerebral_owner  owns the database and the tables; runs the migrations.
#   cerebral_app    serves; owns nothing, is no superuser and has no
#                   BYPASSRLS, so row-level security binds it. The migrate
#                   step (`cerebral migrate up` with DATABASE_URL naming this
#                   role) grants it the table privileges, and PUBLIC none.
# The passwords come from the environment (compose.yaml). The superuser
# (POSTGRES_USER) is for administration only; Cerebral never uses it.
set -euo pipefail

: "${CEREBRAL_OWNER_PASSWORD:?set CEREBRAL_OWNER_PASSWORD}"
: "${CEREBRAL_APP_PASSWORD:?set CEREBRAL_APP_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$CEREBRAL_OWNER_PASSWORD" \
  -v app_password="$CEREBRAL_APP_PASSWORD" <<'SQL'
CREATE ROLE cerebral_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE cerebral_app LOGIN PASSWORD :'app_password'
  NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE cerebral OWNER cerebral_owner;
-- Only these two roles may connect to it.
REVOKE CONNECT, TEMPORARY ON DATABASE cerebral FROM PUBLIC;
GRANT CONNECT ON DATABASE cerebral TO cerebral_owner, cerebral_app;
SQL
