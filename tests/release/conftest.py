"""A service ready to be released to: cluster ``prod``, service ``web`` (circuit breaker with rollback) running a
bootstrap image from the IMMUTABLE repository ``web``, and a git checkout of an app that builds FROM scratch."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opskit.aws import Aws
from opskit.gateway import RegistryAuth
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.scheduler import STABILIZE_SECONDS
from tests.conftest import make_context


@dataclass
class World:
    sandbox: Sandbox
    aws: Aws
    app: Path
    uri: str

    @property
    def ecs(self) -> Any:
        return self.aws.client("ecs")

    @property
    def ecr(self) -> Any:
        return self.aws.client("ecr")

    def service(self) -> dict[str, Any]:
        return self.ecs.describe_services(cluster="prod", services=["web"])["services"][0]

    def commit(self, message: str = "change", **files: str) -> str:
        for name, text in files.items():
            (self.app / name).write_text(text)
        git(self.app, "add", "-A")
        git(self.app, "commit", "-qm", message)
        return git(self.app, "rev-parse", "HEAD").strip()


def unstartable(dockerfile: str) -> str:
    """``dockerfile`` with a command that does not exist: its containers cannot start, so their tasks never run, and
    the circuit breaker (which a task that runs a while before it exits resets, as on ECS) trips."""
    return re.sub(r"^CMD .*$", 'CMD ["/bin/no-such-program"]', dockerfile, flags=re.MULTILINE)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def push_image(sandbox: Sandbox, docker_client: Any, context: Path, uri: str, tag: str) -> None:
    docker_client.images.build(path=str(context), tag=f"{uri}:{tag}", rm=True)
    data = sandbox.client("ecr").get_authorization_token()["authorizationData"][0]
    auth = RegistryAuth.from_ecr(data).docker_config()
    for chunk in docker_client.api.push(uri, tag=tag, auth_config=auth, stream=True, decode=True):
        assert "error" not in chunk, chunk


@pytest.fixture
def world(sandbox: Sandbox, docker_client: Any, tmp_path: Path) -> World:
    return build_release_world(sandbox, docker_client, tmp_path)


def build_release_world(sandbox: Sandbox, docker_client: Any, tmp_path: Path) -> World:
    """Cluster prod, service web on web:1 (a pushed bootstrap image, its rollout COMPLETED), and a git checkout
    under ``tmp_path``."""
    app = make_context(tmp_path / "app", marker="v1")
    git(app, "init", "-q")
    git(app, "add", "-A")
    git(app, "commit", "-qm", "first")
    ecr = sandbox.client("ecr")
    uri = ecr.create_repository(repositoryName="web", imageTagMutability="IMMUTABLE")["repository"]["repositoryUri"]
    push_image(sandbox, docker_client, make_context(tmp_path / "bootstrap", marker="bootstrap"), uri, "bootstrap")
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "web", "image": f"{uri}:bootstrap", "memory": 64, "essential": True}],
    )
    ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition="web:1",
        desiredCount=2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    ecs.get_waiter("services_stable").wait(cluster="prod", services=["web"], WaiterConfig={"Delay": 0.2})
    world = World(sandbox=sandbox, aws=sandbox.aws(), app=app, uri=uri)
    settle_rollout(world)
    return world


def settle_rollout(world: World) -> None:
    """Move the sandbox's clock on until web's only deployment is COMPLETED, so that a release never meets it still
    in progress (and refuses, rightly). Its tasks run once they are placed; ECS calls the rollout done once they
    have been up a while (30 sandbox seconds), which wall time alone reaches (at 60x) in half a second, or not,
    depending on the machine's load."""
    for _ in range(10):
        deployments = [(d["status"], d.get("rolloutState")) for d in world.service()["deployments"]]
        if deployments == [("PRIMARY", "COMPLETED")]:
            return
        world.sandbox.clock.advance(STABILIZE_SECONDS)
    pytest.fail(f"web's rollout did not complete: {deployments}")
