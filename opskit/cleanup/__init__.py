"""Cleanup of old task-definition revisions and ECR images that can never break a rollback.

A plan (pure, over the library's records) decides every revision's fate with the reason for it; an apply carries
it out paced to ECS's throttling buckets, re-checking what is in use right before each action, with a journal on
disk so an interrupted run resumes. What is kept by default: :class:`CleanupOptions`.

>>> from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
>>> plan = plan_cleanup(aws, CleanupOptions(families=("web",), keep=10))   # doctest: +SKIP
>>> plan.summary()                            # counts per family and fate   # doctest: +SKIP
>>> plan.to_frame().query("fate != 'keep'")   # what would change, and why   # doctest: +SKIP
>>> result = apply_cleanup(plan, aws, progress=print)                       # doctest: +SKIP
>>> result.to_frame().query("outcome in ['skipped', 'failed']")             # doctest: +SKIP
"""

from opskit.cleanup.apply import DELETE_BATCH, apply_cleanup
from opskit.cleanup.frames import OUTCOMES
from opskit.cleanup.gather import gather, plan_cleanup
from opskit.cleanup.images import ImageDecision, decide_images
from opskit.cleanup.options import PIN_TAG, CleanupOptions
from opskit.cleanup.plan import CleanupPlan, Resumed, make_plan
from opskit.cleanup.result import CleanupResult
from opskit.cleanup.revisions import FATES, PROTECTIONS, Inventory, RevisionDecision, decide_revisions
from opskit.cleanup.runs import runs_folder, unfinished_runs

__all__ = [
    "DELETE_BATCH",
    "FATES",
    "OUTCOMES",
    "PIN_TAG",
    "PROTECTIONS",
    "CleanupOptions",
    "CleanupPlan",
    "CleanupResult",
    "ImageDecision",
    "Inventory",
    "Resumed",
    "RevisionDecision",
    "apply_cleanup",
    "decide_images",
    "decide_revisions",
    "gather",
    "make_plan",
    "plan_cleanup",
    "runs_folder",
    "unfinished_runs",
]
