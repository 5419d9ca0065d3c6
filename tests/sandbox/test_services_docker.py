"""Service deployments whose tasks really run: images built with the Docker SDK, pushed to the sandbox's ECR,
pulled back through the registry by the runner, run on the engine (DOCKER_HOST) with network none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.runner import LABEL_SANDBOX
from tests.conftest import make_context
from tests.sandbox.test_services import BREAKER, client_models, completed, messages, service, tasks, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.registry]

HEALTHY = {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 1}


@pytest.fixture(scope="module")
def sandbox(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60) as sb:
        assert sb.docker is not None and sb.registry is not None, "needs DOCKER_HOST and docker-registry"
        built = push_images(sb, docker_client, tmp_path_factory)
        yield sb
    for image_id in built:  # the runner untagged what it pulled when the sandbox closed: often gone already
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image_id, force=True, noprune=True)


def push_images(sandbox: Sandbox, docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``web:ok`` sleeps, ``web:crash`` exits 3 at once, ``web:late-crash`` a tenth of a second after it starts;
    the local tags go again, so tasks must pull them."""
    sandbox.client("ecr").create_repository(repositoryName="web")
    built = []
    for tag, cmd in (("ok", "sleep 3600"), ("crash", "exit 3"), ("late-crash", "sleep 0.1; exit 3")):
        context = make_context(tmp_path_factory.mktemp(tag), cmd=cmd, marker=f"services-{tag}-{os.getpid()}")
        built.append(push(sandbox, docker_client, context, "web", tag))
    return built


def push(sandbox: Sandbox, docker_client: Any, context: Path, repository: str, tag: str) -> str:
    """Build ``context``, push it to the sandbox's ECR as ``repository:tag`` with ECR's credentials, and drop the
    local tag, so a task has to pull it through the registry; returns the image's id."""
    ecr = sandbox.client("ecr")
    uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    image, _ = docker_client.images.build(path=str(context), rm=True)
    image.tag(uri, tag)
    for line in docker_client.images.push(
        uri, tag=tag, stream=True, decode=True, auth_config={"username": user, "password": password}
    ):
        assert "error" not in line, line
    docker_client.images.remove(f"{uri}:{tag}", noprune=True)
    return str(image.id)


@pytest.fixture
def ecs(sandbox: Sandbox) -> Any:
    return sandbox.client("ecs")


@pytest.fixture
def cluster(ecs: Any, request: pytest.FixtureRequest) -> str:
    """A cluster of the test's own (its name, cut short, and a hash of it: parametrized ones differ at the end)."""
    name = request.node.name
    short = f"{name[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".replace("[", "-").replace("]", "")
    ecs.create_cluster(clusterName=short)
    return short


def revision(sandbox: Sandbox, ecs: Any, tag: str, **container: Any) -> str:
    definition = {"name": "web", "image": f"{sandbox.registry_host}/web:{tag}", "memory": 64, **container}
    registered = ecs.register_task_definition(family=f"docker-{tag}", containerDefinitions=[definition])
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def running_containers(docker_client: Any, sandbox: Sandbox) -> list[Any]:
    label = f"{LABEL_SANDBOX}={sandbox.account_id}-{sandbox.port}"
    return list(docker_client.containers.list(sparse=True, filters={"label": label}))


def test_a_rollout_runs_real_containers_pulled_from_the_sandbox_registry(
    sandbox: Sandbox, ecs: Any, cluster: str, docker_client: Any
) -> None:
    ok = revision(sandbox, ecs, "ok", healthCheck=HEALTHY)
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=ok, desiredCount=2)
    wait_for(completed(ecs, cluster, ok))
    pushed = sandbox.client("ecr").describe_images(repositoryName="web", imageIds=[{"imageTag": "ok"}])
    digest = pushed["imageDetails"][0]["imageDigest"]
    running = tasks(ecs, cluster)
    assert len(running) == 2
    for task in running:
        (container,) = task["containers"]
        assert task["healthStatus"] == container["healthStatus"] == "HEALTHY"
        assert container["imageDigest"] == digest
        engine = docker_client.containers.get(container["runtimeId"])
        assert engine.status == "running" and engine.attrs["HostConfig"]["NetworkMode"] == "none"


# A health check the crashing container never lives to pass: its tasks run, but never get healthy.
NEVER_HEALTHY = {"healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30, "startPeriod": 60}}


@pytest.mark.parametrize("caught_by", ["health-check", "no-reset"])
def test_a_container_that_exits_fails_the_deployment_and_the_breaker_rolls_back(
    sandbox: Sandbox, ecs: Any, cluster: str, docker_client: Any, caught_by: str
) -> None:
    breaker = dict(BREAKER["deploymentCircuitBreaker"])
    if caught_by == "health-check":
        crash = revision(sandbox, ecs, "crash", **NEVER_HEALTHY)
    else:
        if not client_models("DeploymentCircuitBreaker", "resetOnHealthyTask"):
            pytest.skip("this botocore's ECS model has no resetOnHealthyTask")
        crash, breaker["resetOnHealthyTask"] = revision(sandbox, ecs, "crash"), False
    ok = revision(sandbox, ecs, "ok")
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=ok,
        desiredCount=1,
        deploymentConfiguration={"deploymentCircuitBreaker": breaker},
    )
    good = wait_for(completed(ecs, cluster, ok))["deployments"][0]
    bad = ecs.update_service(cluster=cluster, service="web", taskDefinition=crash)["service"]["deployments"][0]
    failed = wait_for(lambda: [d for d in service(ecs, cluster)["deployments"] if d["rolloutState"] == "FAILED"])
    assert failed[0]["id"] == bad["id"] and failed[0]["failedTasks"] >= 3
    svc = wait_for(completed(ecs, cluster, ok))
    events = messages(svc)
    assert f"(service web) (deployment {bad['id']}) deployment failed: tasks failed to start." in events
    assert f"(service web) rolling back to deployment {good['id']}." in events

    crashed = tasks(ecs, cluster, desired="STOPPED", startedBy=bad["id"])
    assert len(crashed) >= 3
    for task in crashed:
        assert task["stopCode"] == "EssentialContainerExited"
        assert task["stoppedReason"] == "Essential container in task exited"
        assert task["containers"][0]["exitCode"] == 3
    live = {t["containers"][0]["runtimeId"] for t in tasks(ecs, cluster)}
    wait_for(lambda: {c.id for c in running_containers(docker_client, sandbox)} >= live)
    for task in crashed:  # stopped tasks' containers are removed
        runtime_id = task["containers"][0].get("runtimeId")
        assert runtime_id is None or runtime_id not in {c.id for c in running_containers(docker_client, sandbox)}


def test_a_container_that_runs_then_exits_resets_the_breaker_at_every_start(
    sandbox: Sandbox, ecs: Any, cluster: str
) -> None:
    """As on ECS: without a health check, a task is healthy the moment it runs, and resetOnHealthyTask (on by
    default) starts the breaker's count over. A crash loop then keeps failing tasks and never trips the breaker.
    (Its containers run a moment first: one that exits at once may be gone before ECS sees it running, and one that
    runs longer than STABILIZE_SECONDS would complete the deployment.)"""
    ok, crash = revision(sandbox, ecs, "ok"), revision(sandbox, ecs, "late-crash")
    ecs.create_service(
        cluster=cluster, serviceName="web", taskDefinition=ok, desiredCount=1, deploymentConfiguration=BREAKER
    )
    wait_for(completed(ecs, cluster, ok))
    ecs.update_service(cluster=cluster, service="web", taskDefinition=crash)
    # As many failed tasks as the threshold: without the reset, the breaker would have tripped.
    primary = wait_for(lambda: (d := service(ecs, cluster)["deployments"][0])["failedTasks"] >= 3 and d)
    assert primary["rolloutState"] == "IN_PROGRESS" and primary["taskDefinition"] == crash
    arn = service(ecs, cluster)["currentServiceDeployment"]
    (record,) = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    assert record["status"] == "IN_PROGRESS"
    assert record["deploymentCircuitBreaker"]["status"] == "MONITORING"
    assert (
        record["deploymentCircuitBreaker"]["failureCount"] <= 1 < 3 == record["deploymentCircuitBreaker"]["threshold"]
    )


def test_a_failing_health_check_is_a_failed_task(sandbox: Sandbox, ecs: Any, cluster: str) -> None:
    sick = revision(sandbox, ecs, "ok", healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 5, "retries": 1})
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=sick, desiredCount=1)
    svc = wait_for(lambda: (s := service(ecs, cluster))["deployments"][0]["failedTasks"] >= 1 and s)
    assert any(m.endswith("failed container health checks.") for m in messages(svc))
    (task, *_) = tasks(ecs, cluster, desired="STOPPED")
    assert task["stoppedReason"] == "Task failed container health checks"
    assert task["stopCode"] == "ServiceSchedulerInitiated" and task["healthStatus"] == "UNHEALTHY"


def test_closing_the_sandbox_removes_its_containers(docker_client: Any, tmp_path: Path) -> None:
    with Sandbox(seed=None, time_scale=60) as sandbox:
        assert sandbox.docker is not None and sandbox.registry is not None, "needs DOCKER_HOST and docker-registry"
        sandbox.client("ecr").create_repository(repositoryName="closing")
        context = make_context(tmp_path, marker=f"closing-{os.getpid()}")
        built = push(sandbox, docker_client, context, "closing", "1")  # only the sandbox's registry has it now
        ecs = sandbox.client("ecs")
        ecs.create_cluster(clusterName="prod")
        image = f"{sandbox.registry_host}/closing:1"
        arn = ecs.register_task_definition(
            family="closing", containerDefinitions=[{"name": "app", "image": image, "memory": 64}]
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition=arn, desiredCount=2)
        wait_for(completed(ecs, "prod", arn))
        runtime_ids = {t["containers"][0]["runtimeId"] for t in tasks(ecs, "prod")}
        assert {c.id for c in running_containers(docker_client, sandbox)} == runtime_ids and len(runtime_ids) == 2
        label = f"{LABEL_SANDBOX}={sandbox.account_id}-{sandbox.port}"
    assert docker_client.containers.list(all=True, sparse=True, filters={"label": label}) == []
    with contextlib.suppress(docker.errors.ImageNotFound):  # the runner untagged what it pulled: often gone already
        docker_client.images.remove(built, force=True, noprune=True)
