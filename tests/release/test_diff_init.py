"""``opskit init`` and ``opskit diff`` over HTTP against the sandbox: the live revision written as a file reads
back the same, a real change shows where it is (exit 1), what ECS fills in by default is no change, values stay
masked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opskit.cli import main
from opskit.release.normalise import comparable, differences, minimal, normalised
from opskit.release.source import read_task_definition
from opskit.sandbox import Sandbox
from tests.conftest import canary
from tests.sandbox.test_services import manifest

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/web/database-url"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Cluster ``prod``: service ``web`` (bridge, EC2) runs ``web:1``, registered with what ECS defaults left out,
    and ``api`` (awsvpc, Fargate) runs ``api:1``."""
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, throttle=False) as sb:
        ecr = sb.client("ecr")
        ecr.create_repository(repositoryName="web")
        ecr.put_image(repositoryName="web", imageManifest=manifest("v1"), imageTag="v1")
        ecs = sb.client("ecs")
        ecs.create_cluster(clusterName="prod")
        register(sb, web_body(sb))
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web:1", desiredCount=1)
        register(sb, api_body(sb))
        ecs.create_service(
            cluster="prod",
            serviceName="api",
            taskDefinition="api:1",
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}},
        )
        yield sb


def web_body(sandbox: Sandbox, **container: Any) -> dict[str, Any]:
    """What a team keeps: no essential, cpu, protocol, networkMode or empty lists."""
    return {
        "family": "web",
        "containerDefinitions": [
            {
                "name": "web",
                "image": f"{sandbox.registry_host}/web:v1",
                "memory": 64,
                "portMappings": [{"containerPort": 8080}],
                "environment": [{"name": "TOKEN", "value": canary("token")}, {"name": "LOG_LEVEL", "value": "info"}],
                "secrets": [{"name": "DATABASE_URL", "valueFrom": ARN}],
                **container,
            }
        ],
        "tags": [{"key": "team", "value": "payments"}, {"key": "commit", "value": "0a8b1c9ee7e7"}],
    }


def api_body(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "family": "api",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {"name": "api", "image": f"{sandbox.registry_host}/web:v1", "portMappings": [{"containerPort": 9000}]}
        ],
    }


def register(sandbox: Sandbox, body: dict[str, Any]) -> str:
    answer = sandbox.aws().call_json("ecs", "RegisterTaskDefinition", body)
    return str(answer["taskDefinition"]["taskDefinitionArn"]).rsplit("/", 1)[-1]


def opskit(sandbox: Sandbox, *args: str, service: str = "web") -> Result:
    return CliRunner().invoke(main, [*args, "--cluster", "prod", "--service", service], env=sandbox.env)


def write(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body, indent=2))
    return path


def live(sandbox: Sandbox, name: str) -> dict[str, Any]:
    return sandbox.aws().call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": name, "include": ["TAGS"]})


# -- init, then diff ---------------------------------------------------------------------------------------------------
def test_init_writes_the_live_revision_and_diff_then_finds_it_the_same(sandbox: Sandbox, tmp_path: Path) -> None:
    result = opskit(sandbox, "init", "--output-dir", str(tmp_path / ".aws"))
    assert result.exit_code == 0, result.output
    assert "web:1" in result.stdout
    text = (tmp_path / ".aws" / "task-definition.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "family": "web",\n  "containerDefinitions": [\n')
    written = json.loads(text)
    assert list(written) == ["family", "containerDefinitions", "tags"]  # the register form, in the model's order
    (container,) = written["containerDefinitions"]
    assert list(container)[:2] == ["name", "image"]
    assert container["portMappings"] == [{"containerPort": 8080}]  # protocol tcp is ECS's default
    assert not {"essential", "cpu", "mountPoints", "volumesFrom"} & set(container)
    assert [v["name"] for v in container["environment"]] == ["LOG_LEVEL", "TOKEN"]  # a stable order
    assert written["tags"] == [{"key": "team", "value": "payments"}]  # the release sets its commit tag itself
    assert not {"volumes", "placementConstraints", "revision", "status", "taskDefinitionArn"} & set(written)

    described = live(sandbox, "web:1")
    found = read_task_definition(tmp_path / ".aws" / "task-definition.json")
    assert normalised(found.body) == normalised(described["taskDefinition"])
    assert comparable(found.body, found.tags) == comparable(described["taskDefinition"], described["tags"])

    settings = json.loads((tmp_path / ".aws" / "service.json").read_text())
    assert settings["desiredCount"] == 1 and settings["deploymentController"] == {"type": "ECS"}
    assert "deploymentConfiguration" in settings and "serviceName" not in settings

    for output_format in ("table", "json"):
        result = opskit(
            sandbox, "diff", "--task-definition", str(tmp_path / ".aws/task-definition.json"), "--format", output_format
        )
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "equal": True,
        "live": "web:1",
        "file": str(tmp_path / ".aws/task-definition.json"),
        "differences": [],
    }


def test_init_of_an_awsvpc_service_reads_back_the_same(sandbox: Sandbox, tmp_path: Path) -> None:
    result = opskit(sandbox, "init", "--output-dir", str(tmp_path), service="api")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "task-definition.json").read_text())
    assert written["containerDefinitions"][0]["portMappings"] == [{"containerPort": 9000}]  # hostPort is 9000
    assert json.loads((tmp_path / "service.json").read_text())["launchType"] == "FARGATE"
    result = opskit(sandbox, "diff", "--task-definition", str(tmp_path / "task-definition.json"), service="api")
    assert result.exit_code == 0, result.output


def test_init_refuses_to_overwrite_without_force(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "service.json").write_text("kept\n")
    result = opskit(sandbox, "init", "--output-dir", str(tmp_path))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == f"opskit: error: {tmp_path / 'service.json'} already exists: pass --force to overwrite it"
    assert (tmp_path / "service.json").read_text() == "kept\n" and not (tmp_path / "task-definition.json").exists()

    result = opskit(sandbox, "init", "--output-dir", str(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "service.json").read_text())["desiredCount"] == 1


# -- diff --------------------------------------------------------------------------------------------------------------
def test_a_changed_memory_is_a_difference_at_its_path(sandbox: Sandbox, tmp_path: Path) -> None:
    path = write(tmp_path / "td.json", web_body(sandbox, memory=128))
    result = opskit(sandbox, "diff", "--task-definition", str(path))
    assert result.exit_code == 1, result.output
    assert '-      "memory": 64,' in result.stdout and '+      "memory": 128,' in result.stdout
    assert result.stdout.splitlines()[0] == "--- web:1"
    assert result.stdout.strip().splitlines()[-1].endswith(": containerDefinitions[web].memory")

    result = opskit(sandbox, "diff", "--task-definition", str(path), "--format", "json")
    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    assert answer["equal"] is False
    assert answer["differences"] == [{"path": "containerDefinitions[web].memory", "live": 64, "file": 128}]


def test_what_ecs_fills_in_by_default_is_no_difference(sandbox: Sandbox, tmp_path: Path) -> None:
    spelled_out = web_body(
        sandbox,
        essential=True,
        cpu=0,
        portMappings=[{"containerPort": 8080, "protocol": "tcp"}],
        mountPoints=[],
        volumesFrom=[],
    )
    spelled_out["networkMode"] = "bridge"
    spelled_out["volumes"] = []
    spelled_out["requiresCompatibilities"] = []  # left out of DescribeTaskDefinition's answer
    spelled_out["containerDefinitions"][0]["environment"].reverse()  # order means nothing
    spelled_out["tags"].reverse()
    result = opskit(sandbox, "diff", "--task-definition", str(write(tmp_path / "td.json", spelled_out)))
    assert result.exit_code == 0, result.output
    assert "are the same" in result.stdout

    # and the other way round: a live revision that spelled them out, a file that leaves them out
    ecs = sandbox.client("ecs")
    ecs.update_service(cluster="prod", service="web", taskDefinition=register(sandbox, spelled_out))
    result = opskit(sandbox, "diff", "--task-definition", str(write(tmp_path / "kept.json", web_body(sandbox))))
    assert result.exit_code == 0, result.output

    # under awsvpc the host port is the container's: one spelled out is no change, another one is
    api = api_body(sandbox)
    api["containerDefinitions"][0]["portMappings"] = [{"containerPort": 9000, "hostPort": 9000}]
    result = opskit(sandbox, "diff", "--task-definition", str(write(tmp_path / "api.json", api)), service="api")
    assert result.exit_code == 0, result.output
    api["containerDefinitions"][0]["portMappings"] = [{"containerPort": 9000, "hostPort": 9001}]
    result = opskit(
        sandbox, "diff", "--task-definition", str(write(tmp_path / "api.json", api)), "--format", "json", service="api"
    )
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["differences"] == [
        {"path": "containerDefinitions[api].portMappings[0].hostPort", "live": 9000, "file": 9001}
    ]


def test_values_stay_masked_in_the_diff(sandbox: Sandbox, tmp_path: Path) -> None:
    changed = web_body(sandbox, memory=128)
    changed["containerDefinitions"][0]["environment"][0]["value"] = canary("new-token")
    changed["containerDefinitions"][0]["secrets"][0]["valueFrom"] = ARN.replace("database-url", "other")
    changed["containerDefinitions"][0]["environment"].append({"name": "EXTRA", "value": canary("extra")})
    path = write(tmp_path / "td.json", changed)
    for output_format in ("table", "json"):
        result = opskit(sandbox, "diff", "--task-definition", str(path), "--format", output_format)
        assert result.exit_code == 1, result.output
        assert not any(canary(label) in result.output for label in ("token", "new-token", "extra"))
        assert ARN not in result.output and "parameter/web/other" not in result.output
        assert "********" in result.stdout
    table = opskit(sandbox, "diff", "--task-definition", str(path)).stdout
    assert '+          "name": "EXTRA",\n+          "value": "********"' in table  # the diff lines, masked
    assert "environment[TOKEN].value (masked)" in table  # a change only a masked value shows: where, never what
    masked = [d for d in json.loads(result.stdout)["differences"] if d["path"].endswith((".value", ".valueFrom"))]
    assert [d["path"] for d in masked] == [
        "containerDefinitions[web].environment[TOKEN].value",
        "containerDefinitions[web].secrets[DATABASE_URL].valueFrom",
    ]
    assert all(d["live"] == d["file"] == "********" for d in masked)


def test_without_a_file_the_live_revision_is_compared_with_the_newest_active_one(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = opskit(sandbox, "diff")
    assert result.exit_code == 0, result.output
    assert "web:1 and web:1 are the same" in result.stdout

    assert register(sandbox, web_body(sandbox, memory=96)) == "web:2"  # registered, not deployed
    result = opskit(sandbox, "diff", "--format", "json")
    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    assert (answer["live"], answer["file"]) == ("web:1", "web:2")
    assert answer["differences"] == [{"path": "containerDefinitions[web].memory", "live": 64, "file": 96}]


def test_bad_input_is_one_line_and_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    for args in (
        ("--task-definition", str(tmp_path / "missing.json")),
        ("--var", "env=prod"),
        ("--task-definition", str(write(tmp_path / "td.json", {"family": "web"}))),
    ):
        result = opskit(sandbox, "diff", *args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("opskit: error: ")


# -- the normalisation on its own --------------------------------------------------------------------------------------
def test_a_minimal_body_normalises_to_the_full_one_and_templates_read_back_literally(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    body = web_body(sandbox, command=["sh", "-c", "echo {{ not a template }} {% raw %} {# nor this #}"])
    name = register(sandbox, body)
    sandbox.client("ecs").update_service(cluster="prod", service="web", taskDefinition=name)
    result = opskit(sandbox, "init", "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    found = read_task_definition(tmp_path / "task-definition.json")
    assert found.body["containerDefinitions"][0]["command"][2] == "echo {{ not a template }} {% raw %} {# nor this #}"
    described = live(sandbox, name)["taskDefinition"]
    assert normalised(minimal(described)) == normalised(described)
    assert differences(normalised(described), normalised(found.body)) == []


# -- the README's recipe -----------------------------------------------------------------------------------------------
def test_the_readme_recipe_runs_against_the_demo_sandbox(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Task definition in the repository\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match and "opskit init" in match.group(1) and "opskit diff" in match.group(1)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPSKIT_STATE_DIR": str(tmp_path / "state"),
        "OPSKIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    # Its own session: a recipe that hangs is ended with the sandbox it started in the background.
    recipe = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", match.group(1)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = recipe.communicate(timeout=300)
    finally:
        if recipe.poll() is None:
            os.killpg(recipe.pid, signal.SIGKILL)
            recipe.communicate()
    assert recipe.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "are the same" in stdout and '+  "memory": "1024",' in stdout
    assert stdout.strip().splitlines()[-2].endswith(": memory") and stdout.endswith("exit 1\n")
    assert (tmp_path / ".aws" / "task-definition.json").exists() and (tmp_path / ".aws" / "service.json").exists()


def test_the_images_a_release_sets_are_not_drift_unless_asked(sandbox: Sandbox, tmp_path: Path) -> None:
    """The file names the image a release replaces (another tag of the same repository): the same, as a release
    would register it; with --images, or an image from another repository, a difference."""
    file = tmp_path / "task-definition.json"
    retagged = web_body(sandbox, image=f"{sandbox.registry_host}/web:0a8b1c9ee7e7")
    write(file, retagged)
    assert opskit(sandbox, "diff", "--task-definition", str(file)).exit_code == 0
    strict = opskit(sandbox, "diff", "--task-definition", str(file), "--images", "--format", "json")
    assert strict.exit_code == 1
    assert [d["path"] for d in json.loads(strict.stdout)["differences"]] == ["containerDefinitions[web].image"]
    write(file, web_body(sandbox, image="docker.io/library/web:v1"))
    other = opskit(sandbox, "diff", "--task-definition", str(file), "--format", "json")
    assert other.exit_code == 1 and json.loads(other.stdout)["differences"][0]["path"].endswith("].image")
