"""`opskit sandbox` as users run it: a process that prints its environment, serves, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit", "sandbox", "--empty", "--time-scale", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env: dict[str, str] = {}
    assert process.stdout is not None
    while "AWS_SECRET_ACCESS_KEY" not in env:
        line = process.stdout.readline()
        assert line.startswith("export "), (line, process.stderr.read() if process.poll() is not None else "")
        name, _, value = line.removeprefix("export ").strip().partition("=")
        env[name] = value
    yield process, env
    if process.poll() is None:
        process.kill()
        process.wait()


def aws(env: dict[str, str], *args: str) -> dict:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env
    answer = subprocess.run(
        ["aws", *args, "--output", "json"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(answer.stdout or "{}")


def test_prints_the_environment_and_serves_the_aws_cli(
    served: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, env = served
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    for _ in range(3):
        aws(
            env,
            "ecs",
            "register-task-definition",
            "--family",
            "web",
            "--container-definitions",
            '[{"name":"a","image":"x:1","memory":64}]',
        )
    first_page = aws(env, "ecs", "list-task-definitions", "--max-items", "2")
    assert len(first_page["taskDefinitionArns"]) == 2 and first_page["NextToken"]
    body = aws(env, "ecs", "describe-task-definition", "--task-definition", "web:3")["taskDefinition"]
    assert body["registeredAt"] and body["revision"] == 3

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "stopped" in process.stderr.read()  # type: ignore[union-attr]


def test_a_taken_port_is_one_line_and_a_nonzero_exit(
    served: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _, env = served
    port = env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]
    answer = subprocess.run(
        [sys.executable, "-m", "opskit", "sandbox", "--empty", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 2
    assert answer.stderr.strip().splitlines() == [
        f"opskit: error: port {port} on 127.0.0.1 is taken: pass another --port, or 0 for any free port"
    ]
