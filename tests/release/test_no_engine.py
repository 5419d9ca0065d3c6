"""Where no Docker engine answers: the plan says build and push are unavailable and why, nothing is changed, the
panel says what to do in a notebook's words, and an image already in ECR still releases (that path needs no engine).

The sandbox keeps the engine it started with; only opskit's own process is pointed at an engine that is not there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.errors import DockerUnavailableError
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.widgets import ReleasePanel
from tests.release.conftest import World, git

FAST = {"poll_interval": 0.1, "timeout": 120}


@pytest.fixture
def no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    host = f"unix://{tmp_path}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


def options(world: World) -> ReleaseOptions:
    return ReleaseOptions(cluster="prod", service="web", path=world.app)


def revisions(world: World) -> list[str]:
    return list(world.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"])


def test_the_plan_marks_build_and_push_unavailable_and_the_release_changes_nothing(
    world: World, no_engine: str, tmp_path: Path
) -> None:
    before, live = revisions(world), world.service()["taskDefinition"]
    plan = plan_release(world.aws, options(world))
    steps = {s.name: s for s in plan.steps}
    assert steps["build"].action == steps["push"].action == "unavailable"
    assert no_engine in steps["build"].detail
    assert plan.summary()["build_unavailable"]

    with pytest.raises(DockerUnavailableError, match="cannot reach the Docker engine"):
        apply_release(plan, world.aws, journal_dir=tmp_path, **FAST)
    assert revisions(world) == before and world.service()["taskDefinition"] == live
    tags = world.ecr.list_images(repositoryName="web")["imageIds"]
    assert [t.get("imageTag") for t in tags] == ["bootstrap"]


def test_the_command_says_so_in_one_line(world: World, no_engine: str) -> None:
    env = {**os.environ, **world.sandbox.env, "DOCKER_HOST": no_engine}
    where = ["--cluster", "prod", "--service", "web", "--path", str(world.app)]
    args = [sys.executable, "-m", "opskit", "release", *where]
    dry = subprocess.run([*args, "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "unavailable" in dry.stdout
    real = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert real.returncode == 2
    assert real.stderr.strip().splitlines() == [
        f"opskit: error: cannot reach the Docker engine at {no_engine}: start Docker, or set DOCKER_HOST to a "
        "running engine"
    ]


def test_an_image_already_in_ecr_releases_without_an_engine(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = apply_release(plan_release(world.aws, options(world)), world.aws, journal_dir=tmp_path, **FAST)
    assert first.ok, first.reason
    world.commit("second", marker="v2")
    second = apply_release(plan_release(world.aws, options(world)), world.aws, journal_dir=tmp_path, **FAST)
    assert second.ok, second.reason
    git(world.app, "checkout", "-q", first.commit)  # back to the first commit: its image is in ECR
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")

    plan = plan_release(world.aws, options(world))
    assert plan.build_unavailable is None and plan.existing_digest == first.digest
    again = apply_release(plan, world.aws, journal_dir=tmp_path, **FAST)
    assert again.ok, again.reason
    assert world.service()["taskDefinition"] == first.revision_arn


def test_the_panel_says_what_to_do_in_a_notebooks_words(world: World, no_engine: str) -> None:
    panel = ReleasePanel(world.aws, cluster="prod", service="web", path=world.app, poll_interval=0.1)
    assert panel.plan()
    panel.wait(120)
    assert panel.messages.kind == "warning"
    text = panel.messages.text
    assert "notebook" in text and "start Docker" in text and "already in ECR" in text
    assert "--" not in text and "DOCKER_HOST" not in text
    assert panel.release_button.disabled
    assert panel.steps  # the plan still shows, with its unavailable steps
    assert set(panel.release_plan.to_frame()["action"]) >= {"unavailable"}  # type: ignore[union-attr]
