"""Every way a release can be refused: one clear line, and nothing changed that a rerun cannot finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opskit.aws import Aws
from opskit.errors import OpskitError
from opskit.release import ReleaseOptions, apply_release, plan_release
from tests.release.conftest import World, git, unstartable

FAST = {"poll_interval": 0.1, "timeout": 120}


def state(world: World) -> tuple[Any, ...]:
    """What a refused release must leave as it was."""
    service = world.service()
    revisions = world.ecs.list_task_definitions()["taskDefinitionArns"]
    images = sorted(i["imageDigest"] for i in world.ecr.describe_images(repositoryName="web")["imageDetails"])
    return service["taskDefinition"], len(service["deployments"]), tuple(revisions), tuple(images)


def not_a_checkout(world: World, tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "plain"
    folder.mkdir()
    return {"path": folder}


def dirty(world: World, tmp_path: Path) -> dict[str, Any]:
    (world.app / "scratch.txt").write_text("not committed")
    return {}


def no_dockerfile(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"dockerfile": "Dockerfile.missing"}


def build_fails(world: World, tmp_path: Path) -> dict[str, Any]:
    text = (world.app / "Dockerfile").read_text().replace("CMD", 'RUN ["/bin/sh", "-c", "echo compiling; exit 7"]\nCMD')
    world.commit("broken build", Dockerfile=text)
    return {}


def repository_missing(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"repository": "does-not-exist"}


def unknown_cluster(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"cluster": "nope"}


def unknown_service(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"service": "nope"}


def unknown_container(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"containers": ("nope",)}


def latest_tag(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"tag": "latest"}


def shell_tag(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"tag": "abc1234;rm -rf /"}


def other_commit_tag(world: World, tmp_path: Path) -> dict[str, Any]:
    return {"tag": "0000000"}


def tag_holds_another_commit(world: World, tmp_path: Path) -> dict[str, Any]:
    """Someone pushed an image built from another commit under this commit's SHA tag."""
    from tests.release.conftest import push_image

    sha = git(world.app, "rev-parse", "HEAD").strip()
    other = tmp_path / "other"
    other.mkdir()
    (other / "busybox").write_bytes((world.app / "busybox").read_bytes())
    (other / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL org.opencontainers.image.revision=" + "f" * 40 + "\n"
    )
    import docker

    client = docker.from_env()
    push_image(world.sandbox, client, other, world.uri, sha[:12])
    client.close()
    return {}


CASES: list[tuple[str, Callable[[World, Path], dict[str, Any]], str]] = [
    ("not a git checkout", not_a_checkout, "is not inside a git checkout: run from your repository or pass --path"),
    (
        "dirty tree",
        dirty,
        r"has uncommitted changes \(.+\): commit them \(a release is a commit\), or pass --allow-dirty",
    ),
    ("no Dockerfile", no_dockerfile, "no Dockerfile at .*Dockerfile.missing: add one, or pass --dockerfile"),
    ("build failure", build_fails, "docker build failed: .*returned a non-zero code: 7 \\(last output: .*compiling"),
    ("repository missing", repository_missing, "ECR repository 'does-not-exist' does not exist: create it, or pass"),
    ("cluster not found", unknown_cluster, "cluster 'nope' not found in us-east-1: check --cluster"),
    ("service not found", unknown_service, "service 'nope' not found in cluster 'prod'"),
    (
        "container not in the task definition",
        unknown_container,
        "container 'nope' is not in web:1 \\(its containers: web\\)",
    ),
    ("latest as the release tag", latest_tag, "release tag 'latest' is not a commit SHA"),
    ("shell characters in the tag", shell_tag, "is not a commit SHA"),
    ("a SHA that is not HEAD", other_commit_tag, "tag 0000000 is not HEAD's commit"),
    ("immutable tag conflict", tag_holds_another_commit, "already holds an image built from commit ffffffffffff"),
]


@pytest.mark.parametrize(("setup", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_one_line_and_nothing_changed(
    world: World, tmp_path: Path, setup: Callable[[World, Path], dict[str, Any]], message: str
) -> None:
    extra = setup(world, tmp_path)
    before = state(world)
    fields = {"cluster": "prod", "service": "web", "path": world.app, **extra}
    with pytest.raises(OpskitError, match=message) as error:
        apply_release(plan_release(world.aws, ReleaseOptions(**fields)), world.aws, **FAST)
    assert "\n" not in str(error.value)
    assert state(world) == before


def test_an_unreachable_docker_engine_names_docker_host(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.commit("new", marker="needs a build")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    before = state(world)
    with pytest.raises(
        OpskitError, match=r"cannot reach the Docker engine at unix:///nonexistent/docker.sock: .*DOCKER_HOST"
    ):
        apply_release(plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)), world.aws, **FAST)
    assert state(world) == before


def test_a_wait_timeout_is_a_failure_with_counts(world: World) -> None:
    world.commit("slow", marker="slow")
    record = apply_release(
        plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)),
        world.aws,
        poll_interval=0.05,
        timeout=0.3,
    )
    assert record.outcome == "TIMED_OUT" and not record.ok
    assert "did not finish within" in record.reason and "running" in record.reason


@pytest.mark.parametrize(
    ("expired", "message"),
    [(False, "no AWS credentials found: set AWS_PROFILE"), (True, "AWS credentials have expired .*: refresh them")],
    ids=["missing", "expired"],
)
def test_credentials_problems_are_one_line(
    world: World, monkeypatch: pytest.MonkeyPatch, expired: bool, message: str
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if expired:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXPIREDSESSION01")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
        world.sandbox.expire_credentials("AKIAEXPIREDSESSION01")
    aws = Aws(region="us-east-1", endpoint_url=world.sandbox.endpoint_url)
    with pytest.raises(OpskitError, match=message) as error:
        plan_release(aws, ReleaseOptions("prod", "web", path=world.app))
    assert "\n" not in str(error.value)


def release_cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """``opskit release`` of the world's app to prod/web, as a process with the sandbox's environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | world.sandbox.env
    command = [sys.executable, "-m", "opskit", "release", "--cluster", "prod", "--service", "web"]
    return subprocess.run(
        [*command, "--path", str(world.app), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_exit_codes_and_one_line_errors(world: World) -> None:
    answer = release_cli(world, "--tag", "latest")
    assert answer.returncode == 2
    assert answer.stderr.strip().count("\n") == 0 and answer.stderr.startswith("opskit: error: release tag 'latest'")

    dry = release_cli(world, "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [s["name"] for s in plan["steps"]] == ["build", "push", "register", "update", "wait"]
    assert world.service()["taskDefinition"].endswith("web:1")

    done = release_cli(world, "--format", "json", "--poll-interval", "0.1")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["outcome"] == "COMPLETED" and record["revision_arn"].endswith("web:2")
    assert "ok    build" in done.stderr and "deployment completed" in done.stderr

    # A release ECS rolls back exits with ROLLED_BACK's code, ECS's reason on stderr, the record on stdout.
    world.commit("cannot start", Dockerfile=unstartable((world.app / "Dockerfile").read_text()))
    rolled = release_cli(world, "--format", "json", "--poll-interval", "0.1")
    assert rolled.returncode == 1, rolled.stderr
    record = json.loads(rolled.stdout)
    assert record["outcome"] == "ROLLED_BACK" and record["service_deployment_arn"].startswith("arn:aws:ecs:")
    failed, cause = rolled.stderr.strip().splitlines()[-2:]
    assert failed.startswith("opskit: release failed: ROLLED_BACK: ") and failed.endswith("ECS rolled back to web:2")
    assert "circuit breaker: " in failed
    assert cause.startswith("opskit: cause: container web did not run: CannotStartContainerError"), cause
