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
from concurrent.futures import Future, ThreadPoolExecutor
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
    available), "service-deployments" (fail without them) or "service" (never ask them).

    Services are described 10 a call by a pool of ``workers``, and each one's deployments are listed, by a pool of
    its own, as soon as it is described: the service-read and service-deployment buckets are drawn on side by side,
    and neither waits for the other (one after another, each call's latency would add up too)."""
    ecs = aws.client("ecs")
    clusters = list(_pages(pacer, None, ecs.list_clusters, "clusterArns", maxResults=100))
    batches: list[tuple[str, list[str]]] = []
    for cluster_arn in clusters:
        arns = list(_pages(pacer, SERVICE_READ, ecs.list_services, "serviceArns", cluster=cluster_arn, maxResults=100))
        batches.extend((cluster_arn, arns[start : start + 10]) for start in range(0, len(arns), 10))

    def described(batch: tuple[str, list[str]]) -> list[tuple[str, dict[str, Any]]]:
        cluster_arn, arns = batch
        answer = pacer.call(SERVICE_READ, ecs.describe_services, cluster=cluster_arn, services=arns)
        return [(cluster_arn.rsplit("/", 1)[-1], body) for body in answer.get("services") or []]

    use_apis = history != HISTORY_OBSERVED
    histories: dict[tuple[str, str], list[DeploymentRecord]] = {}
    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="opskit-services") as pool,
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="opskit-history") as history_pool,
    ):
        try:
            from_apis = _Histories(ecs, store, pacer, history_pool) if use_apis else None
            bodies: list[tuple[str, dict[str, Any]]] = []
            for found in pool.map(described, batches):  # in order, as they come
                bodies.extend(found)
                if from_apis is not None:
                    from_apis.ask(found)
            if from_apis is not None and bodies:
                try:
                    histories = from_apis.collect(bodies)
                except AwsError as exc:
                    code = exc.code
                    if history != "auto" or code not in _UNAVAILABLE:
                        raise
                    log.info("service-deployment APIs unavailable (%s): using what DescribeServices shows", code)
                    use_apis = False
                    history_pool.shutdown(wait=False, cancel_futures=True)  # the rest would fail alike
        except BaseException:
            for each in (pool, history_pool):  # what is queued would only delay the error
                each.shutdown(wait=False, cancel_futures=True)
            raise
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


class _Histories:
    """Services' deployment histories from the service-deployment APIs, fetched while the services are still being
    described: each service's deployments listed as soon as it is known (:meth:`ask`), the service revisions they
    target described 20 a call as they turn up (:meth:`collect`). Service revisions never change: each is
    described once, ever (the store keeps them). The store is only used from the calling thread."""

    def __init__(self, ecs: Any, store: Store, pacer: Pacer, pool: ThreadPoolExecutor) -> None:
        self.ecs, self.store, self.pacer, self.pool = ecs, store, pacer, pool
        self.listings: list[Future[list[dict[str, Any]]]] = []
        self.known: dict[str, str] = {}  # service revision ARN -> task definition
        self.asked: set[str] = set()
        self.waiting: list[str] = []
        self.describing: list[Future[list[tuple[str, str]]]] = []

    def ask(self, found: list[tuple[str, dict[str, Any]]]) -> None:
        self.listings.extend(self.pool.submit(self._listing, body) for _, body in found)

    def collect(self, bodies: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], list[DeploymentRecord]]:
        """Every service's history, in the order of ``bodies`` (those :meth:`ask` was given)."""
        listings = []
        for future in self.listings:
            listings.append(future.result())
            self._targets(listings[-1])
        self._describe(everything=True)
        fresh = [item for future in self.describing for item in future.result()]
        self.store.put_service_revisions(fresh)
        self.known.update(fresh)
        return {
            (cluster, body["serviceName"]): [
                from_service_deployment(
                    b, self.known.get(b.get("targetServiceRevisionArn", "")), cluster, body["serviceName"]
                )
                for b in found
            ]
            for (cluster, body), found in zip(bodies, listings, strict=True)
        }

    def _listing(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list(
            _pages(
                self.pacer,
                SERVICE_DEPLOYMENT_READ,
                self.ecs.list_service_deployments,
                "serviceDeployments",
                cluster=body["clusterArn"],
                service=body["serviceArn"],
                maxResults=100,
            )
        )

    def _targets(self, deployments: list[dict[str, Any]]) -> None:
        arns = {d["targetServiceRevisionArn"] for d in deployments if d.get("targetServiceRevisionArn")} - self.asked
        self.asked |= arns
        cached = self.store.service_revisions(arns)
        self.known.update(cached)
        self.waiting.extend(sorted(arns - cached.keys()))
        self._describe()

    def _describe(self, *, everything: bool = False) -> None:
        while len(self.waiting) >= 20 or (everything and self.waiting):
            batch, self.waiting = self.waiting[:20], self.waiting[20:]
            self.describing.append(self.pool.submit(self._revisions, batch))

    def _revisions(self, arns: list[str]) -> list[tuple[str, str]]:
        answer = self.pacer.call(SERVICE_DEPLOYMENT_READ, self.ecs.describe_service_revisions, serviceRevisionArns=arns)
        return [(r["serviceRevisionArn"], r["taskDefinition"]) for r in answer.get("serviceRevisions") or []]


__all__ = ["HISTORY_APIS", "HISTORY_OBSERVED", "InventorySync", "sync_images", "sync_services"]
