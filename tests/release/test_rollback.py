"""Rollback goes to what the service last ran to completion, and checks the images are still there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from opskit.errors import OpskitError
from opskit.release import ReleaseOptions, apply_release, apply_rollback, plan_release, plan_rollback
from tests.release.conftest import World, unstartable

FAST = {"poll_interval": 0.1, "timeout": 120}


def release(world: World) -> str:
    record = apply_release(plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)), world.aws, **FAST)
    return f"{record.outcome} {record.revision_arn.rsplit('/', 1)[-1]}"  # type: ignore[union-attr]


@pytest.fixture
def history(world: World) -> World:
    """web:2 good, web:3 broken (the breaker rolled it back to web:2), web:4 good and live."""
    assert release(world) == "COMPLETED web:2"
    dockerfile = (world.app / "Dockerfile").read_text()
    world.commit("cannot start", Dockerfile=unstartable(dockerfile))
    assert release(world) == "ROLLED_BACK web:3"
    world.commit("fix", Dockerfile=dockerfile, marker="fixed")
    assert release(world) == "COMPLETED web:4"
    return world


def test_rollback_targets_the_last_completed_revision_not_number_minus_one(history: World) -> None:
    plan = plan_rollback(history.aws, "prod", "web")
    assert plan.live_arn.endswith("web:4")
    assert plan.target_arn.endswith("web:2")  # web:3 was rolled back by the circuit breaker
    assert "last ran to completion" in plan.chosen_by
    assert all(image.in_ecr for image in plan.images)

    record = apply_rollback(plan, history.aws, **FAST)
    assert record.ok and record.kind == "rollback"
    assert history.service()["taskDefinition"].endswith("web:2")


def test_rollback_to_a_chosen_revision(history: World) -> None:
    plan = plan_rollback(history.aws, "prod", "web", to="1")
    assert plan.target_arn.endswith("web:1") and plan.chosen_by == "chosen with --to"
    assert apply_rollback(plan, history.aws, **FAST).ok


def test_rollback_refuses_a_target_whose_image_is_gone(history: World) -> None:
    image = history.ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["containerDefinitions"][0]
    history.ecr.batch_delete_image(repositoryName="web", imageIds=[{"imageTag": image["image"].rsplit(":", 1)[1]}])
    with pytest.raises(OpskitError, match="no longer exists in ECR: a rollback to it would fail; pass --to"):
        plan_rollback(history.aws, "prod", "web")
    assert history.service()["taskDefinition"].endswith("web:4")


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("99", "revision web:99 does not exist"),
        ("web:3;ls", "is not a revision"),
        ("", "is not a revision"),
    ],
)
def test_rollback_to_bad_revisions(world: World, to: str, message: str) -> None:
    with pytest.raises(OpskitError, match=message):
        plan_rollback(world.aws, "prod", "web", to=to)


def test_rollback_to_an_inactive_revision_is_refused(world: World) -> None:
    world.ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "x:1", "memory": 8}]
    )
    world.ecs.deregister_task_definition(taskDefinition="web:2")
    with pytest.raises(OpskitError, match="web:2 is INACTIVE: ECS cannot deploy it"):
        plan_rollback(world.aws, "prod", "web", to="2")


def test_a_service_that_never_completed_another_revision_has_nothing_to_roll_back_to(world: World) -> None:
    with pytest.raises(OpskitError, match="no earlier revision that ran to completion: pass --to"):
        plan_rollback(world.aws, "prod", "web")


def test_cli_rollback_dry_run_and_apply(history: World) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | history.sandbox.env
    base = [sys.executable, "-m", "opskit", "rollback", "--cluster", "prod", "--service", "web"]
    dry = subprocess.run([*base, "--dry-run", "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["target_revision"].endswith("web:2")
    done = subprocess.run([*base, "--poll-interval", "0.1"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout
    assert history.service()["taskDefinition"].endswith("web:2")
