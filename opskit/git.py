"""The git boundary: what commit a checkout is at, and whether its tree is clean.

>>> checkout = read_checkout(".")                       # doctest: +SKIP
>>> checkout.sha, checkout.dirty
('3f2a9c1b2d4e...', False)
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import ConfigError


@dataclass(frozen=True)
class Checkout:
    root: Path
    sha: str  # the full 40-digit commit SHA of HEAD
    dirty: bool
    dirty_digest: str | None  # a digest of the uncommitted changes: the same changes give the same digest
    remote_url: str | None
    dirty_files: tuple[str, ...] = ()  # what makes it dirty, relative to the root: changed tracked files first

    def describe_dirt(self, most: int = 5) -> str:
        """The files that make the tree dirty, ``most`` of them by name: ``a.py, b.txt and 3 more``."""
        named = ", ".join(self.dirty_files[:most])
        more = len(self.dirty_files) - most
        return f"{named} and {more} more" if more > 0 else named


def _git(root: Path, *args: str) -> str:
    answer = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        raise subprocess.CalledProcessError(answer.returncode, args, answer.stdout, answer.stderr)
    return answer.stdout


def read_checkout(path: str | Path) -> Checkout:
    """Read HEAD and the state of the tree at ``path`` (any folder inside a git checkout)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: pass --path with the folder of your git checkout")
    try:
        root = Path(_git(folder, "rev-parse", "--show-toplevel").strip())
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed: install git, releases are tagged with the commit SHA") from exc
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"{folder} is not inside a git checkout: run from your repository or pass --path") from exc
    try:
        sha = _git(root, "rev-parse", "--verify", "HEAD^{commit}").strip()
    except subprocess.CalledProcessError as exc:
        raise ConfigError(
            f"{root} has no commit yet: commit your work, releases are tagged with the commit SHA"
        ) from exc
    # Tracked changes anywhere count (the commit would not say what was built); untracked files only inside the
    # build context, the only place a build can read them from.
    tracked = _status_entries(_git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no"))
    inside = folder.resolve().relative_to(root.resolve()).as_posix()
    untracked = [
        name
        for code, name in _status_entries(
            _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", inside or ".")
        )
        if code == "??"
    ]
    files = tuple(name for _, name in tracked) + tuple(untracked)
    dirty_digest = None
    if files:
        changes = hashlib.sha256("\0".join(files).encode())
        changes.update(_git(root, "diff", "HEAD", "--binary").encode())
        for name in untracked:
            if (root / name).is_file():
                changes.update(name.encode() + b"\0" + (root / name).read_bytes())
        dirty_digest = changes.hexdigest()
    try:
        remote = _git(root, "config", "--get", "remote.origin.url").strip() or None
    except subprocess.CalledProcessError:
        remote = None
    return Checkout(
        root=root,
        sha=sha,
        dirty=dirty_digest is not None,
        dirty_digest=dirty_digest,
        remote_url=remote,
        dirty_files=files,
    )


def _status_entries(porcelain: str) -> list[tuple[str, str]]:
    """(XY code, path) of each ``git status --porcelain -z`` entry; a rename's original path is skipped."""
    fields = porcelain.split("\0")
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        code, name = entry[:2], entry[3:]
        out.append((code, name))
        if "R" in code or "C" in code:
            i += 1  # the path it was renamed or copied from
    return out
