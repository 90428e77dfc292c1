"""The automation that marks regmix flow runs Crashed when their heartbeats stop.

A worker or machine that dies takes its flow run's process with it; nothing is left to report a
final state, so the run would stay Running and the sweep waiting on it would wait forever. Every
flow run sends a `prefect.flow-run.heartbeat` event every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds
(the worker scripts set 30); this automation crashes a run tagged `regmix` that has sent none for
`--silence` seconds (default 120: four missed beats, so a busy or briefly disconnected run is not
taken for dead). The sweep then sees that index Crashed, fails it alone, and `prefect flow-run
retry` resumes it from its newest checkpoint.

    python deployments/zombies.py [--silence SECONDS]     (PREFECT_API_URL: the server)

Idempotent: an existing automation of the same name is updated in place.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

NAME = "regmix: crash flow runs whose heartbeats stopped"
TAG = "regmix"
DEFAULT_SILENCE = 120
HEARTBEAT_SECONDS = int(os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30"))


def automation(silence: int):
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    final = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}
    return Automation(
        name=NAME,
        description=f"A flow run tagged {TAG!r} that sent no heartbeat for {silence} s lost its process "
                    "(worker or machine died): mark it Crashed so its sweep fails that index and a retry reruns it.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *final},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.role": "tag",
                                                 "prefect.resource.id": f"prefect.tag.{TAG}"}),
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(seconds=silence),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED, name="Crashed",
            message=f"no heartbeat for {silence} s: the process running this flow run died with its worker or machine",
        )],
    )


def install(silence: int = DEFAULT_SILENCE) -> str:
    """Create or update the automation; returns what was done."""
    from prefect.automations import Automation

    if silence < 2 * HEARTBEAT_SECONDS:
        raise ValueError(f"--silence: {silence} s is under two heartbeats of {HEARTBEAT_SECONDS} s "
                         "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY); live runs would be crashed")
    wanted = automation(silence)
    try:
        existing = Automation.read(name=NAME)
    except ValueError:  # none of that name yet
        existing = None
    if existing is None:
        wanted.create()
        return f"created automation {NAME!r} (silence {silence} s)"
    wanted.id = existing.id
    wanted.update()
    return f"updated automation {NAME!r} (silence {silence} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silence", type=int, default=int(os.environ.get("REGMIX_ZOMBIE_SILENCE", DEFAULT_SILENCE)),
                        help="seconds without a heartbeat before a flow run counts as dead (default 120)")
    args = parser.parse_args(argv)
    try:
        print(install(args.silence))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
