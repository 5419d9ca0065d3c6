"""ECR basic image scanning, simulated: a scan is IN_PROGRESS for a few sandbox seconds, then COMPLETE with
no findings. Enough for code that waits on scan status or reads the findings summary; nothing is inspected.

A push to a repository with ``scanOnPush`` starts one (:meth:`ImageStore.record`); StartImageScan starts
another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.images import SCAN_SECONDS, Image, ImageStore, image_id_failure, image_not_found
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler


class Scans:
    def __init__(self, *, clock: SandboxClock, store: ImageStore) -> None:
        self.clock = clock
        self.store = store

    def handlers(self) -> dict[str, Handler]:
        return {
            "StartImageScan": self._start_image_scan,
            "DescribeImageScanFindings": self._describe_image_scan_findings,
        }

    def status(self, image: Image) -> tuple[dict[str, str] | None, datetime | None]:
        """(imageScanStatus, completed at) of ``image``; (None, None) when it was never scanned."""
        if image.scan_completes_at is None:
            return None, None
        if self.clock.now() < image.scan_completes_at:
            return {"status": "IN_PROGRESS", "description": "The scan is in progress."}, None
        return {"status": "COMPLETE", "description": "The scan was completed successfully."}, image.scan_completes_at

    def _target(self, request: ApiRequest) -> tuple[Any, Image]:
        params = request.params
        repository, state = self.store.repository(params.get("repositoryName"), params.get("registryId"))
        image_id = params.get("imageId") or {}
        image = self.store.find(state, image_id) if not image_id_failure(image_id) else None
        if image is None:
            raise image_not_found(image_id, repository.name, repository.registry_id)
        return repository, image

    def _start_image_scan(self, request: ApiRequest) -> dict[str, Any]:
        with self.store.lock:
            repository, image = self._target(request)
            image.scan_completes_at = self.clock.now() + timedelta(seconds=SCAN_SECONDS)
            status, _ = self.status(image)
            return {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "imageId": _image_id(image, request.params.get("imageId") or {}),
                "imageScanStatus": status,
            }

    def _describe_image_scan_findings(self, request: ApiRequest) -> dict[str, Any]:
        with self.store.lock:
            repository, image = self._target(request)
            status, completed = self.status(image)
            image_id = _image_id(image, request.params.get("imageId") or {})
            if status is None:
                raise ApiError(
                    "ScanNotFoundException",
                    f"Image scan does not exist for the image with '{{imageDigest:'{image.digest}', "
                    f"imageTag:'{image_id.get('imageTag', 'null')}'}}' in the repository with name "
                    f"'{repository.name}' in the registry with id '{repository.registry_id}'",
                )
            out: dict[str, Any] = {
                "registryId": repository.registry_id,
                "repositoryName": repository.name,
                "imageId": image_id,
                "imageScanStatus": status,
            }
            if completed is not None:
                out["imageScanFindings"] = {
                    "imageScanCompletedAt": completed,
                    "vulnerabilitySourceUpdatedAt": completed,
                    "findingSeverityCounts": {},
                    "findings": [],
                }
            return out


def _image_id(image: Image, asked: dict[str, Any]) -> dict[str, str]:
    tag = asked.get("imageTag") or (image.tags[0] if image.tags else None)
    return {"imageDigest": image.digest, **({"imageTag": tag} if tag else {})}
