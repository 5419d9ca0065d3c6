"""AWS's wire protocols as the sandbox speaks them: JSON 1.1 (ECS and ECR) and query (Elastic Load Balancing).

A JSON request is ``POST /`` with ``X-Amz-Target: <prefix>.<Action>`` and a JSON body; an error is an HTTP 4xx/5xx
with ``{"__type": code, "message": text}``, which botocore turns into a ``ClientError`` with that code.

A query request is a form (``Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=...``) whose lists are
numbered members (``Targets.member.1.Id``); it is answered in XML, ``<ActionResponse><ActionResult>`` around the
result, lists as ``<member>`` elements. The service is the signing name of the request's credential scope, told
apart by the API version (classic and v2 load balancing both sign as ``elasticloadbalancing``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113"
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
SERVICE_BY_TARGET = {ECS_TARGET: "ecs", ECR_TARGET: "ecr"}
# Query-protocol services the sandbox answers some actions of: (signing name, API version) -> service, and the
# XML namespace of each one's answers.
QUERY_SERVICE_BY_VERSION = {("elasticloadbalancing", "2015-12-01"): "elbv2"}
QUERY_NAMESPACES = {"elbv2": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"}

_REGION_IN_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_SERVICE_IN_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/[a-z0-9-]+/([a-z0-9-]+)/")
_VERSION_IN_FORM = re.compile(rb"(?:^|&)Version=([0-9-]+)")


class ApiError(Exception):
    """An error answered in AWS's words; ``code`` is what botocore reports as ``Error.Code``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def client_error(message: str) -> ApiError:
    """ECS's catch-all for bad requests."""
    return ApiError("ClientException", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError("InvalidParameterException", message)


@dataclass
class ApiRequest:
    service: str  # "ecs", "ecr" or "elbv2"
    action: str
    params: dict[str, Any]
    region: str
    account_id: str
    raw_body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    access_key: str | None = None  # the caller's, from its signature: who is asking (registeredBy ...)

    @property
    def caller_arn(self) -> str:
        """The IAM principal the caller's access key belongs to in this account (a user moto keeps), else the
        account's root, as ECS's registeredBy names it."""
        from moto.iam.models import iam_backends

        if self.access_key and self.account_id in iam_backends:
            backend = iam_backends[self.account_id]["global"]
            for user in list(getattr(backend, "users", {}).values()):
                if any(k.access_key_id == self.access_key for k in getattr(user, "access_keys", [])):
                    return str(user.arn)
        return f"arn:aws:iam::{self.account_id}:root"


Handler = Callable[[ApiRequest], dict[str, Any]]


def region_from_authorization(header: str | None, default: str) -> str:
    match = _REGION_IN_CREDENTIAL.search(header or "")
    return match.group(1) if match else default


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an AWS JSON response")


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, default=_default, separators=(",", ":")).encode()


def error_body(code: str, message: str) -> bytes:
    return encode({"__type": code, "message": message})


def query_error_body(code: str, message: str) -> bytes:
    """An error in the query protocol (STS, IAM): XML, which is all botocore parses for those services."""
    sender = "Receiver" if code == "ServerException" else "Sender"
    return (
        f"<ErrorResponse><Error><Type>{sender}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>opskit-sandbox</RequestId></ErrorResponse>"
    ).encode()


def query_service(authorization: str | None, body: bytes) -> str | None:
    """The query-protocol service of a form request ("elbv2"), or None for one the sandbox answers nothing of."""
    service = _SERVICE_IN_CREDENTIAL.search(authorization or "")
    version = _VERSION_IN_FORM.search(body)
    if service is None or version is None:
        return None
    return QUERY_SERVICE_BY_VERSION.get((service.group(1), version.group(1).decode()))


def query_params(body: bytes) -> dict[str, Any]:
    """A query request's parameters, nested: ``Targets.member.1.Id=a&Targets.member.1.Port=80`` gives
    ``{"Targets": [{"Id": "a", "Port": "80"}]}``. Values stay strings, as the form carries them.

    >>> query_params(b"Action=DescribeTargetHealth&TargetGroupArn=tg&Targets.member.2.Id=b&Targets.member.1.Id=a")
    {'TargetGroupArn': 'tg', 'Targets': [{'Id': 'a'}, {'Id': 'b'}]}
    """
    tree: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if key in ("Action", "Version"):
            continue
        *path, last = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    nested = _members(tree)
    assert isinstance(nested, dict)
    return nested


def _members(node: Any) -> Any:
    """``{"member": {"2": x, "1": y}}`` becomes ``[y, x]``, at every depth."""
    if not isinstance(node, dict):
        return node
    if set(node) == {"member"} and isinstance(node["member"], dict):
        members = node["member"]
        return [_members(members[index]) for index in sorted(members, key=lambda i: int(i) if i.isdigit() else 0)]
    return {key: _members(value) for key, value in node.items()}


def query_body(service: str, action: str, result: Mapping[str, Any]) -> bytes:
    """A query-protocol answer: ``result`` as ``<ActionResult>`` in XML (lists as members, None left out)."""
    return (
        f'<{action}Response xmlns="{QUERY_NAMESPACES[service]}"><{action}Result>{_xml(result)}</{action}Result>'
        f"<ResponseMetadata><RequestId>opskit-sandbox</RequestId></ResponseMetadata></{action}Response>"
    ).encode()


def _xml(value: Any) -> str:
    if isinstance(value, Mapping):
        return "".join(f"<{key}>{_xml(item)}</{key}>" for key, item in value.items() if item is not None)
    if isinstance(value, (list, tuple)):
        return "".join(f"<member>{_xml(item)}</member>" for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return escape(str(value))
