"""The AWS boundary: the one place that makes boto3 sessions and clients.

Everything else receives an :class:`Aws` and asks it for clients, so region, profile, endpoint and the
retry policy are decided here once. The sandbox is reached through the same path: an explicit
``endpoint_url`` or the standard ``AWS_ENDPOINT_URL`` environment variable.

>>> aws = Aws(region="us-east-1", endpoint_url="http://127.0.0.1:4566")
>>> aws.client("ecs").meta.region_name
'us-east-1'
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.exceptions

from opskit.errors import AwsError, ConfigError

DEFAULT_REGION = "us-east-1"

# What a raw call sends and what it got back; per thread, since clients are shared.
_raw = threading.local()


def _send_raw_body(params: dict[str, Any], **_: Any) -> None:
    body = getattr(_raw, "body", None)
    if body is not None:
        params["body"] = json.dumps(body).encode()


def _keep_raw_answer(http_response: Any, **_: Any) -> None:
    if getattr(_raw, "body", None) is not None:
        _raw.answer = json.loads(http_response.content or b"{}")


@dataclass
class Aws:
    """Where opskit talks to AWS (or the sandbox), and how.

    ``max_attempts`` is the *total* number of attempts botocore makes per call (``standard`` retry mode:
    exponential backoff with jitter, throttles and 5xx retried).
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 10
    max_pool_connections: int = 32
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.endpoint_url = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        try:
            self._session = boto3.Session(
                profile_name=self.profile,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
            )
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(
                f"AWS profile {self.profile!r} is not configured: check ~/.aws/config or pass another --profile"
            ) from exc
        self.region = self._session.region_name or DEFAULT_REGION

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``, made once and shared (boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self._config()
                )
            return self._clients[service]

    def call_json(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call a JSON-protocol ``operation`` with exactly ``body`` and return the answer exactly as sent.

        botocore only sends and returns the fields its installed model knows; ECS adds task-definition fields
        often (restartPolicy, enableFaultInjection ...). Copying a revision through the model would silently drop
        them, so revisions are read and registered through this instead. Errors and retries are botocore's as usual.
        Timestamps come back as epoch seconds.
        """
        client = self._raw_client(service)
        _raw.body, _raw.answer = body, None
        try:
            getattr(client, botocore.xform_name(operation))()
            answer: dict[str, Any] = _raw.answer or {}
            return answer
        finally:
            _raw.body = _raw.answer = None

    def _raw_client(self, service: str) -> Any:
        key = f"raw:{service}"
        with self._lock:
            if key not in self._clients:
                client = self._session.client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=self._config().merge(botocore.config.Config(parameter_validation=False)),
                )
                client.meta.events.register("before-call", _send_raw_body)
                client.meta.events.register("after-call", _keep_raw_answer)
                self._clients[key] = client
            return self._clients[key]

    def _config(self) -> botocore.config.Config:
        return botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
        )

    @property
    def account_id(self) -> str:
        try:
            return str(self.client("sts").get_caller_identity()["Account"])
        except botocore.exceptions.NoCredentialsError as exc:
            raise AwsError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ) from exc
