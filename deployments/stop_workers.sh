#!/usr/bin/env bash
# Stop every worker this machine's scripts started (their pid files under REGMIX_STATE).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
shopt -s nullglob
for pidfile in "$REGMIX_STATE"/worker-*.pid; do
    name="$(basename "$pidfile" .pid)"
    stop_group "$pidfile"
    echo "stopped ${name#worker-}"
done
