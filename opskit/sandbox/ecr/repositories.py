"""ECR repository actions whose answers moto gets wrong for the sandbox.

moto keeps the repositories; these handlers call its backend in-process and answer in AWS's shape with what
must differ: repositoryUri is ``127.0.0.1:PORT/NAME`` (the sandbox's own registry), createdAt comes from the
sandbox clock, listings page, DeleteRepository counts the images of :mod:`opskit.sandbox.ecr.images` (moto has
none) and takes them out of the registry, exclusion filters are validated as AWS does, and the scanning
configuration reports scanOnPush as set. Lifecycle policies, repository policies and tags stay with moto.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.images import ImageStore, mutability_of
from opskit.sandbox.ecr.registry import Registry
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, invalid_parameter

log = logging.getLogger("opskit.sandbox")

_FILTER = re.compile(r"^[0-9a-zA-Z._*-]{1,128}$")
MAX_EXCLUSION_FILTERS = 5


def moto_call(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call moto's backend; its service exceptions become the sandbox's ApiError (same code and message)."""
    from moto.core.exceptions import ServiceException

    try:
        return call(*args, **kwargs)
    except ServiceException as exc:
        raise ApiError(str(exc.code), str(exc.message)) from exc


def validate_exclusion_filters(filters: Any) -> list[dict[str, str]] | None:
    if filters is None:
        return None
    if not isinstance(filters, list) or not 1 <= len(filters) <= MAX_EXCLUSION_FILTERS:
        raise invalid_parameter(
            "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: "
            f"'Member must have length between 1 and {MAX_EXCLUSION_FILTERS}'"
        )
    for item in filters:
        value = item.get("filter") if isinstance(item, dict) else None
        if not isinstance(value, str) or not _FILTER.match(value):
            raise invalid_parameter(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters.filter' failed to satisfy "
                "constraint: 'Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{1,128}$'"
            )
    return [dict(item) for item in filters]


class Repositories:
    def __init__(
        self, *, clock: SandboxClock, store: ImageStore, registry: Registry | None, registry_host: str
    ) -> None:
        self.clock = clock
        self.store = store
        self.registry = registry
        self.registry_host = registry_host

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateRepository": self._create,
            "DescribeRepositories": self._describe,
            "DeleteRepository": self._delete,
            "PutImageTagMutability": self._put_tag_mutability,
            "BatchGetRepositoryScanningConfiguration": self._scanning_configuration,
        }

    def describe(self, repository: Any) -> dict[str, Any]:
        """The repository object of CreateRepository / DescribeRepositories / DeleteRepository."""
        created = repository.created_at
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)  # moto keeps naive UTC
        out: dict[str, Any] = {
            "repositoryArn": repository.arn,
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "repositoryUri": f"{self.registry_host}/{repository.name}",
            "createdAt": created,
            "imageTagMutability": mutability_of(repository),
            "imageScanningConfiguration": {
                "scanOnPush": bool((repository.image_scanning_configuration or {}).get("scanOnPush"))
            },
            "encryptionConfiguration": _plain(repository.encryption_configuration),
        }
        if repository.image_tag_mutability_exclusion_filters:
            out["imageTagMutabilityExclusionFilters"] = _plain(repository.image_tag_mutability_exclusion_filters)
        return out

    # -- handlers --------------------------------------------------------------------------------------------
    def _create(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        filters = validate_exclusion_filters(params.get("imageTagMutabilityExclusionFilters"))
        backend = self.store.backend()
        with self.store.lock:
            repository = moto_call(
                backend.create_repository,
                repository_name=params.get("repositoryName") or "",
                registry_id=params.get("registryId"),
                encryption_config=params.get("encryptionConfiguration"),
                image_scan_config=params.get("imageScanningConfiguration"),
                image_tag_mutability=params.get("imageTagMutability"),
                image_tag_mutability_exclusion_filters=filters,
                tags=params.get("tags") or [],
            )
            repository.created_at = self.clock.now()
            repository.uri = f"{self.registry_host}/{repository.name}"
            self.store.forget(repository.name)  # leftovers of an earlier repository of that name
            return {"repository": self.describe(repository)}

    def _describe(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        names = params.get("repositoryNames")
        registry_id = params.get("registryId") or request.account_id
        repositories = self.store.backend().repositories
        if names:
            if params.get("maxResults") is not None or params.get("nextToken"):
                raise invalid_parameter("maxResults and nextToken cannot be used with repositoryNames.")
            found = []
            for name in names:
                repository = repositories.get(name)
                if repository is None or repository.registry_id != registry_id:
                    raise ApiError(
                        "RepositoryNotFoundException",
                        f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'",
                    )
                found.append(repository)
            return {"repositories": [self.describe(r) for r in found]}
        ordered = sorted((r for r in list(repositories.values()) if r.registry_id == registry_id), key=lambda r: r.name)
        page, token = paginate(
            ordered,
            key=lambda r: r.name,
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=100,
            limit=1000,
            query=f"describe-repositories:{registry_id}",
        )
        out: dict[str, Any] = {"repositories": [self.describe(r) for r in page]}
        if token:
            out["nextToken"] = token
        return out

    def _delete(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        name, registry_id = params.get("repositoryName"), params.get("registryId")
        with self.store.lock:
            repository, state = self.store.repository(name, registry_id)
            if state.images and not params.get("force"):
                raise ApiError(
                    "RepositoryNotEmptyException",
                    f"The repository with name '{name}' in registry with id '{repository.registry_id}' "
                    "cannot be deleted because it still contains images",
                )
            moto_call(self.store.backend().delete_repository, name, registry_id, True)
            images = self.store.forget(repository.name)
            for image in images:
                self.delete_manifest(repository.name, image.digest)
            return {"repository": self.describe(repository)}

    def _put_tag_mutability(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        filters = validate_exclusion_filters(params.get("imageTagMutabilityExclusionFilters"))
        backend = self.store.backend()
        with self.store.lock:
            mutability = params.get("imageTagMutability")
            moto_call(backend.validate_image_tag_mutability_params_compatibility, mutability, filters)
            moto_call(
                backend.put_image_tag_mutability,
                registry_id=params.get("registryId"),
                repository_name=params.get("repositoryName"),
                image_tag_mutability=mutability,
                image_tag_mutability_exclusion_filters=filters,
            )
            repository, _ = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            out: dict[str, Any] = {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "imageTagMutability": mutability_of(repository),
            }
            if filters:
                out["imageTagMutabilityExclusionFilters"] = filters
            return out

    def _scanning_configuration(self, request: ApiRequest) -> dict[str, Any]:
        configurations, failures = [], []
        for name in request.params.get("repositoryNames") or []:
            try:
                repository, _ = self.store.repository(name)
            except ApiError:
                failures.append(
                    {
                        "repositoryName": name,
                        "failureCode": "REPOSITORY_NOT_FOUND",
                        "failureReason": "REPOSITORY_NOT_FOUND",
                    }
                )
                continue
            on_push = bool((repository.image_scanning_configuration or {}).get("scanOnPush"))
            configurations.append(
                {
                    "repositoryArn": repository.arn,
                    "repositoryName": repository.name,
                    "scanOnPush": on_push,
                    "scanFrequency": "SCAN_ON_PUSH" if on_push else "MANUAL",
                    "appliedScanFilters": [],
                }
            )
        return {"scanningConfigurations": configurations, "failures": failures}

    # -- the registry ----------------------------------------------------------------------------------------
    def delete_manifest(self, name: str, digest: str) -> None:
        """Take a manifest out of the registry (its tags go with it); the model already forgot it."""
        if self.registry is None:
            return
        try:
            status, _, body = self.registry.request("DELETE", f"/v2/{name}/manifests/{quote(digest, safe=':')}")
        except OSError as exc:
            log.warning("the registry did not delete %s@%s: %s", name, digest, exc)
            return
        if status not in (202, 404):
            log.warning("the registry refused to delete %s@%s: %s %s", name, digest, status, body[:200])


def _plain(value: Any) -> Any:
    """moto's values with str-Enums turned into their strings (JSON-safe, AWS-shaped)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
