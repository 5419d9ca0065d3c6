"""The CI examples (examples/github-actions/release.yml, examples/codebuild/buildspec.yml) stay true: each file is
read as its CI system reads it (YAML), and its opskit commands run, as written, against a sandbox with a real engine
and registry (service prod/web), in a git checkout of the example app: the policy suite (exit 0, or 1 for the
problems it finds) and the release (exit 0), whose outputs are the ones the workflow's later steps refer to."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import busybox_path
from tests.release.conftest import World, git
from tests.release.test_ci import github_outputs

pytestmark = [pytest.mark.docker, pytest.mark.registry]
ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"check": {0, 1}, "release": {0}}  # check exits 1 for the problems it finds; a release must work


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    app = tmp_path / "example" / "app"
    shutil.copytree(ROOT / "examples" / "hello", app)
    shutil.copy(busybox_path(), app / "busybox")
    git(app, "init", "-q")
    git(app, "add", "-A")
    git(app, "commit", "-qm", "the example app")
    return app


def github_commands() -> tuple[list[str], list[str]]:
    """The workflow's opskit commands, and the outputs of the release step that later steps read."""
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "release.yml").read_text())
    steps = workflow["jobs"]["release"]["steps"]
    runs = [s["run"] for s in steps if "run" in s and s["run"].startswith("opskit ")]
    release_id = next(s["id"] for s in steps if s.get("run", "").startswith("opskit release"))
    read = [m for s in steps for m in re.findall(rf"steps\.{release_id}\.outputs\.(\w+)", s.get("run", ""))]
    return runs, read


def codebuild_commands() -> list[str]:
    spec = yaml.safe_load((ROOT / "examples" / "codebuild" / "buildspec.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    return [c for c in commands if c.startswith("opskit ")]


def run(command: str, world: World, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``command`` through bash, as the runner does, with the opskit of this checkout on PATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_")) and k != "CI"}
    shim = cwd.parent / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "opskit").write_text(f'#!/bin/sh\nexec {sys.executable} -m opskit "$@"\n')
    (shim / "opskit").chmod(0o755)
    full = base | world.sandbox.env | {"CLUSTER": "prod", "SERVICE": "web", "PATH": f"{shim}:{os.environ['PATH']}"}
    full |= env | {"OPSKIT_CACHE_DIR": str(cwd.parent / "cache")}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


def test_the_github_workflow_runs_as_written(world: World, checkout: Path, tmp_path: Path) -> None:
    runs, read = github_commands()
    assert [r.split()[1] for r in runs] == ["check", "release"]
    output, summary = tmp_path / "output", tmp_path / "summary"
    github = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    for command in runs:
        done = run(command, world, checkout, **github)
        assert done.returncode in EXPECTED[command.split()[1]], f"{command}: {done.stderr[-2000:]}"
    values = github_outputs(output.read_text())
    assert read and all(values.get(name) for name in read), (read, values)  # what later steps read is there
    assert values["outcome"] == "COMPLETED" and "COMPLETED" in summary.read_text()


def test_the_codebuild_buildspec_runs_as_written(world: World, checkout: Path) -> None:
    commands = codebuild_commands()
    assert [c.split()[1] for c in commands] == ["check", "release"]
    for command in commands:
        done = run(command, world, checkout, CODEBUILD_BUILD_ID="opskit:1")
        assert done.returncode in EXPECTED[command.split()[1]], f"{command}: {done.stderr[-2000:]}"
