"""One progress protocol for everything that takes a while (release stages, syncs, cleanups).

Work reports :class:`ProgressEvent` objects to a callback; the CLI draws them as lines and bars, widgets as
progress bars and logs. A reporter must be quick and must not raise.

>>> seen = []
>>> report = seen.append
>>> report(ProgressEvent("push", "started", "pushing web:3f2a9c1b2d4e"))
>>> seen[0].stage, seen[0].state
('push', 'started')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["started", "running", "log", "done", "skipped", "failed"]


@dataclass(frozen=True)
class ProgressEvent:
    """``stage`` is the step's name; ``state`` says what happened to it.

    ``log`` events carry one line of output (a build log line, a new service event); ``running`` events may carry
    counts (``done`` of ``total``) and an estimate of the seconds left (``eta``). ``subject`` says whose step it is
    where one piece of work has several (the service of a release set), else "".
    """

    stage: str
    state: State
    message: str = ""
    done: int | None = None
    total: int | None = None
    eta: float | None = None
    subject: str = ""


Progress = Callable[[ProgressEvent], None]


def ignore(event: ProgressEvent) -> None:
    """The reporter for callers that do not watch."""


def about(subject: str, progress: Progress) -> Progress:
    """``progress`` with every event marked as ``subject``'s (see :attr:`ProgressEvent.subject`)."""
    return lambda event: progress(dataclasses.replace(event, subject=subject))
