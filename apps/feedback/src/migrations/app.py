"""CloudFormation custom resource: apply the feedback schema migrations on every deploy.

It always answers CloudFormation, exactly once: SUCCESS once the schema is at the newest
migration, FAILED with the reason when migrating fails, and FAILED on its own shortly before
Lambda would time out (an unanswered custom resource hangs the stack for an hour). Migrating is
idempotent, so Create and Update run the same upgrade. Only an outage (the cluster paused,
resuming or failing over) is retried; a fault retrying cannot fix (a missing permission, a wrong
ARN) answers FAILED at once, with AWS's own words as the Reason.

It never removes data and never downgrades:
- A schema *newer* than these migrations (the database is at a revision they do not know) is
  what a rollback meets: the failed release migrated it, then CloudFormation rolls this resource
  back with the previous release's code. The schema and its data are kept as they are, and the
  answer is SUCCESS, reporting it (Data `SchemaAhead`, the Reason, a warning in the log);
  failing here would leave the stack in UPDATE_ROLLBACK_FAILED. Migrations are additive, so the
  older code runs on the newer schema.
- Delete (stack deletion, or the rollback of a failed Create) answers SUCCESS without touching
  the database; the cluster's DeletionPolicy (Snapshot) decides what happens to it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pressroom_common.feedback.store import StoreFailedError, StoreUnavailableError, open_store
from pressroom_common.feedback.store.migrations import MigrationResult
from pressroom_common.platform.settings import StoreSettings

logger = Logger(service="feedback-migrations")

# Seconds kept back from Lambda's timeout to send FAILED ourselves.
ANSWER_MARGIN_S = 10.0
# Aurora Serverless v2 may be resuming from zero capacity: retry outages until the deadline.
RETRY_PAUSE_S = 5.0
PHYSICAL_RESOURCE_ID = "pressroom-feedback-schema"


class CloudFormationAnswer:
    """Sends the one response CloudFormation waits for to the pre-signed `ResponseURL`."""

    def __init__(self, event: dict[str, Any]) -> None:
        self._event = event
        self._lock = threading.Lock()
        self._sent = False

    def send(self, status: str, reason: str, data: dict[str, str] | None = None) -> bool:
        """Send unless an answer already went; return whether this call sent it."""
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        body = {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": self._event.get("PhysicalResourceId", PHYSICAL_RESOURCE_ID),
            "StackId": self._event.get("StackId", ""),
            "RequestId": self._event.get("RequestId", ""),
            "LogicalResourceId": self._event.get("LogicalResourceId", ""),
            "Data": data or {},
        }
        request = urllib.request.Request(  # noqa: S310 - the https URL CloudFormation gave us
            self._event["ResponseURL"],
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": ""},  # the pre-signed S3 URL was signed without one
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                logger.info("answered CloudFormation", status=status, http_status=response.status)
        except OSError:
            logger.exception("could not answer CloudFormation", status=status)
        return True


def migrate_until(deadline: float) -> MigrationResult:
    """Upgrade the schema, retrying while the database is unavailable and time remains."""
    store = open_store(StoreSettings().database_url)
    try:
        while True:
            try:
                return store.migrate()
            except StoreUnavailableError:
                if time.monotonic() + RETRY_PAUSE_S >= deadline:
                    raise
                logger.warning("database unavailable; retrying", pause_s=RETRY_PAUSE_S)
                time.sleep(RETRY_PAUSE_S)
    finally:
        store.engine.dispose()


def describe(result: MigrationResult) -> tuple[str, dict[str, str]]:
    """The SUCCESS answer's Reason and Data for a migration result (and log it)."""
    revision = ",".join(result.revisions) or "none"
    data = {
        "SchemaRevision": revision,
        "CodeHeadRevision": result.code_head,
        "SchemaAhead": "true" if result.ahead else "false",
    }
    if result.ahead:
        reason = (
            f"database schema {revision} is newer than this code's newest migration "
            f"{result.code_head} (a rollback to an older release): kept as it is with its data, "
            "not downgraded"
        )
        logger.warning("schema is ahead of the code; left as it is", extra=data)
        return reason, data
    logger.info("schema is at the newest migration", extra=data)
    return f"schema is at the newest migration {result.code_head}", data


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    answer = CloudFormationAnswer(event)
    budget_s = max(context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_S, 0.0)
    deadline = time.monotonic() + budget_s
    watchdog = threading.Timer(
        budget_s, answer.send, args=("FAILED", "schema migration timed out before Lambda's limit")
    )
    watchdog.daemon = True
    watchdog.start()
    request_type = event.get("RequestType")
    try:
        if request_type in ("Create", "Update"):
            result = migrate_until(deadline)
            answer.send("SUCCESS", *describe(result))
        elif request_type == "Delete":
            answer.send(
                "SUCCESS",
                "schema and data left in place (nothing is dropped); "
                "the cluster's DeletionPolicy decides its fate",
            )
        else:
            answer.send("FAILED", f"unknown RequestType {request_type!r}")
    except StoreFailedError as error:
        logger.exception("schema migration failed; not retried", aws_error=error.cause)
        answer.send("FAILED", f"schema migration failed, not retried: {error.cause}")
    except Exception as error:
        logger.exception("schema migration failed")
        answer.send("FAILED", f"schema migration failed: {type(error).__name__}: {error}")
    finally:
        watchdog.cancel()
