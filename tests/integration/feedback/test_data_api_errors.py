"""The Aurora store tells an outage from a fault, with the Data API's real error codes.

The Data API double answers each error as AWS does (status, `x-amzn-ErrorType`, message), so an
unmodified boto3 client raises the real `ClientError`, the Data API driver and SQLAlchemy wrap
it as they would in Lambda, and the store decides: an outage answers 503 and is retried, a
fault (a missing permission, a wrong ARN, a rejected statement) answers 500 `database_error`
with AWS's reason in the log, and is not retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pressroom_common.feedback.store import (
    FeedbackStore,
    StoreFailedError,
    StoreUnavailableError,
    open_store,
)

from local.emulate.events import proxy_event
from local.emulate.functions import load_handler
from tests.fixtures.data_api import CLUSTER_ARN, DataApiServer
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.readers import write_reader_key

pytestmark = pytest.mark.postgres

FEEDBACK_DIR = Path(__file__).resolve().parents[3] / "apps" / "feedback" / "src" / "feedback"
ACCESS_DENIED = (
    403,
    "AccessDeniedException",
    "User: arn:aws:sts::123456789012:assumed-role/pressroom-dev-feedback/fn is not authorized "
    f"to perform: rds-data:BeginTransaction on resource: {CLUSTER_ARN} because no "
    "identity-based policy allows the rds-data:BeginTransaction action",
)
RESUMING = (
    400,
    "DatabaseResumingException",
    "The Aurora DB instance db-ABCDEFGHIJ is resuming after being auto-paused. "
    "Please wait a few seconds and try again.",
)

OUTAGES = [
    RESUMING,
    (504, "DatabaseUnavailableException", "The writer instance in the DB cluster isn't available"),
    (503, "ServiceUnavailableError", "The service isn't available"),
    (500, "InternalServerErrorException", "An internal error occurred"),
    (400, "StatementTimeoutException", "The execution of the SQL statement timed out"),
    (400, "ThrottlingException", "Rate exceeded"),
    (
        400,
        "BadRequestException",
        "Communications link failure\n\nThe last packet sent successfully to the server was 0 "
        "milliseconds ago. The driver has not received any packets from the server.",
    ),
]
FAULTS = [
    ACCESS_DENIED,
    (403, "ForbiddenException", "There are insufficient privileges to make the call"),
    (404, "NotFoundException", f"Database cluster {CLUSTER_ARN}-typo not found"),
    (404, "DatabaseNotFoundException", "The DB cluster doesn't have a DB instance"),
    (400, "HttpEndpointNotEnabledException", "HttpEndpoint is not enabled for cluster x"),
    (400, "SecretsErrorException", "The secret provided wasn't found"),
    (400, "ValidationException", "1 validation error detected: Value at 'sql' failed"),
    (
        400,
        "BadRequestException",
        'ERROR: relation "votes" does not exist; Position: 15; SQLState: 42P01',
    ),
]


def _id(case: tuple[int, str, str]) -> str:
    return case[1] if "link failure" not in case[2] else "BadRequestException-link-failure"


@pytest.fixture
def aurora_store(aurora_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedbackStore]:
    # One attempt per call: botocore's own retries of a 5xx would only slow these tests down.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = open_store(aurora_url, migrate=True)
    yield store
    store.engine.dispose()


@pytest.mark.parametrize("case", OUTAGES, ids=_id)
@pytest.mark.parametrize("operation", [None, "Execute"], ids=["first-call", "statement"])
def test_an_outage_answers_database_unavailable(
    aurora_store: FeedbackStore,
    data_api: DataApiServer,
    case: tuple[int, str, str],
    operation: str | None,
) -> None:
    # "statement": the transaction begins and the statement fails, which the Data API driver
    # wraps in its own DatabaseError before SQLAlchemy wraps that.
    with (
        data_api.failing(*case, operation=operation) as refused,
        pytest.raises(StoreUnavailableError) as raised,
    ):
        aurora_store.ping()
    assert refused == [operation or "BeginTransaction"]
    assert (raised.value.status, raised.value.code) == (503, "database_unavailable")
    aurora_store.ping()  # and the same store works once the database answers again


@pytest.mark.parametrize("case", FAULTS, ids=_id)
@pytest.mark.parametrize("operation", [None, "Execute"], ids=["first-call", "statement"])
def test_a_fault_is_not_an_outage_and_names_its_cause(
    aurora_store: FeedbackStore,
    data_api: DataApiServer,
    case: tuple[int, str, str],
    operation: str | None,
) -> None:
    _, code, message = case
    with (
        data_api.failing(*case, operation=operation),
        pytest.raises(StoreFailedError) as raised,
    ):
        aurora_store.ping()
    assert (raised.value.status, raised.value.code) == (500, "database_error")
    assert raised.value.details == {"aws_error_code": code}
    assert raised.value.cause == f"{code}: {message}"


def test_a_sql_error_from_the_data_api_is_a_fault(aurora_store: FeedbackStore) -> None:
    # No injected error: the double relays PostgreSQL's own, as the Data API does.
    with aurora_store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE votes CASCADE")
    with pytest.raises(StoreFailedError) as raised:
        aurora_store.voted_generations()
    assert raised.value.aws_code == "BadRequestException"
    assert 'relation "votes" does not exist' in raised.value.cause


GetStats = Callable[[], tuple[int, dict[str, Any]]]


@pytest.fixture
def get_stats(aurora_store: FeedbackStore, aurora_url: str, tmp_path: Path) -> GetStats:
    """GET /api/stats through the feedback function, as API Gateway invokes it."""
    handler = load_handler(
        FEEDBACK_DIR,
        "app.handler",
        {
            "DATABASE_URL": aurora_url,
            "VARIANT_WEIGHTS": '{"A": 1, "B": 1}',
            "READER_KEY_FILE": str(write_reader_key(tmp_path)),
        },
    )

    def get() -> tuple[int, dict[str, Any]]:
        response = handler(proxy_event("GET", "/api/stats"), lambda_context("feedback"))
        return response["statusCode"], json.loads(response["body"])

    return get


def test_access_denied_answers_500_database_error_and_logs_the_cause(
    get_stats: GetStats, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with data_api.failing(*ACCESS_DENIED), caplog.at_level(logging.INFO):
        status, body = get_stats()
    assert status == 500
    assert body["error"]["code"] == "database_error"
    assert body["error"]["details"] == {"aws_error_code": "AccessDeniedException"}
    assert CLUSTER_ARN not in body["error"]["message"]  # AWS's words go to the log only
    (logged,) = [record for record in caplog.records if hasattr(record, "aws_error_code")]
    assert logged.levelname == "ERROR"
    assert logged.__dict__["aws_error_code"] == "AccessDeniedException"
    assert "is not authorized to perform: rds-data:BeginTransaction" in logged.__dict__["aws_error"]


def test_a_resuming_cluster_answers_503_database_unavailable(
    get_stats: GetStats, data_api: DataApiServer
) -> None:
    with data_api.failing(*RESUMING):
        status, body = get_stats()
    assert status == 503
    assert body["error"]["code"] == "database_unavailable"
