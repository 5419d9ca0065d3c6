"""Task-definition fidelity: what AWS does and moto does not (notes: moto-fidelity), over HTTP with boto3."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS
from tests.sandbox.test_services import client_models


def container(image: str = "127.0.0.1:1/web:abc", **extra: object) -> dict[str, object]:
    return {"name": "app", "image": image, "memory": 128, **extra}


def register(ecs, family: str = "web", **extra: object) -> dict:
    return ecs.register_task_definition(family=family, containerDefinitions=[container()], **extra)["taskDefinition"]


def list_all(ecs, **kwargs: object) -> list[str]:
    return [
        arn
        for page in ecs.get_paginator("list_task_definitions").paginate(**kwargs)
        for arn in page["taskDefinitionArns"]
    ]


def test_register_stamps_time_and_author_from_the_sandbox_clock(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    sandbox.clock.set(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    body = register(ecs)
    assert abs(body["registeredAt"] - datetime(2026, 1, 15, 9, 30, tzinfo=UTC)) < timedelta(minutes=5)
    assert body["registeredBy"] == f"arn:aws:iam::{sandbox.account_id}:root"
    assert body["status"] == "ACTIVE" and body["revision"] == 1
    assert "deregisteredAt" not in body

    sandbox.clock.advance(timedelta(days=30))
    gone = ecs.deregister_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert gone["status"] == "INACTIVE"
    assert gone["deregisteredAt"] - body["registeredAt"] >= timedelta(days=30)


def test_unknown_fields_and_every_registered_field_come_back_verbatim(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    sent = {
        "family": "full",
        "taskRoleArn": "arn:aws:iam::123456789012:role/task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "ephemeralStorage": {"sizeInGiB": 21},
        "enableFaultInjection": True,
        "containerDefinitions": [
            container(
                restartPolicy={"enabled": True, "restartAttemptPeriod": 60},
                portMappings=[{"containerPort": 80, "name": "http", "appProtocol": "http"}],
                secrets=[{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
            )
        ],
    }
    registered = ecs.register_task_definition(**sent)["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition="full")["taskDefinition"]
    for key, value in sent.items():
        if key != "containerDefinitions":
            assert registered[key] == value == described[key], key
    # ECS fills in the container's defaults (and an awsvpc port mapping's hostPort and protocol); the rest verbatim
    for got in (registered, described):
        (app,) = got["containerDefinitions"]
        for key, value in sent["containerDefinitions"][0].items():
            if key != "portMappings":
                assert app[key] == value, key
        assert app["portMappings"] == [
            {"containerPort": 80, "name": "http", "appProtocol": "http", "hostPort": 80, "protocol": "tcp"}
        ]
    assert described["compatibilities"] == ["EC2", "FARGATE"]


READ_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
)


@pytest.mark.parametrize(
    ("cpu", "memory", "units", "mib"),
    [
        (".25 vcpu", ".5 gb", "256", "512"),
        ("1 vCPU", "2 GB", "1024", "2048"),
        ("0.5 vcpu", "0.5GB", "512", "512"),
        ("2vCPU", "16GB", "2048", "16384"),
        ("1024", "3072", "1024", "3072"),  # numbers in strings stay as they are
    ],
)
def test_task_cpu_and_memory_in_units_come_back_as_numbers(
    sandbox: Sandbox, cpu: str, memory: str, units: str, mib: str
) -> None:
    ecs = sandbox.client("ecs")
    registered = register(ecs, cpu=cpu, memory=memory)
    described = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert (registered["cpu"], registered["memory"]) == (units, mib) == (described["cpu"], described["memory"])


@pytest.mark.parametrize(
    ("key", "value"),
    [("cpu", "lots"), ("cpu", "1 core"), ("cpu", "0.0001 vcpu"), ("cpu", "-256"), ("memory", "1 GiB"), ("memory", "")],
)
def test_task_cpu_and_memory_ecs_cannot_read_are_refused(sandbox: Sandbox, key: str, value: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match=f"Invalid '{key}' setting for task") as error:
        register(sandbox.client("ecs"), **{key: value})
    assert error.value.response["Error"]["Code"] == "ClientException"


def test_describe_fills_in_what_ecs_fills_in(sandbox: Sandbox) -> None:
    """The empty lists and defaults ECS returns for what a registration left out: deploy tools index them
    (``td["volumes"]``, ``c["mountPoints"]``) and crash where a sandbox leaves them out."""
    ecs = sandbox.client("ecs")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[
            {"name": "app", "image": "web:1", "memory": 128, "portMappings": [{"containerPort": 8080}]},
            {"name": "sidecar", "image": "log:1", "memory": 64, "essential": False, "cpu": 10},
        ],
    )
    described = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert described["volumes"] == [] and described["placementConstraints"] == []
    assert "requiresCompatibilities" not in described  # ECS leaves it out when it was not given
    app, sidecar = described["containerDefinitions"]
    assert app == {
        "name": "app",
        "image": "web:1",
        "memory": 128,
        "cpu": 0,
        "essential": True,
        "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],  # bridge: no hostPort means a dynamic one
        "environment": [],
        "mountPoints": [],
        "volumesFrom": [],
    }
    assert sidecar["essential"] is False and sidecar["cpu"] == 10 and sidecar["portMappings"] == []

    # a deploy tool's round trip: describe, drop the read-only fields, register again: the same body comes back
    again = ecs.register_task_definition(**{k: v for k, v in described.items() if k not in READ_ONLY})
    second = again["taskDefinition"]
    assert {k: v for k, v in second.items() if k not in READ_ONLY} == {
        k: v for k, v in described.items() if k not in READ_ONLY
    }


def tags(n: int, **first: str) -> list[dict[str, str]]:
    return [first or {"key": "k0", "value": "v"}] + [{"key": f"k{i}", "value": "v"} for i in range(1, n)]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (tags(51), "at most 50"),
        (tags(1, key="k" * 129, value="v"), "1 to 128 characters"),
        (tags(1, key="k", value="v" * 257), "0 to 256 characters"),
        ([{"key": "team", "value": "a"}, {"key": "team", "value": "b"}], "appears twice"),
        (tags(1, key="aws:owner", value="me"), "reserved"),
        (tags(1, key="AWS:owner", value="me"), "reserved"),
        (tags(1, key="cost,center", value="1"), "not allowed"),
        ([{"value": "no key"}], "1 to 128 characters"),
    ],
)
def test_register_refuses_tags_ecs_refuses(sandbox: Sandbox, given: list[dict[str, str]], message: str) -> None:
    ecs = sandbox.client("ecs")
    with pytest.raises(botocore.exceptions.ClientError, match=message) as error:
        register(ecs, tags=given)
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == []  # nothing was registered


def test_tags_at_the_limits_are_accepted_and_tag_resource_keeps_them(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    given = [*tags(48), {"key": "k" * 128, "value": "v" * 256}, {"key": "empty", "value": ""}]
    arn = register(ecs, tags=given)["taskDefinitionArn"]
    assert ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])["tags"] == given
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k0", "value": "moved"}])  # an existing key: still 50
    with pytest.raises(botocore.exceptions.ClientError, match="at most 50") as error:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "one-more", "value": "x"}])
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError, match="reserved"):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "aws:x", "value": "x"}])
    kept = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
    assert len(kept) == 50 and {"key": "k0", "value": "moved"} in kept


def test_revision_numbers_are_never_reused_after_deletes(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    for _ in range(3):
        register(ecs)
    for number in (2, 3):
        ecs.deregister_task_definition(taskDefinition=f"web:{number}")
    answer = ecs.delete_task_definitions(taskDefinitions=["web:2", "web:3"])
    assert [td["status"] for td in answer["taskDefinitions"]] == ["DELETE_IN_PROGRESS"] * 2
    assert answer["failures"] == []
    assert register(ecs)["revision"] == 4
    assert list_all(ecs, familyPrefix="web", status="INACTIVE") == []
    sandbox.clock.advance(DELETE_SECONDS)  # ECS removes them a while later
    with pytest.raises(botocore.exceptions.ClientError, match="Unable to describe task definition"):
        ecs.describe_task_definition(taskDefinition="web:3")
    assert register(ecs)["revision"] == 5


def test_a_deleted_revision_stays_delete_in_progress_for_minutes_before_it_goes() -> None:
    """ECS deletes asynchronously: an unused revision is listed and described as DELETE_IN_PROGRESS after the
    call, and goes minutes later (sandbox time: the clock moves it along)."""
    with Sandbox(seed=None, time_scale=1, registry=False, docker=False) as sandbox:
        ecs = sandbox.client("ecs")
        register(ecs)
        register(ecs)
        ecs.deregister_task_definition(taskDefinition="web:1")
        deleted = ecs.delete_task_definitions(taskDefinitions=["web:1"])["taskDefinitions"][0]
        stamped = client_models("TaskDefinition", "deleteRequestedAt")  # older models drop it from the answer
        assert deleted["status"] == "DELETE_IN_PROGRESS" and ("deleteRequestedAt" in deleted or not stamped)
        arn = deleted["taskDefinitionArn"]

        sandbox.clock.advance(DELETE_SECONDS - 60)
        assert list_all(ecs, familyPrefix="web", status="DELETE_IN_PROGRESS") == [arn]
        described = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
        assert described["status"] == "DELETE_IN_PROGRESS"
        assert described.get("deleteRequestedAt") == deleted.get("deleteRequestedAt")
        assert ecs.list_task_definition_families(status="ALL")["families"] == ["web"]
        again = ecs.delete_task_definitions(taskDefinitions=["web:1"])  # asking again changes nothing
        assert [td["status"] for td in again["taskDefinitions"]] == ["DELETE_IN_PROGRESS"]

        sandbox.clock.advance(120)
        assert list_all(ecs, familyPrefix="web", status="DELETE_IN_PROGRESS") == []
        with pytest.raises(botocore.exceptions.ClientError, match="Unable to describe task definition"):
            ecs.describe_task_definition(taskDefinition="web:1")
        assert list_all(ecs, familyPrefix="web") == [arn.replace("web:1", "web:2")]


def test_delete_answers_failures_as_aws_does(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    register(ecs)
    register(ecs)
    ecs.deregister_task_definition(taskDefinition="web:1")
    answer = ecs.delete_task_definitions(taskDefinitions=["web:1", "web:2", "web:99"])
    assert [td["revision"] for td in answer["taskDefinitions"]] == [1]
    reasons = {f["arn"].rsplit("/", 1)[-1]: f["reason"] for f in answer["failures"]}
    assert "still in ACTIVE status" in reasons["web:2"]
    assert "does not exist" in reasons["web:99"]

    with pytest.raises(botocore.exceptions.ClientError) as error:
        ecs.delete_task_definitions(taskDefinitions=[f"web:{n}" for n in range(1, 12)])
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"


def test_deregister_twice_is_an_error(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    register(ecs)
    ecs.deregister_task_definition(taskDefinition="web:1")
    with pytest.raises(botocore.exceptions.ClientError, match="already inactive"):
        ecs.deregister_task_definition(taskDefinition="web:1")


def test_describe_by_family_means_the_latest_active_revision(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    for _ in range(3):
        register(ecs)
    ecs.deregister_task_definition(taskDefinition="web:3")
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 2


def test_list_pages_by_100_sorted_and_filtered_by_status(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for family in ("b-api", "a-web"):
            for _ in range(130):
                register(ecs, family)
        for number in range(1, 11):
            ecs.deregister_task_definition(taskDefinition=f"b-api:{number}")
    first = ecs.list_task_definitions()
    assert len(first["taskDefinitionArns"]) == 100 and "nextToken" in first
    everything = list_all(ecs)
    assert len(everything) == 250
    keys = [(arn.rsplit("/", 1)[1].split(":")[0], int(arn.rsplit(":", 1)[1])) for arn in everything]
    assert keys == sorted(keys)  # family, then revision number (not string) order
    assert list_all(ecs, familyPrefix="b-api", sort="DESC")[0].endswith("b-api:130")
    assert len(list_all(ecs, status="INACTIVE")) == 10
    three = ecs.list_task_definitions(maxResults=3, familyPrefix="a-web")
    assert [a.rsplit(":", 1)[1] for a in three["taskDefinitionArns"]] == ["1", "2", "3"]
    with pytest.raises(botocore.exceptions.ClientError, match="maxResults"):
        ecs.list_task_definitions(maxResults=101)


def test_list_families_prefix_status_and_paging(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for index in range(105):
            register(ecs, f"svc-{index:03}")
        register(ecs, "other")
    ecs.deregister_task_definition(taskDefinition="svc-000:1")
    families = [
        f
        for page in ecs.get_paginator("list_task_definition_families").paginate(familyPrefix="svc-")
        for f in page["families"]
    ]
    assert len(families) == 104 and "svc-000" not in families
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == ["svc-000"]
    assert len(ecs.list_task_definition_families(status="ALL", maxResults=100)["families"]) == 100


def test_tags_on_register_and_describe(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    arn = ecs.register_task_definition(
        family="web", containerDefinitions=[container()], tags=[{"key": "commit", "value": "abc1234"}]
    )["taskDefinition"]["taskDefinitionArn"]
    assert ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])["tags"] == [
        {"key": "commit", "value": "abc1234"}
    ]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "pinned", "value": "true"}])
    assert {t["key"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]} == {"commit", "pinned"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": "bad family!", "containerDefinitions": [container()]}, "Family"),
        ({"family": "web", "containerDefinitions": [{"name": "a", "memory": 128}]}, "image"),
        (
            {"family": "web", "containerDefinitions": [container(name=f"c{i}") for i in range(11)]},
            "Too many containers",
        ),
        (
            {"family": "web", "containerDefinitions": [container(command=["x" * 70_000])]},
            "Max allowed length",
        ),
        (
            {"family": "web", "requiresCompatibilities": ["FARGATE"], "containerDefinitions": [container()]},
            "Fargate",
        ),
    ],
)
def test_register_rejects_what_aws_rejects(sandbox: Sandbox, kwargs: dict, message: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match=message) as error:
        sandbox.client("ecs").register_task_definition(**kwargs)
    assert error.value.response["Error"]["Code"] == "ClientException"


def test_months_of_history_without_waiting() -> None:
    with Sandbox(seed=None, time_scale=1, registry=False, docker=False) as sandbox:
        ecs = sandbox.client("ecs")
        start = datetime(2026, 3, 1, tzinfo=UTC)
        sandbox.clock.set(start)
        for _ in range(6):
            register(ecs)
            sandbox.clock.advance(timedelta(days=30))
        stamps = [
            ecs.describe_task_definition(taskDefinition=f"web:{n}")["taskDefinition"]["registeredAt"]
            for n in range(1, 7)
        ]
        assert all(timedelta(days=29) < b - a < timedelta(days=31) for a, b in itertools.pairwise(stamps))
