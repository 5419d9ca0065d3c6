"""Syncing what changes: ECR repositories and images, clusters, services and their deployment history.

These are re-read on every sync of theirs (tags move, scans finish, services deploy). A service's history comes
from the service-deployment APIs (ListServiceDeployments, then DescribeServiceRevisions for the revision each
deployment targeted; service revisions never change, so their answers are cached). Where those APIs are not
available (an older endpoint, a role without the permission) the history is what DescribeServices shows,
accumulated over syncs in the cache (:func:`opskit.library.rollback.merge_observed`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from opskit.aws import Aws
from opskit.errors import AwsError
from opskit.library.pacing import SERVICE_DEPLOYMENT_READ, SERVICE_READ, Pacer
from opskit.library.rollback import (
    from_service,
    from_service_deployment,
    merge_observed,
    rollback_target,
)
from opskit.library.rows import (
    deployment_record,
    deployment_row,
    image_row,
    repository_row,
    service_record,
    service_row,
)
from opskit.library.store import Store
from opskit.records import DeploymentRecord

log = logging.getLogger("opskit.library")

HISTORY_APIS = "service-deployments"
HISTORY_OBSERVED = "service"
# Errors that mean "this endpoint or role cannot use the service-deployment APIs": fall back, do not fail.
_UNAVAILABLE = {
    "UnknownOperationException",
    "InvalidAction",
    "AccessDeniedException",
    "AccessDenied",
    "UnsupportedFeatureException",
    "UnrecognizedClientException",
}


@dataclass(frozen=True)
class InventorySync:
    repositories: int = 0
    images: int = 0
    clusters: int = 0
    services: int = 0
    deployments: int = 0
    history_source: str = ""


def _pages(pacer: Pacer, category: str | None, call: Any, key: str, **params: Any) -> Iterator[Any]:
    while True:
        page = pacer.call(category, call, **params)
        yield from page.get(key) or []
        if not page.get("nextToken"):
            return
        params["nextToken"] = page["nextToken"]


# -- ECR -----------------------------------------------------------------------------------------------------------
def sync_images(aws: Aws, store: Store, pacer: Pacer, *, workers: int = 8) -> InventorySync:
    ecr = aws.client("ecr")
    repositories = list(_pages(pacer, None, ecr.describe_repositories, "repositories", maxResults=1000))

    def images_of(repository: dict[str, Any]) -> list[dict[str, Any]]:
        return list(
            _pages(
                pacer,
                None,
                ecr.describe_images,
                "imageDetails",
                repositoryName=repository["repositoryName"],
                registryId=repository["registryId"],
                maxResults=1000,
            )
        )

    def lifecycle_policy_of(repository: dict[str, Any]) -> str | None:
        try:
            answer = pacer.call(
                None,
                ecr.get_lifecycle_policy,
                repositoryName=repository["repositoryName"],
                registryId=repository["registryId"],
            )
        except AwsError as exc:
            if exc.code == "LifecyclePolicyNotFoundException":
                return None
            raise
        return str(answer["lifecyclePolicyText"]) if answer.get("lifecyclePolicyText") else None

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="opskit-images") as pool:
        details = [detail for found in pool.map(images_of, repositories) for detail in found]
        policies = list(pool.map(lifecycle_policy_of, repositories))
    frequencies = _scan_frequencies(ecr, pacer, [r["repositoryName"] for r in repositories])
    rows = [
        repository_row(r, policy, frequencies.get(r["repositoryName"]))
        for r, policy in zip(repositories, policies, strict=True)
    ]
    store.replace_images(rows, [image_row(d) for d in details])
    return InventorySync(repositories=len(repositories), images=len(details))


def _scan_frequencies(ecr: Any, pacer: Pacer, names: list[str]) -> dict[str, str]:
    """Each repository's scan frequency, registry-level scanning rules included (25 repositories a call); empty
    where the endpoint or the role cannot ask, and then scanOnPush from DescribeRepositories is all there is."""
    found: dict[str, str] = {}
    for start in range(0, len(names), 25):
        try:
            answer = pacer.call(
                None, ecr.batch_get_repository_scanning_configuration, repositoryNames=names[start : start + 25]
            )
        except AwsError as exc:
            code = exc.code
            if code not in _UNAVAILABLE:
                raise
            log.info("scanning configurations unavailable (%s): using scanOnPush", code)
            return {}
        for configuration in answer.get("scanningConfigurations") or []:
            if configuration.get("scanFrequency"):
                found[configuration["repositoryName"]] = configuration["scanFrequency"]
    return found


# -- ECS services --------------------------------------------------------------------------------------------------
def sync_services(aws: Aws, store: Store, pacer: Pacer, *, workers: int = 8, history: str = "auto") -> InventorySync:
    """``history``: "auto" (the service-deployment APIs, or what DescribeServices shows where they are not
    available), "service-deployments" (fail without them) or "service" (never ask them)."""
    ecs = aws.client("ecs")
    clusters = list(_pages(pacer, None, ecs.list_clusters, "clusterArns", maxResults=100))
    bodies: list[tuple[str, dict[str, Any]]] = []
    for cluster_arn in clusters:
        cluster = cluster_arn.rsplit("/", 1)[-1]
        arns = list(_pages(pacer, SERVICE_READ, ecs.list_services, "serviceArns", cluster=cluster_arn, maxResults=100))
        for start in range(0, len(arns), 10):
            answer = pacer.call(
                SERVICE_READ, ecs.describe_services, cluster=cluster_arn, services=arns[start : start + 10]
            )
            bodies.extend((cluster, body) for body in answer.get("services") or [])

    use_apis = history != HISTORY_OBSERVED
    histories: dict[tuple[str, str], list[DeploymentRecord]] = {}
    if use_apis and bodies:
        try:
            histories = _histories_from_apis(ecs, store, pacer, bodies, workers)
        except AwsError as exc:
            code = exc.code
            if history != "auto" or code not in _UNAVAILABLE:
                raise
            log.info("service-deployment APIs unavailable (%s): using what DescribeServices shows", code)
            use_apis = False
    source = HISTORY_APIS if use_apis else HISTORY_OBSERVED
    if not use_apis:
        for cluster, body in bodies:
            seen_before = [deployment_record(row) for row in store.history(cluster, body["serviceName"])]
            seen_before = [d for d in seen_before if d.source == HISTORY_OBSERVED]
            merged = merge_observed(seen_before, from_service(body, cluster), body.get("events") or [])
            histories[(cluster, body["serviceName"])] = merged

    rows = []
    for cluster, body in bodies:
        record = service_record(body, cluster, from_service(body, cluster))
        target = rollback_target(histories.get((cluster, record.service), []), record.task_definition)
        rows.append(service_row(record, source, target))
    store.replace_services(rows, {key: [deployment_row(d) for d in records] for key, records in histories.items()})
    return InventorySync(
        clusters=len(clusters),
        services=len(bodies),
        deployments=sum(len(v) for v in histories.values()),
        history_source=source,
    )


def _histories_from_apis(
    ecs: Any, store: Store, pacer: Pacer, bodies: list[tuple[str, dict[str, Any]]], workers: int
) -> dict[tuple[str, str], list[DeploymentRecord]]:
    def listing(item: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        _, body = item
        return list(
            _pages(
                pacer,
                SERVICE_DEPLOYMENT_READ,
                ecs.list_service_deployments,
                "serviceDeployments",
                cluster=body["clusterArn"],
                service=body["serviceArn"],
                maxResults=100,
            )
        )

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="opskit-history") as pool:
        listings = list(pool.map(listing, bodies))
    revision_arns = {
        b["targetServiceRevisionArn"] for found in listings for b in found if b.get("targetServiceRevisionArn")
    }
    known = store.service_revisions(revision_arns)
    unseen = sorted(revision_arns - known.keys())
    fresh: list[tuple[str, str]] = []
    for start in range(0, len(unseen), 20):  # service revisions never change: each is described once, ever
        answer = pacer.call(
            SERVICE_DEPLOYMENT_READ, ecs.describe_service_revisions, serviceRevisionArns=unseen[start : start + 20]
        )
        fresh.extend((r["serviceRevisionArn"], r["taskDefinition"]) for r in answer.get("serviceRevisions") or [])
    store.put_service_revisions(fresh)
    known.update(fresh)
    return {
        (cluster, body["serviceName"]): [
            from_service_deployment(b, known.get(b.get("targetServiceRevisionArn", "")), cluster, body["serviceName"])
            for b in found
        ]
        for (cluster, body), found in zip(bodies, listings, strict=True)
    }


__all__ = ["HISTORY_APIS", "HISTORY_OBSERVED", "InventorySync", "sync_images", "sync_services"]
