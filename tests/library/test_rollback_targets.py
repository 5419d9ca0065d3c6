"""Rollback targets: the pure rule over deployment records, and both ways the library learns the history (the
service-deployment APIs, and DescribeServices observed over syncs) giving the same answer on a real rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opskit.library import rollback_target, rollback_targets, service_rollback_targets
from opskit.library.rollback import from_service, merge_observed
from opskit.records import DeploymentRecord, ServiceRecord
from opskit.sandbox import Sandbox

from .seeding import library_of, manifest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def deployment(arn: str, state: str, hour: int, *, service: str = "web", rolled_back: bool = False) -> DeploymentRecord:
    start = T0 + timedelta(hours=hour)
    return DeploymentRecord(
        cluster="prod",
        service=service,
        deployment=f"{service}-{hour}",
        task_definition=arn,
        status="SUCCESSFUL" if state == "COMPLETED" else "ROLLBACK_SUCCESSFUL",
        rollout_state=state,
        created_at=start,
        finished_at=start + timedelta(minutes=5) if state != "IN_PROGRESS" else None,
        rolled_back=rolled_back,
    )


def test_the_target_is_the_latest_other_revision_that_completed() -> None:
    history = [deployment("web:1", "COMPLETED", 1), deployment("web:2", "COMPLETED", 2)]
    assert rollback_target(history, current="web:2") == "web:1"
    assert rollback_target(list(reversed(history)), current="web:2") == "web:1"  # order does not matter


def test_a_rolled_back_deployment_is_never_a_target() -> None:
    history = [
        deployment("web:1", "COMPLETED", 1),
        deployment("web:2", "COMPLETED", 2),
        deployment("web:3", "FAILED", 3, rolled_back=True),
    ]
    assert rollback_target(history, current="web:2") == "web:1"  # the breaker took web back to 2


def test_a_rollout_in_progress_goes_back_to_what_ran_before() -> None:
    history = [deployment("web:1", "COMPLETED", 1), deployment("web:2", "IN_PROGRESS", 2)]
    assert rollback_target(history, current="web:2") == "web:1"


def test_a_revision_deployed_again_counts_once_and_the_current_one_never() -> None:
    history = [
        deployment("web:1", "COMPLETED", 1),
        deployment("web:2", "COMPLETED", 2),
        deployment("web:1", "COMPLETED", 3),  # a manual rollback to 1
    ]
    assert rollback_target(history, current="web:1") == "web:2"
    assert rollback_targets(history, current="web:1", depth=5) == ["web:2"]
    history.append(deployment("web:3", "COMPLETED", 4))
    assert rollback_targets(history, current="web:3", depth=2) == ["web:1", "web:2"]


def test_without_another_completed_revision_there_is_no_target() -> None:
    assert rollback_target([], current="web:1") is None
    assert rollback_target([deployment("web:1", "COMPLETED", 1)], current="web:1") is None
    assert rollback_target([deployment("web:1", "FAILED", 1)], current="web:2") is None


def test_targets_per_service() -> None:
    def service(name: str, current: str) -> ServiceRecord:
        return ServiceRecord("prod", name, f"arn:{name}", "ACTIVE", 1, 1, 0, current, "FARGATE", True, True, ())

    history = [
        deployment("web:1", "COMPLETED", 1),
        deployment("web:2", "COMPLETED", 2),
        deployment("api:7", "COMPLETED", 1, service="api"),
    ]
    targets = service_rollback_targets([service("web", "web:2"), service("api", "api:7")], history)
    assert targets == {"arn:web": "web:1", "arn:api": None}


# -- on the sandbox ---------------------------------------------------------------------------------------------
@pytest.fixture
def quiet() -> Iterator[Sandbox]:
    """An empty sandbox whose tasks run simulated; an image "exists" when ECR's model holds it."""
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sb:
        ecr = sb.client("ecr")
        ecr.create_repository(repositoryName="web")
        for tag in ("v1", "v2"):
            ecr.put_image(repositoryName="web", imageManifest=manifest(tag), imageTag=tag)
        sb.client("ecs").create_cluster(clusterName="prod")
        yield sb


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_both_histories_agree_through_a_circuit_breaker_rollback(quiet: Sandbox, tmp_path: Path) -> None:
    ecs = quiet.client("ecs")
    arns = [
        ecs.register_task_definition(
            family="web",
            containerDefinitions=[{"name": "web", "image": f"{quiet.registry_host}/web:{tag}", "memory": 64}],
        )["taskDefinition"]["taskDefinitionArn"]
        for tag in ("v1", "v2", "v3-never-pushed")
    ]
    apis = library_of(quiet, tmp_path / "apis")
    observed = library_of(quiet, tmp_path / "observed", service_history="service")

    def primary() -> dict[str, Any]:
        return dict(ecs.describe_services(cluster="prod", services=["web"])["services"][0]["deployments"][0])

    def settle(arn: str) -> None:
        wait_for(lambda: (p := primary())["taskDefinition"] == arn and p["rolloutState"] == "COMPLETED")

    def targets() -> tuple[Any, Any]:
        for library in (apis, observed):
            library.sync(include=["services"])
        (by_apis,) = apis.rollback_targets().values()
        (by_observation,) = observed.rollback_targets().values()
        return by_apis, by_observation

    ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition=arns[0],
        desiredCount=1,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    settle(arns[0])
    assert targets() == (None, None)
    ecs.update_service(cluster="prod", service="web", taskDefinition=arns[1])
    settle(arns[1])
    assert targets() == (arns[0], arns[0])
    ecs.update_service(cluster="prod", service="web", taskDefinition=arns[2])  # its image cannot be pulled
    wait_for(
        lambda: any(
            "rolling back" in e["message"]
            for e in ecs.describe_services(cluster="prod", services=["web"])["services"][0]["events"]
        )
    )
    settle(arns[1])
    assert targets() == (arns[0], arns[0])

    services = apis.services().iloc[0]
    assert services["task_definition"] == arns[1] and services["history_source"] == "service-deployments"
    assert observed.services().iloc[0]["history_source"] == "service"
    history = apis.deployments()
    assert list(history["task_definition"]) == arns
    assert list(history["rolled_back"]) == [False, False, True]
    assert list(history["rollout_state"]) == ["COMPLETED", "COMPLETED", "FAILED"]
    seen = observed.deployments()
    assert set(seen["source"]) == {"service"}
    assert arns[0] in set(seen[seen["rollout_state"] == "COMPLETED"]["task_definition"])


def test_observed_history_settles_deployments_from_the_events() -> None:
    body = {
        "serviceName": "web",
        "deployments": [
            {"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": "web:2", "rolloutState": "IN_PROGRESS"},
            {"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": "web:1", "rolloutState": "COMPLETED"},
        ],
        "events": [],
    }
    first = from_service(body, "prod")
    assert [(d.task_definition, d.rollout_state) for d in first] == [("web:2", "IN_PROGRESS"), ("web:1", "COMPLETED")]
    later = {**body, "deployments": [body["deployments"][1] | {"status": "PRIMARY"}]}
    events = [
        {"createdAt": T0, "message": "(service web) rolling back to deployment ecs-svc/1."},
        {"createdAt": T0, "message": "(service web) (deployment ecs-svc/2) deployment failed: tasks failed to start."},
    ]
    merged = {d.deployment: d for d in merge_observed(first, from_service(later, "prod"), events)}
    assert merged["ecs-svc/2"].rollout_state == "FAILED" and merged["ecs-svc/2"].rolled_back
    assert rollback_target(merged.values(), current="web:1") is None
