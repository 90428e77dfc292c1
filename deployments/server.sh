#!/usr/bin/env bash
# A local Prefect server: deployments/server.sh start|stop|status
#   REGMIX_SERVER_HOST (127.0.0.1), REGMIX_SERVER_PORT (4200), REGMIX_SERVER_TIMEOUT (180 s to become healthy)
#   REGMIX_DATABASE_URL  unset: SQLite under PREFECT_HOME (one machine, a few writers);
#                        postgresql+asyncpg://user:password@host:5432/db for production, where many
#                        workers write at once and SQLite's single writer lock makes them wait or fail
#                        (deployments/start_postgres.sh prints such a URL).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST="${REGMIX_SERVER_HOST:-127.0.0.1}"
PORT="${REGMIX_SERVER_PORT:-4200}"
TIMEOUT="${REGMIX_SERVER_TIMEOUT:-180}"
PIDFILE="$REGMIX_STATE/server.pid"
LOG="$REGMIX_STATE/server.log"
API="http://$HOST:$PORT/api"

healthy() { curl -fsS -m 5 "$API/health" >/dev/null 2>&1; }

case "${1:-}" in
start)
    if alive "$PIDFILE" && healthy; then
        echo "server already running at $API (pid $(cat "$PIDFILE"))"
    else
        stop_group "$PIDFILE"
        if healthy; then echo "port $PORT: another server already answers at $API" >&2; exit 1; fi
        DATABASE_KIND=SQLite
        if [[ -n "${REGMIX_DATABASE_URL:-}" ]]; then
            DATABASE_KIND=PostgreSQL
            export PREFECT_API_DATABASE_CONNECTION_URL="$REGMIX_DATABASE_URL"
        fi
        PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL="$API" \
            setsid nohup "$PREFECT_BIN" server start --host "$HOST" --port "$PORT" >"$LOG" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
        deadline=$((SECONDS + TIMEOUT))
        until healthy; do
            if ! alive "$PIDFILE"; then
                echo "server exited before becoming healthy; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2
                rm -f "$PIDFILE"; exit 1
            fi
            if ((SECONDS >= deadline)); then
                echo "server not healthy at $API/health after ${TIMEOUT}s; see $LOG" >&2
                stop_group "$PIDFILE"; exit 1
            fi
            sleep 1
        done
        echo "server healthy at $API (pid $(cat "$PIDFILE"), database: $DATABASE_KIND, log $LOG)"
    fi
    echo "export PREFECT_API_URL=$API"
    ;;
stop)
    stop_group "$PIDFILE"; echo "server stopped" ;;
status)
    if alive "$PIDFILE" && healthy; then echo "running at $API"; else echo "not running"; exit 3; fi ;;
*)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
