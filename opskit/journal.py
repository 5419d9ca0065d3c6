"""Journals: append-only records on disk of what an apply has done, so an interrupted run can resume.

An entry is written only after the action it records succeeded (and is flushed to disk before the next action
starts), so a journal never claims what did not happen; at worst it misses the last action, which the apply
finds done when it checks the world again.

>>> journal = Journal(tmp_path / "run.jsonl")            # doctest: +SKIP
>>> journal.write("pushed", digest="sha256:...")
>>> [e["event"] for e in journal.entries()]
['pushed']
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError


def state_dir() -> Path:
    """Where opskit keeps journals: $OPSKIT_STATE_DIR, else the XDG state folder."""
    explicit = os.environ.get("OPSKIT_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opskit"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot write journals under {path.parent}: set OPSKIT_STATE_DIR to a writable folder"
            ) from exc

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": time.time(), **fields}, default=str)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self, *events: str) -> Iterator[dict[str, Any]]:
        """The entries in order; with ``events``, only entries of those events, and the other lines are not even
        parsed (one line can hold a whole plan: reading a run's progress must not load it again and again)."""
        if not self.path.exists():
            return
        heads = tuple(json.dumps({"event": event})[:-1] + "," for event in events)  # how write() starts a line
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if heads and not line.startswith(heads):
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    return  # a torn last line from a crash: everything before it stands
