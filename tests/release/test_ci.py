"""A release tells GitHub Actions what it did, as GitHub reads it: the step summary (Markdown), the step outputs
(``$GITHUB_OUTPUT``'s ``name=value`` and ``name<<DELIMITER`` lines) and an ``::error`` annotation on failure. The
command runs as a process against the sandbox, with a real engine and registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opskit.release.ci import annotation, detect, outputs
from opskit.release.record import ReleaseRecord
from tests.release.conftest import World, unstartable


def github_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` read as the runner reads it."""
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def release(
    world: World, tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "CODEBUILD_")) and k != "CI"}
    full = base | world.sandbox.env | {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)} | env
    command = [sys.executable, "-m", "opskit", "release", "--cluster", "prod", "--service", "web"]
    done = subprocess.run(
        [*command, "--path", str(world.app), "--poll-interval", "0.1", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )
    return done, summary, output


def test_a_release_on_github_actions_writes_its_summary_and_outputs(world: World, tmp_path: Path) -> None:
    done, summary, output = release(world, tmp_path, GITHUB_ACTIONS="true")
    assert done.returncode == 0, done.stderr
    values = github_outputs(output.read_text())
    assert values["outcome"] == "COMPLETED" and values["exit_code"] == "0"
    assert values["revision_arn"].endswith(":task-definition/web:2") and values["digest"].startswith("sha256:")
    assert values["service_deployment_arn"].startswith("arn:aws:ecs:")
    text = summary.read_text()
    assert text.startswith("### ✅ release ") and "`prod/web`: COMPLETED" in text.splitlines()[0]
    assert f"| revision | {values['revision_arn']} |" in text and "Stages: build " in text
    assert "::error" not in done.stderr


def test_a_failed_release_is_an_annotation_and_its_cause_in_the_summary(world: World, tmp_path: Path) -> None:
    world.commit("cannot start", Dockerfile=unstartable((world.app / "Dockerfile").read_text()))
    done, summary, output = release(world, tmp_path, GITHUB_ACTIONS="true")
    assert done.returncode == 1
    assert github_outputs(output.read_text())["outcome"] == "ROLLED_BACK"
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("::error ")]
    assert error.startswith("::error title=opskit release of web%3A ROLLED_BACK::Circuit breaker")
    assert "Cause: container web did not run" in error
    assert "<summary>Why it failed</summary>" in summary.read_text()


def test_outside_github_nothing_is_written_unless_asked(world: World, tmp_path: Path) -> None:
    done, summary, output = release(world, tmp_path, "--no-ci", GITHUB_ACTIONS="true")
    assert done.returncode == 0, done.stderr
    assert not summary.exists() and not output.exists()
    world.commit("again", marker="again")
    done, summary, output = release(world, tmp_path, "--ci")  # the files named, GITHUB_ACTIONS not set
    assert done.returncode == 0, done.stderr
    assert github_outputs(output.read_text())["outcome"] == "COMPLETED"


def test_the_values_are_written_as_github_reads_them() -> None:
    record = ReleaseRecord("release", "prod", "web", "a" * 40, None, None, None, None, "ROLLED_BACK", "x\ny", "now")
    record.revision_arn = "arn:aws:ecs:us-east-1:1:task-definition/web:3\nsecond line"
    values = github_outputs(outputs(record))
    assert values["revision_arn"] == "arn:aws:ecs:us-east-1:1:task-definition/web:3\nsecond line"
    assert values["exit_code"] == "1" and values["image"] == ""
    assert annotation(record) == "::error title=opskit release of web%3A ROLLED_BACK::x%0Ay"
    assert detect({"GITHUB_ACTIONS": "true"}) == "github" and detect({"CODEBUILD_BUILD_ID": "b:1"}) == "codebuild"
    assert detect({"CI": "true"}) == "ci" and detect({}) is None
