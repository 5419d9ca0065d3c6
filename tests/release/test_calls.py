"""What a release asks AWS and the engine before it waits: every call has a reason, none is made twice, and an image
already in the engine or in ECR for this commit is never built again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import ConflictError
from opskit.gateway import RegistryAuth
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.sandbox.server.app import Seen
from tests.conftest import make_context
from tests.release.conftest import World

FAST = {"poll_interval": 0.1, "timeout": 120}

# A release of a new commit to a service in an IMMUTABLE repository, up to and including UpdateService.
UP_TO_THE_WAIT = Counter(
    {
        "DescribeServices": 2,  # the plan's read (with the tags: the lock's holders), the re-read before the update
        "DescribeTaskDefinition": 1,  # the live revision, with its tags
        "DescribeRepositories": 1,  # the repository's URI and tag mutability
        "DescribeImages": 1,  # is this commit's image already in ECR?
        "TagResource": 1,  # the lock's write
        "ListTagsForResource": 1,  # the lock's read-back
        "GetAuthorizationToken": 1,  # the push's credentials
        "RegisterTaskDefinition": 1,
        "UpdateService": 1,
    }
)


def options(world: World, **extra: Any) -> ReleaseOptions:
    return ReleaseOptions(cluster="prod", service="web", path=world.app, **extra)


def calls_until_update(world: World, release: Any) -> Counter[str]:
    seen: list[str] = []

    def observe(request: Seen) -> None:
        if not request.served and request.action != "registry":
            seen.append(request.action)

    with world.sandbox.observing(observe):
        release()
    until = seen[: seen.index("UpdateService") + 1]
    return Counter(until)


def stage_states(events: list[ProgressEvent], stage: str) -> list[str]:
    return [e.state for e in events if e.stage == stage and e.state != "log"]


def test_a_new_commit_is_released_with_ten_calls_before_the_wait(world: World) -> None:
    world.commit(**{"app.txt": "v2"})

    def release() -> None:
        assert apply_release(plan_release(world.aws, options(world)), world.aws, **FAST).ok

    assert calls_until_update(world, release) == UP_TO_THE_WAIT
    assert UP_TO_THE_WAIT.total() == 10


def test_an_image_tagged_for_this_commit_in_the_engine_is_pushed_without_a_build(
    world: World, docker_client: Any
) -> None:
    sha = world.commit(**{"app.txt": "built by CI"})
    docker_client.images.build(path=str(world.app), tag=f"{world.uri}:{sha[:12]}", rm=True)  # as a CI step does
    events: list[ProgressEvent] = []

    plan = plan_release(world.aws, options(world))
    assert {s.name: s.action for s in plan.steps}["build"] == "skip"
    assert "already in the Docker engine" in plan.steps[0].detail
    record = apply_release(plan, world.aws, progress=events.append, **FAST)

    assert record.ok, record.reason
    assert stage_states(events, "build") == ["skipped"] and stage_states(events, "push") == ["started", "done"]
    found = world.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": sha[:12]}])["imageDetails"]
    assert found[0]["imageDigest"] == record.digest


def test_an_engine_image_labelled_with_another_commit_is_built_again(world: World, docker_client: Any) -> None:
    first = world.commit(**{"app.txt": "one"})
    sha = world.commit(**{"app.txt": "two"})
    docker_client.images.build(
        path=str(world.app),
        tag=f"{world.uri}:{sha[:12]}",
        labels={"org.opencontainers.image.revision": first},  # a tag that lies about its commit
        rm=True,
    )
    plan = plan_release(world.aws, options(world))
    assert {s.name: s.action for s in plan.steps}["build"] == "run"
    events: list[ProgressEvent] = []
    record = apply_release(plan, world.aws, progress=events.append, **FAST)
    assert record.ok, record.reason
    assert stage_states(events, "build") == ["started", "done"]
    labels = docker_client.images.get(f"{world.uri}:{sha[:12]}").labels
    assert labels["org.opencontainers.image.revision"] == sha


def push_other_build(world: World, docker_client: Any, tmp_path: Path, tag: str, revision: str) -> str:
    """Another release's push of ``tag``: a different image (so a different digest), labelled with ``revision``."""
    context = make_context(tmp_path / "other", marker="another build")
    image = f"{world.uri}:{tag}"
    docker_client.images.build(path=str(context), tag=image, labels={"org.opencontainers.image.revision": revision})
    auth = RegistryAuth.from_ecr(world.ecr.get_authorization_token()["authorizationData"][0]).docker_config()
    for chunk in docker_client.api.push(world.uri, tag=tag, auth_config=auth, stream=True, decode=True):
        assert "error" not in chunk, chunk
    docker_client.images.remove(image, noprune=True)  # our release builds its own; the cache stays, for others
    return str(
        world.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": tag}])["imageDetails"][0]["imageDigest"]
    )


def test_a_push_of_this_commit_since_the_plan_is_reused_not_overwritten(
    world: World, docker_client: Any, tmp_path: Path
) -> None:
    sha = world.commit(**{"app.txt": "raced"})
    plan = plan_release(world.aws, options(world))
    assert plan.existing_digest is None
    theirs = push_other_build(world, docker_client, tmp_path, plan.tag, sha)

    record = apply_release(plan, world.aws, **FAST)

    assert record.ok, record.reason
    assert record.digest == theirs  # the immutable tag refused our push; theirs is this commit's image
    images = world.ecr.describe_images(repositoryName="web")["imageDetails"]
    assert [i["imageDigest"] for i in images if plan.tag in i.get("imageTags", [])] == [theirs]


def test_a_push_of_another_commit_under_our_tag_since_the_plan_is_refused(
    world: World, docker_client: Any, tmp_path: Path
) -> None:
    world.commit(**{"app.txt": "raced by another commit"})
    plan = plan_release(world.aws, options(world))
    push_other_build(world, docker_client, tmp_path, plan.tag, "0" * 40)

    with pytest.raises(ConflictError, match=r"already holds an image built from commit 000000000000.*--sha-length"):
        apply_release(plan, world.aws, **FAST)
    assert world.service()["taskDefinition"].endswith("web:1")


def test_the_release_command_imports_only_what_a_release_uses(world: World) -> None:
    """`opskit release` as a process: no frame, widget or sandbox library is imported on the way (Python's own
    import log says which modules were loaded)."""
    world.commit(**{"app.txt": "lean"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | world.sandbox.env
    command = [sys.executable, "-X", "importtime", "-m", "opskit", "release", "--cluster", "prod", "--service", "web"]
    done = subprocess.run(
        [*command, "--path", str(world.app), "--poll-interval", "0.1"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s+(\S+)$", done.stderr, re.M)}
    assert {"opskit", "botocore", "docker", "click"} <= loaded  # the log is read right
    assert not loaded & {
        "pandas",
        "numpy",
        "pyarrow",
        "matplotlib",
        "ipywidgets",
        "moto",
        "werkzeug",
        "boto3",
        "s3transfer",
    }
