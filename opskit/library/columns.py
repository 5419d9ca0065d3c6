"""The library's tables: stable column names, real dtypes, and what each column means.

Every frame the library returns has exactly the columns listed here, in this order (see :func:`columns` for one
table as a DataFrame). Dtypes: ``string`` (pandas' nullable string, pyarrow-backed), ``Int64`` and ``boolean``
(nullable), ``datetime`` (``datetime64[us, UTC]``, NaT when unknown), ``category`` (fixed categories, listed),
``list`` (a Python list of strings per row), ``map`` (a dict of str to str per row), ``records`` (a list of
dicts per row). CSV exports write lists, maps and records as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from opskit.records import REVISION_STATUSES, ROLLOUT_STATES

SCAN_STATUSES = (
    "IN_PROGRESS",
    "COMPLETE",
    "FAILED",
    "UNSUPPORTED_IMAGE",
    "ACTIVE",
    "PENDING",
    "SCAN_ELIGIBILITY_EXPIRED",
    "FINDINGS_UNAVAILABLE",
    "LIMIT_EXCEEDED",
    "IMAGE_ARCHIVED",
)
SERVICE_STATUSES = ("ACTIVE", "DRAINING", "INACTIVE")
HISTORY_SOURCES = ("service-deployments", "service")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    meaning: str
    categories: tuple[str, ...] = ()


def _c(name: str, dtype: str, meaning: str, categories: tuple[str, ...] = ()) -> Column:
    return Column(name, dtype, meaning, categories)


REVISIONS = (
    _c("family", "string", "task-definition family"),
    _c("revision", "Int64", "revision number"),
    _c("arn", "string", "task-definition ARN"),
    _c("status", "category", "as the latest listing showed it", REVISION_STATUSES),
    _c("registered_at", "datetime", "when it was registered"),
    _c("registered_by", "string", "who registered it (IAM ARN)"),
    _c("deregistered_at", "datetime", "when it was deregistered, if it already was when described"),
    _c("delete_requested_at", "datetime", "when its deletion was asked, if it already was when described"),
    _c("cpu", "string", "task CPU units as registered"),
    _c("memory", "string", "task memory (MiB) as registered"),
    _c("network_mode", "string", "awsvpc, bridge, host or none"),
    _c("compatibilities", "string", "launch types it can run on, comma-separated"),
    _c("container_count", "Int64", "number of container definitions"),
    _c("commit", "string", "the commit tag, else the first image tag that is a commit SHA"),
    _c("tags", "map", "the revision's tags"),
)

CONTAINERS = (
    _c("family", "string", "task-definition family"),
    _c("revision", "Int64", "revision number"),
    _c("arn", "string", "task-definition ARN"),
    _c("status", "category", "the revision's status", REVISION_STATUSES),
    _c("name", "string", "container name"),
    _c("image", "string", "image reference as written"),
    _c("registry", "string", "registry host, NA for Docker Hub short names"),
    _c("repository", "string", "repository name"),
    _c("tag", "string", "tag as written (NA when none)"),
    _c("digest", "string", "digest as written (sha256:..., NA when not pinned)"),
    _c("commit_sha", "string", "the tag, when it is a commit SHA (7-40 hex digits)"),
    _c("uses_latest", "boolean", "tag is latest, or neither tag nor digest"),
    _c("untagged", "boolean", "neither tag nor digest (the runtime pulls latest)"),
    _c("essential", "boolean", "the task stops when this container stops"),
    _c("environment_names", "list", "names of its environment variables (values never)"),
    _c("secret_names", "list", "names of its secrets (values never)"),
)

IMAGES = (
    _c("repository", "string", "ECR repository"),
    _c("registry_id", "string", "registry (account) ID"),
    _c("repository_uri", "string", "where revisions refer to it from"),
    _c("digest", "string", "image manifest digest"),
    _c("tags", "list", "tags pointing at it now"),
    _c("pushed_at", "datetime", "when it was pushed"),
    _c("size_bytes", "Int64", "compressed size as ECR counts it"),
    _c("scan_status", "category", "image scan status, NA when never scanned", SCAN_STATUSES),
    _c("scan_completed_at", "datetime", "when its last scan completed"),
    _c("media_type", "string", "manifest media type"),
    _c("last_pulled_at", "datetime", "when ECR last recorded a pull"),
    _c("revision_count", "Int64", "revisions referring to it (by a tag it has now, or its digest)"),
    _c("in_service", "boolean", "a service's current deployment runs a revision referring to it"),
    _c("services", "list", "those services, as cluster/service"),
)

SERVICES = (
    _c("cluster", "string", "cluster name"),
    _c("service", "string", "service name"),
    _c("arn", "string", "service ARN"),
    _c("status", "category", "service status", SERVICE_STATUSES),
    _c("desired_count", "Int64", "tasks wanted"),
    _c("running_count", "Int64", "tasks running"),
    _c("pending_count", "Int64", "tasks pending"),
    _c("task_definition", "string", "the PRIMARY deployment's revision (ARN): what it runs or rolls out"),
    _c("family", "string", "its family"),
    _c("revision", "Int64", "its revision number"),
    _c("launch_type", "string", "FARGATE, EC2 or EXTERNAL"),
    _c("circuit_breaker", "boolean", "deployment circuit breaker enabled"),
    _c("circuit_breaker_rollback", "boolean", "the circuit breaker rolls failed deployments back"),
    _c("rollout_state", "category", "the PRIMARY deployment's rollout state", ROLLOUT_STATES),
    _c("deployments", "records", "current deployments, PRIMARY first: id, status, task_definition, rollout_state"),
    _c("rollback_target", "string", "revision (ARN) a rollback goes back to: the latest other one that COMPLETED"),
    _c("created_at", "datetime", "when the service was created"),
    _c("history_source", "category", "where its deployment history comes from", HISTORY_SOURCES),
    _c("strategy", "string", "how ECS deploys it: ROLLING, BLUE_GREEN, LINEAR or CANARY"),
    _c("bake_time_minutes", "Int64", "bakeTimeInMinutes: both revisions run after production traffic moved"),
    _c("step_bake_time_minutes", "Int64", "linearConfiguration.stepBakeTimeInMinutes (LINEAR)"),
    _c("canary_bake_time_minutes", "Int64", "canaryConfiguration.canaryBakeTimeInMinutes (CANARY)"),
    _c("lifecycle_hooks", "records", "its lifecycle hooks: target_type, target_arn, role_arn, stages"),
    _c("alarm_names", "list", "deployment alarms (deploymentConfiguration.alarms.alarmNames)"),
    _c("alarms_enabled", "boolean", "deployment alarms are on"),
    _c("alarms_rollback", "boolean", "an alarm in ALARM rolls the deployment back"),
)

DEPLOYMENTS = (
    _c("cluster", "string", "cluster name"),
    _c("service", "string", "service name"),
    _c("deployment", "string", "service-deployment ARN, or ecs-svc/... id"),
    _c("task_definition", "string", "revision deployed (ARN)"),
    _c("family", "string", "its family"),
    _c("revision", "Int64", "its revision number"),
    _c("status", "string", "the API's status (SUCCESSFUL, ROLLBACK_SUCCESSFUL ... or PRIMARY, ACTIVE)"),
    _c("rollout_state", "category", "whether its revision reached COMPLETED", ROLLOUT_STATES),
    _c("rolled_back", "boolean", "a rollback took the service back from it"),
    _c("created_at", "datetime", "when it started"),
    _c("finished_at", "datetime", "when it finished, if it did"),
    _c("source", "category", "service-deployment APIs, or DescribeServices as observed", HISTORY_SOURCES),
)

LINEAGE = (
    _c("commit", "string", "commit the image was built from (image tag SHA, else the revision's commit)"),
    _c("repository", "string", "image repository"),
    _c("tag", "string", "image tag as written"),
    _c("image_digest", "string", "digest: as written, else what the tag points at in ECR now"),
    _c("family", "string", "task-definition family"),
    _c("revision", "Int64", "revision number"),
    _c("task_definition", "string", "revision ARN"),
    _c("revision_status", "category", "the revision's status", REVISION_STATUSES),
    _c("registered_at", "datetime", "when the revision was registered"),
    _c("container", "string", "container name"),
    _c("cluster", "string", "cluster it was deployed to (NA: never deployed, as far as history shows)"),
    _c("service", "string", "service it was deployed to"),
    _c("first_deployed_at", "datetime", "its first deployment there"),
    _c("last_deployed_at", "datetime", "its latest deployment there"),
    _c("deployment_count", "Int64", "deployments of it there"),
    _c("completed", "boolean", "one of those deployments reached COMPLETED"),
    _c("is_current", "boolean", "it is that service's PRIMARY revision now"),
    _c("is_rollback_target", "boolean", "it is that service's rollback target"),
)

DRIFT = (
    _c("family", "string", "task-definition family"),
    _c("revision", "Int64", "revision number"),
    _c("arn", "string", "task-definition ARN"),
    _c("status", "category", "as the latest listing showed it", REVISION_STATUSES),
    _c("registered_at", "datetime", "when it was registered"),
    _c("registered_by", "string", "who registered it (IAM ARN)"),
    _c("commit", "string", "the commit that explains it (NA: none does)"),
    _c("managed_by", "string", "the infrastructure-as-code tool its tags name (NA: none)"),
    _c("running_in", "list", "services (cluster/service) that run it now"),
    _c("reasons", "list", "why it is drift: no commit, another principal, managed by IaC"),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "revisions": REVISIONS,
    "containers": CONTAINERS,
    "images": IMAGES,
    "services": SERVICES,
    "deployments": DEPLOYMENTS,
    "lineage": LINEAGE,
}

STRING = pd.StringDtype("pyarrow")


def columns(table: str) -> pd.DataFrame:
    """The documented columns of ``table`` (``revisions``, ``containers``, ``images``, ``services``,
    ``deployments`` or ``lineage``) as a DataFrame of name, dtype and meaning.

    >>> columns("revisions").name.tolist()[:3]
    ['family', 'revision', 'arn']
    """
    spec = TABLES[table]
    return pd.DataFrame(
        {"name": [c.name for c in spec], "dtype": [c.dtype for c in spec], "meaning": [c.meaning for c in spec]}
    )


__all__ = ["TABLES", "Column", "columns"]
