"""The revision library of one account and region: what exists, cached, as records and DataFrames."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pandas as pd

from opskit.aws import Aws
from opskit.errors import ConfigError, NotFoundError
from opskit.library import frames
from opskit.library.export import export
from opskit.library.fetch import RevisionSync, describe, sync_revisions
from opskit.library.inventory import InventorySync, sync_images, sync_services
from opskit.library.pacing import Pacer, Rate, paced_aws
from opskit.library.rows import (
    REPOSITORY_FIELDS,
    decode_body,
    deployment_record,
    from_micros,
    repository_record,
    revision_rows,
    rollout_settings,
)
from opskit.library.store import CacheIdentity, Store, default_cache_dir
from opskit.masking import mask
from opskit.progress import Progress as ProgressReporter
from opskit.progress import ProgressEvent, ignore
from opskit.records import (
    ContainerRecord,
    DeploymentRecord,
    ImageRecord,
    RepositoryRecord,
    RevisionRecord,
    ServiceRecord,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Progress = Callable[[int, int], None]
PARTS = ("revisions", "images", "services")
T = TypeVar("T")


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`RevisionLibrary.sync` did: per part, and the API calls it made (each throttle was retried by the
    pacer, which slowed down for it, and is counted in ``throttled``)."""

    revisions: RevisionSync | None = None
    images: InventorySync | None = None
    services: InventorySync | None = None
    calls: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """``synced 412 revisions (12 described, 3 changed, 0 gone), 80 images in 4 repositories, 5 services: 31 API
        calls in 2.4 s``"""
        parts = []
        if self.revisions is not None:
            r = self.revisions
            parts.append(
                f"{r.listed} revisions ({r.described} described, {r.status_changes} changed, {r.removed} gone)"
            )
        if self.images is not None:
            parts.append(f"{self.images.images} images in {self.images.repositories} repositories")
        if self.services is not None:
            parts.append(f"{self.services.services} services")
        return f"synced {', '.join(parts)}: {sum(self.calls.values())} API calls in {self.seconds:.1f} s"


class _SyncEvents:
    """A sync's progress as :class:`~opskit.progress.ProgressEvent` (stage ``sync``): at most ten ``running``
    events a second while revisions are described, each with the seconds left at the pace so far."""

    def __init__(self, report: ProgressReporter) -> None:
        self.report, self.started, self.shown = report, time.monotonic(), -1.0

    def described(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not total or (done < total and now - self.shown < 0.1):
            return
        self.shown = now
        eta = (total - done) * (now - self.started) / done if done and total > done else None
        self.report(ProgressEvent("sync", "running", "revisions described", done, total, eta))


class RevisionLibrary:
    """Every task-definition revision of an account and region, its ECR images, and its services' deployments.

    >>> library = RevisionLibrary(Aws())                                       # doctest: +SKIP
    >>> library.sync(progress=lambda done, total: print(done, total))         # doctest: +SKIP
    >>> library.revisions(status="ACTIVE").groupby("family").size()            # doctest: +SKIP
    >>> library.containers().query("uses_latest")[["family", "revision", "image"]]   # doctest: +SKIP
    >>> library.images().query("revision_count == 0")                          # doctest: +SKIP
    >>> library.services()[["service", "task_definition", "rollback_target"]]  # doctest: +SKIP

    The cache is one SQLite file per account, region and endpoint under ``cache_dir`` (default
    ``$OPSKIT_CACHE_DIR`` or the user cache directory), or exactly ``cache_path`` (``":memory:"`` keeps nothing).
    Frames read the cache, so they work offline after a sync. Syncs go as fast as the endpoint allows, which the
    pacer learns from AWS's published rates up (:mod:`opskit.library.pacing`); ``rate_scale`` multiplies those
    rates as a hint (a sandbox with ``time_scale``: it starts there), ``rates`` overrides them per category
    (:data:`~opskit.library.pacing.AWS_RATES`).
    """

    def __init__(
        self,
        aws: Aws,
        *,
        cache_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        account_id: str | None = None,
        workers: int = 8,
        rates: Mapping[str, Rate] | None = None,
        rate_scale: float = 1.0,
        service_history: str = "auto",
    ) -> None:
        if service_history not in ("auto", "service-deployments", "service"):
            raise ConfigError(f"service_history {service_history!r}: pass auto, service-deployments or service")
        if workers < 1:
            raise ConfigError(f"workers {workers}: pass 1 or more")
        self.aws = aws
        self.workers = workers
        self.service_history = service_history
        self.pacer = Pacer(rates, rate_scale=rate_scale)
        self._wire: Aws | None = None
        self._cache_path = cache_path
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._account_id = account_id
        self._store: Store | None = None

    # -- the cache -------------------------------------------------------------------------------------------------
    @property
    def identity(self) -> CacheIdentity:
        if self._account_id is None:
            self._account_id = self.aws.account_id
        return CacheIdentity(self._account_id, str(self.aws.region), self.aws.custom_endpoint or "")

    @property
    def cache_path(self) -> str | Path:
        if self._cache_path is not None:
            return self._cache_path if self._cache_path == ":memory:" else Path(self._cache_path)
        return (self._cache_dir or default_cache_dir()) / self.identity.file_name

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.cache_path, self.identity)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> RevisionLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _paced(self) -> Aws:
        """``aws`` as the pacer's calls use it: throttles come straight back to the pacer (:func:`paced_aws`)."""
        if self._wire is None:
            self._wire = paced_aws(self.aws)
        return self._wire

    def _guarded(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the cache; a cache found corrupt in use is rebuilt (with a warning) and ``work`` rerun."""
        try:
            return work()
        except sqlite3.DatabaseError as exc:
            self.store.rebuild(f"it failed in use ({exc})")
            return work()

    # -- syncing ---------------------------------------------------------------------------------------------------
    def sync(
        self,
        *,
        refresh: bool = False,
        families: Sequence[str] | str | None = None,
        include: Iterable[str] = PARTS,
        progress: Progress | None = None,
        report: ProgressReporter = ignore,
    ) -> SyncReport:
        """Bring the cache up to date: ``include`` any of "revisions", "images", "services".

        Revisions: every status is listed 100 at a time and only revisions the cache lacks are described (all of
        them with ``refresh=True``); status changes and deletions come from the listings. ``families`` limits
        the revisions synced to those families. ``progress(done, total)`` follows the describes (the total grows
        while the listing runs); ``report`` gets the same as the one progress protocol's events (stage ``sync``:
        running, with an estimate of the seconds left, then done with :meth:`SyncReport.summary`).
        Nothing raises ThrottlingException: calls are paced and throttles retried, each one slowing the pacer down
        to just under the rate the endpoint showed.
        """
        parts = set(include)
        unknown = parts - set(PARTS)
        if unknown:
            raise ConfigError(f"cannot sync {', '.join(sorted(unknown))}: include any of {', '.join(PARTS)}")
        wanted = [families] if isinstance(families, str) else (list(families) if families else None)
        events = _SyncEvents(report)
        if progress is not None or report is not ignore:
            given = progress

            def progress(done: int, total: int) -> None:
                if given is not None:
                    given(done, total)
                events.described(done, total)

        synced = self._sync(parts, wanted, refresh, progress)  # an error is the caller's to say: one line, not two
        report(ProgressEvent("sync", "done", synced.summary()))
        return synced

    def _sync(self, parts: set[str], wanted: list[str] | None, refresh: bool, progress: Progress | None) -> SyncReport:
        started = time.monotonic()
        calls_before, throttled_before = Counter(self.pacer.calls), Counter(self.pacer.throttled)
        store = self.store
        revisions = images = services = None
        if "revisions" in parts:
            revisions = self._guarded(
                lambda: sync_revisions(
                    self._paced,
                    self.store,
                    self.pacer,
                    families=wanted,
                    refresh=refresh,
                    workers=self.workers,
                    progress=progress,
                )
            )
        if "images" in parts:
            images = self._guarded(lambda: sync_images(self._paced, self.store, self.pacer, workers=self.workers))
        if "services" in parts:
            services = self._guarded(
                lambda: sync_services(
                    self._paced, self.store, self.pacer, workers=self.workers, history=self.service_history
                )
            )
        store.set_meta("synced_at", str(time.time()))
        return SyncReport(
            revisions=revisions,
            images=images,
            services=services,
            calls=dict(Counter(self.pacer.calls) - calls_before),
            throttled=dict(Counter(self.pacer.throttled) - throttled_before),
            seconds=time.monotonic() - started,
        )

    # -- frames ----------------------------------------------------------------------------------------------------
    def revisions(self, family: Any = None, status: Any = None) -> pd.DataFrame:
        """One row per revision (columns: :data:`opskit.library.columns.REVISIONS`)."""
        return self._guarded(lambda: frames.revisions(self.store, family, status))

    def containers(self, family: Any = None, status: Any = None) -> pd.DataFrame:
        """One row per (revision, container), variable and secret names only (:data:`~.columns.CONTAINERS`)."""
        return self._guarded(lambda: frames.containers(self.store, family, status))

    def images(self, repository: Any = None) -> pd.DataFrame:
        """One row per ECR image, with the revisions and services that use it (:data:`~.columns.IMAGES`)."""
        return self._guarded(lambda: frames.images(self.store, repository))

    def services(self, cluster: Any = None) -> pd.DataFrame:
        """One row per service, with its current deployments and rollback target (:data:`~.columns.SERVICES`)."""
        return self._guarded(lambda: frames.services(self.store, cluster))

    def deployments(self, cluster: Any = None, service: Any = None) -> pd.DataFrame:
        """Every deployment of every service the history shows (:data:`~.columns.DEPLOYMENTS`)."""
        return self._guarded(lambda: frames.deployments(self.store, cluster, service))

    def lineage(self, family: Any = None) -> pd.DataFrame:
        """commit -> image digest -> revision -> services it was deployed to (:data:`~.columns.LINEAGE`)."""
        return self._guarded(lambda: frames.lineage(self.store, family))

    def timeline(self, *, family: Any = None, since: Any = None) -> Figure:
        """The release timeline as a matplotlib Figure: revisions, deployments, rollbacks marked."""
        from opskit.library.timeline import timeline_figure  # matplotlib loads when a timeline is drawn, not before

        return timeline_figure(self.revisions(family=family), self.deployments(), since=since)

    def export(self, table: str | pd.DataFrame, target: str | Path | IO[Any], format: str | None = None) -> None:
        """Write a table ("revisions", "images" ... or any frame) as CSV, JSON or Parquet (from the suffix)."""
        frame = table if isinstance(table, pd.DataFrame) else self.table(table)
        export(frame, target, format)

    def drift(self) -> pd.DataFrame:
        """Revisions no release explains (columns: :data:`~opskit.library.columns.DRIFT`), one row each, with its
        ``reasons``: ``no commit`` (no commit tag, no image tagged with a commit SHA: registered by hand or by a
        tool that does not say), ``no commit tag`` (its image's SHA tag says the commit, the revision does not),
        ``registered by another principal`` than the one that registered most of the family's commit-tagged
        revisions (its releaser, a CI role as a rule), ``managed by <tool>`` (its tags: CloudFormation, ManagedBy).
        ``running_in`` names the services that run it now: drift there is live."""
        from opskit.library.columns import DRIFT
        from opskit.library.frames import typed_frame
        from opskit.library.rows import micros
        from opskit.records import managed_by

        revisions = self.revisions()
        running: dict[str, list[str]] = {}
        for service in self.service_records():
            if service.task_definition:
                running.setdefault(service.task_definition, []).append(f"{service.cluster}/{service.service}")
        # A family's releaser: whoever registered most of its commit-tagged revisions (its CI role, as a rule).
        registrants: dict[str, Counter[str]] = {}
        for row in revisions.itertuples(index=False):
            if isinstance(row.tags, dict) and row.tags.get("commit") and isinstance(row.registered_by, str):
                registrants.setdefault(str(row.family), Counter())[row.registered_by] += 1
        releasers = {family: counts.most_common(1)[0][0] for family, counts in registrants.items()}
        rows = []
        for row in revisions.itertuples(index=False):
            tags = row.tags if isinstance(row.tags, dict) else {}
            commit = row.commit if isinstance(row.commit, str) else None
            by = row.registered_by if isinstance(row.registered_by, str) else None
            owner = managed_by({"key": k, "value": v} for k, v in tags.items())
            reasons = []
            if not tags.get("commit"):  # the image's SHA tag may still say which commit: then it is half-explained
                reasons.append("no commit" if commit is None else "no commit tag")
            releaser = releasers.get(str(row.family))
            if by is not None and releaser is not None and by != releaser:
                reasons.append("registered by another principal")
            if owner is not None:
                reasons.append(f"managed by {owner}")
            if reasons:
                rows.append(
                    {
                        "family": row.family,
                        "revision": row.revision,
                        "arn": row.arn,
                        "status": row.status,
                        "registered_at": None if pd.isna(row.registered_at) else micros(row.registered_at),
                        "registered_by": by,
                        "commit": commit,
                        "managed_by": owner,
                        "running_in": json.dumps(running.get(str(row.arn), [])),
                        "reasons": json.dumps(reasons),
                    }
                )
        return typed_frame(DRIFT, {c.name: [r[c.name] for r in rows] for c in DRIFT})

    def table(self, name: str) -> pd.DataFrame:
        tables: dict[str, Callable[[], pd.DataFrame]] = {
            "revisions": self.revisions,
            "containers": self.containers,
            "images": self.images,
            "services": self.services,
            "deployments": self.deployments,
            "lineage": self.lineage,
        }
        if name not in tables:
            raise ConfigError(f"no table {name!r}: pick one of {', '.join(tables)}")
        return tables[name]()

    # -- one revision's body ---------------------------------------------------------------------------------------
    def revision_body(self, revision: str, *, unmask: bool = False) -> dict[str, Any]:
        """The DescribeTaskDefinition answer (``taskDefinition`` and ``tags``) of one revision, by ARN or
        ``family:revision``, every field kept; variable values and secret sources masked unless ``unmask``.

        >>> body = library.revision_body("web:30")                               # doctest: +SKIP
        >>> body["taskDefinition"]["containerDefinitions"][0]["environment"][0]  # doctest: +SKIP
        {'name': 'LOG_LEVEL', 'value': '********'}
        """
        arn = self._arn(revision)
        found = self._guarded(lambda: self.store.body(arn)) if arn else None
        if found is None:
            answer = describe(self._paced, self.pacer, arn or revision)
            if answer is None:
                raise NotFoundError(f"no task-definition revision {revision}: list them with `opskit revisions`")
            self.store.put_revisions([revision_rows(answer)])
        else:
            blob, status = found
            answer = decode_body(blob)
            answer["taskDefinition"]["status"] = status  # the listings' word is newer than the description's
        return answer if unmask else mask(answer)

    def _arn(self, revision: str) -> str | None:
        if revision.startswith("arn:"):
            return revision
        family, _, number = revision.rpartition(":")
        if not family or not number.isdigit():
            raise ConfigError(f"revision {revision!r}: pass an ARN or family:revision, such as web:30")
        return self._guarded(lambda: self.store.arn_of(family, int(number)))

    # -- records, for pure functions (policy checks, cleanup and rollback plans) -----------------------------------
    def revision_records(self, family: Any = None, status: Any = None) -> list[RevisionRecord]:
        revs = self.revisions(family, status)
        parts = self.containers(family, status)
        by_arn: dict[str, list[ContainerRecord]] = {}
        for arn, name, image, essential, env, secrets in zip(
            parts["arn"],
            parts["name"],
            parts["image"],
            parts["essential"],
            parts["environment_names"],
            parts["secret_names"],
            strict=True,
        ):
            by_arn.setdefault(arn, []).append(ContainerRecord(name, image, bool(essential), tuple(env), tuple(secrets)))
        return [
            RevisionRecord(
                family=row.family,
                revision=int(row.revision),
                arn=row.arn,
                status=str(row.status),
                registered_at=_moment(row.registered_at),
                registered_by=_maybe(row.registered_by),
                deregistered_at=_moment(row.deregistered_at),
                cpu=_maybe(row.cpu),
                memory=_maybe(row.memory),
                network_mode=_maybe(row.network_mode),
                compatibilities=tuple(x for x in (_maybe(row.compatibilities) or "").split(",") if x),
                containers=tuple(by_arn.get(row.arn, [])),
                tags=tuple(row.tags.items()),
                delete_requested_at=_moment(row.delete_requested_at),
            )
            for row in revs.itertuples(index=False)
        ]

    def deployment_records(self, cluster: str | None = None, service: str | None = None) -> list[DeploymentRecord]:
        where = {k: v for k, v in (("cluster", cluster), ("service", service)) if v is not None}
        sql = "SELECT cluster, service, deployment, task_definition, status, rollout_state, created_at, finished_at,"
        sql += " rolled_back, source FROM deployments"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        rows = self._guarded(lambda: self.store.query(sql, list(where.values())))
        return [deployment_record(row) for row in rows]

    def service_records(self) -> list[ServiceRecord]:
        """The services as records, with how each deploys (strategy, bake times, hooks, alarms)."""
        out = []
        rollouts = self._guarded(self.store.rollouts)
        for row in self.services().itertuples(index=False):
            current = tuple(
                DeploymentRecord(
                    row.cluster,
                    row.service,
                    d["id"],
                    d.get("task_definition"),
                    d.get("status", ""),
                    d.get("rollout_state", ""),
                    None,
                    None,
                    source="service",
                )
                for d in row.deployments
            )
            out.append(
                ServiceRecord(
                    cluster=row.cluster,
                    service=row.service,
                    arn=row.arn,
                    status=str(row.status),
                    desired_count=int(row.desired_count),
                    running_count=int(row.running_count),
                    pending_count=int(row.pending_count),
                    task_definition=_maybe(row.task_definition),
                    launch_type=_maybe(row.launch_type),
                    circuit_breaker=bool(row.circuit_breaker),
                    circuit_breaker_rollback=bool(row.circuit_breaker_rollback),
                    deployments=current,
                    created_at=_moment(row.created_at),
                    **(rollout_settings(rollouts[row.arn]) if row.arn in rollouts else {}),
                )
            )
        return out

    def image_records(self) -> list[ImageRecord]:
        rows = self._guarded(
            lambda: self.store.query(
                "SELECT repository, registry_id, digest, tags, pushed_at, size_bytes, scan_status, media_type"
                " FROM images ORDER BY repository, pushed_at"
            )
        )
        import json

        return [
            ImageRecord(repo, registry, digest, tuple(json.loads(tags or "[]")), from_micros(pushed), size, scan, media)
            for repo, registry, digest, tags, pushed, size, scan, media in rows
        ]

    def repository_records(self) -> list[RepositoryRecord]:
        """Each ECR repository with its tag mutability, exclusion filters, scanning and lifecycle policy."""
        rows = self._guarded(
            lambda: self.store.query(f"SELECT {', '.join(REPOSITORY_FIELDS)} FROM repositories ORDER BY name")
        )
        return [repository_record(row) for row in rows]

    def rollback_targets(self) -> dict[str, str | None]:
        """Each service's rollback target (task-definition ARN, or None), by service ARN, as of the last sync."""
        frame = self.services()
        return {arn: _maybe(target) for arn, target in zip(frame["arn"], frame["rollback_target"], strict=True)}


def _maybe(value: Any) -> Any:
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value


def _moment(value: Any) -> Any:
    return None if pd.isna(value) else value.to_pydatetime()


__all__ = ["PARTS", "RevisionLibrary", "SyncReport"]
