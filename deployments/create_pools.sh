#!/usr/bin/env bash
# The two process work pools: regmix-sweep (the sweeps) and regmix-gpu (one index per GPU worker).
# For Kubernetes instead of processes, see deployments/README.md (k8s-gpu-job-template.json).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for pool in "$SWEEP_POOL" "$GPU_POOL"; do
    "$PREFECT_BIN" work-pool create "$pool" --type process --overwrite
done
