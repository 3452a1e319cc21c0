"""The schema-migration custom resource answers CloudFormation exactly once, whatever happens.

CloudFormation's pre-signed response URL is the one faked piece: a real HTTP server on
127.0.0.1 that records the PUTs.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from pressroom_common.feedback.store import open_store
from pressroom_common.feedback.store.migrations import MIGRATION_LOCK_ID

from local.emulate.functions import load_handler
from tests.fixtures.data_api import DataApiServer
from tests.fixtures.feedback import GenerationFactory
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.postgres import PostgresServer

FUNCTION_DIR = Path(__file__).resolve().parents[3] / "apps" / "feedback" / "src" / "migrations"
PHYSICAL_ID = "pressroom-feedback-schema"
# A database nothing answers for (port 9, discard).
CLOSED_PORT_URL = "postgresql+psycopg://nobody@127.0.0.1:9/feedback"


@dataclass
class Answer:
    content_type: str | None
    body: dict[str, Any]


class ResponseUrl:
    """Stands in for the S3 pre-signed URL CloudFormation hands the custom resource."""

    def __init__(self) -> None:
        self.answers: queue.Queue[Answer] = queue.Queue()
        answers = self.answers

        class Recorder(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                answers.put(
                    Answer(self.headers.get("Content-Type"), json.loads(self.rfile.read(length)))
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cfn-response?signature=x"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def all_answers(self) -> list[Answer]:
        received = []
        while not self.answers.empty():
            received.append(self.answers.get_nowait())
        return received


@pytest.fixture
def response_url() -> Iterator[ResponseUrl]:
    server = ResponseUrl()
    yield server
    server.close()


def cloudformation_event(request_type: str, response_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/pressroom-feedback/1",
        "RequestId": f"request-{request_type}",
        "LogicalResourceId": "SchemaMigration",
        "ResourceType": "Custom::SchemaMigration",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "CommonLayerArn": "arn:x"},
        **extra,
    }


def run_resource(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None,
    event: dict[str, Any],
    remaining_s: float = 300,
) -> None:
    if database_url is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", database_url)
    handler = load_handler(FUNCTION_DIR, "app.handler", {})
    handler(event, lambda_context("feedback-migrations", remaining_s=remaining_s))


def create_then(
    request_type: str,
    monkeypatch: pytest.MonkeyPatch,
    store_url: str,
    response_url: ResponseUrl,
) -> None:
    """Create the resource, then send `request_type` for the physical resource it made."""
    run_resource(monkeypatch, store_url, cloudformation_event("Create", response_url.url))
    run_resource(
        monkeypatch,
        store_url,
        cloudformation_event(
            request_type, response_url.url, PhysicalResourceId="pressroom-feedback-schema"
        ),
    )


def table_names(database_url: str) -> set[str]:
    engine = open_store(database_url).engine
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_create_then_update_migrate_and_answer_success(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl, store_url: str
) -> None:
    create_then("Update", monkeypatch, store_url, response_url)
    create, update = response_url.all_answers()
    assert create.body["Status"] == "SUCCESS"
    assert update.body["Status"] == "SUCCESS"
    assert create.content_type == ""  # the pre-signed URL is signed without a content type
    assert create.body["PhysicalResourceId"] == update.body["PhysicalResourceId"]
    assert create.body["RequestId"] == "request-Create"
    assert create.body["LogicalResourceId"] == "SchemaMigration"
    assert {"generations", "votes", "alembic_version"} <= table_names(store_url)


def test_delete_keeps_the_data_and_answers_success(
    monkeypatch: pytest.MonkeyPatch,
    response_url: ResponseUrl,
    store_url: str,
    make_generation: GenerationFactory,
) -> None:
    run_resource(monkeypatch, store_url, cloudformation_event("Create", response_url.url))
    record_one_vote(store_url, make_generation)
    run_resource(
        monkeypatch,
        store_url,
        cloudformation_event("Delete", response_url.url, PhysicalResourceId=PHYSICAL_ID),
    )
    statuses = [answer.body["Status"] for answer in response_url.all_answers()]
    assert statuses == ["SUCCESS", "SUCCESS"]
    assert {"generations", "votes"} <= table_names(store_url)
    assert row_counts(store_url, "generations", "votes") == {"generations": 1, "votes": 1}


def test_delete_never_touches_the_database(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl
) -> None:
    # The rollback of a failed Create, or a stack deletion, with the database out of reach.
    run_resource(
        monkeypatch,
        CLOSED_PORT_URL,
        cloudformation_event("Delete", response_url.url, PhysicalResourceId=PHYSICAL_ID),
        remaining_s=12,
    )
    (answer,) = response_url.all_answers()
    assert answer.body["Status"] == "SUCCESS"
    assert "nothing is dropped" in answer.body["Reason"]


NEWER_REVISION = "9000_from_a_newer_release"


def migrate_as_a_newer_release(database_url: str) -> None:
    """What a later release's deploy leaves behind before it fails and rolls back: its own
    migration applied (here a new table holding data) and a revision these files do not know."""
    engine = open_store(database_url).engine
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("CREATE TABLE reader_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
            )
            connection.execute(sa.text("INSERT INTO reader_notes (id, note) VALUES (1, 'kept')"))
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :revision"),
                {"revision": NEWER_REVISION},
            )
    finally:
        engine.dispose()


def test_a_rollback_over_a_newer_schema_keeps_it_and_its_data_and_succeeds(
    monkeypatch: pytest.MonkeyPatch,
    response_url: ResponseUrl,
    store_url: str,
    make_generation: GenerationFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_resource(monkeypatch, store_url, cloudformation_event("Create", response_url.url))
    record_one_vote(store_url, make_generation)
    migrate_as_a_newer_release(store_url)

    # UPDATE_ROLLBACK_IN_PROGRESS: CloudFormation sends an Update carrying the previous
    # release's properties to the previous release's function (these migrations).
    run_resource(
        monkeypatch,
        store_url,
        cloudformation_event(
            "Update",
            response_url.url,
            PhysicalResourceId=PHYSICAL_ID,
            OldResourceProperties={"ServiceToken": "arn:aws:lambda:...", "CommonLayerArn": "new"},
        ),
    )

    create, rollback = response_url.all_answers()
    assert create.body["Data"]["SchemaAhead"] == "false"
    assert rollback.body["Status"] == "SUCCESS"
    assert rollback.body["Data"] == {
        "SchemaRevision": NEWER_REVISION,
        "CodeHeadRevision": create.body["Data"]["CodeHeadRevision"],
        "SchemaAhead": "true",
    }
    assert "newer than this code" in rollback.body["Reason"]
    assert "not downgraded" in rollback.body["Reason"]
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert [record.getMessage() for record in warnings] == [
        "schema is ahead of the code; left as it is"
    ]
    assert warnings[0].__dict__["SchemaRevision"] == NEWER_REVISION
    # Nothing was changed: the newer revision, its table and every row stay.
    assert revision_of(store_url) == NEWER_REVISION
    assert row_counts(store_url, "generations", "votes", "reader_notes") == {
        "generations": 1,
        "votes": 1,
        "reader_notes": 1,
    }


def test_an_older_schema_is_still_upgraded(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl, store_url: str
) -> None:
    run_resource(monkeypatch, store_url, cloudformation_event("Create", response_url.url))
    (answer,) = response_url.all_answers()
    assert answer.body["Data"] == {
        "SchemaRevision": answer.body["Data"]["CodeHeadRevision"],
        "CodeHeadRevision": answer.body["Data"]["CodeHeadRevision"],
        "SchemaAhead": "false",
    }
    assert revision_of(store_url) == answer.body["Data"]["CodeHeadRevision"]


def record_one_vote(database_url: str, make_generation: GenerationFactory) -> None:
    store = open_store(database_url)
    try:
        generation = make_generation()
        store.record_generation(generation)
        store.record_vote(generation.id, generation.user_hash, "up")
    finally:
        store.engine.dispose()


def row_counts(database_url: str, *tables: str) -> dict[str, int]:
    engine = open_store(database_url).engine
    try:
        with engine.connect() as connection:
            return {
                table: int(
                    connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                )
                for table in tables
            }
    finally:
        engine.dispose()


def revision_of(database_url: str) -> str:
    engine = open_store(database_url).engine
    try:
        with engine.connect() as connection:
            return str(
                connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            )
    finally:
        engine.dispose()


def test_unreachable_database_answers_failed_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl
) -> None:
    run_resource(
        monkeypatch,
        CLOSED_PORT_URL,
        cloudformation_event("Create", response_url.url),
        remaining_s=12,
    )
    (answer,) = response_url.all_answers()
    assert answer.body["Status"] == "FAILED"
    assert "StoreUnavailableError" in answer.body["Reason"]


@pytest.mark.postgres
def test_a_fault_answers_failed_at_once_with_awss_reason(
    monkeypatch: pytest.MonkeyPatch,
    response_url: ResponseUrl,
    aurora_url: str,
    data_api: DataApiServer,
) -> None:
    # A role without rds-data permissions: retrying until the deadline would only delay the
    # stack's rollback, so one refused call is the whole migration.
    denied = "User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: rds-data"
    started = time.monotonic()
    with data_api.failing(403, "AccessDeniedException", denied) as refused:
        run_resource(monkeypatch, aurora_url, cloudformation_event("Create", response_url.url), 16)
    (answer,) = response_url.all_answers()
    assert answer.body["Status"] == "FAILED"
    assert (
        answer.body["Reason"]
        == f"schema migration failed, not retried: AccessDeniedException: {denied}"
    )
    assert refused == ["BeginTransaction"]
    assert time.monotonic() - started < 5  # the retry pause is 5 s


def test_missing_configuration_answers_failed_naming_it(
    monkeypatch: pytest.MonkeyPatch, response_url: ResponseUrl
) -> None:
    run_resource(monkeypatch, None, cloudformation_event("Create", response_url.url))
    (answer,) = response_url.all_answers()
    assert answer.body["Status"] == "FAILED"
    assert "database_url" in answer.body["Reason"]


@pytest.mark.postgres
def test_migration_that_outlives_the_lambda_answers_failed_before_the_timeout_and_only_once(
    monkeypatch: pytest.MonkeyPatch,
    response_url: ResponseUrl,
    postgres_server: PostgresServer,
    postgres_url: str,
) -> None:
    # Another session holds the migration lock, so the upgrade blocks past the function's budget.
    database = postgres_url.rsplit("/", 1)[1]
    blocker = psycopg.connect(
        f"host=127.0.0.1 port={postgres_server.port} user=pressroom dbname={database}"
    )
    blocker.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
    # 11.5 s left on the Lambda clock and a 10 s margin: the watchdog answers after ~1.5 s.
    worker = threading.Thread(
        target=run_resource,
        args=(monkeypatch, postgres_url, cloudformation_event("Create", response_url.url), 11.5),
    )
    worker.start()
    try:
        answer = response_url.answers.get(timeout=30)
    finally:
        blocker.rollback()  # release the lock; the blocked upgrade then finishes
        blocker.close()
        worker.join(timeout=60)
    assert answer.body["Status"] == "FAILED"
    assert "timed out" in answer.body["Reason"]
    assert not worker.is_alive()
    assert response_url.all_answers() == []  # the late success is not sent
