"""A rollback runs the images the target ran, as ECS recorded them (DescribeServiceRevisions' containerImages): a
tag that has moved since is pinned back to the digest that ran, and an image that is gone refuses the rollback.
Over HTTP against a sandbox whose clock runs 60x faster (tasks simulated), with a MUTABLE repository."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from opskit.errors import NotFoundError
from opskit.release import apply_rollback, plan_rollback
from opskit.sandbox import Sandbox
from tests.sandbox.test_services import manifest, wait_for

FAST = {"poll_interval": 0.1, "timeout": 120}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, throttle=False) as sb:
        yield sb


def push(sandbox: Sandbox, tag: str, marker: str) -> str:
    """Put an image under ``tag`` (moving the tag if it was there); its digest."""
    answer = sandbox.client("ecr").put_image(repositoryName="app", imageManifest=manifest(marker), imageTag=tag)
    return str(answer["image"]["imageId"]["imageDigest"])


def deployed(sandbox: Sandbox, image: str) -> str:
    """Register a revision of app running ``image``, deploy it and wait for ECS's SUCCESSFUL; its ARN."""
    ecs = sandbox.client("ecs")
    container = {"name": "app", "image": image, "memory": 64}
    arn = str(
        ecs.register_task_definition(family="app", containerDefinitions=[container])["taskDefinition"][
            "taskDefinitionArn"
        ]
    )
    if not ecs.describe_services(cluster="prod", services=["app"])["services"]:
        ecs.create_service(cluster="prod", serviceName="app", taskDefinition=arn, desiredCount=1)
    else:
        ecs.update_service(cluster="prod", service="app", taskDefinition=arn)
    wait_for(lambda: last_deployment(sandbox)[0]["status"] == "SUCCESSFUL" and last_deployment(sandbox)[1] == arn)
    return arn


def last_deployment(sandbox: Sandbox) -> tuple[dict[str, Any], str]:
    """The service's current service deployment and the task definition of its target revision."""
    ecs = sandbox.client("ecs")
    (service,) = ecs.describe_services(cluster="prod", services=["app"])["services"]
    (record,) = ecs.describe_service_deployments(serviceDeploymentArns=[service["currentServiceDeployment"]])[
        "serviceDeployments"
    ]
    (revision,) = ecs.describe_service_revisions(serviceRevisionArns=[record["targetServiceRevision"]["arn"]])[
        "serviceRevisions"
    ]
    return record, str(revision["taskDefinition"])


@pytest.fixture
def moved(sandbox: Sandbox) -> dict[str, str]:
    """app:1 ran app:stable (image A) to completion, app:2 (image C) runs now, and stable was moved to image B."""
    ecr = sandbox.client("ecr")
    uri = ecr.create_repository(repositoryName="app", imageTagMutability="MUTABLE")["repository"]["repositoryUri"]
    sandbox.client("ecs").create_cluster(clusterName="prod")
    a = push(sandbox, "stable", "A")
    first = deployed(sandbox, f"{uri}:stable")
    push(sandbox, "other", "C")
    deployed(sandbox, f"{uri}:other")
    b = push(sandbox, "stable", "B")
    return {"uri": uri, "a": a, "b": b, "first": first}


def test_a_moved_tag_is_pinned_back_to_the_digest_that_ran(sandbox: Sandbox, moved: dict[str, str]) -> None:
    aws = sandbox.aws()
    plan = plan_rollback(aws, "prod", "app")
    assert plan.target_arn == moved["first"] and plan.ran_in
    (image,) = plan.images
    assert (image.digest, image.ran_digest, image.in_ecr, image.moved) == (moved["b"], moved["a"], True, True)
    assert plan.pins == {"app": f"{moved['uri']}@{moved['a']}"}
    assert plan.to_frame()["deploys"].tolist() == [f"{moved['uri']}@{moved['a']}"]
    assert json.loads(json.dumps(plan.to_dict()))["pins"] == plan.pins

    record = apply_rollback(plan, aws, **FAST)

    assert record.ok, record.reason
    assert record.revision_arn and record.revision_arn.endswith("app:3")  # a copy of app:1, pinned
    ecs = sandbox.client("ecs")
    body = ecs.describe_task_definition(taskDefinition="app:3", include=["TAGS"])
    assert body["taskDefinition"]["containerDefinitions"][0]["image"] == f"{moved['uri']}@{moved['a']}"
    assert {"key": "rollback-of", "value": "app:1"} in body["tags"]
    current, task_definition = last_deployment(sandbox)
    assert task_definition == record.revision_arn and current["status"] == "SUCCESSFUL"
    (ran,) = ecs.describe_service_revisions(serviceRevisionArns=[current["targetServiceRevision"]["arn"]])[
        "serviceRevisions"
    ]
    assert [c["imageDigest"] for c in ran["containerImages"]] == [moved["a"]]  # what ran then runs again


def test_a_tag_that_did_not_move_deploys_the_target_itself(sandbox: Sandbox) -> None:
    ecr = sandbox.client("ecr")
    uri = ecr.create_repository(repositoryName="app", imageTagMutability="MUTABLE")["repository"]["repositoryUri"]
    sandbox.client("ecs").create_cluster(clusterName="prod")
    push(sandbox, "v1", "A")
    first = deployed(sandbox, f"{uri}:v1")
    push(sandbox, "v2", "B")
    deployed(sandbox, f"{uri}:v2")
    plan = plan_rollback(sandbox.aws(), "prod", "app")
    assert plan.pins == {} and not plan.images[0].moved
    record = apply_rollback(plan, sandbox.aws(), **FAST)
    assert record.ok and record.revision_arn == first


def test_an_image_that_ran_and_is_gone_refuses_the_rollback(sandbox: Sandbox, moved: dict[str, str]) -> None:
    sandbox.client("ecr").batch_delete_image(repositoryName="app", imageIds=[{"imageDigest": moved["a"]}])
    with pytest.raises(
        NotFoundError, match=rf"^the image {moved['uri']}@{moved['a']} that app:1 ran no longer exists in ECR"
    ):
        plan_rollback(sandbox.aws(), "prod", "app")
