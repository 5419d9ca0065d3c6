"""ECR in the sandbox: images, the image APIs, credentials, and the registry behind the sandbox's port.

moto has no data plane and gets images wrong (notes: moto-fidelity), so the sandbox keeps ECR's images
itself (:mod:`opskit.sandbox.ecr.images`) and answers every image API from that model. Images arrive by
``docker push`` through the registry proxy (:mod:`opskit.sandbox.ecr.registry_proxy`) or by PutImage; either way
they get their real digest, tags, push time (sandbox clock) and compressed size. Without a registry the
APIs still work: PutImage keeps the manifest in the model, and tasks can "pull" whatever the model holds.

>>> ecr = sandbox.client("ecr")                                          # doctest: +SKIP
>>> ecr.create_repository(repositoryName="web")["repository"]["repositoryUri"]   # doctest: +SKIP
'127.0.0.1:41234/web'
>>> token = ecr.get_authorization_token()["authorizationData"][0]      # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.images import (
    MANIFEST_TYPES,
    TAG,
    Image,
    ImageStore,
    Manifest,
    RepositoryImages,
    image_id_failure,
    image_not_found,
    validate_image_ids,
)
from opskit.sandbox.ecr.registry import Registry
from opskit.sandbox.ecr.registry_proxy import AuthorizationTokens, RegistryProxy
from opskit.sandbox.ecr.repositories import Repositories
from opskit.sandbox.ecr.scans import Scans
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, invalid_parameter

log = logging.getLogger("opskit.sandbox")

TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")
_NOT_FOUND = {"failureCode": "ImageNotFound", "failureReason": "Requested image not found"}
_LAYER_ERRORS = ("BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN")


class Images:
    """ECR for one account and region; :meth:`handlers` are the actions answered here instead of by moto."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        account_id: str,
        region: str,
        registry: Registry | None,
        registry_host: str,
    ) -> None:
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.registry = registry
        self.registry_host = registry_host
        self.store = ImageStore(clock, account_id, region)
        self.tokens = AuthorizationTokens(clock)
        self.repositories = Repositories(clock=clock, store=self.store, registry=registry, registry_host=registry_host)
        self.scans = Scans(clock=clock, store=self.store)

    def handlers(self) -> dict[str, Handler]:
        return {
            **self.repositories.handlers(),
            "GetAuthorizationToken": self._get_authorization_token,
            "DescribeImages": self._describe_images,
            "ListImages": self._list_images,
            "BatchGetImage": self._batch_get_image,
            "BatchDeleteImage": self._batch_delete_image,
            "PutImage": self._put_image,
            **self.scans.handlers(),
        }

    def registry_app(self) -> RegistryProxy:
        """The WSGI app for ``/v2/...`` on the sandbox's port (only when a registry runs)."""
        assert self.registry is not None, "no registry runs: there is no data plane to serve"
        return RegistryProxy(
            store=self.store,
            tokens=self.tokens,
            registry=self.registry,
            registry_host=self.registry_host,
            account_id=self.account_id,
        )

    def pull_credentials(self) -> dict[str, str]:
        """An ``auth_config`` for the Docker SDK to pull from this sandbox in-process (valid 12 sandbox hours),
        as GetAuthorizationToken would give it.

        >>> engine.images.pull(uri, tag="v1", auth_config=images.pull_credentials())  # doctest: +SKIP
        """
        password, _ = self.tokens.issue()
        return {"username": "AWS", "password": password}

    def pullable(self, image_reference: str) -> bool:
        """Can a task pull ``image_reference`` (``HOST/NAME[:TAG][@DIGEST]``)? Only this sandbox's ECR images.

        >>> images.pullable("127.0.0.1:41234/web:3f2a9c1")                # doctest: +SKIP
        True
        """
        return self.digest_of(image_reference) is not None

    def digest_of(self, image_reference: str) -> str | None:
        """The digest ``image_reference`` names now in this sandbox's ECR (what ECS resolves a tag to when a
        deployment starts), or None when it names nothing pullable here."""
        host, _, rest = (image_reference or "").partition("/")
        if host != self.registry_host or not rest:
            return None
        name, _, digest = rest.partition("@")
        last = name.rsplit("/", 1)[-1]
        tag = "latest"
        if ":" in last:
            name, _, tag = name.rpartition(":")
        image = self.store.resolve(name, digest or tag)
        return None if image is None else image.digest

    # -- credentials -----------------------------------------------------------------------------------------
    def _get_authorization_token(self, request: ApiRequest) -> dict[str, Any]:
        registry_ids = request.params.get("registryIds") or [self.account_id]
        data = []
        for _ in registry_ids:
            password, expires = self.tokens.issue()
            token = base64.b64encode(f"AWS:{password}".encode()).decode()
            data.append(
                {
                    "authorizationToken": token,
                    "expiresAt": expires,
                    "proxyEndpoint": f"http://{self.registry_host}",
                }
            )
        return {"authorizationData": data}

    # -- reads -----------------------------------------------------------------------------------------------
    def _describe_images(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        tag_status = _tag_status(params)
        with self.store.lock:
            repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            image_ids = params.get("imageIds")
            if image_ids:
                if params.get("maxResults") is not None or params.get("nextToken"):
                    raise invalid_parameter("maxResults and nextToken cannot be used with imageIds.")
                images: list[Image] = []
                for image_id in validate_image_ids(image_ids, limit=100):
                    malformed = image_id_failure(image_id)
                    if malformed:
                        raise invalid_parameter(malformed["failureReason"])
                    image = self.store.find(state, image_id)
                    if image is None:
                        raise image_not_found(image_id, repository.name, repository.registry_id)
                    if all(image is not seen for seen in images) and _has_status(image, tag_status):
                        images.append(image)
                return {"imageDetails": [self._detail(repository, image) for image in images]}
            ordered = [image for image in state.ordered() if _has_status(image, tag_status)]
            page, token = paginate(
                ordered,
                key=Image.sort_key,
                max_results=params.get("maxResults"),
                next_token=params.get("nextToken"),
                default=100,
                limit=1000,
                query=f"describe-images:{repository.name}:{tag_status}",
            )
            out: dict[str, Any] = {"imageDetails": [self._detail(repository, image) for image in page]}
        if token:
            out["nextToken"] = token
        return out

    def _detail(self, repository: Any, image: Image) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "imageDigest": image.digest,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at,
            "imageManifestMediaType": image.manifest.media_type,
        }
        if image.tags:
            detail["imageTags"] = list(image.tags)
        if image.manifest.artifact_media_type:
            detail["artifactMediaType"] = image.manifest.artifact_media_type
        if image.last_pulled_at is not None:
            detail["lastRecordedPullTime"] = image.last_pulled_at
        status, completed = self.scans.status(image)
        if status is not None:
            detail["imageScanStatus"] = status
            if completed is not None:
                detail["imageScanFindingsSummary"] = {
                    "imageScanCompletedAt": completed,
                    "vulnerabilitySourceUpdatedAt": completed,
                    "findingSeverityCounts": {},
                }
        return detail

    def _list_images(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        tag_status = _tag_status(params)
        with self.store.lock:
            repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            entries: list[tuple[tuple[float, str, str], dict[str, str]]] = []
            for image in state.ordered():
                if not _has_status(image, tag_status):
                    continue
                if image.tags:
                    entries += [
                        ((*image.sort_key(), tag), {"imageDigest": image.digest, "imageTag": tag}) for tag in image.tags
                    ]
                else:
                    entries.append(((*image.sort_key(), ""), {"imageDigest": image.digest}))
        entries.sort(key=lambda e: e[0])
        page, token = paginate(
            entries,
            key=lambda e: e[0],
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=100,
            limit=1000,
            query=f"list-images:{repository.name}:{tag_status}",
        )
        out: dict[str, Any] = {"imageIds": [entry[1] for entry in page]}
        if token:
            out["nextToken"] = token
        return out

    def _batch_get_image(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        image_ids = validate_image_ids(params.get("imageIds"))
        images, failures = [], []
        with self.store.lock:
            repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            for image_id in image_ids:
                failure = image_id_failure(image_id) or _mismatch(state, image_id)
                image = None if failure else self.store.find(state, image_id)
                if image is None:
                    failures.append({"imageId": image_id, **(failure or _NOT_FOUND)})
                    continue
                found_id = {"imageDigest": image.digest}
                if image_id.get("imageTag"):
                    found_id["imageTag"] = image_id["imageTag"]
                images.append(
                    {
                        "registryId": repository.registry_id,
                        "repositoryName": repository.name,
                        "imageId": found_id,
                        "imageManifest": image.manifest.body.decode(),
                        "imageManifestMediaType": image.manifest.media_type,
                    }
                )
        return {"images": images, "failures": failures}

    # -- writes ----------------------------------------------------------------------------------------------
    def _batch_delete_image(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        image_ids = validate_image_ids(params.get("imageIds"))
        deleted: list[dict[str, str]] = []
        failures: list[dict[str, Any]] = []
        with self.store.lock:
            repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            gone: list[str] = []
            for image_id in image_ids:
                failure = image_id_failure(image_id) or _mismatch(state, image_id)
                image = None if failure else self.store.find(state, image_id)
                if image is None:
                    failures.append({"imageId": image_id, **(failure or _NOT_FOUND)})
                    continue
                tag = image_id.get("imageTag")
                last_tag = not tag or image.tags == [tag]
                if last_tag and self.store.referenced_by_index(state, image.digest):
                    failures.append(
                        {
                            "imageId": image_id,
                            "failureCode": "ImageReferencedByManifestList",
                            "failureReason": "Requested image is referenced by a manifest list",
                        }
                    )
                    continue
                if tag:
                    deleted.append({"imageDigest": image.digest, "imageTag": tag})
                    if self.store.untag(state, image, tag):
                        gone.append(image.digest)
                else:
                    deleted += [{"imageDigest": image.digest, "imageTag": t} for t in image.tags] or [
                        {"imageDigest": image.digest}
                    ]
                    self.store.remove(state, image)
                    gone.append(image.digest)
            for digest in gone:
                self.repositories.delete_manifest(repository.name, digest)
        return {"imageIds": deleted, "failures": failures}

    def _put_image(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        text, tag = params.get("imageManifest"), params.get("imageTag")
        media_type = params.get("imageManifestMediaType")
        if not isinstance(text, str) or not text:
            raise invalid_parameter(
                "Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Member must not be null'"
            )
        if media_type is not None and media_type not in MANIFEST_TYPES:
            raise invalid_parameter(
                f"Invalid parameter at 'imageManifestMediaType': unsupported media type '{media_type}'"
            )
        if tag is not None and (not isinstance(tag, str) or not TAG.match(tag)):
            raise invalid_parameter("Invalid parameter at 'imageTag' failed to satisfy constraint: 'Invalid image tag'")
        try:
            manifest = Manifest.parse(text.encode(), media_type)
        except ValueError as exc:
            raise invalid_parameter(
                "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
            ) from exc
        if params.get("imageDigest") and params["imageDigest"] != manifest.digest:
            raise ApiError(
                "ImageDigestDoesNotMatchException",
                f"The specified image digest '{params['imageDigest']}' does not match the digest of the "
                f"manifest '{manifest.digest}'.",
            )
        with self.store.lock:
            repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
            existing = state.images.get(manifest.digest)
            if existing is not None and (not tag or tag in existing.tags):
                raise ApiError(
                    "ImageAlreadyExistsException",
                    f"Image with digest '{manifest.digest}' and tag '{tag or 'null'}' already exists in the "
                    f"repository with name '{repository.name}' "
                    f"in registry with id '{repository.registry_id}'",
                )
            self.store.check_push(repository.name, tag)
            self._write_manifest(repository, manifest, tag)
            self.store.record(repository.name, manifest, tag)
        image_id = {"imageDigest": manifest.digest, **({"imageTag": tag} if tag else {})}
        return {
            "image": {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "imageId": image_id,
                "imageManifest": text,
                "imageManifestMediaType": manifest.media_type,
            }
        }

    def _write_manifest(self, repository: Any, manifest: Manifest, tag: str | None) -> None:
        """PutImage on ECR stores the manifest where docker pulls it from: the registry, when one runs."""
        if self.registry is None:
            return
        reference = tag or quote(manifest.digest, safe=":")
        status, _, body = self.registry.request(
            "PUT",
            f"/v2/{repository.name}/manifests/{reference}",
            manifest.body,
            {"Content-Type": manifest.media_type},
        )
        if status == 201:
            return
        codes = _registry_error_codes(body)
        if any(code in _LAYER_ERRORS for code in codes):
            raise ApiError(
                "LayersNotFoundException",
                f"Layers required for pushing image into repository with name '{repository.name}' in the "
                f"registry with id '{repository.registry_id}' do not exist: push the layers (blobs) first.",
            )
        raise invalid_parameter(
            f"Invalid parameter at 'imageManifest': the registry refused it ({', '.join(codes) or status})"
        )


def _tag_status(params: dict[str, Any]) -> str:
    status = (params.get("filter") or {}).get("tagStatus") or "ANY"
    if status not in TAG_STATUSES:
        raise invalid_parameter("Invalid parameter at 'filter.tagStatus': must be one of TAGGED, UNTAGGED, ANY")
    return str(status)


def _has_status(image: Image, status: str) -> bool:
    return status == "ANY" or (status == "TAGGED") == bool(image.tags)


def _mismatch(state: RepositoryImages, image_id: dict[str, Any]) -> dict[str, str] | None:
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    current = state.tags.get(tag) if tag else None
    if digest and current is not None and current != digest:
        return {
            "failureCode": "ImageTagDoesNotMatchDigest",
            "failureReason": "Invalid request parameters: given tag does not map to the given digest",
        }
    return None


def _registry_error_codes(body: bytes) -> list[str]:
    try:
        errors: Iterable[Any] = json.loads(body).get("errors") or []
        return [str(e.get("code")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return []
