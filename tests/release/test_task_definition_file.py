"""Releasing from a task definition kept in the repository, the containers a release changes (by their full image
reference), and ECS's limits checked at the plan, before anything is built. Over HTTP against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import ConfigError, OpskitError
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.release.source import parse, render
from tests.release.conftest import World
from tests.release.test_release_errors import release_cli

FAST = {"poll_interval": 0.1, "timeout": 120}


def file_body(world: World, **extra: Any) -> dict[str, Any]:
    """web's register body as a team keeps it: the live revision's containers, a template for the environment."""
    container = {
        "name": "web",
        "image": f"{world.uri}:placeholder",
        "memory": 96,
        "essential": True,
        "environment": [{"name": "STAGE", "value": "{{ stage }}"}, {"name": "SHELL_ONLY", "value": "${AWS_REGION}"}],
        "command": ["/bin/sh", "-c", "echo $(cat /marker); sleep 3600"],
    }
    return {"family": "web", "containerDefinitions": [container], **extra}


FORMS = {
    "register": lambda body, tags: {**body, "tags": tags},
    "describe": lambda body, tags: {"taskDefinition": {**body, "revision": 9, "status": "ACTIVE"}, "tags": tags},
    "described": lambda body, tags: {**body, "taskDefinitionArn": "arn:aws:ecs:x:1:task-definition/web:9"},
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_release_renders_the_revision_from_each_file_form(world: World, form: str) -> None:
    tags = [{"key": "team", "value": "payments"}]
    text = json.dumps(FORMS[form](file_body(world), tags), indent=2)
    sha = world.commit("keep the task definition here", **{"task-definition.json": text})
    options = ReleaseOptions(
        "prod", "web", path=world.app, task_definition=Path("task-definition.json"), variables={"stage": "prod"}
    )
    plan = plan_release(world.aws, options)
    assert plan.source == "task-definition.json" and "from task-definition.json" in plan.steps[2].detail
    record = apply_release(plan, world.aws, **FAST)
    assert record.ok, record.reason

    answer = world.ecs.describe_task_definition(taskDefinition=record.revision_arn, include=["TAGS"])
    (container,) = answer["taskDefinition"]["containerDefinitions"]
    assert container["image"] == f"{world.uri}:{sha[:12]}" and container["memory"] == 96
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment == {"STAGE": "prod", "SHELL_ONLY": "${AWS_REGION}"}  # shell syntax reaches the container
    assert container["command"][-1] == "echo $(cat /marker); sleep 3600"
    expected = [*tags, {"key": "commit", "value": sha}] if form != "described" else [{"key": "commit", "value": sha}]
    assert sorted(answer["tags"], key=lambda t: t["key"]) == sorted(expected, key=lambda t: t["key"])


def test_an_undefined_template_name_is_an_error_that_names_it(world: World) -> None:
    world.commit("template", **{"task-definition.json": json.dumps(file_body(world))})
    answer = release_cli(world, "--task-definition", "task-definition.json", "--var", "region=eu-west-1")
    assert answer.returncode == 2 and answer.stderr.count("\n") == 1
    assert "uses {{ stage }}, which has no value: pass --var stage=VALUE" in answer.stderr
    assert world.service()["taskDefinition"].endswith("web:1")  # nothing built, pushed or registered
    assert len(world.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 1

    with pytest.raises(ConfigError, match=r"--var 'stage' is not NAME=VALUE"):
        from opskit.release.source import parse_variables

        parse_variables(["stage"])
    with pytest.raises(ConfigError, match="is not JSON"):
        parse(render('{"family": "{{ stage }}",', {"stage": "x"}))


def test_a_release_changes_only_the_containers_from_its_repository(world: World) -> None:
    """Three containers whose repository is called web: ECR's (this account), Docker Hub's and a local registry's.
    A release to the ECR repository changes only the first."""
    body = file_body(world)
    body["containerDefinitions"] += [
        {"name": "hub", "image": "web:latest", "memory": 32, "essential": False},
        {"name": "local", "image": "localhost:5000/web:1", "memory": 32, "essential": False},
    ]
    world.commit("sidecars", **{"task-definition.json": json.dumps(body)})
    options = ReleaseOptions(
        "prod", "web", path=world.app, task_definition=Path("task-definition.json"), variables={"stage": "x"}
    )
    with pytest.raises(ConfigError, match="cannot tell which ECR repository web's containers come from"):
        plan_release(world.aws, options)  # three registries: the name alone does not say
    plan = plan_release(world.aws, ReleaseOptions(**{**options.__dict__, "repository": "web"}))
    assert plan.containers == ("web",)
    images = {c["name"]: c["image"] for c in plan.new_body["containerDefinitions"]}
    assert images == {"web": plan.image, "hub": "web:latest", "local": "localhost:5000/web:1"}


def test_the_tag_count_is_checked_at_the_plan(world: World) -> None:
    tags = [{"key": f"k{i}", "value": "v"} for i in range(50)]
    world.commit("fifty tags", **{"task-definition.json": json.dumps({**file_body(world), "tags": tags})})
    options = ReleaseOptions(
        "prod", "web", path=world.app, task_definition=Path("task-definition.json"), variables={"stage": "x"}
    )
    with pytest.raises(ConfigError, match=r"would have 51 tags with opskit's commit tag, over AWS's 50: remove 1"):
        plan_release(world.aws, options)
    aws_own = [*tags[:49], {"key": "aws:cloudformation:stack-name", "value": "web"}]
    world.commit("49 and AWS's own", **{"task-definition.json": json.dumps({**file_body(world), "tags": aws_own})})
    assert len(plan_release(world.aws, options).new_tags) == 50  # aws: tags are left out and do not count


def big_body(world: World, text: str, count: int) -> dict[str, Any]:
    body = file_body(world)
    body["containerDefinitions"][0]["environment"] = [{"name": f"V{i}", "value": text} for i in range(count)]
    return body


def test_the_size_is_counted_as_sent_utf8_and_with_the_tags_at_the_plan(world: World) -> None:
    options = ReleaseOptions("prod", "web", path=world.app, task_definition=Path("task-definition.json"))
    japanese = "日本語のテキスト" * 25  # 200 characters, 600 bytes in UTF-8 and 1200 as \\u escapes
    world.commit("japanese", **{"task-definition.json": json.dumps(big_body(world, japanese, 70), ensure_ascii=False)})
    plan = plan_release(world.aws, options)  # ~43 KB in UTF-8 (~86 KB escaped): within the limit
    record = apply_release(plan, world.aws, **FAST)
    assert record.ok, record.reason  # and ECS (the sandbox, counting the request) took it

    tags = [{"key": f"note{i}", "value": "x" * 256} for i in range(40)]  # ~11 KB of tags
    near = {**big_body(world, "a" * 1000, 56), "tags": tags}  # ~58 KB of body: over the limit only with the tags
    world.commit("near the limit", **{"task-definition.json": json.dumps(near)})
    with pytest.raises(ConfigError, match=r"would be \d+ bytes with its tags, over ECS's 65536-byte limit"):
        plan_release(world.aws, options)


def test_a_file_ecs_would_refuse_is_refused_at_the_plan(world: World) -> None:
    """The plan verifies a revision from a file (opskit verify's checks) before anything is built; the image it
    is about to build is not looked for."""
    body = file_body(world)
    secret = "arn:aws:ssm:us-east-1:123456789012:parameter/web/missing"
    body["containerDefinitions"][0]["secrets"] = [{"name": "DB", "valueFrom": secret}]
    body["executionRoleArn"] = "arn:aws:iam::123456789012:role/missing-execution-role"
    world.commit("a secret nobody made", **{"task-definition.json": json.dumps(body)})
    options = ReleaseOptions(
        "prod", "web", path=world.app, task_definition=Path("task-definition.json"), variables={"stage": "x"}
    )
    with pytest.raises(ConfigError, match=r"^task-definition.json would fail: VER002 role .*; 1 more: `opskit verify"):
        plan_release(world.aws, options)
    assert len(world.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 1


def test_a_release_from_what_init_wrote_registers_the_live_revision_again(world: World) -> None:
    """opskit init, commit its file, release from it: the new revision is the live one, its image aside."""
    from click.testing import CliRunner

    from opskit.cli import main
    from opskit.release.normalise import comparable

    written = CliRunner().invoke(
        main,
        ["init", "--cluster", "prod", "--service", "web", "--output-dir", str(world.app / ".aws")],
        env=world.sandbox.env,
    )
    assert written.exit_code == 0, written.output
    world.commit("the task definition, as init wrote it")
    options = ReleaseOptions("prod", "web", path=world.app, task_definition=Path(".aws/task-definition.json"))
    record = apply_release(plan_release(world.aws, options), world.aws, **FAST)
    assert record.ok and record.revision_arn is not None, record.reason

    def without_images(name: str) -> dict[str, Any]:
        answer = world.aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": name, "include": ["TAGS"]})
        body = answer["taskDefinition"]
        for container in body["containerDefinitions"]:
            container.pop("image")
        tags = [t for t in answer.get("tags") or [] if t["key"] != "commit"]
        return comparable(body, tags)

    assert without_images(record.revision_arn) == without_images("web:1")


def two_containers(world: World, sidecar_uri: str) -> dict[str, Any]:
    body = file_body(world)
    sidecar = {**body["containerDefinitions"][0], "name": "sidecar", "image": f"{sidecar_uri}:placeholder"}
    sidecar["essential"] = False
    body["containerDefinitions"].append(sidecar)
    return body


def test_one_image_goes_to_each_repository_of_an_image_release(world: World) -> None:
    """--image web=web --image sidecar=sidecar: the commit's one image, built once (or pulled from the first
    repository when it is already there), pushed to both; each container points at its own repository."""
    sidecar = world.ecr.create_repository(repositoryName="sidecar", imageTagMutability="IMMUTABLE")
    sidecar_uri = sidecar["repository"]["repositoryUri"]
    world.commit("two containers", **{"task-definition.json": json.dumps(two_containers(world, sidecar_uri))})
    # The commit's image is in web already (an ordinary release of it): the --image release pulls it from there.
    first = apply_release(plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)), world.aws, **FAST)
    assert first.ok, first.reason
    options = ReleaseOptions(
        "prod",
        "web",
        path=world.app,
        task_definition=Path("task-definition.json"),
        variables={"stage": "x"},
        images={"web": "web", "sidecar": "sidecar"},
    )
    plan = plan_release(world.aws, options)
    assert plan.containers == ("web", "sidecar") and [a.repository.name for a in plan.also] == ["sidecar"]
    assert [(s.name, s.action) for s in plan.steps][:3] == [("build", "skip"), ("push", "skip"), ("push", "run")]
    record = apply_release(plan, world.aws, **FAST)
    assert record.ok, record.reason

    tag = plan.tag
    containers = world.ecs.describe_task_definition(taskDefinition=record.revision_arn)["taskDefinition"]
    images = {c["name"]: c["image"] for c in containers["containerDefinitions"]}
    assert images == {"web": f"{world.uri}:{tag}", "sidecar": f"{sidecar_uri}:{tag}"}
    digests = {
        name: world.ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])["imageDetails"][0][
            "imageDigest"
        ]
        for name in ("web", "sidecar")
    }
    assert digests["web"] == digests["sidecar"] == first.digest  # one commit, one image


def test_an_image_release_refuses_a_container_it_does_not_have(world: World) -> None:
    with pytest.raises(ConfigError, match="leave out --container and --repository"):
        ReleaseOptions("prod", "web", images={"web": "web"}, repository="web")
    with pytest.raises(OpskitError, match=r"container 'worker' is not in web:1 .*pass --image NAME=REPOSITORY"):
        plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app, images={"worker": "web"}))
