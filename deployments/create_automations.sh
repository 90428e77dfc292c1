#!/usr/bin/env bash
# The zombie automation: a regmix flow run whose heartbeats stop (its worker or machine died) is
# marked Crashed after REGMIX_ZOMBIE_SILENCE seconds (default 120), so its sweep fails that index
# and `prefect flow-run retry` reruns it. See deployments/zombies.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# the Python that has prefect: the one next to the prefect command, unless PYTHON says otherwise
python="${PYTHON:-$(dirname "$(command -v "$PREFECT_BIN")")/python}"
[[ -x "$python" ]] || python=python
cd "$REGMIX_CHECKOUT" && "$python" deployments/zombies.py "$@"
