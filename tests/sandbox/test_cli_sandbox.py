"""`opskit sandbox` as users run it: a process that prints its environment, serves, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NAMES = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
WAIT = 60.0  # seconds the sandbox may take to start before a test gives up


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


def sourced(text: str) -> dict[str, str]:
    """What `. FILE` sets from `export NAME=value` lines (shell-quoted values)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        export, assignment = shlex.split(line)
        assert export == "export", line
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


def test_env_file_appears_whole_once_the_sandbox_answers(tmp_path: Path) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    env_file = folder / "sandbox.env"
    stdout = tmp_path / "stdout"
    with open(stdout, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "opskit", "sandbox", "--empty", "--time-scale", "5", "--env-file", str(env_file)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        reads: list[str] = []
        deadline = time.monotonic() + WAIT
        # Read it as often as a waiting shell could: each read finds no file, or the whole file.
        while len(reads) < 50 and time.monotonic() < deadline:
            try:
                reads.append(env_file.read_text())
            except FileNotFoundError:
                assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.002)
        assert len(reads) == 50, "the environment file did not appear"
        assert len(set(reads)) == 1 and reads[0].endswith("\n"), set(reads)
        env = sourced(reads[0])
        assert set(NAMES) <= set(env) and env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert stdout.read_text() == reads[0]  # the same lines on stdout, as without --env-file
        assert os.listdir(folder) == ["sandbox.env"]  # renamed into place, nothing left beside it
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds the sandbox's secret access key
        assert aws(env, "ecs", "create-cluster", "--cluster-name", "from-the-env-file")["cluster"]["status"] == "ACTIVE"
        assert aws(env, "ecs", "list-clusters")["clusterArns"][0].endswith(":cluster/from-the-env-file")

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert not env_file.exists()  # no environment left behind that points at a stopped sandbox
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_readme_recipe_waits_for_the_env_file_in_bash(tmp_path: Path) -> None:
    recipe = (
        "opskit sandbox --empty --time-scale 60 --env-file sandbox.env >/dev/null 2>&1 &\n"
        "while [ ! -s sandbox.env ] && kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./sandbox.env\n"
        "aws ecs create-cluster --cluster-name from-bash --output json >/dev/null\n"
        "aws ecs list-clusters --output json\n"
        "kill %1; wait\n"
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # opskit and aws of this venv
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"PATH": path}
    answer = subprocess.run(
        ["bash", "-euc", recipe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["clusterArns"][0].endswith(":cluster/from-bash")
    assert os.listdir(tmp_path) == []  # the file went with the sandbox


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing/sandbox.env", "the folder of --env-file {path} does not exist: create it, or pass a file in"),
        (".", "--env-file {path} is a folder: pass the path of a file in it"),
    ],
)
def test_an_env_file_that_cannot_be_written_is_one_line(tmp_path: Path, where: str, message: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "opskit", "sandbox", "--empty", "--env-file", where],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 2 and answer.stdout == ""  # refused before a sandbox started
    (line,) = answer.stderr.splitlines()
    assert line.startswith("opskit: error: " + message.format(path=(tmp_path / where).absolute())), line
