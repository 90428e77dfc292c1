# Shared settings of the deployment scripts (sourced, not run).
#   REGMIX_CHECKOUT   the checkout every worker runs the code from (a shared filesystem); default: this one
#   REGMIX_STATE      pid and log files of the server and workers; default: $REGMIX_CHECKOUT/runs/.deploy
#   PREFECT_LOCAL_STORAGE_PATH  Prefect's persisted task results, which a retry reads back: must be a
#                     path every worker reaches; default: $REGMIX_CHECKOUT/runs/.prefect-results
#   PREFECT_BIN       the prefect command; default: prefect on PATH
#   PREFECT_FLOWS_HEARTBEAT_FREQUENCY  seconds between flow-run heartbeats; default: 30 (Prefect's minimum)
set -euo pipefail

REGMIX_CHECKOUT="${REGMIX_CHECKOUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
REGMIX_STATE="${REGMIX_STATE:-$REGMIX_CHECKOUT/runs/.deploy}"
PREFECT_LOCAL_STORAGE_PATH="${PREFECT_LOCAL_STORAGE_PATH:-$REGMIX_CHECKOUT/runs/.prefect-results}"
PREFECT_BIN="${PREFECT_BIN:-prefect}"
# Every flow run reports a heartbeat this often; deployments/zombies.py crashes runs that stop.
PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}"
export REGMIX_CHECKOUT REGMIX_STATE PREFECT_LOCAL_STORAGE_PATH PREFECT_FLOWS_HEARTBEAT_FREQUENCY
mkdir -p "$REGMIX_STATE" "$PREFECT_LOCAL_STORAGE_PATH"

SWEEP_POOL="${REGMIX_SWEEP_POOL:-regmix-sweep}"
GPU_POOL="${REGMIX_GPU_POOL:-regmix-gpu}"

# alive PIDFILE: the process named in the pid file still runs
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_group PIDFILE: TERM the process group started under that pid, KILL it if still there after 10 s
stop_group() {
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# start_worker NAME POOL LIMIT [VAR=VALUE ...]: a process worker in its own process group, appending to its log
start_worker() {
    local name="$1" pool="$2" limit="$3"; shift 3
    local pidfile="$REGMIX_STATE/worker-$name.pid" log="$REGMIX_STATE/worker-$name.log"
    if alive "$pidfile"; then
        echo "worker $name already running (pid $(cat "$pidfile"))"; return 0
    fi
    local args=(worker start --pool "$pool" --type process --name "$name")
    [[ "$limit" != "none" ]] && args+=(--limit "$limit")
    env REGMIX_WORKER_NAME="$name" "$@" setsid nohup "$PREFECT_BIN" "${args[@]}" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "worker $name on pool $pool (pid $!, log $log)"
}
