#!/usr/bin/env bash
# The worker that runs the sweeps themselves (deployment full-sweep, pool regmix-sweep).
# In mode "work-pool" a sweep only waits on its indices' flow runs, so any machine will do; in mode
# "local" it trains on its own device slots, so run this worker on a GPU machine (it sees all its GPUs).
#   deployments/start_sweep_worker.sh [--pool NAME] [--limit N]   (limit: sweeps at once, default 4)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pool="$SWEEP_POOL"; limit=4
while (($#)); do
    case "$1" in
    --pool) pool="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    *) echo "unknown option $1; usage: $0 [--pool NAME] [--limit N]" >&2; exit 2 ;;
    esac
done
start_worker "sweep-$(hostname -s)" "$pool" "$limit"
