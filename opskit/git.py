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
    status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    dirty_digest = None
    if status.strip():
        changes = hashlib.sha256(status.encode())
        changes.update(_git(root, "diff", "HEAD", "--binary").encode())
        for line in status.splitlines():
            if line.startswith("?? "):
                untracked = root / line[3:].strip().strip('"')
                if untracked.is_file():
                    changes.update(untracked.read_bytes())
        dirty_digest = changes.hexdigest()
    try:
        remote = _git(root, "config", "--get", "remote.origin.url").strip() or None
    except subprocess.CalledProcessError:
        remote = None
    return Checkout(root=root, sha=sha, dirty=dirty_digest is not None, dirty_digest=dirty_digest, remote_url=remote)
