"""Release: one commit -> one image tagged with its SHA -> one revision -> one deployment; and rollback.

>>> plan = plan_release(aws, ReleaseOptions(cluster="prod", service="web"))   # doctest: +SKIP
>>> record = apply_release(plan, aws, progress=print)
>>> record.ok, record.revision_arn
"""

from opskit.release.apply import apply_release
from opskit.release.plan import DEFAULT_SHA_LENGTH, ReleaseOptions, ReleasePlan, plan_release
from opskit.release.record import ReleaseRecord
from opskit.release.rollback import RollbackPlan, apply_rollback, plan_rollback, service_history

__all__ = [
    "DEFAULT_SHA_LENGTH",
    "ReleaseOptions",
    "ReleasePlan",
    "ReleaseRecord",
    "RollbackPlan",
    "apply_release",
    "apply_rollback",
    "plan_release",
    "plan_rollback",
    "service_history",
]
