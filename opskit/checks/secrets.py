"""Which plain environment variables of a container hold a secret, judged from the name and the value.

Only the verdict leaves this module (a short reason such as ``"value looks like an AWS access key ID"``); the value
is read to decide and never kept, returned or printed.

>>> secret_reason("AWS_SECRET_ACCESS_KEY", "x"), secret_reason("LOG_LEVEL", "info")
('AWS credentials (Security Hub ECS.8)', None)
>>> secret_reason("DATABASE_URL", "postgres://app:hunter2@db:5432/app")
'value holds a password in a URL'
"""

from __future__ import annotations

import re

# The names Security Hub ECS.8 (AWS Config ecs-no-environment-secrets) fails on, and the session token with them.
AWS_CREDENTIAL_NAMES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ECS_ENGINE_AUTH_DATA"}
)
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?|AUTH_?DATA)",
    re.IGNORECASE,
)
# Names that say where a secret is, or something about it, rather than holding it.
_POINTER_SUFFIX = re.compile(
    r"_(FILE|PATH|ARN|NAME|ID|TTL|LENGTH|EXPIRY|EXPIRES|EXPIRATION|HEADER|TYPE|ENABLED|REGION|PARAMETER|SECRET_ID)$",
    re.IGNORECASE,
)
_VALUE_PATTERNS = (
    (re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "value looks like an AWS access key ID"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "value holds a private key"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "value holds a password in a URL"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "value looks like a GitHub token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "value looks like a Slack token"),
    (re.compile(r"\b(sk|rk)_live_[A-Za-z0-9]{16,}"), "value looks like a Stripe key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), "value looks like a JSON Web Token"),
)
_REFERENCE_VALUE = re.compile(r"^(arn:|ssm:|secretsmanager:|/|\$\{)")


def secret_reason(name: str, value: object) -> str | None:
    """Why the variable ``name`` = ``value`` looks like a secret passed in plain text, or None."""
    text = "" if value is None else str(value)
    if name.upper() in AWS_CREDENTIAL_NAMES:
        return "AWS credentials (Security Hub ECS.8)"
    for pattern, reason in _VALUE_PATTERNS:
        if pattern.search(text):
            return reason
    if text and _SECRET_NAME.search(name) and not _POINTER_SUFFIX.search(name) and not _REFERENCE_VALUE.match(text):
        return "its name says it holds a secret"
    return None


__all__ = ["AWS_CREDENTIAL_NAMES", "secret_reason"]
