#!/usr/bin/env bash
# PostgreSQL from Debian's packages for the Prefect server (CI and single-host production), idempotent:
# installs postgresql if missing, starts the newest cluster, creates the role and database, and prints
# the connection URL for deployments/server.sh (REGMIX_DATABASE_URL) as its last line.
#   deployments/start_postgres.sh [DATABASE] [--fresh]      (--fresh drops and recreates DATABASE)
#   REGMIX_PG_USER (regmix), REGMIX_PG_PASSWORD (regmix), REGMIX_PG_PORT (the cluster's port)
set -euo pipefail

database="prefect"; fresh=0
for arg in "$@"; do
    case "$arg" in
    --fresh) fresh=1 ;;
    -*) echo "unknown option $arg; usage: $0 [DATABASE] [--fresh]" >&2; exit 2 ;;
    *) database="$arg" ;;
    esac
done
user="${REGMIX_PG_USER:-regmix}"; password="${REGMIX_PG_PASSWORD:-regmix}"
for value in "$database" "$user"; do
    [[ "$value" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || { echo "database/user: '$value' must be lower-case letters, digits, '_'" >&2; exit 2; }
done
[[ "$password" != *"'"* ]] || { echo "REGMIX_PG_PASSWORD: must not contain a quote" >&2; exit 2; }

as_root() { if ((EUID == 0)); then "$@"; else sudo -n "$@"; fi; }
as_postgres() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "installing postgresql from Debian's packages" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
        { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    as_root pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    as_root pg_ctlcluster "$version" main start >&2
fi
port="${REGMIX_PG_PORT:-$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')}"

psql_run() { as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -qtA -c "$1"; }
for _ in $(seq 30); do psql_run "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
if [[ -z "$(psql_run "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" ]]; then
    psql_run "CREATE ROLE $user LOGIN PASSWORD '$password'" >&2
fi
if ((fresh)); then
    psql_run "DROP DATABASE IF EXISTS $database WITH (FORCE)" >&2
fi
if [[ -z "$(psql_run "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]]; then
    psql_run "CREATE DATABASE $database OWNER $user" >&2
fi
echo "PostgreSQL $version on port $port: database $database, user $user" >&2
echo "postgresql+asyncpg://$user:$password@127.0.0.1:$port/$database"
