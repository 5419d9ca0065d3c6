"""What an apply must not touch, decided again right before each action.

The plan protected what was in use and every rollback target when it was made. Since then services may have moved:
a revision deployed after the plan is in use now, or was, and is a rollback target once the service moves on. So:

- when a run starts (or resumes), each service's deployment history is read again and its rollback targets
  (``rollback_depth`` of them) are protected, covering whatever happened while no cleanup was watching;
- right before each action, what is in use is read again (services' deployments, wanted tasks); a revision of the
  plan seen in use stays protected for the rest of the run, and the journal remembers it for a resumed run;
- a family whose service is being released (its release lock is held) is left alone while the lock is held: the
  release may be registering or deploying a revision there, or reusing one the plan would retire.

>>> guard = Guard(aws, pacer, run, plan)                                      # doctest: +SKIP
>>> guard.start()  # doctest: +SKIP
>>> guard.check(["web:4", "web:5"])  # doctest: +SKIP
{'web:4': 'used by prod/web (PRIMARY) since the plan'}
"""

from __future__ import annotations

from typing import Any

from opskit.aws import Aws
from opskit.cleanup.live import LiveState, Snapshot
from opskit.cleanup.plan import CleanupPlan
from opskit.cleanup.revisions import rollback_protection
from opskit.cleanup.runs import CleanupRun
from opskit.library import RevisionLibrary
from opskit.library.pacing import Pacer

EVENT = "protected"


class Guard:
    def __init__(self, aws: Aws, pacer: Pacer, run: CleanupRun, plan: CleanupPlan, rate_scale: float = 1.0) -> None:
        self.aws = aws
        self.pacer = pacer
        self.run = run
        self.plan = plan
        self.rate_scale = rate_scale
        self.live = LiveState(aws, pacer)
        self.acting = {d.key for d in plan.revisions if d.acts}
        self.sticky: dict[str, str] = {}
        for entry in run.entries(EVENT):
            self.sticky.update(entry.get("revisions") or {})
        self.last: Snapshot | None = None

    def start(self) -> None:
        """Protect every service's rollback targets as they are now (deployments since the plan included)."""
        with RevisionLibrary(
            self.aws, cache_path=":memory:", account_id="cleanup", rate_scale=self.rate_scale
        ) as library:
            library.pacer = self.pacer  # the run's own buckets: what they learn here serves the re-checks too
            library.sync(include=["services"])
            targets = rollback_protection(
                library.service_records(), library.deployment_records(), self.plan.options.rollback_depth
            )
        self._remember({key: f"{why} (now)" for key, why in targets.items() if key in self.acting})

    def check(self, keys: list[str]) -> dict[str, str]:
        """Of ``keys`` (family:revision), those that must be left alone now, with why."""
        snapshot = self.live.read()
        self.last = snapshot
        using = snapshot.in_use
        seen = {key for key in (*using.deployments, *using.tasks) if key in self.acting}
        self._remember({key: f"{using.reason(key)} during the cleanup" for key in seen})
        out = {}
        for key in keys:
            why = using.reason(key)
            if why:
                out[key] = f"{why} since the plan"
            elif key in self.sticky:
                out[key] = self.sticky[key]
            elif key.split(":")[0] in snapshot.releasing:
                out[key] = snapshot.releasing[key.split(":")[0]]  # for now: the next run decides again
        return out

    def _remember(self, found: dict[str, Any]) -> None:
        new = {key: str(why) for key, why in found.items() if key not in self.sticky}
        if new:
            self.run.journal.write(EVENT, revisions=new)  # an observation, written when it was made
            self.sticky.update(new)


__all__ = ["Guard"]
