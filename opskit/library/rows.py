"""From the APIs' answers to the cache's rows, and back to records.

Rows are flat tuples of SQL-friendly values: timestamps as integer microseconds since the epoch (UTC), booleans as
0/1, lists and maps as JSON text. Frames load them with one SELECT; only a revision's full body is a JSON blob,
read on request.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

from opskit.records import (
    ContainerRecord,
    DeploymentRecord,
    ImageRef,
    LifecycleHookRecord,
    RepositoryRecord,
    RevisionRecord,
    ServiceRecord,
    commit_of,
    to_datetime,
)

REVISION_FIELDS = (
    "arn",
    "family",
    "revision",
    "status",
    "registered_at",
    "registered_by",
    "deregistered_at",
    "delete_requested_at",
    "cpu",
    "memory",
    "network_mode",
    "compatibilities",
    "container_count",
    "commit_sha",
    "tags",
)
CONTAINER_FIELDS = (
    "family",
    "revision",
    "position",
    "arn",
    "status",
    "name",
    "image",
    "registry",
    "repository",
    "tag",
    "digest",
    "commit_sha",
    "uses_latest",
    "untagged",
    "essential",
    "environment_names",
    "secret_names",
)
SERVICE_FIELDS = (
    "arn",
    "cluster",
    "service",
    "status",
    "desired_count",
    "running_count",
    "pending_count",
    "task_definition",
    "launch_type",
    "circuit_breaker",
    "circuit_breaker_rollback",
    "deployments",
    "rollback_target",
    "created_at",
    "history_source",
    "strategy",
    "bake_time_minutes",
    "step_bake_time_minutes",
    "canary_bake_time_minutes",
    "lifecycle_hooks",
    "alarm_names",
    "alarms_enabled",
    "alarms_rollback",
)
# How a service deploys, as the store keeps it: the last SERVICE_FIELDS, read back by :func:`rollout_settings`.
ROLLOUT_FIELDS = SERVICE_FIELDS[SERVICE_FIELDS.index("strategy") :]
DEPLOYMENT_FIELDS = (
    "cluster",
    "service",
    "deployment",
    "task_definition",
    "status",
    "rollout_state",
    "created_at",
    "finished_at",
    "rolled_back",
    "source",
)


def micros(value: Any) -> int | None:
    """A timestamp (datetime or epoch seconds) as integer microseconds since the epoch."""
    moment = to_datetime(value)
    return None if moment is None else round(moment.timestamp() * 1_000_000)


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else to_datetime(value / 1_000_000)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- task-definition revisions -----------------------------------------------------------------------------------
def revision_rows(answer: dict[str, Any]) -> tuple[tuple[Any, ...], bytes, list[tuple[Any, ...]]]:
    """The revisions row, the compressed body and the containers rows of one DescribeTaskDefinition(include=TAGS)
    answer."""
    body = answer["taskDefinition"]
    tags = {t["key"]: t["value"] for t in answer.get("tags") or [] if "key" in t}
    containers = [ContainerRecord.from_api(c) for c in body.get("containerDefinitions") or []]
    arn = body["taskDefinitionArn"]
    revision = (
        arn,
        body["family"],
        int(body["revision"]),
        body["status"],
        micros(body.get("registeredAt")),
        body.get("registeredBy"),
        micros(body.get("deregisteredAt")),
        micros(body.get("deleteRequestedAt")),
        _text(body.get("cpu")),
        _text(body.get("memory")),
        body.get("networkMode"),
        ",".join(body.get("compatibilities") or []),
        len(containers),
        commit_of(tags, containers),
        json.dumps(tags, separators=(",", ":")),
    )
    blob = zlib.compress(json.dumps(answer, separators=(",", ":"), default=_json_default).encode(), 1)
    rows = []
    for position, container in enumerate(containers):
        ref = container.ref
        rows.append(
            (
                body["family"],
                int(body["revision"]),
                position,
                arn,
                body["status"],
                container.name,
                container.image,
                ref.registry,
                ref.repository,
                ref.tag,
                ref.digest,
                ref.commit_sha,
                int(ref.uses_latest),
                int(ref.untagged),
                int(container.essential),
                json.dumps(list(container.environment_names), separators=(",", ":")),
                json.dumps(list(container.secret_names), separators=(",", ":")),
            )
        )
    return revision, blob, rows


def decode_body(blob: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(zlib.decompress(blob))
    return answer


def revision_record(answer: dict[str, Any], status: str) -> RevisionRecord:
    """The record of a cached answer, with the status the listings last gave it."""
    record = RevisionRecord.from_api({**answer["taskDefinition"], "status": status}, answer.get("tags"))
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot store {type(value).__name__} in a revision body")


# -- ECR ---------------------------------------------------------------------------------------------------------
REPOSITORY_FIELDS = (
    "name",
    "registry_id",
    "uri",
    "arn",
    "mutability",
    "scan_on_push",
    "created_at",
    "exclusion_filters",
    "scan_frequency",
    "lifecycle_policy",
)


def repository_row(
    repository: dict[str, Any], lifecycle_policy: str | None = None, scan_frequency: str | None = None
) -> tuple[Any, ...]:
    """A DescribeRepositories entry, with its lifecycle policy text and its scan frequency when they were asked."""
    filters = [f["filter"] for f in repository.get("imageTagMutabilityExclusionFilters") or [] if "filter" in f]
    return (
        repository["repositoryName"],
        repository.get("registryId"),
        repository.get("repositoryUri"),
        repository.get("repositoryArn"),
        repository.get("imageTagMutability"),
        int(bool((repository.get("imageScanningConfiguration") or {}).get("scanOnPush"))),
        micros(repository.get("createdAt")),
        json.dumps(filters, separators=(",", ":")),
        scan_frequency,
        lifecycle_policy,
    )


def repository_record(row: tuple[Any, ...]) -> RepositoryRecord:
    name, registry_id, uri, arn, mutability, scan_on_push, created, filters, frequency, policy = row
    return RepositoryRecord(
        name=name,
        registry_id=registry_id or "",
        uri=uri or "",
        arn=arn,
        mutability=mutability or "MUTABLE",
        exclusion_filters=tuple(json.loads(filters or "[]")),
        scan_on_push=bool(scan_on_push),
        scan_frequency=frequency,
        lifecycle_policy=policy,
        created_at=from_micros(created),
    )


def image_row(detail: dict[str, Any]) -> tuple[Any, ...]:
    findings = detail.get("imageScanFindingsSummary") or {}
    return (
        detail["repositoryName"],
        detail["imageDigest"],
        detail.get("registryId"),
        json.dumps(list(detail.get("imageTags") or []), separators=(",", ":")),
        micros(detail.get("imagePushedAt")),
        detail.get("imageSizeInBytes"),
        (detail.get("imageScanStatus") or {}).get("status"),
        micros(findings.get("imageScanCompletedAt")),
        detail.get("imageManifestMediaType"),
        micros(detail.get("lastRecordedPullTime")),
    )


# -- services and deployments ------------------------------------------------------------------------------------
def service_record(body: dict[str, Any], cluster: str, deployments: list[DeploymentRecord]) -> ServiceRecord:
    config = body.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    alarms = config.get("alarms") or {}
    current = body.get("deployments") or []
    return ServiceRecord(
        cluster=cluster,
        service=str(body["serviceName"]),
        arn=str(body["serviceArn"]),
        status=str(body.get("status", "")),
        desired_count=int(body.get("desiredCount") or 0),
        running_count=int(body.get("runningCount") or 0),
        pending_count=int(body.get("pendingCount") or 0),
        task_definition=current[0].get("taskDefinition") if current else body.get("taskDefinition"),
        launch_type=body.get("launchType"),
        circuit_breaker=bool(breaker.get("enable")),
        circuit_breaker_rollback=bool(breaker.get("rollback")),
        deployments=tuple(deployments),
        created_at=to_datetime(body.get("createdAt")),
        strategy=str(config.get("strategy") or "ROLLING"),
        bake_time_minutes=_minutes(config.get("bakeTimeInMinutes")),
        step_bake_time_minutes=_minutes((config.get("linearConfiguration") or {}).get("stepBakeTimeInMinutes")),
        canary_bake_time_minutes=_minutes((config.get("canaryConfiguration") or {}).get("canaryBakeTimeInMinutes")),
        lifecycle_hooks=tuple(LifecycleHookRecord.from_api(h) for h in config.get("lifecycleHooks") or []),
        alarm_names=tuple(str(n) for n in alarms.get("alarmNames") or []),
        alarms_enabled=bool(alarms.get("enable")),
        alarms_rollback=bool(alarms.get("rollback")),
    )


def _minutes(value: Any) -> int | None:
    return None if value is None else int(value)


def service_row(record: ServiceRecord, history_source: str, rollback_target: str | None) -> tuple[Any, ...]:
    """The services row (:data:`SERVICE_FIELDS`) of a service."""
    current = [
        {
            "id": d.deployment,
            "status": d.status,
            "task_definition": d.task_definition,
            "rollout_state": d.rollout_state,
        }
        for d in record.deployments
    ]
    hooks = [
        {"target_type": h.target_type, "target_arn": h.target_arn, "role_arn": h.role_arn, "stages": list(h.stages)}
        for h in record.lifecycle_hooks
    ]
    return (
        record.arn,
        record.cluster,
        record.service,
        record.status,
        record.desired_count,
        record.running_count,
        record.pending_count,
        record.task_definition,
        record.launch_type,
        int(record.circuit_breaker),
        int(record.circuit_breaker_rollback),
        json.dumps(current, separators=(",", ":")),
        rollback_target,
        micros(record.created_at),
        history_source,
        record.strategy,
        record.bake_time_minutes,
        record.step_bake_time_minutes,
        record.canary_bake_time_minutes,
        json.dumps(hooks, separators=(",", ":")),
        json.dumps(list(record.alarm_names), separators=(",", ":")),
        int(record.alarms_enabled),
        int(record.alarms_rollback),
    )


def rollout_settings(row: tuple[Any, ...]) -> dict[str, Any]:
    """The :class:`~opskit.records.ServiceRecord` fields of how a service deploys, from the store's
    :data:`ROLLOUT_FIELDS` of its row (``dataclasses.replace(record, **settings)`` puts them on a record)."""
    strategy, bake, step_bake, canary_bake, hooks, alarm_names, alarms_enabled, alarms_rollback = row
    return {
        "strategy": strategy or "ROLLING",
        "bake_time_minutes": bake,
        "step_bake_time_minutes": step_bake,
        "canary_bake_time_minutes": canary_bake,
        "lifecycle_hooks": tuple(
            LifecycleHookRecord(
                target_type=h.get("target_type") or "AWS_LAMBDA",
                target_arn=h.get("target_arn"),
                role_arn=h.get("role_arn"),
                stages=tuple(h.get("stages") or ()),
            )
            for h in json.loads(hooks or "[]")
        ),
        "alarm_names": tuple(json.loads(alarm_names or "[]")),
        "alarms_enabled": bool(alarms_enabled),
        "alarms_rollback": bool(alarms_rollback),
    }


def deployment_row(record: DeploymentRecord) -> tuple[Any, ...]:
    return (
        record.cluster,
        record.service,
        record.deployment,
        record.task_definition,
        record.status,
        record.rollout_state,
        micros(record.created_at),
        micros(record.finished_at),
        int(record.rolled_back),
        record.source,
    )


def deployment_record(row: tuple[Any, ...]) -> DeploymentRecord:
    cluster, service, deployment, task_definition, status, state, created, finished, rolled_back, source = row
    return DeploymentRecord(
        cluster=cluster,
        service=service,
        deployment=deployment,
        task_definition=task_definition,
        status=status,
        rollout_state=state,
        created_at=from_micros(created),
        finished_at=from_micros(finished),
        rolled_back=bool(rolled_back),
        source=source,
    )


def family_and_revision(arn: str | None) -> tuple[str | None, int | None]:
    """``arn:...:task-definition/web:30`` -> ("web", 30)."""
    if not arn or ":" not in arn:
        return None, None
    name = arn.rsplit("/", 1)[-1]
    family, _, number = name.rpartition(":")
    return (family, int(number)) if number.isdigit() else (name, None)


__all__ = [
    "CONTAINER_FIELDS",
    "DEPLOYMENT_FIELDS",
    "REPOSITORY_FIELDS",
    "REVISION_FIELDS",
    "ROLLOUT_FIELDS",
    "SERVICE_FIELDS",
    "ImageRef",
    "decode_body",
    "deployment_record",
    "deployment_row",
    "family_and_revision",
    "from_micros",
    "image_row",
    "micros",
    "repository_record",
    "repository_row",
    "revision_record",
    "revision_rows",
    "rollout_settings",
    "service_record",
    "service_row",
]
