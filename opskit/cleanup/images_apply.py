"""Applying the image part of a cleanup plan: BatchDeleteImage, 100 images per call, after the revisions.

Right before each call the images are checked again: an image stays when a revision that refers to it was not
deleted after all (it was skipped, or is still DELETE_IN_PROGRESS), when a running task pulled it, when a revision
in use now refers to it (one registered and deployed since the plan included), or when it got a new tag since the
plan. Each call's outcome goes to the run's journal once ECR answered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from opskit.aws import Aws
from opskit.cleanup.images import ImageDecision, refers_to
from opskit.cleanup.live import LiveState
from opskit.cleanup.plan import CleanupPlan
from opskit.cleanup.result import outcome
from opskit.cleanup.revisions import revision_key
from opskit.cleanup.runs import CleanupRun
from opskit.errors import AwsError
from opskit.library.pacing import TASK_DEFINITION_READ, Pacer
from opskit.progress import Progress, ProgressEvent
from opskit.records import ImageRecord, ImageRef

IMAGE_BATCH = 100
STAGE = "images"
GONE_CODES = frozenset({"ImageNotFound", "ImageNotFoundException"})


def apply_images(
    plan: CleanupPlan,
    aws: Aws,
    pacer: Pacer,
    run: CleanupRun,
    progress: Progress,
    revision_outcomes: dict[str, dict[str, Any]],
    live: LiveState,
) -> dict[str, dict[str, Any]]:
    """Delete the plan's images that are still safe to delete; returns every image's outcome by repository@digest."""
    done = {o["key"]: o for o in run.outcomes(STAGE) if o["outcome"] != "failed"}  # failures: tried again
    final = {d.key: done.get(d.key) or outcome(d.key, "kept" if d.fate == "keep" else "pending") for d in plan.images}
    todo = [d for d in plan.images_to_delete if d.key not in done]
    if not plan.options.images:
        return final
    progress(ProgressEvent(STAGE, "started", f"deleting {len(todo)} images, {IMAGE_BATCH} per call"))
    checker = _Checker(plan, aws, pacer, live, revision_outcomes)
    tally: Counter[str] = Counter()
    by_repository: dict[str, list[ImageDecision]] = defaultdict(list)
    for d in todo:
        by_repository[d.repository].append(d)
    finished = len(plan.images_to_delete) - len(todo)
    for repository, decisions in sorted(by_repository.items()):
        for start in range(0, len(decisions), IMAGE_BATCH):
            batch = decisions[start : start + IMAGE_BATCH]
            results = checker.delete(repository, batch)
            run.record(STAGE, results)
            for result in results:
                final[result["key"]] = result
                tally[result["outcome"]] += 1
                if result["outcome"] in ("skipped", "failed"):
                    why = result["detail"] or f"{result['failure_reason']}: {result['failure_detail']}"
                    progress(ProgressEvent(STAGE, "log", f"{result['outcome']} {result['key'][:80]}: {why}"))
            finished += len(batch)
            message = ", ".join(f"{k} {n}" for k, n in sorted(tally.items()))
            progress(ProgressEvent(STAGE, "running", message, finished, len(plan.images_to_delete)))
    progress(ProgressEvent(STAGE, "done", ", ".join(f"{k} {n}" for k, n in sorted(tally.items())) or "nothing to do"))
    return final


class _Checker:
    def __init__(
        self,
        plan: CleanupPlan,
        aws: Aws,
        pacer: Pacer,
        live: LiveState,
        revision_outcomes: dict[str, dict[str, Any]],
    ) -> None:
        self.ecr = aws.client("ecr")
        self.aws = aws
        self.pacer = pacer
        self.live = live
        self.gone = {
            d.key for d in plan.revisions if (revision_outcomes.get(d.arn) or {}).get("outcome") in ("deleted", "gone")
        }
        self.planned = {d.key: d for d in plan.revisions}
        self.described: dict[str, tuple[str, ...]] = {}  # images of revisions in use that the plan does not hold

    def delete(self, repository: str, batch: list[ImageDecision]) -> list[dict[str, Any]]:
        now = self._tags_now(repository)
        snapshot = self.live.read()
        in_use = [(key, images) for key, images in self._images_in_use(snapshot.revisions)]
        out, go = [], []
        for d in batch:
            why = self._why_keep(d, now, snapshot.digests, in_use)
            if why == "gone":
                out.append(outcome(d.key, "gone", step="delete", detail="no longer in the repository"))
            elif why:
                out.append(outcome(d.key, "skipped", step="delete", detail=why))
            else:
                go.append(d)
        if not go:
            return out
        try:
            answer = self.pacer.call(
                None,
                self.ecr.batch_delete_image,
                repositoryName=repository,
                imageIds=[{"imageDigest": d.digest} for d in go],
            )
        except AwsError as exc:
            if exc.code != "RepositoryNotFoundException":
                raise
            return out + [outcome(d.key, "gone", step="delete", detail="the repository is gone") for d in go]
        deleted = {i.get("imageDigest") for i in answer.get("imageIds") or []}
        failures = {(f.get("imageId") or {}).get("imageDigest"): f for f in answer.get("failures") or []}
        for d in go:
            failure = failures.get(d.digest)
            if d.digest in deleted and failure is None:
                out.append(outcome(d.key, "deleted", step="delete"))
            elif failure is not None and failure.get("failureCode") in GONE_CODES:
                out.append(outcome(d.key, "gone", step="delete", detail=str(failure.get("failureReason") or "")))
            else:
                failure = failure or {"failureCode": "missing", "failureReason": "not in the answer"}
                out.append(
                    outcome(
                        d.key,
                        "failed",
                        step="delete",
                        failure_reason=str(failure.get("failureCode") or ""),
                        failure_detail=str(failure.get("failureReason") or ""),
                    )
                )
        return out

    def _why_keep(
        self,
        d: ImageDecision,
        tags_now: dict[str, set[str]],
        digests: set[str],
        in_use: list[tuple[str, tuple[str, ...]]],
    ) -> str | None:
        if d.digest not in tags_now:
            return "gone"
        added = tags_now[d.digest] - set(d.tags)
        if added:
            return f"tagged {', '.join(sorted(added))} since the plan"
        kept = [key for key in d.referenced_by if key not in self.gone]
        if kept:
            return f"{kept[0]}, which refers to it, was not deleted"
        if d.digest in digests:
            return "pulled by a running task"
        record = ImageRecord(d.repository, "", d.digest, tuple(sorted(tags_now[d.digest])), None, None, None, None)
        for key, images in in_use:
            if any(refers_to(ImageRef.parse(image), record) for image in images):
                return f"used by {key}, which is in use"
        return None

    def _tags_now(self, repository: str) -> dict[str, set[str]]:
        """Every digest of the repository and its tags now (ListImages, 1000 per page)."""
        out: dict[str, set[str]] = defaultdict(set)
        params: dict[str, Any] = {"repositoryName": repository, "maxResults": 1000}
        while True:
            try:
                page = self.pacer.call(None, self.ecr.list_images, **params)
            except AwsError as exc:
                if exc.code == "RepositoryNotFoundException":
                    return {}
                raise
            for image_id in page.get("imageIds") or []:
                tags = out[image_id["imageDigest"]]
                if image_id.get("imageTag"):
                    tags.add(image_id["imageTag"])
            if not page.get("nextToken"):
                return out
            params["nextToken"] = page["nextToken"]

    def _images_in_use(self, arns: set[str]) -> list[tuple[str, tuple[str, ...]]]:
        out = []
        for arn in sorted(arns):
            key = revision_key(arn)
            if key in self.planned:
                out.append((key, self.planned[key].images))
                continue
            if key not in self.described:
                answer = self.pacer.call(
                    TASK_DEFINITION_READ, self.aws.call_json, "ecs", "DescribeTaskDefinition", {"taskDefinition": arn}
                )
                containers = (answer.get("taskDefinition") or {}).get("containerDefinitions") or []
                self.described[key] = tuple(str(c.get("image", "")) for c in containers)
            out.append((key, self.described[key]))
        return out


__all__ = ["IMAGE_BATCH", "apply_images"]
