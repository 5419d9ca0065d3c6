"""Deployment history and rollback targets, as pure functions over records.

ECS tells a service's history two ways. The service-deployment APIs (ListServiceDeployments and
DescribeServiceRevisions) keep every deployment with its outcome; where they are not available, DescribeServices
shows only the current deployments (PRIMARY, ACTIVE) and the newest 100 events, so the library keeps what it saw
on each sync. Both are normalised to :class:`~opskit.records.DeploymentRecord`, and the rollback target is
decided from those records alone, so release, rollback and cleanup share one answer.

>>> from datetime import datetime, UTC
>>> def d(arn, state, day): return DeploymentRecord("c", "web", f"d{day}", arn, "", state,
...                                                  datetime(2026, 1, day, tzinfo=UTC), None)
>>> history = [d("web:1", "COMPLETED", 1), d("web:2", "COMPLETED", 2), d("web:3", "FAILED", 3)]
>>> rollback_target(history, current="web:2")
'web:1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from opskit.records import DeploymentRecord, ServiceRecord, to_datetime

# ListServiceDeployments statuses -> did the deployment's own revision reach COMPLETED?
_COMPLETED = {"SUCCESSFUL"}
_IN_PROGRESS = {"PENDING", "IN_PROGRESS"}
_ROLLED_BACK = {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}

_EVENT_COMPLETED = re.compile(r"\(deployment (\S+)\) deployment completed")
_EVENT_FAILED = re.compile(r"\(deployment (\S+)\) deployment failed")
_EVENT_ROLLING_BACK = re.compile(r"rolling back to deployment (\S+?)\.?$")


def rollback_target(deployments: Iterable[DeploymentRecord], current: str | None) -> str | None:
    """The task-definition ARN a rollback of one service would go back to, or None.

    It is the revision of the most recent deployment that reached COMPLETED, other than ``current`` (the revision
    of the service's PRIMARY deployment). A deployment that the circuit breaker rolled back never completed, so
    it is never a target. ``deployments`` is one service's history, in any order.
    """
    targets = rollback_targets(deployments, current, depth=1)
    return targets[0] if targets else None


def rollback_targets(deployments: Iterable[DeploymentRecord], current: str | None, depth: int = 1) -> list[str]:
    """The ``depth`` most recent distinct revisions the service ran to completion, other than ``current``, newest
    first: what "roll back", "roll back twice" ... would go to (cleanup keeps them)."""
    completed = sorted(
        (d for d in deployments if d.completed and d.task_definition), key=lambda d: d.moment, reverse=True
    )
    targets: list[str] = []
    for deployment in completed:
        arn = deployment.task_definition
        if arn and arn != current and arn not in targets:
            targets.append(arn)
            if len(targets) >= depth:
                break
    return targets


def service_rollback_targets(
    services: Iterable[ServiceRecord], history: Iterable[DeploymentRecord]
) -> dict[str, str | None]:
    """Each service's rollback target (by service ARN), from the services and the deployment history of all."""
    by_service: dict[tuple[str, str], list[DeploymentRecord]] = {}
    for deployment in history:
        by_service.setdefault((deployment.cluster, deployment.service), []).append(deployment)
    return {s.arn: rollback_target(by_service.get((s.cluster, s.service), []), s.task_definition) for s in services}


# -- from the APIs' answers to records ---------------------------------------------------------------------------
def from_service_deployment(
    brief: dict[str, Any], task_definition: str | None, cluster: str, service: str
) -> DeploymentRecord:
    """A record from one ListServiceDeployments entry and the revision its target service revision deploys."""
    status = str(brief.get("status", ""))
    if status in _COMPLETED:
        state = "COMPLETED"
    elif status in _IN_PROGRESS:
        state = "IN_PROGRESS"
    else:
        state = "FAILED"  # stopped or rolled back: its revision never ran to completion
    return DeploymentRecord(
        cluster=cluster,
        service=service,
        deployment=str(brief["serviceDeploymentArn"]),
        task_definition=task_definition,
        status=status,
        rollout_state=state,
        created_at=to_datetime(brief.get("createdAt")),
        finished_at=to_datetime(brief.get("finishedAt")),
        rolled_back=status in _ROLLED_BACK,
        source="service-deployments",
    )


def from_service(body: dict[str, Any], cluster: str) -> list[DeploymentRecord]:
    """Records for the deployments DescribeServices shows now (PRIMARY first, then ACTIVE ones).

    The service's events say which deployments completed or were rolled back from even after they left the list;
    :func:`merge_observed` uses them over what earlier syncs saw.
    """
    service = str(body["serviceName"])
    _, rolled_back, completed_at = _event_facts(body.get("events") or [])
    out = []
    for deployment in body.get("deployments") or []:
        ident = str(deployment["id"])
        state = str(deployment.get("rolloutState") or "")
        if not state:  # older deployment controllers say nothing: a lone PRIMARY that is steady has completed
            steady = deployment.get("runningCount") == deployment.get("desiredCount")
            state = "COMPLETED" if steady and len(body.get("deployments") or []) == 1 else "IN_PROGRESS"
        out.append(
            DeploymentRecord(
                cluster=cluster,
                service=service,
                deployment=ident,
                task_definition=deployment.get("taskDefinition"),
                status=str(deployment.get("status", "")),
                rollout_state=state,
                created_at=to_datetime(deployment.get("createdAt")),
                finished_at=completed_at.get(ident) if state == "COMPLETED" else None,
                rolled_back=ident in rolled_back,
                source="service",
            )
        )
    return out


def merge_observed(
    seen_before: Iterable[DeploymentRecord], seen_now: Iterable[DeploymentRecord], events: list[dict[str, Any]]
) -> list[DeploymentRecord]:
    """One service's history as the library observed it over syncs: deployments keep the revision they deployed
    after DescribeServices stops listing them, and later events settle how they ended."""
    failed, rolled_back, completed_at = _event_facts(events)
    merged: dict[str, DeploymentRecord] = {d.deployment: d for d in seen_before}
    merged.update({d.deployment: d for d in seen_now})
    out = []
    for record in merged.values():
        if record.deployment in completed_at and record.rollout_state != "COMPLETED":
            record = _replace(record, rollout_state="COMPLETED", finished_at=completed_at[record.deployment])
        elif record.deployment in failed and record.rollout_state == "IN_PROGRESS":
            record = _replace(record, rollout_state="FAILED", rolled_back=record.deployment in rolled_back)
        out.append(record)
    return out


def _event_facts(events: list[dict[str, Any]]) -> tuple[set[str], set[str], dict[str, Any]]:
    """Deployments that failed, those of them the circuit breaker rolled back (ECS logs "rolling back to ..." at
    the moment of the failure), and when deployments completed."""
    failed: dict[str, Any] = {}
    rollback_moments: set[Any] = set()
    completed_at: dict[str, Any] = {}
    for event in events:
        message, moment = str(event.get("message", "")), to_datetime(event.get("createdAt"))
        if m := _EVENT_COMPLETED.search(message):
            completed_at.setdefault(m.group(1), moment)
        elif m := _EVENT_FAILED.search(message):
            failed[m.group(1)] = moment
        elif _EVENT_ROLLING_BACK.search(message):
            rollback_moments.add(moment)
    rolled_back = {ident for ident, moment in failed.items() if moment in rollback_moments}
    return set(failed), rolled_back, completed_at


def _replace(record: DeploymentRecord, **changes: Any) -> DeploymentRecord:
    from dataclasses import replace

    return replace(record, **changes)


__all__ = [
    "from_service",
    "from_service_deployment",
    "merge_observed",
    "rollback_target",
    "rollback_targets",
    "service_rollback_targets",
]
