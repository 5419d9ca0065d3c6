"""The container-registry boundary: reading an image's config (its labels) over the registry HTTP API.

ECR's registry speaks the distribution API with basic auth (``AWS`` and a GetAuthorizationToken password);
so does the sandbox's. Used to tell whose image a SHA tag holds before a release reuses it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import urllib3

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
_http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60), retries=urllib3.Retry(3, redirect=5))


def _base(registry: str) -> str:
    host = registry.split("/", 1)[0]
    local = host.startswith(("127.", "localhost")) or host == "[::1]"
    return f"{'http' if local else 'https'}://{host}"


def image_labels(registry: str, repository: str, reference: str, username: str, password: str) -> dict[str, str]:
    """The labels of ``repository:reference`` (a tag or digest); for an index, those of its first image."""
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode(),
        "Accept": MANIFEST_TYPES,
    }
    base = f"{_base(registry)}/v2/{repository}"
    manifest = _json(_http.request("GET", f"{base}/manifests/{reference}", headers=headers))
    if manifest.get("manifests"):
        manifest = _json(
            _http.request("GET", f"{base}/manifests/{manifest['manifests'][0]['digest']}", headers=headers)
        )
    config_digest = manifest.get("config", {}).get("digest")
    if not config_digest:
        return {}
    config = _json(_http.request("GET", f"{base}/blobs/{config_digest}", headers=headers))
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _json(response: Any) -> dict[str, Any]:
    if response.status != 200:
        raise OSError(f"registry answered {response.status}")
    data: dict[str, Any] = json.loads(response.data)
    return data
