"""Acting on a service deployment in progress: continue (or roll back at) a PAUSE hook, roll it back, or abort it.

ECS waits at a PAUSE lifecycle hook until ContinueServiceDeployment says CONTINUE or ROLLBACK (or the hook's timeout
takes its action); StopServiceDeployment rolls a deployment in progress back (ROLLBACK) or stops it where it stands
(ABORT). Each function finds the service's current deployment, checks that the action applies to where it stands,
and refuses in one line that says what to do when it does not.

>>> rollout, hook = continue_deployment(aws, "prod", "web")                    # doctest: +SKIP
>>> rollout.follow(progress=print).outcome                                      # doctest: +SKIP
<Outcome.COMPLETED: 'COMPLETED'>
"""

from __future__ import annotations

from typing import Any

from opskit.aws import Aws
from opskit.errors import ConfigError, ConflictError
from opskit.gateway import Gateway
from opskit.release.rollout import GOING, Rollout

STOPPING = ("ROLLBACK", "ABORT")


def current(aws: Aws, cluster: str, service: str) -> tuple[Rollout, dict[str, Any]] | None:
    """The service's current service deployment and its record as ECS sends it; None when ECS recorded none."""
    _, described = Gateway(aws).service(cluster, service)
    if not described.get("currentServiceDeployment"):
        return None
    rollout = Rollout.for_service(aws, described)
    return rollout, rollout.read()


def going(aws: Aws, cluster: str, service: str) -> Rollout | None:
    """The service's deployment when one is in progress; None when it is over (or ECS never recorded one)."""
    found = current(aws, cluster, service)
    return found[0] if found is not None and found[1].get("status") in GOING else None


def in_progress(aws: Aws, cluster: str, service: str) -> tuple[Rollout, dict[str, Any]]:
    """The service's current service deployment, and its record, when it is still going; else a refusal."""
    found = current(aws, cluster, service)
    if found is None:
        raise ConflictError(f"{service} has no service deployment ECS recorded: nothing to continue or stop")
    rollout, record = found
    if record.get("status") not in GOING:
        raise ConflictError(
            f"{service}'s last deployment ({rollout.arn.rsplit('/', 1)[-1]}) is {record.get('status')}, not in "
            "progress: nothing to continue or stop; `opskit rollback` goes back to an earlier revision"
        )
    return rollout, record


def awaiting(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's PAUSE hooks that wait for ContinueServiceDeployment."""
    return [h for h in record.get("lifecycleHookDetails") or [] if h.get("status") == "AWAITING_ACTION"]


def continue_deployment(
    aws: Aws, cluster: str, service: str, *, hook_id: str | None = None, action: str = "CONTINUE"
) -> tuple[Rollout, dict[str, Any]]:
    """ContinueServiceDeployment for the PAUSE hook the service's deployment waits at (``hook_id`` when several
    do); returns the rollout, to follow, and the hook."""
    if action not in ("CONTINUE", "ROLLBACK"):
        raise ConfigError(f"action {action!r} is not CONTINUE or ROLLBACK")
    rollout, record = in_progress(aws, cluster, service)
    hooks = awaiting(record)
    if hook_id is not None:
        hooks = [h for h in hooks if h.get("hookId") == hook_id]
    if not hooks:
        stage = record.get("lifecycleStage") or "its first stage"
        named = f" {hook_id}" if hook_id else ""
        raise ConflictError(
            f"{service}'s deployment is at {stage} and no PAUSE hook{named} awaits action: nothing to continue; "
            "follow it with `opskit release`'s output or the ReleasePanel"
        )
    if len(hooks) > 1:
        ids = ", ".join(str(h.get("hookId")) for h in hooks)
        raise ConfigError(f"{len(hooks)} PAUSE hooks await action ({ids}): pass --hook with one of them")
    (hook,) = hooks
    rollout.continue_hook(str(hook["hookId"]), action)
    return rollout, hook


def stop_deployment(aws: Aws, cluster: str, service: str, stop_type: str) -> Rollout:
    """StopServiceDeployment: ROLLBACK (back to the revision it came from) or ABORT (stop where it stands)."""
    if stop_type not in STOPPING:
        raise ConfigError(f"stop type {stop_type!r} is not ROLLBACK or ABORT")
    rollout, _ = in_progress(aws, cluster, service)
    rollout.stop(stop_type)
    return rollout


__all__ = ["awaiting", "continue_deployment", "current", "going", "in_progress", "stop_deployment"]
