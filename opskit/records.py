"""The library's records: small immutable facts about what exists in ECS and ECR.

Pure functions (policy checks, cleanup and rollback plans) take these; the library builds them from its cache.

>>> ImageRef.parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:3f2a9c1")
ImageRef(registry='123456789012.dkr.ecr.us-east-1.amazonaws.com', repository='web', tag='3f2a9c1', digest=None)
>>> ImageRef.parse("nginx").tag is None, ImageRef.parse("127.0.0.1:5000/web@sha256:" + "a" * 64).digest[:9]
(True, 'sha256:aa')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opskit.errors import ConfigError

COMMIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Names as ECS (families, clusters, services) and ECR (repositories) allow them.
ECS_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
REPOSITORY_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# Tag keys a release process uses to record the commit a revision was built from ("commit" is opskit's own).
COMMIT_TAG_KEYS = ("commit", "git-commit", "git-sha", "commit-sha")

REVISION_STATUSES = ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")
ROLLOUT_STATES = ("IN_PROGRESS", "COMPLETED", "FAILED")


def checked_names(values: Any, option: str, pattern: re.Pattern[str], listing: str) -> tuple[str, ...]:
    """``values`` (a name or several) as a tuple without repeats, or a one-line ConfigError for an empty or
    malformed one that says where to list the real names.

    >>> checked_names(("web", "api", "web"), "--family", ECS_NAME, "opskit revisions")
    ('web', 'api')
    """
    if isinstance(values, str):
        values = (values,)
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{option} is empty: pass a name, or leave the option out for all")
        if len(value) > 256 or not pattern.match(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ConfigError(f"{option} {shown!r} is not a valid name: list the names with `{listing}`")
        out.append(value)
    return tuple(dict.fromkeys(out))


def to_datetime(value: Any) -> datetime | None:
    """A timestamp as AWS answers it (datetime from boto3, epoch seconds from raw JSON) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"not a timestamp: {value!r}")


@dataclass(frozen=True)
class ImageRef:
    """A container image reference as written in a task definition: ``[registry/]repository[:tag][@digest]``."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        rest, _, digest = reference.partition("@")
        registry = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, remainder
        name, colon, tag = rest.rpartition(":")
        if not colon or "/" in tag:
            name, tag = rest, ""
        return cls(registry=registry, repository=name, tag=tag or None, digest=digest or None)

    @property
    def commit_sha(self) -> str | None:
        """The commit this image was built from, when its tag is a commit SHA (7 to 40 hex digits)."""
        return self.tag if self.tag and COMMIT_SHA.match(self.tag) else None

    @property
    def untagged(self) -> bool:
        """Neither tag nor digest: the runtime pulls ``latest``."""
        return self.tag is None and self.digest is None

    @property
    def uses_latest(self) -> bool:
        return self.tag == "latest" or self.untagged

    @property
    def pinned(self) -> bool:
        return self.digest is not None and bool(DIGEST.match(self.digest))


@dataclass(frozen=True)
class ContainerRecord:
    """One container definition: its image and the NAMES of its variables and secrets (never their values)."""

    name: str
    image: str
    essential: bool
    environment_names: tuple[str, ...]
    secret_names: tuple[str, ...]

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(self.image)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> ContainerRecord:
        return cls(
            name=body["name"],
            image=body.get("image", ""),
            essential=bool(body.get("essential", True)),
            environment_names=tuple(e["name"] for e in body.get("environment") or [] if "name" in e),
            secret_names=tuple(s["name"] for s in body.get("secrets") or [] if "name" in s),
        )


def commit_of(tags: dict[str, str], containers: tuple[ContainerRecord, ...] | list[ContainerRecord]) -> str | None:
    """The commit a revision was built from: its ``commit`` tag, else the first image tag that is a commit SHA."""
    for key in COMMIT_TAG_KEYS:
        if tags.get(key):
            return tags[key]
    return next((c.ref.commit_sha for c in containers if c.ref.commit_sha), None)


@dataclass(frozen=True)
class RevisionRecord:
    """One task-definition revision, as DescribeTaskDefinition tells it (values of variables are not kept)."""

    family: str
    revision: int
    arn: str
    status: str
    registered_at: datetime | None
    registered_by: str | None
    deregistered_at: datetime | None
    cpu: str | None
    memory: str | None
    network_mode: str | None
    compatibilities: tuple[str, ...]
    containers: tuple[ContainerRecord, ...]
    tags: tuple[tuple[str, str], ...]
    delete_requested_at: datetime | None = None

    @property
    def commit(self) -> str | None:
        return commit_of(dict(self.tags), self.containers)

    @classmethod
    def from_api(cls, body: dict[str, Any], tags: list[dict[str, str]] | None = None) -> RevisionRecord:
        return cls(
            family=body["family"],
            revision=int(body["revision"]),
            arn=body["taskDefinitionArn"],
            status=body["status"],
            registered_at=to_datetime(body.get("registeredAt")),
            registered_by=body.get("registeredBy"),
            deregistered_at=to_datetime(body.get("deregisteredAt")),
            cpu=_text(body.get("cpu")),
            memory=_text(body.get("memory")),
            network_mode=body.get("networkMode"),
            compatibilities=tuple(body.get("compatibilities") or []),
            containers=tuple(ContainerRecord.from_api(c) for c in body.get("containerDefinitions") or []),
            tags=tuple((t["key"], t["value"]) for t in tags or []),
            delete_requested_at=to_datetime(body.get("deleteRequestedAt")),
        )


@dataclass(frozen=True)
class ImageRecord:
    """One ECR image (a manifest in a repository) and the tags that point at it now."""

    repository: str
    registry_id: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None
    size_bytes: int | None
    scan_status: str | None
    media_type: str | None

    @classmethod
    def from_api(cls, detail: dict[str, Any]) -> ImageRecord:
        return cls(
            repository=detail["repositoryName"],
            registry_id=detail.get("registryId", ""),
            digest=detail["imageDigest"],
            tags=tuple(detail.get("imageTags") or []),
            pushed_at=to_datetime(detail.get("imagePushedAt")),
            size_bytes=detail.get("imageSizeInBytes"),
            scan_status=(detail.get("imageScanStatus") or {}).get("status"),
            media_type=detail.get("imageManifestMediaType"),
        )


@dataclass(frozen=True)
class RepositoryRecord:
    """One ECR repository and the settings release policy depends on: tag mutability (and its exclusion
    filters), scanning, and the lifecycle policy text as ECR stores it (None when there is none).

    ``scan_frequency`` is what BatchGetRepositoryScanningConfiguration says (SCAN_ON_PUSH, CONTINUOUS_SCAN or
    MANUAL, registry-level rules included), None when it could not be asked.
    """

    name: str
    registry_id: str
    uri: str
    arn: str | None
    mutability: str  # MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION
    exclusion_filters: tuple[str, ...]  # wildcard filters (``*`` matches any run of characters)
    scan_on_push: bool
    scan_frequency: str | None
    lifecycle_policy: str | None
    created_at: datetime | None = None

    @property
    def registry(self) -> str:
        """Where its images are pulled from: the host part of its URI."""
        return self.uri.partition("/")[0]

    @classmethod
    def from_api(
        cls, body: dict[str, Any], *, lifecycle_policy: str | None = None, scan_frequency: str | None = None
    ) -> RepositoryRecord:
        return cls(
            name=body["repositoryName"],
            registry_id=body.get("registryId", ""),
            uri=body.get("repositoryUri", ""),
            arn=body.get("repositoryArn"),
            mutability=str(body.get("imageTagMutability") or "MUTABLE"),
            exclusion_filters=tuple(
                str(f["filter"]) for f in body.get("imageTagMutabilityExclusionFilters") or [] if "filter" in f
            ),
            scan_on_push=bool((body.get("imageScanningConfiguration") or {}).get("scanOnPush")),
            scan_frequency=scan_frequency,
            lifecycle_policy=lifecycle_policy,
            created_at=to_datetime(body.get("createdAt")),
        )


@dataclass(frozen=True)
class DeploymentRecord:
    """One deployment of a service to a task-definition revision, normalised across ECS's two vocabularies.

    ``status`` is what the API said: a service-deployment status (SUCCESSFUL, ROLLBACK_SUCCESSFUL ...) from
    ListServiceDeployments, or PRIMARY/ACTIVE/INACTIVE from DescribeServices. ``rollout_state`` says whether this
    deployment's own revision reached COMPLETED (IN_PROGRESS, COMPLETED or FAILED); ``rolled_back`` says the circuit
    breaker or a requested rollback took the service back from it.
    """

    cluster: str
    service: str
    deployment: str  # service-deployment ARN, or the ecs-svc/... id of a DescribeServices deployment
    task_definition: str | None
    status: str
    rollout_state: str
    created_at: datetime | None
    finished_at: datetime | None
    rolled_back: bool = False
    source: str = "service-deployments"  # or "service" (DescribeServices deployments and events)

    @property
    def completed(self) -> bool:
        return self.rollout_state == "COMPLETED"

    @property
    def moment(self) -> datetime:
        """When this deployment last changed: its end if it ended, else its start (for "most recent" ordering)."""
        return self.finished_at or self.created_at or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LifecycleHookRecord:
    """One ``deploymentConfiguration.lifecycleHooks`` entry of a service: what it calls (a Lambda function, or
    PAUSE for ContinueServiceDeployment), the role ECS calls a function with, and the stages it runs at."""

    target_type: str  # AWS_LAMBDA (ECS's default when the entry names none) or PAUSE
    target_arn: str | None  # hookTargetArn: the function a Lambda hook calls
    role_arn: str | None  # the IAM role ECS assumes to call it
    stages: tuple[str, ...] = ()

    @property
    def calls_lambda(self) -> bool:
        return self.target_type == "AWS_LAMBDA"

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> LifecycleHookRecord:
        return cls(
            # An older botocore drops targetType from what it parses: a hook with no function to call is a PAUSE.
            target_type=str(body.get("targetType") or ("AWS_LAMBDA" if body.get("hookTargetArn") else "PAUSE")),
            target_arn=body.get("hookTargetArn") or None,
            role_arn=body.get("roleArn") or None,
            stages=tuple(str(s) for s in body.get("lifecycleStages") or []),
        )


@dataclass(frozen=True)
class ServiceRecord:
    """A service as DescribeServices tells it, with its current deployments (PRIMARY first) and how it deploys
    (``deploymentConfiguration``: strategy, bake times, lifecycle hooks, alarms)."""

    cluster: str
    service: str
    arn: str
    status: str
    desired_count: int
    running_count: int
    pending_count: int
    task_definition: str | None  # the PRIMARY deployment's revision: what the service runs or rolls out now
    launch_type: str | None
    circuit_breaker: bool
    circuit_breaker_rollback: bool
    deployments: tuple[DeploymentRecord, ...]
    created_at: datetime | None = None
    strategy: str = "ROLLING"  # ROLLING (ECS's default), BLUE_GREEN, LINEAR or CANARY
    bake_time_minutes: int | None = None  # bakeTimeInMinutes: both revisions run after production traffic moved
    step_bake_time_minutes: int | None = None  # linearConfiguration.stepBakeTimeInMinutes (LINEAR)
    canary_bake_time_minutes: int | None = None  # canaryConfiguration.canaryBakeTimeInMinutes (CANARY)
    lifecycle_hooks: tuple[LifecycleHookRecord, ...] = ()
    alarm_names: tuple[str, ...] = ()  # deploymentConfiguration.alarms
    alarms_enabled: bool = False
    alarms_rollback: bool = False

    @property
    def alarms_roll_back(self) -> bool:
        """Deployment alarms are on, name at least one alarm, and roll a deployment they fail back."""
        return self.alarms_enabled and self.alarms_rollback and bool(self.alarm_names)


@dataclass(frozen=True)
class TaskRecord:
    """One ECS task as DescribeTasks tells it: the revision it runs and the image digests its containers pulled.

    ``group`` is ``service:NAME`` for a service's tasks (else what RunTask was given); ``desired_status`` RUNNING
    covers tasks still PENDING.
    """

    cluster: str
    arn: str
    task_definition: str
    group: str | None
    last_status: str
    desired_status: str
    image_digests: tuple[str, ...] = ()

    @property
    def service(self) -> str | None:
        return self.group[len("service:") :] if self.group and self.group.startswith("service:") else None

    @classmethod
    def from_api(cls, body: dict[str, Any], cluster: str) -> TaskRecord:
        return cls(
            cluster=cluster,
            arn=body["taskArn"],
            task_definition=body["taskDefinitionArn"],
            group=body.get("group"),
            last_status=str(body.get("lastStatus", "")),
            desired_status=str(body.get("desiredStatus", "")),
            image_digests=tuple(c["imageDigest"] for c in body.get("containers") or [] if c.get("imageDigest")),
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


MANAGED_BY_KEYS = {"managedby", "managed"}  # a team's tag naming the tool that manages a resource (lower, no - _)


def managed_by(tags: Iterable[Mapping[str, Any]]) -> str | None:
    """The infrastructure-as-code tool that manages a resource, by its tags: CloudFormation (and so CDK) tags what
    it creates with ``aws:cloudformation:stack-name``; Terraform, Pulumi and others tag nothing by themselves, so a
    team's own ``ManagedBy``/``managed-by``/``managed_by`` tag naming the tool is what says so."""
    for tag in tags:
        key, value = str(tag.get("key", "")), str(tag.get("value", ""))
        if key.startswith("aws:cloudformation:"):
            return f"CloudFormation (stack {value})" if key == "aws:cloudformation:stack-name" else "CloudFormation"
        if key.lower().replace("-", "").replace("_", "") in MANAGED_BY_KEYS and value:
            return value
    return None
