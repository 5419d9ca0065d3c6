"""The AWS boundary: the one place that makes botocore sessions and clients, and translates their failures.

Everything else receives an :class:`Aws` and asks it for clients, so region, profile, endpoint and the
retry policy are decided here once, by botocore's own rules: ``AWS_REGION``/``AWS_DEFAULT_REGION`` or the profile,
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``),
``AWS_RETRY_MODE`` and ``AWS_MAX_ATTEMPTS``; an explicit argument wins over each. The sandbox is reached through the
same path. A client's every failure arrives as one :class:`~opskit.errors.AwsError` (:mod:`opskit.aws_errors`).

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
from typing import Any
from urllib.parse import urlsplit

import botocore
import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session

from opskit.aws_errors import RESUMES, THROTTLE_CODES, aws_error
from opskit.errors import AwsError, ConfigError

DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_RETRY_MODE = "standard"
# Hosts of AWS's own endpoints: any other endpoint is the user's (the sandbox, a proxy, a local stack).
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".c2s.ic.gov", ".sc2s.sgov.gov")

# What a raw call sends and what it got back; per thread, since clients are shared.
_raw = threading.local()


def _send_raw_body(params: dict[str, Any], **_: Any) -> None:
    body = getattr(_raw, "body", None)
    if body is not None:
        # Compact UTF-8, as ECS counts its size limit: a non-ASCII character is its UTF-8 bytes, never a 6-byte escape.
        params["body"] = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        target = getattr(_raw, "target", None)
        if target is not None:  # an operation newer than the installed model: its name goes in the header
            params["headers"]["X-Amz-Target"] = target


def _take_raw_answer(response_dict: dict[str, Any], **_: Any) -> None:
    """Keep a raw call's answer as sent, parsed once: botocore's model parser then sees an empty body.

    Error answers are left to botocore, which reads their code and message (and retries throttles) as usual."""
    if getattr(_raw, "body", None) is None or response_dict.get("status_code", 500) >= 300:
        return
    _raw.answer = json.loads(response_dict.get("body") or b"{}")
    response_dict["body"] = b"{}"


_loaders: dict[str | None, botocore.loaders.Loader] = {}
_loaders_lock = threading.Lock()


def _share_data_loader(session: botocore.session.Session) -> None:
    """Give ``session`` the process's loader of botocore's data files (service models, endpoints) for its data
    path, as boto3's default session shares one between its clients. A session of its own reads and parses them
    again (about 50 ms for ECS and ECR), and a process that makes an :class:`Aws` per command, panel or test pays
    that every time. The loader caches what it read, and botocore never changes a model it loaded."""
    path = session.get_config_variable("data_path")  # AWS_DATA_PATH or the profile's data_path, as botocore reads
    with _loaders_lock:
        loader = _loaders.get(path)
        if loader is None:
            loader = _loaders[path] = botocore.loaders.create_loader(path)
    session.register_component("data_loader", loader)


def _configured_attempts(session: botocore.session.Session) -> int:
    """AWS_MAX_ATTEMPTS or the profile's max_attempts, as every AWS SDK reads them; 10 when neither is set."""
    try:
        configured = session.get_config_variable("max_attempts")
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


def _configured_retry_mode(session: botocore.session.Session) -> str:
    """AWS_RETRY_MODE or the profile's retry_mode (legacy, standard, adaptive); standard when neither is set."""
    # Only what the user set: botocore's own default (legacy in older versions) is not a choice anyone made.
    mode = os.environ.get("AWS_RETRY_MODE") or session.get_scoped_config().get("retry_mode") or DEFAULT_RETRY_MODE
    if mode not in ("legacy", "standard", "adaptive"):
        raise ConfigError(
            f"AWS_RETRY_MODE (or retry_mode in the AWS profile) is {mode!r}: set it to standard, adaptive or legacy"
        )
    return str(mode)


def service_model(service: str) -> Any:
    """The installed botocore's model of ``service`` (its shapes' members, in the API's order): for code that lays
    out or documents an API's bodies without calling it."""
    return botocore.session.get_session().get_service_model(service)


class _Pages:
    """A paginator's pages, with failures translated as the client's are."""

    def __init__(self, pages: Any, translate: Callable[[Exception], AwsError]) -> None:
        self._pages, self._translate = pages, translate

    def __iter__(self) -> Any:
        iterator = iter(self._pages)
        while True:
            try:
                page = next(iterator)
            except StopIteration:
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise self._translate(exc) from exc
            yield page

    def build_full_result(self) -> Any:
        try:
            return self._pages.build_full_result()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc) from exc


class _Paginator:
    def __init__(self, paginator: Any, translate: Callable[[Exception], AwsError]) -> None:
        self._paginator, self._translate = paginator, translate

    def paginate(self, **params: Any) -> _Pages:
        return _Pages(self._paginator.paginate(**params), self._translate)


class Client:
    """A boto3 client whose every failure is an :class:`~opskit.errors.AwsError`: API methods, paginators and
    waiters as boto3 has them; ``meta`` and the rest as they are. ``boto3_client`` is the client itself."""

    def __init__(self, client: Any, translate: Callable[[Exception], AwsError]) -> None:
        self.boto3_client = client
        self._translate = translate
        self._operations = frozenset(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.boto3_client, name)
        if name in self._operations or name == "get_waiter":
            return self._translating(attribute)
        if name == "get_paginator":
            return lambda operation: _Paginator(attribute(operation), self._translate)
        return attribute

    def _translating(self, method: Callable[..., Any]) -> Callable[..., Any]:
        translate = self._translate

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                answer = method(*args, **kwargs)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise translate(exc) from exc
            if hasattr(answer, "wait"):  # a waiter: its wait fails the same way
                return Client._Waiter(answer, translate)
            return answer

        return call

    class _Waiter:
        def __init__(self, waiter: Any, translate: Callable[[Exception], AwsError]) -> None:
            self._waiter, self._translate = waiter, translate

        def wait(self, **params: Any) -> None:
            try:
                self._waiter.wait(**params)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise self._translate(exc) from exc


@dataclass
class Aws:
    """Where opskit talks to AWS (or the sandbox), and how.

    ``region``, ``profile`` and ``endpoint_url`` override the AWS environment; left out, botocore resolves them as
    every AWS SDK does, and no region at all is an error (opskit never guesses one). ``max_attempts`` is the
    *total* number of attempts botocore makes per call (``AWS_RETRY_MODE``, standard by default: exponential
    backoff with jitter, throttles, 5xx and lost connections retried); by default the AWS setting
    (``AWS_MAX_ATTEMPTS``, or ``max_attempts`` in the profile), else 10.
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int | None = None
    max_pool_connections: int = 32
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    retry_mode: str = field(default=DEFAULT_RETRY_MODE, init=False)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.endpoint_url = self.endpoint_url or None
        if self.endpoint_url is not None and not re.match(r"^https?://[^\s/?#]+", self.endpoint_url):
            raise ConfigError(
                f"endpoint {self.endpoint_url!r} is not an http(s) URL: pass one such as http://127.0.0.1:4566, "
                "or none for AWS"
            )
        # A botocore session, as boto3's Session makes one (boto3 itself adds only resources, which opskit does not
        # use, and the import of s3transfer, which a release command should not pay for).
        core = botocore.session.Session()
        try:
            if self.profile is not None:
                core.set_config_variable("profile", self.profile)
                core.get_scoped_config()  # a profile that does not exist is refused now, not at the first call
            if self.access_key_id or self.secret_access_key:
                core.set_credentials(self.access_key_id, self.secret_access_key)
            if self.region:
                core.set_config_variable("region", self.region)
            _share_data_loader(core)
            # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION, which the other SDKs and CI actions set,
            # comes next.
            region = core.get_config_variable("region") or os.environ.get("AWS_REGION") or None
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise ConfigError(aws_error(exc).message) from exc
        if not region:
            raise ConfigError(aws_error(botocore.exceptions.NoRegionError()).message)
        self.region = region
        self._session = core
        self.retry_mode = _configured_retry_mode(core)
        if self.max_attempts is None:
            self.max_attempts = _configured_attempts(core)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (a :class:`Client`: failures are :class:`AwsError`), made once and
        shared (boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = Client(self._new_client(service, self._config()), self.translate)
            return self._clients[service]

    def translate(self, exc: Exception) -> AwsError:
        """``exc`` from a call to AWS as the one line a user acts on (:func:`opskit.aws_errors.aws_error`)."""
        # Only an unreachable endpoint needs the list of regions (throttles, which the pacer sees often, do not).
        unreachable = isinstance(exc, botocore.exceptions.EndpointConnectionError)
        return aws_error(exc, region=self.region, known_regions=self._known_regions() if unreachable else frozenset())

    def endpoint(self, service: str = "ecs") -> str:
        """The endpoint URL a client of ``service`` calls, as botocore resolved it."""
        return str(self.client(service).meta.endpoint_url)

    @property
    def custom_endpoint(self) -> str | None:
        """The ECS endpoint when it is not AWS's own (the sandbox, a proxy), else None: what caches and messages
        tell worlds apart by."""
        url = self.endpoint("ecs")
        host = (urlsplit(url).hostname or "").lower()
        return None if host.endswith(AWS_HOSTS) else url.rstrip("/")

    def call_json(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call a JSON-protocol ``operation`` with exactly ``body`` and return the answer exactly as sent.

        botocore only sends and returns the fields its installed model knows; ECS adds task-definition fields
        often (restartPolicy, enableFaultInjection ...). Copying a revision through the model would silently drop
        them, so revisions are read and registered through this instead. An operation the installed model lacks
        is sent all the same. Retries are botocore's as usual; failures are :class:`AwsError`. Timestamps come back
        as epoch seconds.
        """
        client = self._raw_client(service)
        model = client.meta.service_model
        carrier, _raw.target = operation, None
        if operation not in model.operation_names:
            # An operation ECS added after the installed botocore (ContinueServiceDeployment on an older one): it
            # rides on a known operation of the same protocol, with its own name in X-Amz-Target, and is signed,
            # sent and retried as usual.
            if model.protocol != "json":
                raise ConfigError(f"this botocore's {service} model has no {operation}: upgrade botocore")
            carrier, _raw.target = model.operation_names[0], f"{model.metadata['targetPrefix']}.{operation}"
        _raw.body, _raw.answer = body, None
        try:
            getattr(client, botocore.xform_name(carrier))()
            answer: dict[str, Any] = _raw.answer or {}
            return answer
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.translate(exc) from exc
        finally:
            _raw.body = _raw.answer = _raw.target = None

    def _raw_client(self, service: str) -> Any:
        key = f"raw:{service}"
        with self._lock:
            if key not in self._clients:
                config = self._config().merge(botocore.config.Config(parameter_validation=False))
                client = self._new_client(service, config)
                client.meta.events.register("before-call", _send_raw_body)
                client.meta.events.register("before-parse", _take_raw_answer)
                self._clients[key] = client
            return self._clients[key]

    def _new_client(self, service: str, config: botocore.config.Config) -> Any:
        try:
            # No endpoint unless one was passed: botocore resolves AWS_ENDPOINT_URL(_<SERVICE>) and the profile's.
            extra = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
            return self._session.create_client(service, region_name=self.region, config=config, **extra)
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise ConfigError(aws_error(exc).message) from exc

    def _config(self) -> botocore.config.Config:
        return botocore.config.Config(
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
        )

    def _known_regions(self) -> frozenset[str]:
        """The regions the installed botocore knows ECS in (read only to explain an unreachable endpoint)."""
        return frozenset(self._session.get_available_regions("ecs"))

    @property
    def account_id(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])


__all__ = ["RESUMES", "THROTTLE_CODES", "Aws", "AwsError", "Client", "aws_error"]
