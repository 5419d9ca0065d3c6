"""What makes a checkout dirty for a release: tracked changes anywhere, untracked files inside the build context."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opskit.git import read_checkout


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\n")
    (root / "README").write_text("hello\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root


def test_a_clean_checkout_is_clean(repo: Path) -> None:
    checkout = read_checkout(repo / "app")
    assert not checkout.dirty and checkout.dirty_files == () and checkout.dirty_digest is None


def test_untracked_files_outside_the_build_context_do_not_count(repo: Path) -> None:
    (repo / "images.csv").write_text("exported\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").write_text("x\n")
    assert not read_checkout(repo / "app").dirty
    assert read_checkout(repo).dirty_files == ("docs/notes.md", "images.csv")  # the whole checkout is the context


def test_untracked_files_inside_the_build_context_count_and_are_named(repo: Path) -> None:
    (repo / "app" / "config").mkdir()
    (repo / "app" / "config" / "extra.json").write_text("{}\n")
    (repo / "app" / "debug.log").write_text("ignored by git\n")
    checkout = read_checkout(repo / "app")
    assert checkout.dirty
    assert checkout.dirty_files == ("app/config/extra.json",)


def test_tracked_changes_count_anywhere(repo: Path) -> None:
    (repo / "README").write_text("changed\n")
    checkout = read_checkout(repo / "app")
    assert checkout.dirty and checkout.dirty_files == ("README",)
    git(repo, "mv", "README", "README.txt")
    assert read_checkout(repo / "app").dirty_files == ("README.txt",)


def test_at_most_five_files_are_named(repo: Path) -> None:
    for n in range(8):
        (repo / "app" / f"new{n}.txt").write_text(f"{n}\n")
    checkout = read_checkout(repo / "app")
    assert len(checkout.dirty_files) == 8
    assert checkout.describe_dirt() == "app/new0.txt, app/new1.txt, app/new2.txt, app/new3.txt, app/new4.txt and 3 more"


def test_the_same_changes_give_the_same_digest(repo: Path) -> None:
    (repo / "app" / "extra.txt").write_text("a\n")
    first = read_checkout(repo / "app").dirty_digest
    assert read_checkout(repo / "app").dirty_digest == first
    (repo / "app" / "extra.txt").write_text("b\n")
    assert read_checkout(repo / "app").dirty_digest != first
