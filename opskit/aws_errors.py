"""What a failed AWS call means to the user: every botocore failure as one :class:`~opskit.errors.AwsError` line.

:mod:`opskit.aws` applies :func:`aws_error` to everything its clients raise, so no layer above it sees botocore's
types. Code that decides on one AWS answer reads the error's ``code``.

>>> import botocore.exceptions
>>> print(aws_error(botocore.exceptions.NoRegionError()))
no AWS region is configured: set AWS_REGION (or AWS_DEFAULT_REGION), pass --region, or set region in the AWS profile
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from opskit.errors import AwsError

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
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken", "RequestExpired"})
REJECTED_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException"})
DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
NO_REGION = "set AWS_REGION (or AWS_DEFAULT_REGION), pass --region, or set region in the AWS profile"


def aws_error(exc: Exception, *, region: str | None = None, known_regions: frozenset[str] = frozenset()) -> AwsError:
    """``exc`` (anything botocore raises, or AwsError itself) as the one line a user acts on.

    ``region`` and ``known_regions`` let an unreachable endpoint be told apart from a region AWS does not have.
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        return _refusal(exc)
    return AwsError(_problem(exc, region, known_regions), code=None, operation=None)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _refusal(exc: botocore.exceptions.ClientError) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "") or "Unknown")
    message = _one_line(error.get("Message", ""))
    metadata = exc.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    transient = status >= 500 or code in THROTTLE_CODES
    if code in EXPIRED_CODES:
        line = f"AWS credentials have expired ({code}): refresh them (aws sso login, or new keys)"
    elif code in REJECTED_CODES:
        line = f"AWS rejected the credentials ({code}): check AWS_PROFILE or the access keys"
    elif code in DENIED_CODES:
        line = f"AWS denied access ({message}): use credentials allowed to release to ECS and ECR"
    elif transient:  # botocore retried it as long as it may: AWS's trouble, for now
        tries = int(metadata.get("RetryAttempts") or 0) + 1
        line = (
            f"AWS kept failing {exc.operation_name} ({code}: {message}) after {tries} attempts: "
            f"run it again later, {RESUMES}"
        )
    else:
        line = f"AWS said {code}: {message}"
    return AwsError(line, code=code, operation=exc.operation_name, aws_message=message, transient=transient)


def _problem(exc: Exception, region: str | None, known_regions: frozenset[str]) -> str:
    """The line for a failure that never reached AWS (or never got its answer)."""
    e = botocore.exceptions
    if isinstance(exc, e.NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, e.PartialCredentialsError):
        missing = exc.kwargs.get("cred_var", "a part")
        return (
            f"the AWS credentials are incomplete ({missing} is missing from {exc.kwargs.get('provider', 'them')}): "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together, or unset both and use AWS_PROFILE"
        )
    if isinstance(exc, e.ProfileNotFound):
        return (
            f"AWS profile {exc.kwargs.get('profile')!r} is not configured: check ~/.aws/config, "
            "or set AWS_PROFILE (or --profile) to a configured one"
        )
    if isinstance(exc, (e.SSOTokenLoadError, e.UnauthorizedSSOTokenError, e.TokenRetrievalError)):
        return f"the AWS SSO session is missing or expired ({_one_line(exc)}): run aws sso login"
    if isinstance(exc, e.CredentialRetrievalError):
        return f"could not get AWS credentials ({_one_line(exc)}): check the profile's credential source"
    if isinstance(exc, e.NoRegionError):
        return f"no AWS region is configured: {NO_REGION}"
    if isinstance(exc, e.InvalidRegionError):
        return f"{exc.kwargs.get('region_name')!r} is not a region name: {NO_REGION} to one such as eu-west-1"
    if isinstance(exc, (e.InvalidRetryModeError, e.InvalidMaxRetryAttemptsError, e.InvalidRetryConfigurationError)):
        return f"the AWS retry settings are invalid ({_one_line(exc)}): fix AWS_RETRY_MODE / AWS_MAX_ATTEMPTS"
    if isinstance(exc, e.EndpointConnectionError):
        if region and known_regions and region not in known_regions:
            return f"cannot reach AWS in {region!r}, which is not a region AWS has: {NO_REGION} to a real one"
        return f"cannot reach AWS ({_one_line(exc)}): check the region, the endpoint URL and the network"
    if isinstance(exc, (e.ConnectionError, e.HTTPClientError)):
        reason = _one_line(exc)  # dropped connections and timeouts, after botocore's retries
        return f"lost the connection to AWS ({reason}): check the network, then run it again, {RESUMES}"
    if isinstance(exc, e.ParamValidationError):
        return f"opskit sent AWS a request it would refuse ({_one_line(exc)}): check the names and values given"
    if isinstance(exc, ValueError) and "endpoint" in str(exc).lower():
        return (
            f"{_one_line(exc)}: set AWS_ENDPOINT_URL (or --endpoint-url) to an http(s) URL such as "
            "http://127.0.0.1:4566, or unset it for AWS"
        )
    return _one_line(exc)


__all__ = ["RESUMES", "THROTTLE_CODES", "aws_error"]
