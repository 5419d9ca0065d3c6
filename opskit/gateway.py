"""The reads that plan, apply, rollback and the control commands share, beside the AWS boundary: a service as ECS
describes it, an image's digest in ECR, the registry's credentials, and a service's deployment history as ECS
recorded it. Each answers in one place, with one way of saying what is missing.

One :class:`Gateway` per piece of work (a plan and the apply that carries it out share the plan's): the registry's
credentials are asked for once and kept (ECR's tokens last 12 hours).

>>> gateway = Gateway(aws)                                                   # doctest: +SKIP
>>> cluster_arn, service = gateway.service("prod", "web")
>>> gateway.image_digest("web", {"imageTag": "3f2a9c1e8b2d"})
'sha256:...'
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import Any

from opskit.aws import Aws
from opskit.errors import AwsError, NotFoundError
from opskit.records import DeploymentRecord

REVISIONS_PER_CALL = 20  # DescribeServiceRevisions' limit


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for the account's ECR registry (GetAuthorizationToken), as Docker takes them."""

    username: str
    password: str = field(repr=False)
    server: str

    @classmethod
    def from_ecr(cls, authorization_data: dict[str, Any]) -> RegistryAuth:
        username, _, password = base64.b64decode(authorization_data["authorizationToken"]).decode().partition(":")
        return cls(username, password, authorization_data["proxyEndpoint"])

    @property
    def host(self) -> str:
        """``123456789012.dkr.ecr.eu-west-1.amazonaws.com``: the registry, as image references name it."""
        return self.server.split("://", 1)[-1].rstrip("/")

    def docker_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "serveraddress": self.server}


@dataclass(frozen=True)
class History:
    """A service's deployments that ran to completion (ListServiceDeployments SUCCESSFUL), newest first as ECS lists
    them, and each one's target service revision (DescribeServiceRevisions: its task definition and the image
    digests it ran) by the deployment's ARN."""

    deployments: tuple[DeploymentRecord, ...]
    revisions: dict[str, dict[str, Any]]

    def images_that_ran(self, deployment_arn: str) -> dict[str, str]:
        """Container -> the digest ECS resolved for it in that deployment (its service revision's containerImages)."""
        return {
            str(c["containerName"]): str(c["imageDigest"])
            for c in self.revisions.get(deployment_arn, {}).get("containerImages") or []
            if c.get("containerName") and c.get("imageDigest")
        }


class Gateway:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._auth: RegistryAuth | None = None
        self._lock = threading.Lock()

    def service(
        self, cluster: str, service: str, *, tags: bool = False, raw: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """(cluster ARN, the service as DescribeServices tells it, with its ``tags`` when asked), or a one-line error
        naming what is missing. ``raw``: exactly as ECS sent it (:meth:`Aws.call_json`: every field, even those the
        installed botocore does not know; timestamps as epoch seconds)."""
        aws = self.aws
        body: dict[str, Any] = {"cluster": cluster, "services": [service], **({"include": ["TAGS"]} if tags else {})}
        try:
            answer = (
                aws.call_json("ecs", "DescribeServices", body) if raw else aws.client("ecs").describe_services(**body)
            )
        except AwsError as exc:
            if exc.code == "ClusterNotFoundException":
                raise NotFoundError(
                    f"cluster {cluster!r} not found in {aws.region}: check --cluster and the region"
                ) from exc
            raise
        found = [s for s in answer.get("services", []) if s.get("status") == "ACTIVE"]
        if not found:
            raise NotFoundError(
                f"service {service!r} not found in cluster {cluster!r} ({aws.region}): check --service, or create it "
                "first"
            )
        return str(found[0]["clusterArn"]), found[0]

    def registry_auth(self) -> RegistryAuth:
        """The account's ECR credentials: asked for once per gateway."""
        with self._lock:
            if self._auth is None:
                data = self.aws.client("ecr").get_authorization_token()["authorizationData"][0]
                self._auth = RegistryAuth.from_ecr(data)
            return self._auth

    def image(self, repository: str, image_id: dict[str, str]) -> dict[str, Any] | None:
        """DescribeImages' details of one image (``{"imageTag": ...}`` or ``{"imageDigest": ...}``); None when the
        image or its repository is not there."""
        try:
            found = self.aws.client("ecr").describe_images(repositoryName=repository, imageIds=[image_id])
        except AwsError as exc:
            if exc.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return None
            raise
        details: list[dict[str, Any]] = found.get("imageDetails") or []
        return details[0] if details else None

    def image_digest(self, repository: str, image_id: dict[str, str]) -> str | None:
        """The digest of one image in ECR; None when it is not there."""
        found = self.image(repository, image_id)
        return str(found["imageDigest"]) if found else None

    def history(self, cluster: str, service: str) -> History:
        """The service's deployments that ran to completion, with what each one ran (:class:`History`)."""
        from opskit.library.rollback import from_service_deployment  # the library (and pandas) only when asked

        ecs = self.aws.client("ecs")
        briefs: list[dict[str, Any]] = []
        token: dict[str, str] = {}
        while True:  # botocore has no paginator for this one
            page = ecs.list_service_deployments(cluster=cluster, service=service, status=["SUCCESSFUL"], **token)
            briefs.extend(page.get("serviceDeployments", []))
            if not page.get("nextToken"):
                break
            token = {"nextToken": page["nextToken"]}
        arns = list(dict.fromkeys(b["targetServiceRevisionArn"] for b in briefs if b.get("targetServiceRevisionArn")))
        revisions: dict[str, dict[str, Any]] = {}
        for start in range(0, len(arns), REVISIONS_PER_CALL):
            answer = ecs.describe_service_revisions(serviceRevisionArns=arns[start : start + REVISIONS_PER_CALL])
            revisions.update({r["serviceRevisionArn"]: r for r in answer.get("serviceRevisions", [])})
        ran = {b["serviceDeploymentArn"]: revisions.get(b.get("targetServiceRevisionArn", ""), {}) for b in briefs}
        records = tuple(
            from_service_deployment(b, ran[b["serviceDeploymentArn"]].get("taskDefinition"), cluster, service)
            for b in briefs
        )
        return History(records, ran)


__all__ = ["Gateway", "History", "RegistryAuth"]
