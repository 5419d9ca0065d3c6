"""What ECS keeps about services: the service, its deployments, their tasks, service deployments.

Plain records with the one job of describing themselves in ECS's JSON shapes. Counts (running, pending) are
always derived from the task records, never kept on the side, so DescribeServices and DescribeTasks cannot
disagree. The rules that move these records along live in :mod:`opskit.sandbox.ecs.scheduler`.
"""

from __future__ import annotations

import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opskit.sandbox.ecs.taskdefs import Revision

# Service status
ACTIVE, DRAINING, INACTIVE = "ACTIVE", "DRAINING", "INACTIVE"
# Deployment status and rollout state
PRIMARY = "PRIMARY"
IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"
# Task lifecycle (lastStatus)
PROVISIONING, PENDING, RUNNING, DEACTIVATING, STOPPED = (
    "PROVISIONING",
    "PENDING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPED",
)
NOT_YET_RUNNING = (PROVISIONING, PENDING)
# Service deployment status (ListServiceDeployments & co.)
SD_IN_PROGRESS, SD_SUCCESSFUL, SD_STOPPED = "IN_PROGRESS", "SUCCESSFUL", "STOPPED"
SD_STOP_REQUESTED = "STOP_REQUESTED"
SD_ROLLBACK_REQUESTED, SD_ROLLBACK_IN_PROGRESS = "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"
SD_ROLLBACK_SUCCESSFUL, SD_ROLLBACK_FAILED = "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"
SD_STATUSES = (
    "PENDING",
    SD_IN_PROGRESS,
    SD_SUCCESSFUL,
    SD_STOPPED,
    SD_STOP_REQUESTED,
    SD_ROLLBACK_REQUESTED,
    SD_ROLLBACK_IN_PROGRESS,
    SD_ROLLBACK_SUCCESSFUL,
    SD_ROLLBACK_FAILED,
)
MAX_EVENTS = 100  # DescribeServices shows the newest 100 events


def deployment_id() -> str:
    """``ecs-svc/`` and 19 digits, as ECS names deployments."""
    return f"ecs-svc/{secrets.randbelow(9 * 10**18) + 10**18}"


def _stamp(out: dict[str, Any], **moments: datetime | None) -> None:
    for key, moment in moments.items():
        if moment is not None:
            out[key] = moment


@dataclass(eq=False)
class Container:
    name: str
    image: str
    arn: str
    essential: bool
    health_checked: bool
    definition: dict[str, Any]
    last_status: str = PENDING
    exit_code: int | None = None
    reason: str | None = None
    health_status: str = "UNKNOWN"
    runtime_id: str | None = None
    image_digest: str | None = None
    pull: str = ""  # what the task pulls: the image pinned to the digest its deployment resolved, or as written

    def __post_init__(self) -> None:
        self.pull = self.pull or self.image

    def describe(self, task_arn: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "containerArn": self.arn,
            "taskArn": task_arn,
            "name": self.name,
            "image": self.image,
            "lastStatus": self.last_status,
            "networkBindings": [],
            "networkInterfaces": [],
            "healthStatus": self.health_status,
            "cpu": str(self.definition.get("cpu", 0)),
        }
        if self.definition.get("memory") is not None:
            out["memory"] = str(self.definition["memory"])
        if self.image_digest:
            out["imageDigest"] = self.image_digest
        if self.runtime_id:
            out["runtimeId"] = self.runtime_id
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(eq=False)
class Task:
    id: str
    arn: str
    service: Service
    deployment: Deployment
    revision: Revision
    containers: list[Container]
    created_at: datetime
    last_status: str = PROVISIONING
    desired_status: str = RUNNING
    health_status: str = "UNKNOWN"
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    execution_stopped_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    failed: bool = False  # counted in its deployment's failedTasks
    in_docker: bool = False  # its containers run on the Docker engine (else the sandbox simulates them)
    version: int = 1
    private_ip: str = ""  # the address a load balancer's target group knows it by
    target_group: str | None = None  # where it is registered, if its service has a load balancer

    @property
    def live(self) -> bool:
        """Still meant to run: counts against the deployment's desired count."""
        return self.desired_status == RUNNING and self.last_status != STOPPED

    @property
    def healthy(self) -> bool:
        """Counts towards minimumHealthyPercent: running, and passing its health checks if it has any."""
        checked = any(c.essential and c.health_checked for c in self.containers)
        return self.live and self.last_status == RUNNING and (not checked or self.health_status == "HEALTHY")

    def describe(self, region: str, include_tags: bool = False) -> dict[str, Any]:
        body = self.revision.body
        launch_type = self.service.launch_type
        out: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": self.service.cluster_arn,
            "taskDefinitionArn": self.revision.arn,
            "group": f"service:{self.service.name}",
            "startedBy": self.deployment.id,
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "healthStatus": self.health_status,
            "launchType": launch_type,
            "availabilityZone": f"{region}a",
            "connectivity": "CONNECTED",
            "createdAt": self.created_at,
            "containers": [c.describe(self.arn) for c in self.containers],
            "overrides": {"containerOverrides": [{"name": c.name} for c in self.containers]},
            "attachments": [],
            "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
            "enableExecuteCommand": False,
            "version": self.version,
        }
        if body.get("cpu") is not None:
            out["cpu"] = str(body["cpu"])
        if body.get("memory") is not None:
            out["memory"] = str(body["memory"])
        if launch_type == "FARGATE":
            out.update(platformVersion="1.4.0", platformFamily="Linux", ephemeralStorage={"sizeInGiB": 20})
        _stamp(
            out,
            connectivityAt=self.created_at,
            pullStartedAt=self.pull_started_at,
            pullStoppedAt=self.pull_stopped_at,
            startedAt=self.started_at,
            stoppingAt=self.stopping_at,
            executionStoppedAt=self.execution_stopped_at,
            stoppedAt=self.stopped_at,
        )
        if self.stop_code:
            out["stopCode"] = self.stop_code
        if self.stopped_reason:
            out["stoppedReason"] = self.stopped_reason
        if include_tags:
            out["tags"] = []
        return out


@dataclass(eq=False)
class Deployment:
    id: str
    service: Service
    revision: Revision
    revision_arn: str  # the service revision it deploys (service-revision ARN)
    created_at: datetime
    updated_at: datetime
    record: ServiceDeployment | None = None  # the service deployment it belongs to (a rollback shares its origin's)
    status: str = PRIMARY
    desired_count: int = 0
    rollout_state: str = IN_PROGRESS
    rollout_state_reason: str = ""
    failed_tasks: int = 0  # every task of this deployment that failed, ever (DescribeServices' failedTasks)
    breaker_failures: int = 0  # what the circuit breaker counts: reset when a task gets healthy (resetOnHealthyTask)
    consecutive_failures: int = 0  # launch backoff: reset by any task that gets healthy
    next_launch_at: float = 0.0  # POSIX seconds: launch backoff after failures
    is_rollback: bool = False
    ready_since: float | None = None  # POSIX seconds since the deployment is fully up (alone, all healthy)
    tasks: list[Task] = field(default_factory=list)
    # Container name -> the image digest ECS resolved when the deployment started (versionConsistency), if any.
    digests: dict[str, str] = field(default_factory=dict)
    target_group: str | None = None  # where its tasks are registered, when the service has a load balancer

    def __post_init__(self) -> None:
        if not self.rollout_state_reason:
            self.rollout_state_reason = f"ECS deployment {self.id} in progress."

    def pull_reference(self, container: dict[str, Any]) -> str:
        """What a task of this deployment pulls for ``container``: its image at the resolved digest, so a tag moved
        or pushed again later does not change what runs; the image as written where nothing was resolved (the
        container's versionConsistency is disabled, or the image is not in this sandbox's ECR)."""
        image = str(container["image"])
        digest = self.digests.get(str(container["name"]))
        if digest is None:
            return image
        name = image.split("@", 1)[0]
        return f"{name.rsplit(':', 1)[0] if _has_tag(name) else name}@{digest}"

    def container_images(self) -> list[dict[str, Any]]:
        """DescribeServiceRevisions' containerImages: each container's image, and the digest resolved for it."""
        out = []
        for container in self.revision.body.get("containerDefinitions", []):
            entry = {"containerName": container["name"], "image": container["image"]}
            if container["name"] in self.digests:
                entry["imageDigest"] = self.digests[container["name"]]
            out.append(entry)
        return out

    @property
    def running_count(self) -> int:
        return sum(1 for t in self.tasks if t.last_status == RUNNING)

    @property
    def pending_count(self) -> int:
        return sum(1 for t in self.tasks if t.last_status in NOT_YET_RUNNING)

    @property
    def live_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.live]

    def describe(self) -> dict[str, Any]:
        service = self.service
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.revision.arn,
            "desiredCount": self.desired_count,
            "pendingCount": self.pending_count,
            "runningCount": self.running_count,
            "failedTasks": self.failed_tasks,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": service.launch_type,
            "rolloutState": self.rollout_state,
            "rolloutStateReason": self.rollout_state_reason,
        }
        if service.launch_type == "FARGATE":
            out.update(platformVersion="1.4.0", platformFamily="Linux")
        if service.params.get("networkConfiguration"):
            out["networkConfiguration"] = service.params["networkConfiguration"]
        return out

    def revision_summary(self, weights: Traffic | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arn": self.revision_arn,
            "requestedTaskCount": self.desired_count,
            "runningTaskCount": self.running_count,
            "pendingTaskCount": self.pending_count,
        }
        if weights is not None:  # a traffic-shifting deployment: this revision's share of each kind of traffic
            green = self is weights.green
            out["requestedTestTrafficWeight"] = weights.test if green else 100.0 - weights.test
            out["requestedProductionTrafficWeight"] = weights.production if green else 100.0 - weights.production
        return out


@dataclass(eq=False)
class HookRun:
    """One run of a lifecycle hook at one stage (lifecycleHookDetails)."""

    hook_id: str
    target_type: str  # AWS_LAMBDA | PAUSE
    target_arn: str | None
    stage: str
    status: str  # AWAITING_ACTION | IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT
    timeout_action: str
    expires_at: datetime | None = None
    details: Any = None  # what an IN_PROGRESS answer asked to be given back next time
    reason: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hookId": self.hook_id,
            "targetType": self.target_type,
            "status": self.status,
            "timeoutAction": self.timeout_action,
        }
        if self.target_arn:
            out["targetArn"] = self.target_arn
        _stamp(out, expiresAt=self.expires_at)
        return out


@dataclass(eq=False)
class Traffic:
    """Where a traffic-shifting deployment (BLUE_GREEN, LINEAR, CANARY) stands: its stage and the green revision's
    share of test and production traffic (percent), moved along by :mod:`opskit.sandbox.ecs.traffic`."""

    strategy: str
    green: Deployment
    blue: Deployment
    load_balancer: dict[str, Any]
    blue_group: str  # the target group taking production traffic before the deployment
    green_group: str  # the other one, where the green revision's tasks are registered
    steps: list[Any] = field(default_factory=list)
    step: int = -1
    phase: str = ""
    hook: int = 0  # the next hook of the step's stage to run
    stage: str | None = None
    test: float = 0.0
    production: float = 0.0
    hooks: list[HookRun] = field(default_factory=list)
    cleaning: bool = False  # CLEAN_UP: the blue revision's tasks go
    rolling_back: bool = False


@dataclass(eq=False)
class ServiceDeployment:
    """One Create/UpdateService as the service-deployment APIs show it (a rollback stays part of it)."""

    arn: str
    service: Service
    target: Deployment
    sources: list[Deployment]
    created_at: datetime
    deployment_configuration: dict[str, Any]
    status: str = SD_IN_PROGRESS
    status_reason: str | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    rollback: dict[str, Any] | None = None
    rollback_to: Deployment | None = None
    breaker_status: str = "MONITORING"
    traffic: Traffic | None = None  # a traffic-shifting deployment's progress (None: rolling)
    alarm_names: list[str] = field(default_factory=list)  # deploymentConfiguration.alarms, when enabled
    triggered_alarms: list[str] = field(default_factory=list)
    alarms_status: str = "DISABLED"

    def brief(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "createdAt": self.created_at,
            "startedAt": self.created_at,
            "targetServiceRevisionArn": self.target.revision_arn,
            "status": self.status,
        }
        _stamp(out, finishedAt=self.finished_at)
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out

    def describe(self) -> dict[str, Any]:
        breaker = self.deployment_configuration.get("deploymentCircuitBreaker") or {}
        out: dict[str, Any] = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "createdAt": self.created_at,
            "startedAt": self.created_at,
            "updatedAt": self.updated_at or self.created_at,
            "sourceServiceRevisions": [d.revision_summary(self.traffic) for d in self.sources],
            "targetServiceRevision": self.target.revision_summary(self.traffic),
            "status": self.status,
            "deploymentConfiguration": self.deployment_configuration,
            "deploymentCircuitBreaker": {
                "status": self.breaker_status if breaker.get("enable") else "DISABLED",
                "failureCount": self.target.breaker_failures,
                "threshold": breaker_threshold(breaker, self.service.desired_count),
            },
        }
        _stamp(out, finishedAt=self.finished_at, stoppedAt=self.stopped_at)
        if self.status_reason:
            out["statusReason"] = self.status_reason
        if self.rollback:
            out["rollback"] = self.rollback
        if self.traffic is not None:
            if self.traffic.stage:
                out["lifecycleStage"] = self.traffic.stage
            out["lifecycleHookDetails"] = [run.describe() for run in self.traffic.hooks]
        alarms: dict[str, Any] = {"status": self.alarms_status}
        if self.alarm_names:
            alarms["alarmNames"] = list(self.alarm_names)
        if self.triggered_alarms:
            alarms["triggeredAlarmNames"] = list(self.triggered_alarms)
        out["alarms"] = alarms
        return out


@dataclass(eq=False)
class Service:
    name: str
    arn: str
    cluster_arn: str
    desired_count: int
    deployment_configuration: dict[str, Any]
    launch_type: str
    created_at: datetime
    created_by: str
    params: dict[str, Any]  # what CreateService/UpdateService set that the sandbox only echoes back
    tags: list[dict[str, str]] = field(default_factory=list)
    status: str = ACTIVE
    deployments: list[Deployment] = field(default_factory=list)  # PRIMARY first, then ACTIVE ones, newest first
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    service_deployments: list[ServiceDeployment] = field(default_factory=list)
    last_completed: Deployment | None = None
    steady: bool = False
    reconcile_at: float | None = None  # when the scheduler looks at this service next
    inactive_at: datetime | None = None
    production_group: str | None = None  # the target group taking production traffic (traffic-shifting services)

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]

    @property
    def cluster_name(self) -> str:
        return self.cluster_arn.rsplit("/", 1)[-1]

    def event(self, at: datetime, message: str) -> None:
        self.events.appendleft(
            {"id": str(uuid.uuid4()), "createdAt": at, "message": f"(service {self.name}) {message}"}
        )

    def describe(self, include_tags: bool = False) -> dict[str, Any]:
        task_definition = self.deployments[0].revision.arn if self.deployments else self.params["taskDefinition"]
        out: dict[str, Any] = {
            "serviceArn": self.arn,
            "serviceName": self.name,
            "clusterArn": self.cluster_arn,
            "loadBalancers": self.params.get("loadBalancers", []),
            "serviceRegistries": self.params.get("serviceRegistries", []),
            "status": self.status,
            "desiredCount": self.desired_count,
            "runningCount": sum(d.running_count for d in self.deployments),
            "pendingCount": sum(d.pending_count for d in self.deployments),
            "launchType": self.launch_type,
            "taskDefinition": task_definition,
            "deploymentConfiguration": self.deployment_configuration,
            "deployments": [d.describe() for d in self.deployments],
            "events": list(self.events),
            "createdAt": self.created_at,
            "placementConstraints": self.params.get("placementConstraints", []),
            "placementStrategy": self.params.get("placementStrategy", []),
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
            "createdBy": self.created_by,
            "enableECSManagedTags": bool(self.params.get("enableECSManagedTags", False)),
            "propagateTags": self.params.get("propagateTags", "NONE"),
            "enableExecuteCommand": bool(self.params.get("enableExecuteCommand", False)),
            "currentServiceRevisions": [d.revision_summary() for d in self.deployments],
        }
        if self.launch_type == "FARGATE":
            out.update(platformVersion="LATEST", platformFamily="Linux")
        for key in (
            "networkConfiguration",
            "healthCheckGracePeriodSeconds",
            "roleArn",
            "availabilityZoneRebalancing",
        ):
            if key in self.params:
                out[key] = self.params[key]
        if self.deployments and self.deployments[0].record is not None:
            out["currentServiceDeployment"] = self.deployments[0].record.arn
        if include_tags:
            out["tags"] = list(self.tags)
        return out


def _has_tag(name: str) -> bool:
    """Does ``HOST[:PORT]/NAME[:TAG]`` carry a tag (a colon after the last slash)?"""
    return ":" in name.rsplit("/", 1)[-1]


def breaker_threshold(breaker: dict[str, Any], desired_count: int) -> int:
    """How many failed tasks trip the circuit breaker: ``thresholdConfiguration`` (default BOUNDED_PERCENT 50).

    BOUNDED_PERCENT is that percent of the desired count, rounded up, at least 3 and at most 200 (AWS's documented
    default: half the desired count, 3 to 200); UNBOUNDED_PERCENT is the percent unclamped (at least 1); COUNT is the
    value itself.
    """
    config = breaker.get("thresholdConfiguration") or {}
    kind, value = config.get("type", "BOUNDED_PERCENT"), int(config.get("value", 50))
    if kind == "COUNT":
        return max(1, value)
    share = -(-desired_count * value // 100)
    return max(1, share) if kind == "UNBOUNDED_PERCENT" else min(200, max(3, share))
