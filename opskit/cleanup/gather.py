"""Gathering a cleanup's records (from the revision library, and the tasks running now) and planning over them.

>>> plan = plan_cleanup(Aws(), CleanupOptions(families=("web",), keep=5))        # doctest: +SKIP
>>> plan = plan_cleanup(library, CleanupOptions(images=True))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from opskit.aws import Aws
from opskit.cleanup.images import INDEX_MEDIA_TYPES
from opskit.cleanup.live import LiveState
from opskit.cleanup.options import CleanupOptions
from opskit.cleanup.plan import CleanupPlan, make_plan
from opskit.cleanup.revisions import Inventory
from opskit.cleanup.runs import runs_folder, unfinished_run
from opskit.errors import AwsError, NotFoundError
from opskit.library import RevisionLibrary
from opskit.records import ImageRecord

BATCH_GET = 100
MANIFEST_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]


def plan_cleanup(
    source: Aws | RevisionLibrary,
    options: CleanupOptions | None = None,
    *,
    now: datetime | None = None,
    sync: bool = True,
    resume: bool = True,
    journal_dir: Path | None = None,
    rate_scale: float = 1.0,
) -> CleanupPlan:
    """The cleanup plan for an account and region (nothing is changed).

    ``source`` is an :class:`~opskit.aws.Aws` (a library is opened on the default cache) or a
    :class:`~opskit.library.RevisionLibrary`; it is synced first unless ``sync=False``. The tasks running now are
    read from ECS (the library does not keep them). With ``resume`` (the default), an interrupted run made with
    the same options is picked up instead: its plan, with what is left to do (``plan.resumed`` says so).
    ``now`` is when ages are measured from (default: the current time).
    """
    options = options or CleanupOptions()
    aws = source.aws if isinstance(source, RevisionLibrary) else source
    if resume:
        run = unfinished_run(runs_folder(aws, journal_dir), options)
        if run is not None:
            return run.plan()
    if isinstance(source, RevisionLibrary):
        return make_plan(gather(source, options, now=now, sync=sync), options)
    with RevisionLibrary(source, rate_scale=rate_scale) as library:
        return make_plan(gather(library, options, now=now, sync=sync), options)


def gather(
    library: RevisionLibrary, options: CleanupOptions, *, now: datetime | None = None, sync: bool = True
) -> Inventory:
    """Every record the plan needs: revisions (every family when images are cleaned too: any revision may need an
    image), services and their histories, the tasks ECS wants running, images and the parts of image indexes."""
    families = list(options.families) if options.families and not options.images else None
    if sync:
        parts = ["revisions", "services", *(["images"] if options.images else [])]
        library.sync(include=parts, families=families)
    revisions = library.revision_records(family=families)
    if options.families:
        known = {r.family for r in revisions}
        missing = [f for f in options.families if f not in known]
        if missing:
            raise NotFoundError(
                f"no task-definition family {missing[0]!r} in {library.aws.region}: list them with `opskit revisions`"
            )
    images = library.image_records() if options.images else []
    if options.images and options.repositories:
        known = {r.name for r in library.repository_records()}
        missing = [r for r in options.repositories if r not in known]
        if missing:
            raise NotFoundError(
                f"no ECR repository {missing[0]!r} in {library.aws.region}: list them with `opskit images`"
            )
    live = LiveState(library.aws, library.pacer)
    return Inventory(
        revisions=tuple(revisions),
        services=tuple(library.service_records()),
        deployments=tuple(library.deployment_records()),
        tasks=tuple(live.tasks()),
        now=now or datetime.now(UTC),
        images=tuple(images),
        image_children=index_children(library.aws, images) if images else {},
    )


def index_children(aws: Aws, images: list[ImageRecord]) -> dict[str, tuple[str, ...]]:
    """``repository@digest`` of each image index -> the digests of the manifests it lists (BatchGetImage)."""
    by_repository: dict[str, list[ImageRecord]] = {}
    for image in images:
        if image.media_type in INDEX_MEDIA_TYPES:
            by_repository.setdefault(image.repository, []).append(image)
    ecr = aws.client("ecr")
    out: dict[str, tuple[str, ...]] = {}
    for repository, indexes in by_repository.items():
        for start in range(0, len(indexes), BATCH_GET):
            ids = [{"imageDigest": i.digest} for i in indexes[start : start + BATCH_GET]]
            try:
                answer = ecr.batch_get_image(repositoryName=repository, imageIds=ids, acceptedMediaTypes=MANIFEST_TYPES)
            except AwsError as exc:
                if exc.code is None:
                    raise  # AWS lost, not a refusal
                continue  # unread: the plan then keeps every untagged image of this repository
            for found in answer.get("images") or []:
                try:
                    manifest = json.loads(found.get("imageManifest") or "{}")
                except ValueError:
                    continue
                digest = (found.get("imageId") or {}).get("imageDigest")
                parts = tuple(m["digest"] for m in manifest.get("manifests") or [] if m.get("digest"))
                if digest:
                    out[f"{repository}@{digest}"] = parts
    return out


__all__ = ["gather", "index_children", "plan_cleanup"]
