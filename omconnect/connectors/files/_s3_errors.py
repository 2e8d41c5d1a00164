"""S3 failures as one line a person can act on: what could not be done, and what to check.

Both S3 clients fail in their own words: boto3 raises ``ClientError`` with the service's error
code (``NoSuchBucket``, ``AccessDenied`` ...) or a ``BotoCoreError`` (no connection, no
credentials); pyarrow raises ``OSError`` naming an ``AWS Error CODE``. ``s3_error`` maps either
to the connector API's errors: a ``ConfigError`` for what the configuration must fix (the
bucket, the credentials, the permissions), a ``RetriableError`` for what may pass (no
connection, throttling, a server error), a ``ConnectorError`` otherwise. Messages hold the
error's code and the service's short message, never a credential.
"""

from __future__ import annotations

import re

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.files._s3 import S3Options

_ARROW_CODE = re.compile(r"AWS Error (\w+)")
_HTTP_STATUS = re.compile(r"HTTP status (\d+)")

# pyarrow's error names (Aws::S3::S3Errors) as the service's codes.
_ARROW_CODES = {
    "ACCESS_DENIED": "AccessDenied",
    "NO_SUCH_BUCKET": "NoSuchBucket",
    "INVALID_ACCESS_KEY_ID": "InvalidAccessKeyId",
    "SIGNATURE_DOES_NOT_MATCH": "SignatureDoesNotMatch",
    "EXPIRED_TOKEN": "ExpiredToken",
    "INVALID_CLIENT_TOKEN_ID": "InvalidAccessKeyId",
    "NETWORK_CONNECTION": "NetworkConnection",
    "SLOW_DOWN": "SlowDown",
    "INTERNAL_FAILURE": "InternalError",
    "SERVICE_UNAVAILABLE": "ServiceUnavailable",
    "REQUEST_TIMEOUT": "RequestTimeout",
    "THROTTLING": "SlowDown",
}
_TRANSIENT = {
    "NetworkConnection",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "503",
    "500",
}


def is_s3_failure(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a failure to reach or use S3,
    as opposed to a failure to parse what was read."""
    return any(_code(link) is not None for link in _chain(error))


def s3_error(error: BaseException, where: str, doing: str, options: S3Options) -> ConnectorError:
    """``error`` of an S3 call as one line naming ``where`` (an ``s3://`` path) and what to
    check; ``doing`` says what failed ("listing", "reading").

    A failure that is not an S3 failure becomes a ``ConnectorError`` with its own words.
    """
    code, message = _described(error)
    endpoint = options.endpoint_url or "AWS's default endpoint"
    bucket = where.removeprefix("s3://").partition("/")[0]
    if code is None:
        return ConnectorError(f"{where}: {doing} failed: {message}")
    if code == "NetworkConnection":
        return RetriableError(
            f"{where}: cannot reach the S3 endpoint {endpoint} while {doing}: check "
            f"s3.endpoint_url and the network ({message})"
        )
    if code == "NoCredentials":
        return ConfigError(
            f"{where}: no AWS credentials found: give s3.access_key_id and "
            "s3.secret_access_key, or set them in the AWS chain (AWS_ACCESS_KEY_ID, "
            "AWS_PROFILE, an instance role)",
            key="s3",
        )
    if code in ("NoSuchBucket",):
        return ConfigError(
            f"{where}: the bucket {bucket!r} does not exist at {endpoint}: check the bucket in "
            "path, s3.endpoint_url and s3.region",
            key="path",
        )
    if code in ("InvalidAccessKeyId",):
        return ConfigError(
            f"{where}: the access key id is not known at {endpoint}: check "
            "s3.access_key_id (or the AWS chain's key)",
            key="s3.access_key_id",
        )
    if code in ("SignatureDoesNotMatch",):
        return ConfigError(
            f"{where}: the request signature does not match: check s3.secret_access_key "
            "(or the AWS chain's secret) and s3.region",
            key="s3.secret_access_key",
        )
    if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
        return ConfigError(
            f"{where}: the session token is expired or invalid: check s3.session_token",
            key="s3.session_token",
        )
    if code in ("AccessDenied", "AllAccessDisabled", "403", "Forbidden"):
        return ConfigError(
            f"{where}: access denied while {doing}: check that the credentials may "
            + (
                f"list and read bucket {bucket!r} (s3:ListBucket, s3:GetObject)"
                if doing.startswith(("listing", "reading"))
                else f"write to bucket {bucket!r} (s3:ListBucket, s3:PutObject, "
                "s3:DeleteObject, s3:AbortMultipartUpload)"
            ),
            key="s3",
        )
    if code in _TRANSIENT:
        return RetriableError(f"{where}: S3 failed while {doing} ({code}): {message}")
    return ConnectorError(f"{where}: S3 failed while {doing} ({code}): {message}")


def _chain(error: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in links:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _described(error: BaseException) -> tuple[str | None, str]:
    """The S3 code of the first S3 failure in ``error``'s chain and a short message."""
    for link in _chain(error):
        code = _code(link)
        if code is not None:
            return code, _short_message(link)
    return None, str(error)


def _code(error: BaseException) -> str | None:
    """The service's error code of a boto3 or pyarrow S3 failure, else None."""
    try:
        from botocore import exceptions as boto
    except ImportError:  # without the s3 extra only pyarrow's errors occur
        boto = None
    if boto is not None:
        if isinstance(error, boto.ClientError):
            details = error.response.get("Error", {})
            return str(
                details.get("Code")
                or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown")
            )
        if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
            return "NoCredentials"
        if isinstance(error, boto.ConnectionError | boto.HTTPClientError):
            return "NetworkConnection"
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        text = str(error)
        found = _ARROW_CODE.search(text)
        if found is None:
            return None
        code = _ARROW_CODES.get(found.group(1))
        if code is None:
            status = _HTTP_STATUS.search(text)
            code = status.group(1) if status else found.group(1)
        return code
    return None


def _short_message(error: BaseException) -> str:
    """The service's message (boto3) or pyarrow's text without its details."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        details = response.get("Error", {})
        return str(details.get("Message") or details.get("Code") or error)
    text = str(error)
    found = _ARROW_CODE.search(text)
    if found is not None:
        text = text[found.start() :]
    return text.split("; Details:")[0].strip()
