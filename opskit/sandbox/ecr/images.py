"""ECR's images as ECR keeps them: per repository, by digest, with tags that move or stay put.

moto owns repositories (names, mutability, scanning settings, policies); this model owns what moto has no
faithful notion of: the images in them. An image is a manifest stored under its digest (sha256 of the
manifest's bytes, the registry's Docker-Content-Digest); tags point at images. In a MUTABLE repository a tag
pushed again moves and leaves its old image untagged; in an IMMUTABLE one it is refused, even when the push is
the very image the tag already holds (ECR does not compare digests first: a re-run of a CI job that pushes again
fails there). Exclusion filters flip that per tag and match as wildcards (``*``), not regular expressions.

>>> tag_is_immutable("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "dev-*"}], "dev-42")
False
>>> tag_is_immutable("MUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "v*.*"}], "v1.2")
True
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.server.wire import ApiError, invalid_parameter

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = frozenset(
    {
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST_V1,
        DOCKER_MANIFEST_V1_SIGNED,
        OCI_MANIFEST,
        OCI_INDEX,
    }
)
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
SCAN_SECONDS = 10.0  # sandbox seconds from push to a COMPLETE basic scan

DIGEST = re.compile(r"^[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}$")


# -- rules ---------------------------------------------------------------------------------------------------
def wildcard_matches(pattern: str, tag: str) -> bool:
    """ECR's WILDCARD filter: ``*`` matches any run of characters, everything else is literal."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), tag) is not None


def tag_is_immutable(mutability: str, filters: list[dict[str, str]] | None, tag: str) -> bool:
    excluded = any(wildcard_matches(f.get("filter", ""), tag) for f in filters or [])
    if mutability == "IMMUTABLE":
        return True
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


def mutability_of(repository: Any) -> str:
    value = repository.image_tag_mutability
    return str(value.value if isinstance(value, Enum) else value)


@dataclass(frozen=True)
class Manifest:
    """What ECR reads out of a manifest: its digest, type, size and the images an index points at."""

    body: bytes
    digest: str
    media_type: str
    artifact_media_type: str | None
    layer_bytes: int  # config + layers, compressed, as ECR's imageSizeInBytes counts them
    references: tuple[str, ...]  # child manifests of an index

    @classmethod
    def parse(cls, body: bytes, media_type: str | None = None) -> Manifest:
        """Raises ValueError when ``body`` is not a JSON manifest."""
        if len(body) > MAX_MANIFEST_BYTES:
            raise ValueError(f"a manifest is at most {MAX_MANIFEST_BYTES} bytes")
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise ValueError("a manifest is a JSON object")
        declared = (media_type or "").split(";")[0].strip()
        kind = declared if declared in MANIFEST_TYPES else doc.get("mediaType")
        if not isinstance(kind, str) or not kind:
            if doc.get("schemaVersion") == 1:
                kind = DOCKER_MANIFEST_V1_SIGNED if "signatures" in doc else DOCKER_MANIFEST_V1
            else:
                kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
        config: dict[str, Any] = doc["config"] if isinstance(doc.get("config"), dict) else {}
        layers: list[dict[str, Any]] = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
        size = sum(int(d.get("size") or 0) for d in [config, *layers])
        children = tuple(
            str(m["digest"]) for m in doc.get("manifests") or [] if isinstance(m, dict) and m.get("digest")
        )
        return cls(
            body=body,
            digest="sha256:" + hashlib.sha256(body).hexdigest(),
            media_type=kind,
            artifact_media_type=config.get("mediaType"),
            layer_bytes=size,
            references=children,
        )


@dataclass
class Image:
    repository: str
    manifest: Manifest
    size: int
    pushed_at: datetime
    tags: list[str] = field(default_factory=list)
    scan_completes_at: datetime | None = None
    last_pulled_at: datetime | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def sort_key(self) -> tuple[float, str]:
        return (self.pushed_at.timestamp(), self.digest)


@dataclass
class RepositoryImages:
    owner: Any  # moto's Repository object: a repository created again under the same name starts empty
    images: dict[str, Image] = field(default_factory=dict)  # by digest
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest

    def ordered(self) -> list[Image]:
        return sorted(self.images.values(), key=Image.sort_key)


def image_not_found(image_id: dict[str, Any], repository: str, registry_id: str) -> ApiError:
    digest, tag = image_id.get("imageDigest") or "null", image_id.get("imageTag") or "null"
    return ApiError(
        "ImageNotFoundException",
        f"The image with imageId {{imageDigest:'{digest}', imageTag:'{tag}'}} does not exist within "
        f"the repository with name '{repository}' in the registry with id '{registry_id}'",
    )


def tag_already_exists(tag: str, repository: str) -> ApiError:
    return ApiError(
        "ImageTagAlreadyExistsException",
        f"The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten "
        "because the repository is immutable.",
    )


class ImageStore:
    """All images of one account and region; ``lock`` guards every read-modify-write, including the registry
    round trip of a push, so a tag check and the write it allows cannot interleave with another push."""

    def __init__(self, clock: SandboxClock, account_id: str, region: str) -> None:
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()
        self._repositories: dict[str, RepositoryImages] = {}

    # -- repositories (moto's) -------------------------------------------------------------------------------
    def backend(self) -> Any:
        from moto.ecr.models import ecr_backends

        return ecr_backends[self.account_id][self.region]

    def repository(self, name: Any, registry_id: Any = None) -> tuple[Any, RepositoryImages]:
        """moto's repository and its images, or RepositoryNotFoundException."""
        owner = self.backend().repositories.get(name) if isinstance(name, str) else None
        registry = registry_id or self.account_id
        if owner is None or owner.registry_id != registry:
            raise ApiError(
                "RepositoryNotFoundException",
                f"The repository with name '{name}' does not exist in the registry with id '{registry}'",
            )
        with self.lock:
            state = self._repositories.get(name)
            if state is None or state.owner is not owner:
                state = self._repositories[name] = RepositoryImages(owner)
            return owner, state

    def exists(self, name: str) -> bool:
        return name in self.backend().repositories

    def forget(self, name: str) -> list[Image]:
        """Drop a deleted repository's images; returns them."""
        with self.lock:
            state = self._repositories.pop(name, None)
            return [] if state is None else list(state.images.values())

    # -- pushes ----------------------------------------------------------------------------------------------
    def check_push(self, name: str, tag: str | None) -> None:
        """Raise ImageTagAlreadyExistsException if ``tag`` exists and may not be pushed again: an immutable tag
        refuses every push under it, the image it already holds included (PutImage answers that case with
        ImageAlreadyExistsException before it gets here)."""
        owner, state = self.repository(name)
        if tag and tag in state.tags:
            filters = owner.image_tag_mutability_exclusion_filters
            if tag_is_immutable(mutability_of(owner), filters, tag):
                raise tag_already_exists(tag, name)

    def record(self, name: str, manifest: Manifest, tag: str | None) -> Image:
        """Store a pushed manifest (after check_push); a moved tag leaves its old image untagged."""
        with self.lock:
            owner, state = self.repository(name)
            image = state.images.get(manifest.digest)
            if image is None:
                now = self.clock.now()
                scan = bool((owner.image_scanning_configuration or {}).get("scanOnPush"))
                image = Image(
                    repository=name,
                    manifest=manifest,
                    size=self._size(state, manifest),
                    pushed_at=now,
                    scan_completes_at=now + timedelta(seconds=SCAN_SECONDS) if scan else None,
                )
                state.images[manifest.digest] = image
            if tag:
                previous = state.tags.get(tag)
                if previous is not None and previous != manifest.digest:
                    state.images[previous].tags.remove(tag)
                if tag not in image.tags:
                    image.tags.append(tag)
                state.tags[tag] = manifest.digest
            return image

    @staticmethod
    def _size(state: RepositoryImages, manifest: Manifest) -> int:
        if manifest.media_type in INDEX_TYPES:
            return sum(state.images[d].size for d in manifest.references if d in state.images)
        return manifest.layer_bytes or len(manifest.body)

    # -- reads -----------------------------------------------------------------------------------------------
    def find(self, state: RepositoryImages, image_id: dict[str, Any]) -> Image | None:
        """The image an ECR imageId names (digest, tag, or both when they agree)."""
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if tag:
            by_tag = state.images.get(state.tags.get(tag, ""))
            return by_tag if by_tag is not None and (not digest or by_tag.digest == digest) else None
        return state.images.get(digest) if digest else None

    def resolve(self, name: str, reference: str) -> Image | None:
        """A registry reference (tag or digest) in a repository, or None."""
        with self.lock:
            try:
                _, state = self.repository(name)
            except ApiError:
                return None
            key = {"imageDigest": reference} if ":" in reference else {"imageTag": reference}
            return self.find(state, key)

    def note_pull(self, name: str, digest: str) -> None:
        with self.lock:
            state = self._repositories.get(name)
            image = state.images.get(digest) if state else None
            if image is not None:
                image.last_pulled_at = self.clock.now()

    # -- deletes ---------------------------------------------------------------------------------------------
    def referenced_by_index(self, state: RepositoryImages, digest: str) -> bool:
        return any(digest in other.manifest.references for other in state.images.values() if other.digest != digest)

    def untag(self, state: RepositoryImages, image: Image, tag: str) -> bool:
        """Remove ``tag``; the image goes too when that was its last tag. True when the image went."""
        image.tags.remove(tag)
        del state.tags[tag]
        if image.tags:
            return False
        del state.images[image.digest]
        return True

    def remove(self, state: RepositoryImages, image: Image) -> None:
        for tag in image.tags:
            state.tags.pop(tag, None)
        del state.images[image.digest]


def validate_image_ids(image_ids: Any, *, limit: int = 100) -> list[dict[str, Any]]:
    if not isinstance(image_ids, list) or not 1 <= len(image_ids) <= limit:
        raise invalid_parameter(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: "
            f"'Member must have length between 1 and {limit}'"
        )
    return [i if isinstance(i, dict) else {} for i in image_ids]


def image_id_failure(image_id: dict[str, Any]) -> dict[str, str] | None:
    """The failure BatchGetImage / BatchDeleteImage report for a malformed imageId, or None."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if not digest and not tag:
        return {
            "failureCode": "MissingDigestAndTag",
            "failureReason": "Invalid request parameters: both tag and digest cannot be null",
        }
    if digest and not DIGEST.match(str(digest)):
        return {
            "failureCode": "InvalidImageDigest",
            "failureReason": "Invalid request parameters: image digest should satisfy the regex "
            "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
        }
    if tag and not TAG.match(str(tag)):
        return {
            "failureCode": "InvalidImageTag",
            "failureReason": "Invalid request parameters: image tag is not valid",
        }
    return None
