"""Following one deployment until it succeeds or fails, showing only service events that are new.

Success means our deployment is the service's PRIMARY and its rolloutState is COMPLETED. A circuit-breaker
rollback, a FAILED rollout, another deployment replacing ours, or the timeout is a failure with its reason:
reporting success after a rollback is the bug users report most across ECS deploy tools.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opskit.aws import Aws
from opskit.progress import Progress, ProgressEvent

COMPLETED, FAILED, ROLLED_BACK, REPLACED, TIMED_OUT = "COMPLETED", "FAILED", "ROLLED_BACK", "REPLACED", "TIMED_OUT"


@dataclass(frozen=True)
class WaitResult:
    outcome: str  # COMPLETED, FAILED, ROLLED_BACK, REPLACED or TIMED_OUT
    reason: str
    running: int
    desired: int
    failed: int

    @property
    def ok(self) -> bool:
        return self.outcome == COMPLETED


def wait_for_deployment(
    aws: Aws,
    cluster: str,
    service: str,
    deployment_id: str,
    *,
    progress: Progress,
    timeout: float = 1800.0,
    poll_interval: float = 5.0,
    since: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll DescribeServices until ``deployment_id`` settles, reporting service events as they appear.

    Events already there at the first poll are history and stay hidden, except those at or after ``since``
    (the update's time), which belong to this deployment.
    """
    ecs = aws.client("ecs")
    seen: set[str] | None = None  # None: the first poll, whose events are history unless newer than ``since``
    deadline = time.monotonic() + timeout
    last = WaitResult(TIMED_OUT, "", 0, 0, 0)
    following = deployment_id
    rolled_back: WaitResult | None = None  # once ECS rolls ours back, the rollback is followed to its end
    while True:
        current = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        events = sorted(current.get("events", []), key=lambda e: e["createdAt"])
        for event in events:
            first_poll = seen is None
            if (first_poll and since is not None and event["createdAt"] >= since) or (
                seen is not None and event["id"] not in seen
            ):
                progress(ProgressEvent("wait", "log", event["message"]))
        seen = (seen or set()) | {e["id"] for e in events}
        deployments = current.get("deployments", [])
        ours = next((d for d in deployments if d["id"] == following), None)
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if ours is not None:
            last = WaitResult(
                TIMED_OUT, "", ours.get("runningCount", 0), ours.get("desiredCount", 0), ours.get("failedTasks", 0)
            )
            progress(ProgressEvent("wait", "running", _counts(ours), done=last.running, total=last.desired))
        result = _settled(ours, primary, following, last)
        if result is not None and rolled_back is None and result.outcome == ROLLED_BACK and primary is not None:
            rolled_back, following = result, str(primary["id"])
        elif result is not None and rolled_back is not None:
            ending = "the rollback completed" if result.ok else f"the rollback did not complete: {result.reason}"
            return WaitResult(
                ROLLED_BACK, f"{rolled_back.reason}; {ending}", last.running, last.desired, rolled_back.failed
            )
        elif result is not None:
            return result
        if time.monotonic() >= deadline:
            if rolled_back is not None:
                return WaitResult(
                    ROLLED_BACK, f"{rolled_back.reason}; the rollback was still in progress", 0, 0, rolled_back.failed
                )
            return WaitResult(
                TIMED_OUT,
                f"deployment {deployment_id} did not finish within {timeout:.0f} s "
                f"({last.running}/{last.desired} running, {last.failed} failed); it goes on in ECS",
                last.running,
                last.desired,
                last.failed,
            )
        sleep(poll_interval)


def _counts(deployment: dict[str, Any]) -> str:
    return (
        f"{deployment.get('runningCount', 0)}/{deployment.get('desiredCount', 0)} running, "
        f"{deployment.get('pendingCount', 0)} pending, {deployment.get('failedTasks', 0)} failed "
        f"({deployment.get('rolloutState', 'no rollout state')})"
    )


def _settled(
    ours: dict[str, Any] | None, primary: dict[str, Any] | None, ours_id: str, last: WaitResult
) -> WaitResult | None:
    if ours is not None and ours.get("rolloutState") == "FAILED":
        reason = ours.get("rolloutStateReason") or "the rollout failed"
        if primary is not None and primary["id"] != ours_id:
            return WaitResult(
                ROLLED_BACK,
                f"{reason} ECS rolled back to {primary['taskDefinition'].rsplit('/', 1)[-1]}",
                last.running,
                last.desired,
                last.failed,
            )
        return WaitResult(FAILED, reason, last.running, last.desired, last.failed)
    if primary is not None and primary["id"] != ours_id:
        revision = primary["taskDefinition"].rsplit("/", 1)[-1]
        if ours is None or primary.get("createdAt", 0) > ours.get("createdAt", 0):
            return WaitResult(
                REPLACED,
                f"deployment {ours_id} was replaced by {primary['id']} ({revision}) before it completed",
                last.running,
                last.desired,
                last.failed,
            )
    if ours is not None and primary is not None and primary["id"] == ours_id:
        state = ours.get("rolloutState")
        if state == "COMPLETED" or (
            state is None and ours.get("runningCount") == ours.get("desiredCount") and ours.get("pendingCount", 0) == 0
        ):
            return WaitResult(
                COMPLETED,
                ours.get("rolloutStateReason") or "deployment completed",
                last.running,
                last.desired,
                last.failed,
            )
    return None
