"""Services, deployments and tasks as the sandbox simulates ECS, over HTTP with boto3.

These run without Docker and without a registry: images "exist" when ECR's model holds them (PutImage), so a
task whose image was never put fails with CannotPullContainerError, and the rest run simulated. Containers
that really run are in test_services_docker.py. One sandbox serves the module; each test has its own cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import botocore.exceptions
import botocore.model
import botocore.session
import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
BREAKER = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sb:
        ecr = sb.client("ecr")
        ecr.create_repository(repositoryName="web")
        for tag in ("v1", "v2", "v3"):
            ecr.put_image(repositoryName="web", imageManifest=manifest(tag), imageTag=tag)
        yield sb


@pytest.fixture
def ecs(sandbox: Sandbox) -> Any:
    return sandbox.client("ecs")


@pytest.fixture
def cluster(ecs: Any, request: pytest.FixtureRequest) -> str:
    """A cluster of the test's own, so listings see only what the test made."""
    name = request.node.name  # cut short, with a hash of it: parametrized names differ at the end
    short = f"{name[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".replace("[", "-").replace("]", "")
    ecs.create_cluster(clusterName=short)
    return short


def manifest(marker: str) -> str:
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest(marker)}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": digest(f"c{marker}")}
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": config, "layers": [layer]})


def revision(sandbox: Sandbox, ecs: Any, tag: str, family: str = "web", **container: Any) -> str:
    """Register a revision running ``web:<tag>`` from the sandbox's ECR (v1..v3 exist, others do not)."""
    definition = {"name": "web", "image": f"{sandbox.registry_host}/web:{tag}", "memory": 64, **container}
    return str(
        ecs.register_task_definition(family=family, containerDefinitions=[definition])["taskDefinition"][
            "taskDefinitionArn"
        ]
    )


def service(ecs: Any, cluster: str, name: str = "web") -> dict[str, Any]:
    found = ecs.describe_services(cluster=cluster, services=[name])
    assert not found["failures"], found["failures"]
    return dict(found["services"][0])


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (wall seconds; the sandbox runs 60x faster)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s")


def completed(ecs: Any, cluster: str, task_definition: str, name: str = "web") -> Callable[[], Any]:
    def check() -> Any:
        svc = service(ecs, cluster, name)
        deployments = svc["deployments"]
        done = (
            len(deployments) == 1
            and deployments[0]["taskDefinition"] == task_definition
            and deployments[0]["rolloutState"] == "COMPLETED"
        )
        return svc if done else None

    return check


def tasks(ecs: Any, cluster: str, desired: str = "RUNNING", **filters: Any) -> list[dict[str, Any]]:
    arns = ecs.list_tasks(cluster=cluster, desiredStatus=desired, **filters)["taskArns"]
    return list(ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]) if arns else []


def messages(svc: dict[str, Any]) -> list[str]:
    """The service's events, oldest first."""
    return [e["message"] for e in reversed(svc["events"])]


@contextlib.contextmanager
def held(sandbox: Sandbox) -> Iterator[None]:
    """The sandbox's clock all but stopped (a second of it takes a quarter of an hour), then back at its pace."""
    pace = sandbox.clock.time_scale
    sandbox.clock.time_scale = 0.001
    try:
        yield
    finally:
        sandbox.clock.time_scale = pace


def client_models(shape: str, member: str) -> bool:
    """Does the installed botocore's ECS model have ``shape.member``? (older ones lack the newest settings)."""
    model = botocore.session.get_session().get_service_model("ecs")
    try:
        return member in model.shape_for(shape).members
    except botocore.model.NoShapeFoundError:
        return False


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


# -- a rollout, start to finish ----------------------------------------------------------------------------------
def test_create_service_rolls_out_to_completed_with_consistent_tasks_and_events(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    v1 = revision(sandbox, ecs, "v1")
    created = ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=2)["service"]
    (deployment,) = created["deployments"]
    assert deployment["status"] == "PRIMARY" and deployment["rolloutState"] == "IN_PROGRESS"
    assert deployment["id"].startswith("ecs-svc/") and len(deployment["id"]) == len("ecs-svc/") + 19
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} in progress."
    assert created["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    assert created["serviceArn"].endswith(f":service/{cluster}/web") and created["status"] == "ACTIVE"

    ecs.get_waiter("services_stable").wait(cluster=cluster, services=["web"], WaiterConfig={"Delay": 0.1})
    svc = wait_for(completed(ecs, cluster, v1))
    (done,) = svc["deployments"]
    assert done["id"] == deployment["id"]
    assert (done["desiredCount"], done["runningCount"], done["pendingCount"], done["failedTasks"]) == (2, 2, 0, 0)
    assert (svc["runningCount"], svc["pendingCount"]) == (2, 0)
    assert done["rolloutStateReason"] == f"ECS deployment {done['id']} completed."

    running = tasks(ecs, cluster, serviceName="web")
    assert len(running) == 2
    for task in running:
        assert task["lastStatus"] == task["desiredStatus"] == "RUNNING"
        assert task["taskDefinitionArn"] == v1 and task["startedBy"] == done["id"]
        assert task["group"] == "service:web"
        assert task["taskArn"].split(":task/")[1].split("/")[0] == cluster
        assert len(task["taskArn"].rsplit("/", 1)[1]) == 32
        assert task["createdAt"] < task["pullStartedAt"] <= task["pullStoppedAt"] <= task["startedAt"]
        assert task["containers"][0]["lastStatus"] == "RUNNING" and task["containers"][0]["name"] == "web"

    events = messages(svc)
    started = [m for m in events if m.startswith("(service web) has started 2 tasks: ")]
    assert len(started) == 1
    assert set(re.findall(r"\(task ([0-9a-f]{32})\)", started[0])) == {t["taskArn"].rsplit("/", 1)[1] for t in running}
    assert events[-2:] == [
        f"(service web) (deployment {done['id']}) deployment completed.",
        "(service web) has reached a steady state.",
    ]
    moments = [e["createdAt"] for e in reversed(svc["events"])]
    assert moments == sorted(moments)


def test_update_makes_a_primary_and_an_active_deployment_and_the_old_one_drains(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    v1, v2 = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "v2")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=2)
    first = wait_for(completed(ecs, cluster, v1))["deployments"][0]
    old_tasks = {t["taskArn"] for t in tasks(ecs, cluster)}

    updated = ecs.update_service(cluster=cluster, service="web", taskDefinition=v2)["service"]
    primary, active = updated["deployments"]
    assert (primary["status"], primary["taskDefinition"], primary["rolloutState"]) == ("PRIMARY", v2, "IN_PROGRESS")
    assert (active["status"], active["id"], active["runningCount"]) == ("ACTIVE", first["id"], 2)
    assert updated["taskDefinition"] == v2

    # While both run, minimumHealthyPercent 100 keeps the old tasks until new ones are up.
    both = wait_for(lambda: (s := service(ecs, cluster)) and s["deployments"][0]["pendingCount"] == 2 and s)
    assert both["deployments"][1]["runningCount"] == 2
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=["web"], WaiterConfig={"Delay": 0.1})
    svc = service(ecs, cluster)
    assert len(svc["deployments"]) == 1 and svc["runningCount"] == svc["desiredCount"] == 2
    svc = wait_for(completed(ecs, cluster, v2))

    stopped = tasks(ecs, cluster, desired="STOPPED")
    assert {t["taskArn"] for t in stopped} == old_tasks
    for task in stopped:
        assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "ServiceSchedulerInitiated"
        assert task["stoppedReason"] == f"Scaling activity initiated by (deployment {primary['id']})"
        assert task["startedAt"] < task["stoppingAt"] <= task["stoppedAt"]
    assert all(t["taskDefinitionArn"] == v2 for t in tasks(ecs, cluster))
    events = messages(svc)
    assert any(m.startswith("(service web) has stopped 2 running tasks: (task ") for m in events)
    assert f"(service web) (deployment {primary['id']}) deployment completed." in events


def test_desired_count_alone_scales_without_a_new_deployment(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    first = wait_for(completed(ecs, cluster, v1))["deployments"][0]
    scaled = ecs.update_service(cluster=cluster, service="web", desiredCount=3, taskDefinition=v1)["service"]
    assert [d["id"] for d in scaled["deployments"]] == [first["id"]]
    wait_for(lambda: service(ecs, cluster)["runningCount"] == 3)
    ecs.update_service(cluster=cluster, service="web", desiredCount=0)
    svc = wait_for(lambda: (s := service(ecs, cluster))["runningCount"] == 0 and len(tasks(ecs, cluster)) == 0 and s)
    assert [d["id"] for d in svc["deployments"]] == [first["id"]]
    assert len(tasks(ecs, cluster, desired="STOPPED")) == 3
    forced = ecs.update_service(cluster=cluster, service="web", forceNewDeployment=True)["service"]
    assert len(forced["deployments"]) == 2 and forced["deployments"][0]["taskDefinition"] == v1


# -- failures, the circuit breaker and rollbacks -----------------------------------------------------------------
def test_an_image_that_cannot_be_pulled_trips_the_breaker_and_rolls_back(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    v1, broken = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "never-pushed")
    ecs.create_service(
        cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=2, deploymentConfiguration=BREAKER
    )
    good = wait_for(completed(ecs, cluster, v1))["deployments"][0]
    bad = ecs.update_service(cluster=cluster, service="web", taskDefinition=broken)["service"]["deployments"][0]

    def rolled_back() -> Any:
        svc = service(ecs, cluster)
        failed = [d for d in svc["deployments"] if d["id"] == bad["id"]]
        return svc if svc["deployments"][0]["id"] != bad["id"] and failed else None

    svc = wait_for(rolled_back)
    rollback, failed = svc["deployments"][0], svc["deployments"][1]
    assert (failed["status"], failed["rolloutState"]) == ("ACTIVE", "FAILED")
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["failedTasks"] >= 3  # clamp(ceil(0.5 * 2), 3, 200)
    assert (rollback["status"], rollback["taskDefinition"]) == ("PRIMARY", v1)
    assert svc["taskDefinition"] == v1
    events = messages(svc)
    assert f"(service web) (deployment {bad['id']}) deployment failed: tasks failed to start." in events
    assert f"(service web) rolling back to deployment {good['id']}." in events

    svc = wait_for(completed(ecs, cluster, v1))
    assert svc["deployments"][0]["id"] == rollback["id"]
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=["web"], WaiterConfig={"Delay": 0.1})
    failed_tasks = tasks(ecs, cluster, desired="STOPPED", startedBy=bad["id"])
    assert len(failed_tasks) >= 3
    for task in failed_tasks:
        assert task["stopCode"] == "TaskFailedToStart" and task["taskDefinitionArn"] == broken
        assert task["stoppedReason"].startswith("CannotPullContainerError: ")
        assert "web:never-pushed" in task["stoppedReason"]
        assert task["containers"][0]["reason"] == task["stoppedReason"]
        assert "startedAt" not in task and task["lastStatus"] == "STOPPED"

    history = ecs.list_service_deployments(cluster=cluster, service="web")["serviceDeployments"]
    assert [h["status"] for h in history] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"]  # newest first
    detail = ecs.describe_service_deployments(serviceDeploymentArns=[history[0]["serviceDeploymentArn"]])
    (record,) = detail["serviceDeployments"]
    assert record["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert record["deploymentCircuitBreaker"]["threshold"] == 3
    assert record["rollback"]["serviceRevisionArn"] == record["sourceServiceRevisions"][0]["arn"]
    assert service(ecs, cluster)["currentServiceDeployment"] == history[0]["serviceDeploymentArn"]
    target = record["targetServiceRevision"]["arn"]
    (described,) = ecs.describe_service_revisions(serviceRevisionArns=[target])["serviceRevisions"]
    assert described["taskDefinition"] == broken
    assert described["containerImages"] == [
        {"containerName": "web", "image": f"{sandbox.registry_host}/web:never-pushed"}
    ]


@pytest.mark.parametrize(
    ("threshold", "desired", "expected"),
    [
        (None, 10, 5),  # BOUNDED_PERCENT 50: half the desired count, 3 to 200
        (None, 2, 3),
        ({"type": "BOUNDED_PERCENT", "value": 10}, 10, 3),
        ({"type": "UNBOUNDED_PERCENT", "value": 10}, 10, 1),
        ({"type": "COUNT", "value": 2}, 10, 2),
    ],
)
def test_the_breaker_trips_at_its_threshold(
    sandbox: Sandbox, ecs: Any, cluster: str, threshold: dict[str, Any] | None, desired: int, expected: int
) -> None:
    breaker: dict[str, Any] = {"enable": True, "rollback": False}
    if threshold is not None:
        if not client_models("DeploymentCircuitBreaker", "thresholdConfiguration"):
            pytest.skip("this botocore's ECS model has no thresholdConfiguration")
        breaker["thresholdConfiguration"] = threshold
    broken = revision(sandbox, ecs, "never-pushed")
    created = ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=broken,
        desiredCount=desired,
        deploymentConfiguration={"deploymentCircuitBreaker": breaker},
    )["service"]
    if threshold is not None:
        assert created["deploymentConfiguration"]["deploymentCircuitBreaker"]["thresholdConfiguration"] == threshold
    svc = wait_for(lambda: (s := service(ecs, cluster))["deployments"][0]["rolloutState"] == "FAILED" and s)
    (record,) = ecs.describe_service_deployments(serviceDeploymentArns=[svc["currentServiceDeployment"]])[
        "serviceDeployments"
    ]
    assert record["deploymentCircuitBreaker"] == {
        "status": "TRIGGERED",
        "failureCount": expected,
        "threshold": expected,
    }
    assert record["status"] == "STOPPED"
    # Tasks that failed at the same moment as the one that tripped it are failed tasks, not counted by the breaker.
    assert svc["deployments"][0]["failedTasks"] >= expected


def test_a_threshold_configuration_ecs_would_refuse_is_refused(ecs: Any, cluster: str, sandbox: Sandbox) -> None:
    if not client_models("DeploymentCircuitBreaker", "thresholdConfiguration"):
        pytest.skip("this botocore's ECS model has no thresholdConfiguration")
    v1 = revision(sandbox, ecs, "v1")
    for threshold in ({"type": "SOMETIMES", "value": 3}, {"type": "COUNT", "value": 0}):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            ecs.create_service(
                cluster=cluster,
                serviceName="web",
                taskDefinition=v1,
                desiredCount=1,
                deploymentConfiguration={
                    "deploymentCircuitBreaker": {"enable": True, "rollback": True, "thresholdConfiguration": threshold}
                },
            )
        code, message = error_of(excinfo)
        assert code == "InvalidParameterException" and "thresholdConfiguration" in message


def test_without_the_breaker_ecs_keeps_retrying_with_backoff(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    broken = revision(sandbox, ecs, "never-pushed")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=broken, desiredCount=1)
    svc = wait_for(lambda: (s := service(ecs, cluster))["deployments"][0]["failedTasks"] >= 4 and s)
    deployment = svc["deployments"][0]
    assert deployment["rolloutState"] == "IN_PROGRESS" and deployment["runningCount"] == 0
    assert any("is unable to consistently start tasks successfully" in m for m in messages(svc))
    starts = sorted(t["createdAt"] for t in tasks(ecs, cluster, desired="STOPPED"))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]  # the backoff grows


def test_breaker_with_rollback_off_leaves_the_failed_deployment_primary(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    v1, broken = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "never-pushed")
    breaker_only = {"deploymentCircuitBreaker": {"enable": True, "rollback": False}}
    ecs.create_service(
        cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1, deploymentConfiguration=breaker_only
    )
    wait_for(completed(ecs, cluster, v1))
    ecs.update_service(cluster=cluster, service="web", taskDefinition=broken)
    svc = wait_for(lambda: (s := service(ecs, cluster))["deployments"][0]["rolloutState"] == "FAILED" and s)
    primary, old = svc["deployments"]
    assert primary["taskDefinition"] == broken and old["runningCount"] == 1  # the old task keeps serving
    assert not any("rolling back" in m for m in messages(svc))
    history = ecs.list_service_deployments(cluster=cluster, service="web", status=["STOPPED"])
    assert len(history["serviceDeployments"]) == 1


def test_stop_service_deployment_rolls_back_on_request(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1, v2 = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "v2")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    wait_for(completed(ecs, cluster, v1))
    ecs.update_service(cluster=cluster, service="web", taskDefinition=v2)
    newest = ecs.list_service_deployments(cluster=cluster, service="web")["serviceDeployments"][0]
    assert newest["status"] == "IN_PROGRESS"
    with held(sandbox):  # the scheduler acts on the request a couple of (sandbox) seconds later
        ecs.stop_service_deployment(serviceDeploymentArn=newest["serviceDeploymentArn"], stopType="ROLLBACK")
        (requested,) = ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])[
            "serviceDeployments"
        ]
        assert requested["status"] == "ROLLBACK_REQUESTED"
    svc = wait_for(completed(ecs, cluster, v1))
    assert any(m.startswith("(service web) rolling back to deployment ") for m in messages(svc))
    (record,) = ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])[
        "serviceDeployments"
    ]
    assert record["status"] == "ROLLBACK_SUCCESSFUL"
    assert record["rollback"]["reason"] == "StopServiceDeployment requested a rollback."
    assert record["rollback"]["serviceRevisionArn"] == record["sourceServiceRevisions"][0]["arn"]
    assert record["rollback"]["startedAt"] >= record["startedAt"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.stop_service_deployment(serviceDeploymentArn=newest["serviceDeploymentArn"])
    assert error_of(excinfo)[0] == "ConflictException"


def test_stop_service_deployment_abort_stops_it_where_it_stands(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1, broken = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "never-pushed")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    wait_for(completed(ecs, cluster, v1))
    ecs.update_service(cluster=cluster, service="web", taskDefinition=broken)
    arn = ecs.list_service_deployments(cluster=cluster, service="web")["serviceDeployments"][0]["serviceDeploymentArn"]

    def status() -> str:
        return str(ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]["status"])

    with held(sandbox):
        assert ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT") == {
            "serviceDeploymentArn": arn,
            "ResponseMetadata": ANY,
        }
        assert status() == "STOP_REQUESTED"
    wait_for(lambda: status() == "STOPPED")
    svc = service(ecs, cluster)
    primary, old = svc["deployments"]
    assert (primary["taskDefinition"], primary["rolloutState"]) == (broken, "FAILED")
    assert old["taskDefinition"] == v1 and old["runningCount"] == 1  # nothing rolled back, nothing drained
    assert not any("rolling back" in m for m in messages(svc))
    (record,) = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    assert record["statusReason"] == "Service deployment stopped by a StopServiceDeployment request."
    assert "rollback" not in record and "stoppedAt" in record


def test_a_deployment_runs_the_digests_it_resolved_when_it_started(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    """versionConsistency (on unless a container turns it off): ECS resolves each image to a digest when the
    deployment starts, and every task of it runs that digest, even after the tag moves; a new deployment resolves
    the tag again."""
    ecr, repository = sandbox.client("ecr"), cluster.lower()
    ecr.create_repository(repositoryName=repository)

    def push(marker: str) -> str:
        pushed = ecr.put_image(repositoryName=repository, imageManifest=manifest(marker), imageTag="live")
        return str(pushed["image"]["imageId"]["imageDigest"])

    def revision_images(svc: dict[str, Any]) -> list[dict[str, Any]]:
        arn = svc["currentServiceRevisions"][0]["arn"]
        return list(ecs.describe_service_revisions(serviceRevisionArns=[arn])["serviceRevisions"][0]["containerImages"])

    first = push(f"{cluster}-1")
    image = f"{sandbox.registry_host}/{repository}:live"
    pinned = ecs.register_task_definition(
        family=repository, containerDefinitions=[{"name": "web", "image": image, "memory": 64}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=pinned, desiredCount=1)
    svc = wait_for(completed(ecs, cluster, pinned))
    assert revision_images(svc) == [{"containerName": "web", "image": image, "imageDigest": first}]

    second = push(f"{cluster}-2")  # the tag moves (a MUTABLE repository)
    ecs.update_service(cluster=cluster, service="web", desiredCount=2)
    wait_for(lambda: len([t for t in tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"]) == 2)
    assert {t["containers"][0]["imageDigest"] for t in tasks(ecs, cluster)} == {first}

    ecs.update_service(cluster=cluster, service="web", forceNewDeployment=True)
    svc = wait_for(lambda: (s := service(ecs, cluster))["deployments"][0]["rolloutState"] == "COMPLETED" and s)
    assert len(svc["deployments"]) == 1 and revision_images(svc)[0]["imageDigest"] == second
    assert {t["containers"][0]["imageDigest"] for t in tasks(ecs, cluster)} == {second}

    unpinned = ecs.register_task_definition(
        family=repository,
        containerDefinitions=[{"name": "web", "image": image, "memory": 64, "versionConsistency": "disabled"}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service="web", taskDefinition=unpinned)
    svc = wait_for(completed(ecs, cluster, unpinned))
    assert revision_images(svc) == [{"containerName": "web", "image": image}]  # nothing resolved: the tag is pulled


def test_stop_task_is_replaced(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    wait_for(completed(ecs, cluster, v1))
    (task,) = tasks(ecs, cluster)
    stopped = ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="debugging")["task"]
    assert stopped["desiredStatus"] == "STOPPED" and stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "debugging"
    replacement = wait_for(lambda: [t for t in tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"])
    assert replacement[0]["taskArn"] != task["taskArn"]
    assert service(ecs, cluster)["deployments"][0]["failedTasks"] == 0


# -- errors as AWS gives them --------------------------------------------------------------------------------------
def test_errors_as_aws_gives_them(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1", family="errors")
    cases: list[tuple[Callable[[], Any], str, str]] = [
        (
            lambda: ecs.describe_services(cluster="nope", services=["web"]),
            "ClusterNotFoundException",
            "Cluster not found.",
        ),
        (lambda: ecs.list_tasks(cluster="nope"), "ClusterNotFoundException", "Cluster not found."),
        (lambda: ecs.update_service(cluster=cluster, service="nope", desiredCount=1), "ServiceNotFoundException", ""),
        (lambda: ecs.list_tasks(cluster=cluster, serviceName="nope"), "ServiceNotFoundException", ""),
        (
            lambda: ecs.create_service(cluster=cluster, serviceName="x", taskDefinition="errors:99", desiredCount=1),
            "ClientException",
            "Unable to describe task definition.",
        ),
        (
            lambda: ecs.stop_task(cluster=cluster, task="0123456789abcdef0123456789abcdef"),
            "InvalidParameterException",
            "The referenced task was not found.",
        ),
        (
            lambda: ecs.list_services(cluster=cluster, maxResults=101),
            "InvalidParameterException",
            "maxResults must be between 1 and 100.",
        ),
    ]
    for call, code, message in cases:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        assert error_of(excinfo)[0] == code
        assert message in error_of(excinfo)[1]

    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    assert error_of(excinfo) == ("InvalidParameterException", "Creation of service was not idempotent.")

    ecs.deregister_task_definition(taskDefinition=v1)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.update_service(cluster=cluster, service="web", taskDefinition=v1, forceNewDeployment=True)
    assert error_of(excinfo) == ("ClientException", "TaskDefinition is inactive")

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.delete_service(cluster=cluster, service="web")
    assert error_of(excinfo)[0] == "InvalidParameterException" and "scaled above 0" in error_of(excinfo)[1]

    found = ecs.describe_services(cluster=cluster, services=["web", "ghost"])
    assert [s["serviceName"] for s in found["services"]] == ["web"]
    assert found["failures"] == [
        {"arn": f"arn:aws:ecs:{sandbox.region_name}:{sandbox.account_id}:service/{cluster}/ghost", "reason": "MISSING"}
    ]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.stop_service_deployment(serviceDeploymentArn=f"arn:aws:ecs:us-east-1:1:service-deployment/{cluster}/x/y")
    assert error_of(excinfo)[0] == "ServiceDeploymentNotFoundException"
    missing = ecs.describe_tasks(cluster=cluster, tasks=["0" * 32])
    assert missing["tasks"] == [] and missing["failures"][0]["reason"] == "MISSING"


def test_delete_drains_the_service_and_its_revision_can_then_be_deleted(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    v1 = revision(sandbox, ecs, "v1", family="deleting")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=2)
    wait_for(completed(ecs, cluster, v1))
    ecs.deregister_task_definition(taskDefinition=v1)
    ecs.delete_task_definitions(taskDefinitions=[v1])
    still = ecs.describe_task_definition(taskDefinition=v1)["taskDefinition"]
    assert still["status"] == "DELETE_IN_PROGRESS"  # a service still uses it
    sandbox.clock.advance(2 * DELETE_SECONDS)  # long past the time an unused revision takes to go
    still = ecs.describe_task_definition(taskDefinition=v1)["taskDefinition"]
    assert still["status"] == "DELETE_IN_PROGRESS"

    deleted = ecs.delete_service(cluster=cluster, service="web", force=True)["service"]
    assert deleted["status"] == "DRAINING" and deleted["desiredCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.update_service(cluster=cluster, service="web", desiredCount=1)
    assert error_of(excinfo) == ("ServiceNotActiveException", "Service was not ACTIVE.")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    assert error_of(excinfo)[0] in ("InvalidParameterException", "ClientException")

    wait_for(lambda: service(ecs, cluster)["status"] == "INACTIVE")
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []
    assert all(t["lastStatus"] == "STOPPED" for t in tasks(ecs, cluster, desired="STOPPED"))

    def revision_gone() -> bool:
        try:
            ecs.describe_task_definition(taskDefinition=v1)
        except botocore.exceptions.ClientError:
            return True
        return False

    sandbox.clock.advance(DELETE_SECONDS)  # unused now, it goes once ECS's deletion comes round
    wait_for(revision_gone)


# -- listings ------------------------------------------------------------------------------------------------------
def test_list_services_and_list_tasks_page_as_aws_does(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1", family="paged")
    names = [f"svc-{i:02}" for i in range(23)]
    for name in names:
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=v1, desiredCount=0)
    first = ecs.list_services(cluster=cluster)
    assert len(first["serviceArns"]) == 10 and "nextToken" in first  # AWS's default page: 10
    pages = list(ecs.get_paginator("list_services").paginate(cluster=cluster, PaginationConfig={"PageSize": 7}))
    assert [len(p["serviceArns"]) for p in pages] == [7, 7, 7, 2]
    assert [a.rsplit("/", 1)[1] for p in pages for a in p["serviceArns"]] == names

    ecs.update_service(cluster=cluster, service="svc-00", desiredCount=5)
    ecs.update_service(cluster=cluster, service="svc-01", desiredCount=2)
    wait_for(lambda: len(ecs.list_tasks(cluster=cluster)["taskArns"]) == 7)
    pages = list(ecs.get_paginator("list_tasks").paginate(cluster=cluster, PaginationConfig={"PageSize": 3}))
    assert [len(p["taskArns"]) for p in pages] == [3, 3, 1]
    assert len(ecs.list_tasks(cluster=cluster, serviceName="svc-01")["taskArns"]) == 2
    assert len(ecs.list_tasks(cluster=cluster, family="paged")["taskArns"]) == 7
    assert ecs.list_tasks(cluster=cluster, family="other")["taskArns"] == []
    deployment = service(ecs, cluster, "svc-00")["deployments"][0]["id"]
    assert len(ecs.list_tasks(cluster=cluster, startedBy=deployment)["taskArns"]) == 5
    with pytest.raises(botocore.exceptions.ClientError, match="nextToken"):
        ecs.list_services(cluster=cluster, nextToken="garbage")


def test_waiter_is_not_satisfied_while_two_deployments_run(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1, v2 = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "v2")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=2)
    wait_for(completed(ecs, cluster, v1))
    ecs.update_service(cluster=cluster, service="web", taskDefinition=v2)
    waiter = ecs.get_waiter("services_stable")
    with pytest.raises(botocore.exceptions.WaiterError):
        waiter.wait(cluster=cluster, services=["web"], WaiterConfig={"Delay": 0.01, "MaxAttempts": 2})
    waiter.wait(cluster=cluster, services=["web"], WaiterConfig={"Delay": 0.1})
    svc = service(ecs, cluster)
    assert svc["deployments"][0]["taskDefinition"] == v2 and svc["runningCount"] == 2


def test_the_aws_cli_waiter_sees_a_stable_service(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1")
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=v1, desiredCount=1)
    wait_for(completed(ecs, cluster, v1))
    command = ["aws", "ecs", "wait", "services-stable", "--cluster", cluster, "--services", "web"]
    env = {**os.environ, **sandbox.env}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    command = ["aws", "ecs", "describe-services", "--cluster", cluster, "--services", "web", "--output", "json"]
    shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(shown.stdout)["services"][0]["deployments"][0]["rolloutState"] == "COMPLETED"


def test_service_tags_and_include_tags(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    v1 = revision(sandbox, ecs, "v1")
    arn = ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=v1,
        desiredCount=0,
        tags=[{"key": "team", "value": "payments"}],
    )["service"]["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "tier", "value": "1"}])
    ecs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "tier", "value": "1"}]
    described = ecs.describe_services(cluster=cluster, services=[arn], include=["TAGS"])["services"][0]
    assert described["tags"] == [{"key": "tier", "value": "1"}]


# -- time: jumps of the sandbox clock ------------------------------------------------------------------------------
def test_a_clock_jump_plays_the_whole_rollout_with_its_own_timestamps() -> None:
    with Sandbox(seed=None, time_scale=1, docker=False, registry=False) as sandbox:
        ecs, ecr = sandbox.client("ecs"), sandbox.client("ecr")
        ecr.create_repository(repositoryName="web")
        ecr.put_image(repositoryName="web", imageManifest=manifest("v1"), imageTag="v1")
        ecs.create_cluster(clusterName="prod")
        v1, broken = revision(sandbox, ecs, "v1"), revision(sandbox, ecs, "never-pushed")
        created = ecs.create_service(
            cluster="prod", serviceName="web", taskDefinition=v1, desiredCount=2, deploymentConfiguration=BREAKER
        )["service"]
        assert created["deployments"][0]["rolloutState"] == "IN_PROGRESS"

        sandbox.clock.advance(3600)
        svc = completed(ecs, "prod", v1)()
        assert svc, "an hour later the rollout is done"
        at = created["createdAt"]
        events = {e["message"]: e["createdAt"] for e in svc["events"]}
        done = events[f"(service web) (deployment {created['deployments'][0]['id']}) deployment completed."]
        # Stamped when it happened in sandbox time (seconds after creation), not when the jump was played.
        assert timedelta(seconds=10) < done - at < timedelta(minutes=2)
        for task in tasks(ecs, "prod"):
            assert timedelta(0) < task["startedAt"] - at < timedelta(minutes=2)

        ecs.update_service(cluster="prod", service="web", taskDefinition=broken)
        sandbox.clock.advance(timedelta(hours=1))
        svc = completed(ecs, "prod", v1)()
        assert svc, "the failed release was rolled back within the hour"
        assert any(m.endswith("deployment failed: tasks failed to start.") for m in messages(svc))
        stopped = tasks(ecs, "prod", desired="STOPPED")
        assert stopped and all(sandbox.clock.now() - t["stoppedAt"] < timedelta(hours=1) for t in stopped)

        sandbox.clock.advance(timedelta(hours=2))  # stopped tasks are kept about an hour
        assert tasks(ecs, "prod", desired="STOPPED") == []
        assert len(tasks(ecs, "prod")) == 2

        # Back to the past (as seeding history does): a rollout in flight carries on from there.
        ecs.update_service(cluster="prod", service="web", forceNewDeployment=True)
        past = sandbox.clock.now() - timedelta(days=90)
        sandbox.clock.set(past)
        sandbox.clock.advance(timedelta(minutes=10))
        svc = service(ecs, "prod")
        assert len(svc["deployments"]) == 1 and svc["deployments"][0]["rolloutState"] == "COMPLETED"
        assert past < svc["deployments"][0]["updatedAt"] < past + timedelta(minutes=10)
