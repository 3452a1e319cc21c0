"""Which store failures are outages and which are faults: the one place that decides.

An outage passes by itself (the database is down, paused, resuming, overloaded or failing
over): the API answers 503 `database_unavailable` and the migrations resource retries. A fault
does not (a missing IAM permission, a wrong cluster or secret ARN, a disabled Data API, a
statement AWS rejects): the store raises `StoreFailedError` (500 `database_error`) and logs AWS's
own words, and the migrations resource fails at once instead of retrying for minutes. Any other
error (a SQL error from a driver, a bug) is left as it is.

The Data API's error codes and what they mean are those of botocore's `rds-data` service model
and the Aurora user guide (Data API troubleshooting, auto-pause).
"""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from sqlalchemy import exc

from pressroom_common.feedback.store.errors import StoreFailedError, StoreUnavailableError
from pressroom_common.platform.observability import logger
from pressroom_common.platform.sagemaker import THROTTLING_CODES

# What an outage looks like through the PostgreSQL driver.
_DRIVER_OUTAGES = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
)
# Data API codes that pass by themselves. The 4xx ones need naming; every 5xx (and 429) is an
# outage by its status (InternalServerErrorException 500, ServiceUnavailableError 503,
# DatabaseUnavailableException 504: the writer is failing over or scaling).
TRANSIENT_DATA_API_CODES = frozenset(
    {
        "DatabaseResumingException",  # auto-pause: "wait a few seconds and try again"
        "StatementTimeoutException",  # our statements are tiny: the database is overloaded
        *THROTTLING_CODES,
    }
)
# Serverless v1 and the JDBC layer behind the Data API answer a paused or resuming cluster
# with a BadRequestException carrying one of these (aws/aws-sdk-js#2914,
# cloud-utils/aurora-data-api#24, the driver this store uses).
_RESUMING_MESSAGES = ("communications link failure", "is resuming")
# Botocore's own failures that are the network's: unreachable endpoint, connect or read
# timeout, connection closed mid-answer. NoCredentialsError, NoRegionError and
# ParamValidationError are configuration or code faults.
_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)


def store_failure(error: BaseException, operation: str) -> Exception | None:
    """The domain error `error` becomes when `operation` failed, or None to re-raise it as is."""
    if isinstance(error, _DRIVER_OUTAGES):
        return StoreUnavailableError(operation)
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return StoreUnavailableError(operation)
    cause = aws_cause(error)
    if cause is None:
        return None
    if is_transient(cause):
        return StoreUnavailableError(operation)
    code, message = _describe(cause)
    logger.error(
        "the feedback database refused the call; not an outage, so not retried",
        exc_info=error,
        extra={"operation": operation, "aws_error_code": code, "aws_error": message},
    )
    return StoreFailedError(operation, code, f"{code}: {message}")


def aws_cause(error: BaseException) -> ClientError | BotoCoreError | None:
    """The botocore error behind `error`: SQLAlchemy keeps it in `.orig`, the Data API driver
    wraps BadRequestException and DatabaseErrorException in its own DatabaseError (`from`)."""
    for link in _chain(error):
        if isinstance(link, ClientError | BotoCoreError):
            return link
    return None


def is_transient(error: ClientError | BotoCoreError) -> bool:
    if isinstance(error, BotoCoreError):
        return isinstance(error, _NETWORK_ERRORS)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code, message = _describe(error)
    if status >= 500 or status == 429 or code in TRANSIENT_DATA_API_CODES:
        return True
    return code in ("BadRequestException", "DatabaseErrorException") and any(
        words in message.lower() for words in _RESUMING_MESSAGES
    )


def _describe(error: ClientError | BotoCoreError) -> tuple[str, str]:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return str(details.get("Code", "")), str(details.get("Message", ""))
    return type(error).__name__, str(error)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__
