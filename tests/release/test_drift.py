"""A release to what infrastructure as code manages: refused where the tool owns the task definition (unless
--force), a warning where it manages only the service. Over HTTP against the sandbox."""

from __future__ import annotations

import pytest

from opskit.errors import ConflictError
from opskit.records import managed_by
from opskit.release import ReleaseOptions, plan_release
from tests.release.conftest import World
from tests.release.test_release_errors import release_cli


def tag(world: World, arn: str, key: str, value: str) -> None:
    world.ecs.tag_resource(resourceArn=arn, tags=[{"key": key, "value": value}])


def test_a_task_definition_terraform_owns_is_refused_unless_forced(world: World) -> None:
    live = world.service()["taskDefinition"]
    tag(world, live, "ManagedBy", "terraform")
    with pytest.raises(ConflictError, match=r"^web:1 is managed by terraform: a release would drift from it.*--force$"):
        plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
    plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app, force=True))
    assert plan.warnings == ("web:1 is managed by terraform: its next apply may undo this release",)
    assert {"key": "ManagedBy", "value": "terraform"} in plan.new_tags  # the team's tags go on with the revision


def test_a_service_managed_by_iac_is_a_warning_in_the_plan_and_on_the_command(world: World) -> None:
    tag(world, world.service()["serviceArn"], "managed-by", "pulumi")
    plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
    assert plan.warnings == (
        "web is managed by pulumi: keep its task definition out of it (or the release drifts from it)",
    )
    dry = release_cli(world, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "opskit: warning: web is managed by pulumi" in dry.stderr


def test_cloudformation_is_known_by_its_own_tags() -> None:
    assert (
        managed_by([{"key": "aws:cloudformation:stack-name", "value": "web-prod"}]) == "CloudFormation (stack web-prod)"
    )
    assert managed_by([{"key": "aws:cloudformation:logical-id", "value": "Task"}]) == "CloudFormation"
    assert managed_by([{"key": "Managed_By", "value": "Terraform"}]) == "Terraform"
    assert managed_by([{"key": "team", "value": "payments"}, {"key": "managedby", "value": ""}]) is None
