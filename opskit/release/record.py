"""What a release (or rollback) did: returned by apply, shown as an object, a DataFrame row and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ReleaseRecord:
    kind: str  # "release" or "rollback"
    cluster: str
    service: str
    commit: str | None
    image: str | None
    digest: str | None
    revision_arn: str | None
    deployment_id: str | None
    outcome: str  # an Outcome's value (opskit.release.rollout): COMPLETED, ROLLED_BACK, ... or IN_PROGRESS
    reason: str
    started_at: str
    finished_at: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    service_deployment_arn: str | None = None  # the service deployment ECS recorded, whose status is the verdict
    failure: dict[str, Any] | None = None  # why it failed (opskit.release.failure.Failure.to_dict), when it did

    @property
    def ok(self) -> bool:
        """It did what was asked: ECS recorded the deployment SUCCESSFUL, or it got where --wait-until said."""
        from opskit.release.rollout import SUCCESSES

        return self.outcome in SUCCESSES

    @property
    def exit_code(self) -> int:
        """What the command exits with for this record (documented with :class:`~opskit.release.rollout.Outcome`)."""
        from opskit.release.rollout import Outcome

        return Outcome(self.outcome).exit_code if self.outcome in Outcome.__members__ else 1

    @property
    def cause(self) -> str:
        """Why it failed in one line (the failing container's exit code and log line, the hook, the alarm); "" when
        it did not fail or nothing more than :attr:`reason` is known."""
        return str((self.failure or {}).get("cause") or "")

    def failure_frame(self) -> pd.DataFrame:
        """Why it failed, one row per thing that says so (kind, subject, status, detail): the rollback reason, the
        circuit breaker, the alarms, the hooks, each stopped task and container, the log's last lines."""
        from opskit.release.failure import FRAME_COLUMNS, Failure

        if self.failure is None:
            import pandas as pd

            return pd.DataFrame(columns=FRAME_COLUMNS)
        return Failure.from_dict(self.failure).to_frame()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def row(self) -> dict[str, Any]:
        """The record as one flat row: its fields (the failure as its ``cause``), and ``<stage>_seconds`` for each
        stage."""
        row = {k: v for k, v in self.to_dict().items() if k not in ("stages", "failure")}
        if self.cause:
            row["cause"] = self.cause
        row.update({f"{stage}_seconds": seconds for stage, seconds in self.stages.items()})
        return row

    def to_text(self) -> str:
        """One ``name  value`` line per field (``started_at`` left out: the progress lines said when)."""
        row = {k: v for k, v in self.row().items() if k != "started_at"}
        width = max(len(name) for name in row)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in row.items())

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame([self.row()])
        for column in ("started_at", "finished_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
