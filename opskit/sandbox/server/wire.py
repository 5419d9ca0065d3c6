"""AWS's JSON 1.1 wire protocol (ECS and ECR), as the sandbox speaks it.

A request is ``POST /`` with ``X-Amz-Target: <prefix>.<Action>`` and a JSON body; an error is an HTTP 4xx/5xx
with ``{"__type": code, "message": text}``, which botocore turns into a ``ClientError`` with that code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113"
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
SERVICE_BY_TARGET = {ECS_TARGET: "ecs", ECR_TARGET: "ecr"}

_REGION_IN_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


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
    service: str  # "ecs" or "ecr"
    action: str
    params: dict[str, Any]
    region: str
    account_id: str
    raw_body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


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
