"""The AWS boundary: the one place that makes boto3 sessions and clients.

Everything else receives an :class:`Aws` and asks it for clients, so region, profile, endpoint and the
retry policy are decided here once. The sandbox is reached through the same path: an explicit
``endpoint_url`` or the standard ``AWS_ENDPOINT_URL`` environment variable.

>>> aws = Aws(region="us-east-1", endpoint_url="http://127.0.0.1:4566")
>>> aws.client("ecs").meta.region_name
'us-east-1'
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import boto3
import botocore
import botocore.config
import botocore.exceptions

from opskit.errors import AwsError, ConfigError

DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 10
RESUMES = "as opskit resumes where it stopped"
# The error codes AWS throttles with; botocore retries them (and 5xx answers) until its attempts run out.
THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
P = ParamSpec("P")
T = TypeVar("T")

# What a raw call sends and what it got back; per thread, since clients are shared.
_raw = threading.local()


def _send_raw_body(params: dict[str, Any], **_: Any) -> None:
    body = getattr(_raw, "body", None)
    if body is not None:
        params["body"] = json.dumps(body, separators=(",", ":")).encode()  # compact, as ECS counts its size limit


def _keep_raw_answer(http_response: Any, **_: Any) -> None:
    if getattr(_raw, "body", None) is not None:
        _raw.answer = json.loads(http_response.content or b"{}")


def _configured_attempts(session: Any) -> int:
    """AWS_MAX_ATTEMPTS or the profile's max_attempts, as every AWS SDK reads them; 10 when neither is set."""
    try:
        configured = session._session.get_config_variable("max_attempts")
    except ValueError:
        configured = 0
    if configured is None:
        return DEFAULT_MAX_ATTEMPTS
    if configured < 1:
        raise ConfigError(
            "AWS_MAX_ATTEMPTS (or max_attempts in the AWS profile) is not a whole number of 1 or more: "
            "set it to one, such as 5, or unset it"
        )
    return int(configured)


@dataclass
class Aws:
    """Where opskit talks to AWS (or the sandbox), and how.

    ``max_attempts`` is the *total* number of attempts botocore makes per call (``standard`` retry mode:
    exponential backoff with jitter, throttles, 5xx and lost connections retried); by default the AWS setting
    (``AWS_MAX_ATTEMPTS``, or ``max_attempts`` in the profile), else 10.
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int | None = None
    max_pool_connections: int = 32
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.endpoint_url = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        if self.endpoint_url is not None and not re.match(r"^https?://[^\s/?#]+", self.endpoint_url):
            raise ConfigError(
                f"endpoint {self.endpoint_url!r} is not an http(s) URL: pass one such as http://127.0.0.1:4566, "
                "or none for AWS"
            )
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
        if self.max_attempts is None:
            self.max_attempts = _configured_attempts(self._session)

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
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise aws_error(exc) from exc


def aws_error(exc: Exception) -> AwsError:
    """A failed AWS call as the one line a user acts on: credentials, region, access, or what AWS said."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AwsError("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response["Error"]["Code"]
        message = " ".join(str(exc.response["Error"].get("Message", "")).split())
        if code in ("ExpiredTokenException", "ExpiredToken", "RequestExpired"):
            return AwsError(f"AWS credentials have expired ({code}): refresh them (aws sso login, or new keys)")
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException"):
            return AwsError(f"AWS rejected the credentials ({code}): check AWS_PROFILE or the access keys")
        if code in ("AccessDeniedException", "AccessDenied"):
            return AwsError(f"AWS denied access ({message}): use credentials allowed to release to ECS and ECR")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or code in THROTTLE_CODES:  # botocore retried it as long as it may: AWS's trouble, for now
            tries = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0) + 1
            return AwsError(
                f"AWS kept failing {exc.operation_name} ({code}: {message}) after {tries} attempts: "
                f"run it again later, {RESUMES}"
            )
        return AwsError(f"AWS said {code}: {message}")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return AwsError(f"cannot reach AWS ({exc}): check the region, the endpoint URL and the network")
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        reason = " ".join(str(exc).split())  # dropped connections and timeouts, after botocore's retries
        return AwsError(f"lost the connection to AWS ({reason}): check the network, then run it again, {RESUMES}")
    return AwsError(" ".join(str(exc).split()))


def translated(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` with AWS's refusals (and an unreachable AWS) raised as one-line :class:`AwsError`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise aws_error(exc) from exc

    return wrapper
