#!/usr/bin/env bash
# From nothing to deployments ready to run: server, pools, workers, `prefect deploy --all`.
# Then: prefect deployment run regmix/full-sweep -p ... (see deployments/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
api_line="$("$here/server.sh" start | tee /dev/stderr | tail -n 1)"
export PREFECT_API_URL="${api_line#export PREFECT_API_URL=}"
"$here/create_pools.sh"
"$here/create_automations.sh"
"$here/start_sweep_worker.sh"
"$here/start_gpu_workers.sh" "$@"
(cd "$REGMIX_CHECKOUT" && "$PREFECT_BIN" --no-prompt deploy --all)
echo "UI: ${PREFECT_API_URL%/api}   (export PREFECT_API_URL=$PREFECT_API_URL in your shell)"
