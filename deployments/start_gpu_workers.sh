#!/usr/bin/env bash
# One process worker per visible GPU on this machine, each owning its GPU and running one flow run
# at a time: CUDA_VISIBLE_DEVICES=<i> prefect worker start --pool regmix-gpu --limit 1 --name gpu-<host>-<i>
# Without GPUs, N workers (REGMIX_CPU_WORKERS, default 2) stand for GPUs, each with its share of the cores.
#   deployments/start_gpu_workers.sh [--pool NAME] [--cpu-workers N]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pool="$GPU_POOL"; cpu_workers="${REGMIX_CPU_WORKERS:-2}"
while (($#)); do
    case "$1" in
    --pool) pool="$2"; shift 2 ;;
    --cpu-workers) cpu_workers="$2"; shift 2 ;;
    *) echo "unknown option $1; usage: $0 [--pool NAME] [--cpu-workers N]" >&2; exit 2 ;;
    esac
done

if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
    IFS=',' read -ra gpus <<<"$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi >/dev/null 2>&1; then
    mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
else
    gpus=()
fi
host="$(hostname -s)"
cores="$(nproc)"

if ((${#gpus[@]})); then
    threads=$((cores / ${#gpus[@]})); ((threads >= 1)) || threads=1
    for gpu in "${gpus[@]}"; do
        gpu="${gpu// /}"
        start_worker "gpu-$host-$gpu" "$pool" 1 CUDA_VISIBLE_DEVICES="$gpu" REGMIX_SLOT_THREADS="$threads" OMP_NUM_THREADS="$threads"
    done
else
    if ! [[ "$cpu_workers" =~ ^[1-9][0-9]*$ ]]; then
        echo "--cpu-workers: must be a positive integer, got '$cpu_workers'" >&2; exit 2
    fi
    threads=$((cores / cpu_workers)); ((threads >= 1)) || threads=1
    echo "no GPU visible: $cpu_workers CPU workers with $threads thread(s) each stand for GPUs"
    for ((i = 0; i < cpu_workers; i++)); do
        start_worker "cpu-$host-$i" "$pool" 1 CUDA_VISIBLE_DEVICES="" REGMIX_SLOT_THREADS="$threads" OMP_NUM_THREADS="$threads"
    done
fi
