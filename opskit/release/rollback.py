"""Rollback: back to the revision the service last ran to completion, after checking its images still exist.

"Previous revision" is not "revision number minus one": a revision may have been registered and never deployed,
or deployed and rolled back. The target comes from the service's deployment history (ListServiceDeployments,
SUCCESSFUL ones) decided by :func:`opskit.library.rollback_target`, or from ``--to``.

>>> plan = plan_rollback(aws, "prod", "web")          # doctest: +SKIP
>>> plan.target_arn, plan.chosen_by
('arn:...:task-definition/web:29', 'last ran to completion at 2026-11-20 10:12 UTC')
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.aws import Aws
from opskit.errors import AwsError, ConfigError, NotFoundError
from opskit.library.rollback import from_service_deployment, rollback_target
from opskit.progress import Progress, ignore
from opskit.records import DeploymentRecord, ImageRef
from opskit.release.apply import Stages, _now, deploy, follow, journal_for, refusals, settle
from opskit.release.lock import service_lock
from opskit.release.plan import describe_service
from opskit.release.record import ReleaseRecord
from opskit.release.rollout import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, DEPLOYED, PauseAnswer, Until

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ImageCheck:
    container: str
    image: str
    in_ecr: bool | None  # None: not an ECR image of this account, so not checked
    digest: str | None


@dataclass(frozen=True)
class RollbackPlan:
    cluster: str
    service: str
    service_arn: str
    live_arn: str
    target_arn: str
    chosen_by: str
    images: tuple[ImageCheck, ...]
    force: bool = False

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {"container": i.container, "image": i.image, "in_ecr": i.in_ecr, "digest": i.digest} for i in self.images
        ]
        return pd.DataFrame(rows, columns=["container", "image", "in_ecr", "digest"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "service": self.service,
            "live_revision": self.live_arn,
            "target_revision": self.target_arn,
            "chosen_by": self.chosen_by,
            "images": [i.__dict__ for i in self.images],
        }

    def _repr_html_(self) -> str:
        return (
            f"<div class='opskit-plan'><b>Roll {html.escape(self.service)} back from "
            f"{html.escape(self.live_arn.rsplit('/', 1)[-1])} to {html.escape(self.target_arn.rsplit('/', 1)[-1])}</b>"
            f" ({html.escape(self.chosen_by)}){self.to_frame().to_html(index=False)}</div>"
        )


def service_history(aws: Aws, cluster: str, service: str) -> list[DeploymentRecord]:
    """The service's finished deployments (ListServiceDeployments, SUCCESSFUL) as the library's records."""
    ecs = aws.client("ecs")
    briefs: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:  # botocore has no paginator for this one
        page = ecs.list_service_deployments(cluster=cluster, service=service, status=["SUCCESSFUL"], **token)
        briefs.extend(page.get("serviceDeployments", []))
        if not page.get("nextToken"):
            break
        token = {"nextToken": page["nextToken"]}
    revision_arns = list(
        dict.fromkeys(b["targetServiceRevisionArn"] for b in briefs if b.get("targetServiceRevisionArn"))
    )
    task_definitions: dict[str, str] = {}
    for start in range(0, len(revision_arns), 20):
        answer = ecs.describe_service_revisions(serviceRevisionArns=revision_arns[start : start + 20])
        task_definitions.update(
            {r["serviceRevisionArn"]: r["taskDefinition"] for r in answer.get("serviceRevisions", [])}
        )
    return [
        from_service_deployment(b, task_definitions.get(b.get("targetServiceRevisionArn", "")), cluster, service)
        for b in briefs
    ]


def plan_rollback(aws: Aws, cluster: str, service: str, *, to: str | None = None, force: bool = False) -> RollbackPlan:
    _, current = describe_service(aws, cluster, service)
    live_arn = str(current["taskDefinition"])
    family = live_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    if to is not None:
        target_arn = _resolve_to(aws, family, to)
        chosen_by = "chosen with --to"
    else:
        history = service_history(aws, cluster, service)
        found = rollback_target(history, current=live_arn)
        if found is None:
            raise NotFoundError(
                f"{service} has no earlier revision that ran to completion: pass --to REVISION to choose one"
            )
        target_arn = found
        finished = max((d.finished_at for d in history if d.task_definition == found and d.finished_at), default=None)
        when = finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if finished else "an unknown time"
        chosen_by = f"last ran to completion at {when}"
    if target_arn == live_arn:
        raise ConfigError(f"{service} already runs {live_arn.rsplit('/', 1)[-1]}: pass --to with another revision")
    body = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": target_arn})["taskDefinition"]
    if body.get("status") != "ACTIVE":
        raise ConfigError(
            f"{target_arn.rsplit('/', 1)[-1]} is {body.get('status')}: ECS cannot deploy it; "
            "pass --to with an ACTIVE revision"
        )
    checks = tuple(_check_image(aws, c) for c in body.get("containerDefinitions", []))
    missing = [c for c in checks if c.in_ecr is False]
    if missing:
        raise NotFoundError(
            f"image {missing[0].image} of {target_arn.rsplit('/', 1)[-1]} no longer exists in ECR: "
            "a rollback to it would fail; pass --to with another revision"
        )
    return RollbackPlan(
        cluster=cluster,
        service=service,
        service_arn=str(current["serviceArn"]),
        live_arn=live_arn,
        target_arn=target_arn,
        chosen_by=chosen_by,
        images=checks,
        force=force,
    )


def apply_rollback(
    plan: RollbackPlan,
    aws: Aws,
    *,
    progress: Progress = ignore,
    timeout: float = DEFAULT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    journal_dir: Path | None = None,
    on_pause: PauseAnswer | None = None,
    until: Until = DEPLOYED,
) -> ReleaseRecord:
    """Carry out ``plan`` and follow the rollout as :func:`~opskit.release.apply_release` does (``on_pause`` answers
    the PAUSE hooks the rollback's deployment waits at, ``until`` says where following it ends)."""
    record = ReleaseRecord(
        kind="rollback",
        cluster=plan.cluster,
        service=plan.service,
        commit=None,
        image=", ".join(i.image for i in plan.images),
        digest=next((i.digest for i in plan.images if i.digest), None),
        revision_arn=plan.target_arn,
        deployment_id=None,
        outcome="IN_PROGRESS",
        reason="",
        started_at=_now(),
    )
    journal = journal_for("rollback", plan.cluster, plan.service, plan.target_arn.rsplit("/", 1)[-1], journal_dir)
    journal.write("started", plan=plan.to_dict())
    stages = Stages(progress, record)
    with refusals(record, journal), service_lock(aws, plan.service_arn, force=plan.force):
        rollout, since = deploy(
            aws,
            plan.cluster,
            plan.service,
            expected_live=plan.live_arn,
            revision_arn=plan.target_arn,
            force=plan.force,
            stages=stages,
            record=record,
            journal=journal,
        )
        verdict = follow(rollout, stages, record, since, timeout, poll_interval, on_pause, until)
    return settle(record, journal, verdict)


def _resolve_to(aws: Aws, family: str, to: str) -> str:
    reference = f"{family}:{to}" if re.fullmatch(r"\d+", to) else to
    if not re.fullmatch(r"(arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/)?[A-Za-z0-9_-]+:\d+", reference):
        raise ConfigError(f"--to {to!r} is not a revision: pass a number, family:number, or a task-definition ARN")
    try:
        answer = aws.client("ecs").describe_task_definition(taskDefinition=reference)
    except AwsError as exc:
        if exc.code == "ClientException":
            raise NotFoundError(
                f"revision {reference} does not exist: list them with `opskit revisions --family {family}`"
            ) from exc
        raise
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def _check_image(aws: Aws, container: dict[str, Any]) -> ImageCheck:
    image = str(container.get("image", ""))
    ref = ImageRef.parse(image)
    ecr = aws.client("ecr")
    registry = str(ecr.get_authorization_token()["authorizationData"][0]["proxyEndpoint"]).split("://", 1)[-1]
    if ref.registry != registry.rstrip("/"):
        return ImageCheck(str(container.get("name")), image, None, ref.digest)
    image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
    try:
        found = ecr.describe_images(repositoryName=ref.repository, imageIds=[image_id])["imageDetails"][0]
    except AwsError as exc:
        if exc.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return ImageCheck(str(container.get("name")), image, False, ref.digest)
        raise
    return ImageCheck(str(container.get("name")), image, True, str(found["imageDigest"]))
