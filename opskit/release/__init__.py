"""Release: one commit -> one image tagged with its SHA -> one revision -> one deployment; and rollback.

>>> plan = plan_release(aws, ReleaseOptions(cluster="prod", service="web"))   # doctest: +SKIP
>>> record = apply_release(plan, aws, progress=print)
>>> record.ok, record.revision_arn

Names are imported from their modules on first use, so ``opskit release`` loads neither rollback nor what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.release.apply import apply_release
    from opskit.release.plan import DEFAULT_SHA_LENGTH, ReleaseOptions, ReleasePlan, plan_release
    from opskit.release.record import ReleaseRecord
    from opskit.release.rollback import RollbackPlan, apply_rollback, plan_rollback, service_history

_HOMES = {
    "DEFAULT_SHA_LENGTH": "plan",
    "ReleaseOptions": "plan",
    "ReleasePlan": "plan",
    "ReleaseRecord": "record",
    "RollbackPlan": "rollback",
    "apply_release": "apply",
    "apply_rollback": "rollback",
    "plan_release": "plan",
    "plan_rollback": "rollback",
    "service_history": "rollback",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


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
