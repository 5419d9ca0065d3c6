"""Every column of every table checked against the demo sandbox: against what its API answers (asked here
directly with boto3) and against what the demo history is known to hold (opskit.sandbox.demo.DEMO)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from opskit.library import TABLES, RevisionLibrary
from opskit.records import REVISION_STATUSES
from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO, SHA_LENGTH, commit_sha

from .seeding import list_all


def same_moment(value: Any, expected: datetime | None) -> bool:
    if expected is None:
        return bool(pd.isna(value))
    return abs(pd.Timestamp(value) - pd.Timestamp(expected)) < pd.Timedelta(milliseconds=1)


def na(value: Any) -> Any:
    return None if pd.isna(value) else value


@pytest.fixture(scope="module")
def described(demo: Sandbox) -> dict[str, dict[str, Any]]:
    """Every revision's DescribeTaskDefinition answer, by ARN, with the status its listing gives."""
    ecs = demo.client("ecs")
    out = {}
    for status in REVISION_STATUSES:
        for arn in list_all(ecs, status):
            answer = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            out[arn] = {**answer, "listed": status}
    return out


@pytest.mark.parametrize("table", sorted(TABLES))
def test_each_table_has_its_documented_columns_and_dtypes(demo_library: RevisionLibrary, table: str) -> None:
    frame = demo_library.table(table)
    spec = TABLES[table]
    assert list(frame.columns) == [c.name for c in spec]
    assert len(frame) > 0
    for column in spec:
        dtype = frame[column.name].dtype
        if column.dtype == "string":
            assert isinstance(dtype, pd.StringDtype), column.name
        elif column.dtype == "Int64":
            assert dtype == "Int64", column.name
        elif column.dtype == "boolean":
            assert dtype == "boolean", column.name
        elif column.dtype == "datetime":
            assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", column.name
        elif column.dtype == "category":
            assert isinstance(dtype, pd.CategoricalDtype), column.name
            assert list(dtype.categories[: len(column.categories)]) == list(column.categories)
        elif column.dtype == "list":
            assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in frame[column.name])
        elif column.dtype == "map":
            assert all(isinstance(v, dict) for v in frame[column.name])
        elif column.dtype == "records":
            assert all(isinstance(v, list) and all(isinstance(x, dict) for x in v) for v in frame[column.name])


def test_revisions_match_the_api(demo_library: RevisionLibrary, described: dict[str, dict[str, Any]]) -> None:
    frame = demo_library.revisions()
    assert sorted(frame["arn"]) == sorted(described)
    assert frame[["family", "revision"]].apply(tuple, axis=1).is_monotonic_increasing
    for row in frame.itertuples(index=False):
        answer = described[row.arn]
        body, tags = answer["taskDefinition"], {t["key"]: t["value"] for t in answer.get("tags", [])}
        assert (row.family, row.revision) == (body["family"], body["revision"])
        assert row.status == answer["listed"] == body["status"]
        assert same_moment(row.registered_at, body["registeredAt"])
        assert row.registered_by == body["registeredBy"]
        assert same_moment(row.deregistered_at, body.get("deregisteredAt"))
        assert same_moment(row.delete_requested_at, body.get("deleteRequestedAt"))
        assert (row.cpu, row.memory, row.network_mode) == (body["cpu"], body["memory"], body["networkMode"])
        assert row.compatibilities == ",".join(body["compatibilities"])
        assert row.container_count == len(body["containerDefinitions"])
        assert row.tags == tags
        assert row.commit == tags["commit"]


def test_revisions_hold_the_demo_history(demo_library: RevisionLibrary) -> None:
    frame = demo_library.revisions()
    per_family = frame.groupby("family").revision.agg(["count", "min", "max"])
    for service in DEMO.services:
        count, low, high = per_family.loc[service.name]
        assert (count, low, high) == (
            service.releases - service.delete_oldest,
            service.delete_oldest + 1,
            service.releases,
        )
    # One revision per release: revision N of a family carries release N's commit.
    expected = [commit_sha(f, int(r))[:SHA_LENGTH] for f, r in zip(frame["family"], frame["revision"], strict=True)]
    assert list(frame["commit"]) == expected
    broken = frame.set_index(["family", "revision"]).loc[("web", DEMO.service("web").broken_release)]
    assert broken["status"] == "INACTIVE" and pd.notna(broken["deregistered_at"])
    active = frame[frame["status"] == "ACTIVE"].groupby("family").size()
    assert active["api"] == DEMO.service("api").keep_active and active["worker"] == DEMO.service("worker").keep_active


def test_containers_match_the_api(
    demo: Sandbox, demo_library: RevisionLibrary, described: dict[str, dict[str, Any]]
) -> None:
    frame = demo_library.containers()
    assert len(frame) == sum(len(a["taskDefinition"]["containerDefinitions"]) for a in described.values())
    for row in frame.itertuples(index=False):
        answer = described[row.arn]
        (container,) = answer["taskDefinition"]["containerDefinitions"]
        assert (row.family, row.revision, row.status) == (
            answer["taskDefinition"]["family"],
            answer["taskDefinition"]["revision"],
            answer["listed"],
        )
        assert (row.name, row.image) == (container["name"], container["image"])
        assert row.image == f"{row.registry}/{row.repository}:{row.tag}"
        assert row.registry == demo.registry_host and row.repository == row.family
        assert pd.isna(row.digest)
        latest = row.tag == "latest"
        assert (bool(row.uses_latest), bool(row.untagged), bool(row.essential)) == (latest, False, True)
        assert na(row.commit_sha) == (None if latest else row.tag)
        assert row.environment_names == [e["name"] for e in container["environment"]] == ["LOG_LEVEL", "RELEASE"]
        assert row.secret_names == [s["name"] for s in container["secrets"]] == ["DATABASE_URL"]
    using_latest = frame[frame["uses_latest"]]
    assert list(zip(using_latest["family"], using_latest["revision"], strict=True)) == [("worker", 14)]


def test_images_match_ecr_and_the_revisions_that_use_them(demo: Sandbox, demo_library: RevisionLibrary) -> None:
    ecr = demo.client("ecr")
    frame = demo_library.images()
    details = [
        d
        for repository in (s.name for s in DEMO.services)
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository)
        for d in page["imageDetails"]
    ]
    assert sorted(zip(frame["repository"], frame["digest"], strict=True)) == sorted(
        (d["repositoryName"], d["imageDigest"]) for d in details
    )
    by_digest = frame.set_index("digest")
    for detail in details:
        row = by_digest.loc[detail["imageDigest"]]
        assert row["registry_id"] == detail["registryId"] == demo.account_id
        assert row["repository_uri"] == f"{demo.registry_host}/{detail['repositoryName']}"
        assert row["tags"] == detail.get("imageTags", [])
        assert same_moment(row["pushed_at"], detail["imagePushedAt"])
        assert row["size_bytes"] == detail["imageSizeInBytes"]
        assert na(row["scan_status"]) == detail.get("imageScanStatus", {}).get("status")
        completed = detail.get("imageScanFindingsSummary", {}).get("imageScanCompletedAt")
        assert same_moment(row["scan_completed_at"], completed)
        assert row["media_type"] == detail["imageManifestMediaType"]
    # Each pushed release is one image; web's broken release was never pushed.
    assert Counter(frame["repository"]) == {s.name: s.releases - bool(s.broken_release) for s in DEMO.services}
    # An image is used by the revision registered with its tag, unless that revision was deleted (web 1-5).
    revisions = demo_library.containers()
    tagged = Counter(zip(revisions["repository"], revisions["tag"], strict=True))
    for row in frame.itertuples(index=False):
        assert row.revision_count == sum(tagged[(row.repository, tag)] for tag in row.tags)
    unused = frame[frame["revision_count"] == 0]
    assert sorted(t for tags in unused["tags"] for t in tags) == sorted(
        commit_sha("web", n)[:SHA_LENGTH] for n in range(1, 6)
    )
    # What the services run now: each one's last release (worker:14's image by its tag latest).
    running = frame[frame["in_service"]]
    assert sorted(s for v in running["services"] for s in v) == sorted(f"demo/{s.name}" for s in DEMO.services)
    worker = running[running["repository"] == "worker"].iloc[0]
    assert worker["tags"] == ["latest"] and worker["revision_count"] == 1


def test_services_match_the_api(demo: Sandbox, demo_library: RevisionLibrary) -> None:
    ecs = demo.client("ecs")
    frame = demo_library.services().set_index("service")
    names = [s.name for s in DEMO.services]
    bodies = ecs.describe_services(cluster="demo", services=names)["services"]
    assert sorted(frame.index) == sorted(names)
    for body in bodies:
        row = frame.loc[body["serviceName"]]
        assert (row["cluster"], row["arn"], row["status"]) == ("demo", body["serviceArn"], body["status"])
        assert (row["desired_count"], row["running_count"], row["pending_count"]) == (
            body["desiredCount"],
            body["runningCount"],
            body["pendingCount"],
        )
        primary = body["deployments"][0]
        assert row["task_definition"] == primary["taskDefinition"] == body["taskDefinition"]
        assert row["rollout_state"] == primary["rolloutState"] == "COMPLETED"
        assert row["deployments"] == [
            {
                "id": d["id"],
                "status": d["status"],
                "task_definition": d["taskDefinition"],
                "rollout_state": d["rolloutState"],
            }
            for d in body["deployments"]
        ]
        breaker = body["deploymentConfiguration"]["deploymentCircuitBreaker"]
        assert (row["circuit_breaker"], row["circuit_breaker_rollback"]) == (breaker["enable"], breaker["rollback"])
        assert row["launch_type"] == body["launchType"] == "FARGATE"
        assert same_moment(row["created_at"], body["createdAt"])
        assert row["history_source"] == "service-deployments"
    current = {s.name: s.releases for s in DEMO.services}
    for name, releases in current.items():
        assert (frame.loc[name, "family"], frame.loc[name, "revision"]) == (name, releases)
        # The rollback target: the latest other revision that completed (web's 27 never did, but 29 did).
        assert frame.loc[name, "rollback_target"].endswith(f"task-definition/{name}:{releases - 1}")
    assert demo_library.rollback_targets()[frame.loc["web", "arn"]] == frame.loc["web", "rollback_target"]


def test_deployments_match_the_service_deployment_history(demo: Sandbox, demo_library: RevisionLibrary) -> None:
    ecs = demo.client("ecs")
    frame = demo_library.deployments()
    for service in DEMO.services:
        mine = frame[frame["service"] == service.name]
        listed = ecs.list_service_deployments(cluster="demo", service=service.name, maxResults=100)[
            "serviceDeployments"
        ]
        assert sorted(mine["deployment"]) == sorted(d["serviceDeploymentArn"] for d in listed)
        assert len(mine) == service.releases
        by_arn = mine.set_index("deployment")
        for brief in listed:
            row = by_arn.loc[brief["serviceDeploymentArn"]]
            assert row["status"] == brief["status"]
            assert same_moment(row["created_at"], brief["createdAt"])
            assert same_moment(row["finished_at"], brief.get("finishedAt"))
            assert row["source"] == "service-deployments" and row["cluster"] == "demo"
        # Release N deployed revision N; one release of web, checkout and search failed and was rolled back (by
        # the circuit breaker, the alarm and the smoke test).
        assert list(mine.sort_values("created_at")["revision"]) == list(range(1, service.releases + 1))
        failed = mine[mine["rollout_state"] != "COMPLETED"]
        if service.rolled_back_release:
            (row,) = failed.itertuples(index=False)
            assert (row.revision, row.rollout_state, row.rolled_back, row.status) == (
                service.rolled_back_release,
                "FAILED",
                True,
                "ROLLBACK_SUCCESSFUL",
            )
        else:
            assert failed.empty and not mine["rolled_back"].any()


def test_lineage_traces_commits_to_images_revisions_and_services(demo_library: RevisionLibrary) -> None:
    frame = demo_library.lineage()
    images = demo_library.images()
    by_tag = {
        (r, t): d
        for r, d, tags in zip(images["repository"], images["digest"], images["tags"], strict=True)
        for t in tags
    }
    revisions = demo_library.revisions()
    assert len(frame) == len(revisions)  # one container each, each deployed to one service
    for row in frame.itertuples(index=False):
        assert row.commit == commit_sha(row.family, row.revision)[:SHA_LENGTH]
        assert (row.cluster, row.service, row.repository, row.container) == ("demo", row.family, row.family, row.family)
        assert na(row.image_digest) == by_tag.get((row.repository, row.tag))
        assert row.task_definition.endswith(f"task-definition/{row.family}:{row.revision}")
        assert row.deployment_count == 1 and pd.notna(row.first_deployed_at)
        service = DEMO.service(row.family)
        assert bool(row.completed) == (row.revision != service.rolled_back_release)
        assert bool(pd.isna(row.image_digest)) == (row.revision == service.broken_release)  # never pushed
        release_count = DEMO.service(row.family).releases
        assert bool(row.is_current) == (row.revision == release_count)
        assert bool(row.is_rollback_target) == (row.revision == release_count - 1)
    worker = frame[(frame["family"] == "worker") & frame["is_current"]].iloc[0]
    assert worker["tag"] == "latest" and worker["commit"] == commit_sha("worker", 14)[:SHA_LENGTH]
