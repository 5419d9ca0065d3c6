"""The README's recipes work as written: each shell block is run by bash, in a git checkout holding what it names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def block_after(heading: str) -> str:
    """The first ```sh block of the README section ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, heading
    return match.group(1)


def checkout_with(tmp_path: Path, *paths: str) -> Path:
    """A git checkout (one commit) holding ``paths`` of this repository, as a user's clone would."""
    root = tmp_path / "checkout"
    for path in paths:
        shutil.copytree(ROOT / path, root / path, ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "the app"], check=True)
    return root


@pytest.mark.docker
def test_the_releasing_recipe(tmp_path: Path) -> None:
    recipe = block_after("Releasing")
    assert "opskit release" in recipe and "opskit rollback" in recipe
    root = checkout_with(tmp_path, "examples/hello")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPSKIT_STATE_DIR": str(tmp_path / "state"),
        "OPSKIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    answer = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    assert "COMPLETED" in answer.stdout + answer.stderr
