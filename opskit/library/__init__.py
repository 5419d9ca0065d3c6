"""The revision library: what exists in an account and region (task-definition revisions, ECR images, services
and their deployments) as records and pandas DataFrames, cached on disk.

>>> from opskit.library import RevisionLibrary
>>> library = RevisionLibrary(Aws())                                      # doctest: +SKIP
>>> library.sync()                                                        # doctest: +SKIP
>>> library.revisions().query("status == 'ACTIVE'").groupby("family").size()   # doctest: +SKIP

Tables (columns and dtypes: :mod:`opskit.library.columns`, or ``columns("revisions")``):

===========  ================================================================================================
revisions    one row per revision: family, revision, arn, status, registered_at/by, deregistered_at, cpu,
             memory, network_mode, compatibilities, container_count, commit, tags
containers   one row per (revision, container): image split into registry/repository/tag/digest, commit_sha,
             uses_latest, untagged, essential, environment_names and secret_names (names only, never values)
images       one row per ECR image: repository, digest, tags, pushed_at, size, scan status, revision_count,
             in_service and the services running it
services     one row per service: counts, current revision, circuit breaker, current deployments, rollback target
deployments  one row per deployment in each service's history (rollout state, rolled back or not)
lineage      commit -> image digest -> revision -> service it was deployed to, current and rollback target
===========  ================================================================================================

The rollback target of a service is decided by :func:`rollback_target` over
:class:`~opskit.records.DeploymentRecord` histories, a pure function that release, rollback and cleanup share.
"""

from opskit.library.columns import TABLES, columns
from opskit.library.export import export
from opskit.library.library import PARTS, RevisionLibrary, SyncReport
from opskit.library.pacing import AWS_RATES, Pacer, Rate, TokenBucket
from opskit.library.rollback import rollback_target, rollback_targets, service_rollback_targets
from opskit.library.store import CacheIdentity, CacheWarning, default_cache_dir
from opskit.masking import MASK, mask

__all__ = [
    "AWS_RATES",
    "MASK",
    "PARTS",
    "TABLES",
    "CacheIdentity",
    "CacheWarning",
    "Pacer",
    "Rate",
    "RevisionLibrary",
    "SyncReport",
    "TokenBucket",
    "columns",
    "default_cache_dir",
    "export",
    "mask",
    "rollback_target",
    "rollback_targets",
    "service_rollback_targets",
]
