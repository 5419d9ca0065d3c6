"""Containers that log with the awslogs driver: their output is in CloudWatch Logs, where a failed task is explained.

Tasks really run (images pushed to the sandbox's ECR, run on the engine named by DOCKER_HOST); the logs are read
back with a plain boto3 ``logs`` client at the sandbox's endpoint, as a user reads them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import docker.errors
import pytest

from opskit.sandbox import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Sandbox
from tests.conftest import make_context
from tests.sandbox.test_services import tasks, wait_for
from tests.sandbox.test_services_docker import push

pytestmark = [pytest.mark.docker, pytest.mark.registry]

PRINTS_AND_CRASHES = "echo one; echo two; echo oops >&2; echo three; exit 3"
MISSING_GROUP = (
    "CannotStartContainerError: Error response from daemon: failed to initialize logging driver: failed to create "
    "Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist."
)


@pytest.fixture(scope="module")
def sandbox(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60) as sb:
        assert sb.docker is not None and sb.registry is not None, "needs DOCKER_HOST and docker-registry"
        sb.client("ecr").create_repository(repositoryName="app")
        context = make_context(tmp_path_factory.mktemp("app"), marker=f"logs-{os.getpid()}")
        built = push(sb, docker_client, context, "app", "1")
        yield sb
    with contextlib.suppress(docker.errors.ImageNotFound):  # the runner untagged what it pulled: often gone already
        docker_client.images.remove(built, force=True, noprune=True)


@pytest.fixture
def ecs(sandbox: Sandbox) -> Any:
    return sandbox.client("ecs")


@pytest.fixture
def logs(sandbox: Sandbox) -> Any:
    return sandbox.client("logs")


@pytest.fixture
def cluster(ecs: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """The test's own cluster; its service is scaled to nothing afterwards, so no task of it outlives the test."""
    name = f"{request.node.originalname[:40]}-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=name)
    yield name
    if ecs.list_services(cluster=name)["serviceArns"]:
        ecs.update_service(cluster=name, service="web", desiredCount=0)


def awslogs(group: str, region: str, **options: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": "web", **options},
    }


def run(sandbox: Sandbox, ecs: Any, cluster: str, command: str, **container: Any) -> None:
    """A service of one task whose container ``app`` runs ``command`` (busybox sh)."""
    definition = {
        "name": "app",
        "image": f"{sandbox.registry_host}/app:1",
        "memory": 64,
        "command": ["sh", "-c", command],
        **container,
    }
    arn = ecs.register_task_definition(family=cluster, containerDefinitions=[definition])["taskDefinition"][
        "taskDefinitionArn"
    ]
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=arn, desiredCount=1)


def stopped_task(ecs: Any, cluster: str) -> dict[str, Any]:
    found = wait_for(lambda: [t for t in tasks(ecs, cluster, desired="STOPPED") if t["lastStatus"] == "STOPPED"])
    return dict(found[0])


def task_id(task: dict[str, Any]) -> str:
    return str(task["taskArn"].rsplit("/", 1)[-1])


def events(logs: Any, group: str, stream: str) -> list[dict[str, Any]]:
    return list(logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"])


def every_event(logs: Any, group: str, stream: str) -> list[dict[str, Any]]:
    """The whole stream, page after page (GetLogEvents gives at most 10,000 events a call)."""
    out: list[dict[str, Any]] = []
    page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    while page["events"]:
        out += page["events"]
        page = logs.get_log_events(
            logGroupName=group, logStreamName=stream, startFromHead=True, nextToken=page["nextForwardToken"]
        )
    return out


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_a_crashed_task_is_explained_by_its_log_in_order_and_within_its_times(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str
) -> None:
    logs.create_log_group(logGroupName="/ecs/crash")
    run(sandbox, ecs, cluster, PRINTS_AND_CRASHES, logConfiguration=awslogs("/ecs/crash", sandbox.region_name))
    task = stopped_task(ecs, cluster)
    assert task["stopCode"] == "EssentialContainerExited" and task["containers"][0]["exitCode"] == 3

    stream = f"web/app/{task_id(task)}"  # ECS's name: <awslogs-stream-prefix>/<container name>/<task id>
    streams = logs.describe_log_streams(logGroupName="/ecs/crash", logStreamNamePrefix=stream)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    seen = events(logs, "/ecs/crash", stream)
    messages = [e["message"] for e in seen]
    assert [m for m in messages if m != "oops"] == ["one", "two", "three"]  # stdout in order
    assert messages.count("oops") == 1  # stderr too (its order against stdout is the engine's)
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps)
    # Sandbox times, like DescribeTasks': the lines were printed after the pull and before the task stopped.
    assert millis(task["pullStoppedAt"]) - 1 <= stamps[0] and stamps[-1] <= millis(task["stoppedAt"]) + 1


def test_a_running_container_logs_as_it_runs_into_a_group_it_creates(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str
) -> None:
    assert logs.describe_log_groups(logGroupNamePrefix="/ecs/created")["logGroups"] == []
    command = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    configuration = awslogs("/ecs/created", sandbox.region_name, **{"awslogs-create-group": "true"})
    run(sandbox, ecs, cluster, command, logConfiguration=configuration, stopTimeout=120)  # 2 wall seconds at 60x
    (task,) = wait_for(lambda: [t for t in tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"])
    stream = f"web/app/{task_id(task)}"
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/ecs/created")["logGroups"]] == [
        "/ecs/created"
    ]
    (ready,) = wait_for(lambda: events(logs, "/ecs/created", stream))  # shipped while the container runs
    assert ready["message"] == "ready" and ready["timestamp"] >= millis(task["pullStoppedAt"]) - 1

    ecs.update_service(cluster=cluster, service="web", desiredCount=0)  # SIGTERM: the container says bye
    wait_for(lambda: len(events(logs, "/ecs/created", stream)) == 2)
    assert [e["message"] for e in events(logs, "/ecs/created", stream)] == ["ready", "bye"]


def test_a_container_that_prints_more_than_a_request_holds_has_every_line_in_order(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str
) -> None:
    logs.create_log_group(logGroupName="/ecs/chatty")
    run(sandbox, ecs, cluster, "seq 1 12000; exit 3", logConfiguration=awslogs("/ecs/chatty", sandbox.region_name))
    task = stopped_task(ecs, cluster)
    assert task["stopCode"] == "EssentialContainerExited"
    stream = f"web/app/{task_id(task)}"
    # The exit waits for the output at most half a minute: on a loaded machine the last lines may come after it.
    seen = wait_for(lambda: (e := every_event(logs, "/ecs/chatty", stream)) and len(e) >= 12000 and e, timeout=120)
    assert [e["message"] for e in seen] == [str(n) for n in range(1, 12001)]  # PutLogEvents takes 10,000 at most


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({}, MISSING_GROUP),
        ({"awslogs-create-group": "false"}, MISSING_GROUP),
        (
            {"awslogs-group": ""},
            "CannotStartContainerError: Error response from daemon: must specify a value for log opt 'awslogs-group'",
        ),
    ],
    ids=["no-create-group", "create-group-false", "no-group"],
)
def test_a_log_group_that_does_not_exist_fails_the_task_to_start(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str, options: dict[str, str], reason: str
) -> None:
    group = f"/ecs/missing-{uuid.uuid4().hex[:8]}"
    run(sandbox, ecs, cluster, PRINTS_AND_CRASHES, logConfiguration=awslogs(group, sandbox.region_name, **options))
    task = stopped_task(ecs, cluster)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(reason) and task["containers"][0]["reason"] == task["stoppedReason"]
    if reason == MISSING_GROUP:  # and the message says which group, and what to do
        assert group in task["stoppedReason"] and "awslogs-create-group" in task["stoppedReason"]
    assert logs.describe_log_groups(logGroupNamePrefix="/ecs/missing")["logGroups"] == []


def test_a_log_group_of_another_region_is_written_in_that_region(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str
) -> None:
    elsewhere = boto3.client(
        "logs",
        region_name="eu-west-1",
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    elsewhere.create_log_group(logGroupName="/ecs/abroad")
    run(sandbox, ecs, cluster, PRINTS_AND_CRASHES, logConfiguration=awslogs("/ecs/abroad", "eu-west-1"))
    task = stopped_task(ecs, cluster)
    assert task["stopCode"] == "EssentialContainerExited"
    messages = [e["message"] for e in events(elsewhere, "/ecs/abroad", f"web/app/{task_id(task)}")]
    assert sorted(messages) == ["one", "oops", "three", "two"]
    assert logs.describe_log_groups(logGroupNamePrefix="/ecs/abroad")["logGroups"] == []


@pytest.mark.parametrize(
    "configuration",
    [None, {"logDriver": "json-file", "options": {"awslogs-group": "/ecs/unused", "awslogs-create-group": "true"}}],
    ids=["no-log-configuration", "another-driver"],
)
def test_a_container_that_does_not_log_with_awslogs_writes_nothing(
    sandbox: Sandbox, ecs: Any, logs: Any, cluster: str, configuration: dict[str, Any] | None
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    extra = {} if configuration is None else {"logConfiguration": configuration}
    run(sandbox, ecs, cluster, f"echo {marker}; exit 3", **extra)
    task = stopped_task(ecs, cluster)
    assert task["stopCode"] == "EssentialContainerExited" and task["containers"][0]["exitCode"] == 3
    written = [
        (group["logGroupName"], stream["logStreamName"], event["message"])
        for group in logs.describe_log_groups()["logGroups"]
        for stream in logs.describe_log_streams(logGroupName=group["logGroupName"])["logStreams"]
        for event in events(logs, group["logGroupName"], stream["logStreamName"])
    ]
    assert not [w for w in written if marker in w[2] or task_id(task) in w[1]], written
    assert logs.describe_log_groups(logGroupNamePrefix="/ecs/unused")["logGroups"] == []
