"""Rollback: back to the revision the service last ran to completion, with the very images it ran then, after
checking they still exist.

"Previous revision" is not "revision number minus one": a revision may have been registered and never deployed,
or deployed and rolled back. The target comes from the service's deployment history (ListServiceDeployments,
SUCCESSFUL ones) decided by :func:`opskit.library.rollback_target`, or from ``--to``. What it ran is ECS's record
of that deployment's service revision (DescribeServiceRevisions' containerImages: the digest ECS resolved for each
container). A container whose tag has since moved to another image is pinned to the digest it ran, in a copy of
the revision registered for the rollback: the rollback runs what ran, not what the tag names today.

>>> plan = plan_rollback(aws, "prod", "web")          # doctest: +SKIP
>>> plan.target_arn, plan.chosen_by
('arn:...:task-definition/web:29', 'last ran to completion at 2026-11-20 10:12 UTC')
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.aws import Aws
from opskit.errors import AwsError, ConfigError, NotFoundError
from opskit.gateway import Gateway
from opskit.journal import Journal
from opskit.library.rollback import rollback_target
from opskit.lock import service_lock
from opskit.progress import Progress, ignore
from opskit.records import DeploymentRecord, ImageRef
from opskit.release.apply import Stages, _now, deploy, follow, journal_for, refusals, settle
from opskit.release.record import ReleaseRecord
from opskit.release.rollout import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, DEPLOYED, PauseAnswer, Until
from opskit.release.taskdef import registrable, with_images

if TYPE_CHECKING:
    import pandas as pd

_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class ImageCheck:
    container: str
    image: str
    in_ecr: bool | None  # None: not an ECR image of this account, so not checked
    digest: str | None  # what the image reference names in ECR today
    ran_digest: str | None = None  # what ECS ran for this container when the target last ran to completion

    @property
    def moved(self) -> bool:
        """The reference names another image today than the one that ran: the rollback pins the one that ran."""
        return self.ran_digest is not None and self.digest != self.ran_digest

    @property
    def pinned(self) -> str:
        """The reference to the image that ran: ``repository@digest``."""
        ref = ImageRef.parse(self.image)
        name = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
        return f"{name}@{self.ran_digest or self.digest}"


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
    ran_in: str | None = None  # the service deployment whose images the rollback runs again

    @property
    def pins(self) -> dict[str, str]:
        """Container -> the image reference that ran, for each container whose tag has moved since: the rollback
        registers a copy of the target with these (none: it deploys the target itself)."""
        return {i.container: i.pinned for i in self.images if i.moved}

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        columns = ["container", "image", "in_ecr", "digest", "ran_digest", "deploys"]
        rows = [
            {
                "container": i.container,
                "image": i.image,
                "in_ecr": i.in_ecr,
                "digest": i.digest,
                "ran_digest": i.ran_digest,
                "deploys": i.pinned if i.moved else i.image,
            }
            for i in self.images
        ]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "service": self.service,
            "live_revision": self.live_arn,
            "target_revision": self.target_arn,
            "chosen_by": self.chosen_by,
            "ran_in": self.ran_in,
            "images": [i.__dict__ for i in self.images],
            "pins": self.pins,
        }

    def _repr_html_(self) -> str:
        return (
            f"<div class='opskit-plan'><b>Roll {html.escape(self.service)} back from "
            f"{html.escape(self.live_arn.rsplit('/', 1)[-1])} to {html.escape(self.target_arn.rsplit('/', 1)[-1])}</b>"
            f" ({html.escape(self.chosen_by)}){self.to_frame().to_html(index=False)}</div>"
        )


def service_history(aws: Aws, cluster: str, service: str) -> list[DeploymentRecord]:
    """The service's finished deployments (ListServiceDeployments, SUCCESSFUL) as the library's records."""
    return list(Gateway(aws).history(cluster, service).deployments)


def plan_rollback(aws: Aws, cluster: str, service: str, *, to: str | None = None, force: bool = False) -> RollbackPlan:
    gateway = Gateway(aws)
    _, current = gateway.service(cluster, service)
    live_arn = str(current["taskDefinition"])
    family = live_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    history = gateway.history(cluster, service)
    if to is not None:
        target_arn = _resolve_to(aws, family, to)
        chosen_by = "chosen with --to"
    else:
        found = rollback_target(list(history.deployments), current=live_arn)
        if found is None:
            raise NotFoundError(
                f"{service} has no earlier revision that ran to completion: pass --to REVISION to choose one"
            )
        target_arn = found
        finished = max(
            (d.finished_at for d in history.deployments if d.task_definition == found and d.finished_at), default=None
        )
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
    last = _last_run(history.deployments, target_arn)
    ran = history.images_that_ran(last.deployment) if last else {}
    checks = tuple(_check_image(gateway, c, ran.get(str(c.get("name")))) for c in body.get("containerDefinitions", []))
    short = target_arn.rsplit("/", 1)[-1]
    missing = [c for c in checks if c.in_ecr is False]
    if missing:
        gone = missing[0]
        what = f"the image {gone.pinned} that {short} ran" if gone.ran_digest else f"image {gone.image} of {short}"
        raise NotFoundError(
            f"{what} no longer exists in ECR: a rollback to it would fail; pass --to with another revision"
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
        ran_in=last.deployment if last else None,
    )


def _last_run(history: Iterable[DeploymentRecord], target_arn: str) -> DeploymentRecord | None:
    """The latest deployment of ``target_arn`` that ran to completion."""
    done = [d for d in history if d.task_definition == target_arn and d.status == "SUCCESSFUL"]
    return max(done, key=lambda d: d.finished_at or d.created_at or _EPOCH, default=None)


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
        if plan.pins:
            record.revision_arn = _register_pinned(plan, aws, stages, journal)
        assert record.revision_arn is not None
        rollout, since = deploy(
            Gateway(aws),
            plan.cluster,
            plan.service,
            expected_live=plan.live_arn,
            revision_arn=record.revision_arn,
            force=plan.force,
            stages=stages,
            record=record,
            journal=journal,
        )
        verdict = follow(rollout, stages, record, since, timeout, poll_interval, on_pause, until)
    return settle(record, journal, verdict)


def _register_pinned(plan: RollbackPlan, aws: Aws, stages: Stages, journal: Journal) -> str:
    """A copy of the target with the moved containers pinned to the digests they ran (tags kept, and which revision
    it copies); returns its ARN."""
    short = plan.target_arn.rsplit("/", 1)[-1]
    described = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": plan.target_arn, "include": ["TAGS"]})
    body = with_images(registrable(described["taskDefinition"]), plan.pins)
    tags = [t for t in described.get("tags") or [] if t["key"] != "rollback-of" and not t["key"].startswith("aws:")]
    body["tags"] = [*tags, {"key": "rollback-of", "value": short}]
    pinned = ", ".join(f"{name} to {image.rsplit('@', 1)[-1][:19]}" for name, image in plan.pins.items())
    with stages.stage("register", f"registering {short} again with the images it ran ({pinned})"):
        arn = str(aws.call_json("ecs", "RegisterTaskDefinition", body)["taskDefinition"]["taskDefinitionArn"])
        journal.write("registered", revision_arn=arn, pins=plan.pins)
    return arn


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


def _check_image(gateway: Gateway, container: dict[str, Any], ran_digest: str | None) -> ImageCheck:
    """What ``container``'s image names in ECR today and whether the image that ran (``ran_digest``) is there."""
    name, image = str(container.get("name")), str(container.get("image", ""))
    ref = ImageRef.parse(image)
    if ref.registry != gateway.registry_auth().host:
        return ImageCheck(name, image, None, ref.digest, ran_digest)
    image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
    today = gateway.image_digest(ref.repository, image_id)
    if ran_digest is None or ran_digest == today:
        return ImageCheck(name, image, today is not None, today or ref.digest, ran_digest)
    ran_there = gateway.image_digest(ref.repository, {"imageDigest": ran_digest}) is not None
    return ImageCheck(name, image, ran_there, today, ran_digest)
