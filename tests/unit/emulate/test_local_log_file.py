"""The local runtime's log file: what a function writes (its Powertools log lines and EMF metric
lines, as on Lambda) lands there framed by START / END / REPORT, with the API's access log line,
and never on the terminal."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from local.emulate.gateway import AccessLog, ApiRoute, Gateway, LambdaFunction, RestApi
from local.emulate.sagemaker import RestartPolicy, WorkerStartError
from local.emulate.sagemaker.batching import BatchingConfig
from local.emulate.sagemaker.supervisor import WorkerSupervisor
from local.plumbing.logfile import LogEvent, LogFile

# The common layer's own Logger and metric helpers, as the real functions use them.
HANDLERS = """
import json
from aws_lambda_powertools.metrics import MetricUnit
from pressroom_common.platform.observability import logger, record_variant_metric

logger.info("cold start of the test function")

def ok(event, context):
    logger.info("answering", extra={"path": event["path"]})
    record_variant_metric("Invocations", 1, MetricUnit.Count, variant="B")
    print("a plain print", end="")
    print(" finished on the next write")
    return {"statusCode": 200, "body": json.dumps({"ok": True})}

def boom(event, context):
    raise RuntimeError("handler bug")
"""
ACCESS_FORMAT = (
    '{"requestId":"$context.requestId","method":"$context.httpMethod","path":"$context.path",'
    '"status":"$context.status","latency":"$context.responseLatency",'
    '"integrationLatency":"$context.integrationLatency","error":"$context.error.responseType"}'
)
ACCESS_GROUP = "/aws/apigateway/pressroom-test/access"


def events_of(path: Path) -> list[LogEvent]:
    events = [LogEvent.from_json(line) for line in path.read_text().splitlines()]
    assert all(event is not None for event in events), path.read_text()
    return [event for event in events if event is not None]


@pytest.fixture
def logged_gateway(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    (tmp_path / "handlers.py").write_text(HANDLERS)

    def function(handler: str) -> LambdaFunction:
        return LambdaFunction(
            f"{handler.capitalize()}Function",
            f"pressroom-test-{handler}function-0123",
            f"arn:aws:lambda:us-east-1:1:function:pressroom-test-{handler}function-0123",
            tmp_path,
            f"handlers.{handler}",
            {"POWERTOOLS_SERVICE_NAME": f"{handler}-service"},
            3,
            256,
        )

    api = RestApi(
        "Api",
        "test",
        (
            ApiRoute("POST", "/api/ok", function("ok")),
            ApiRoute("GET", "/api/boom", function("boom")),
        ),
        None,
        {},
        access_log=AccessLog(ACCESS_GROUP, ACCESS_FORMAT),
    )
    log_path = tmp_path / "logs" / "pressroom.log"
    log_file = LogFile(log_path)
    gateway = Gateway(
        api,
        region="us-east-1",
        environment_overrides={},
        instances_per_function=1,
        log_file=log_file,
    )
    with TestClient(Starlette(routes=gateway.routes())) as client:
        yield client, log_path
    gateway.close()
    log_file.close()


def test_a_functions_log_and_metric_lines_go_to_the_log_file_not_stdout(
    logged_gateway: tuple[TestClient, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    client, log_path = logged_gateway
    capfd.readouterr()

    response = client.post("/api/ok", content=b"{}")

    assert response.status_code == 200
    request_id = response.headers["x-amzn-RequestId"]
    out, err = capfd.readouterr()
    assert '"_aws"' not in out + err and "answering" not in out + err and "plain" not in out
    events = [event for event in events_of(log_path) if event.source == "ok"]
    group = "/aws/lambda/pressroom-test-okfunction-0123"
    assert {event.logGroupName for event in events} == {group}
    assert len({event.logStreamName for event in events}) == 1  # one execution environment
    assert "[$LATEST]" in events[0].logStreamName
    messages = [event.message for event in events]
    # The cold start's line comes first; the invocation is framed as the runtime frames it.
    cold_start = json.loads(messages[0])
    assert cold_start["message"] == "cold start of the test function"
    invocation = messages[messages.index(f"START RequestId: {request_id} Version: $LATEST") :]
    logged = json.loads(invocation[1])
    assert (logged["level"], logged["message"], logged["path"]) == ("INFO", "answering", "/api/ok")
    # Both functions share the layer's Logger in this process; each line names its own function.
    assert cold_start["service"] == logged["service"] == "ok-service"
    metric = json.loads(invocation[2])
    assert metric["Invocations"] == [1.0] and metric["variant"] == "B"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "Invocations", "Unit": "Count"}
    ]
    assert invocation[3] == "a plain print finished on the next write"
    assert invocation[4] == f"END RequestId: {request_id}"
    report = invocation[5].split("\t")
    assert report[0] == f"REPORT RequestId: {request_id}"
    assert report[3] == "Memory Size: 256 MB" and report[4].startswith("Init Duration: ")


def test_each_request_writes_the_stages_access_log_line(
    logged_gateway: tuple[TestClient, Path],
) -> None:
    client, log_path = logged_gateway

    ok = client.post("/api/ok", content=b"{}")
    missing = client.get("/api/nothing")

    access = [json.loads(e.message) for e in events_of(log_path) if e.source == "api"]
    assert [event.logGroupName for event in events_of(log_path) if event.source == "api"] == [
        ACCESS_GROUP
    ] * 2
    first, second = access
    assert (first["requestId"], first["method"], first["path"], first["status"]) == (
        ok.headers["x-amzn-RequestId"],
        "POST",
        "/api/ok",
        "200",
    )
    assert first["error"] == "-" and int(first["latency"]) >= int(first["integrationLatency"])
    assert (second["status"], second["error"], second["integrationLatency"]) == (
        str(missing.status_code),
        "MISSING_AUTHENTICATION_TOKEN",
        "-",
    )


def test_a_raising_handler_logs_the_runtimes_error_report(
    logged_gateway: tuple[TestClient, Path],
) -> None:
    client, log_path = logged_gateway

    response = client.get("/api/boom")

    assert response.status_code == 502
    messages = [event.message for event in events_of(log_path) if event.source == "boom"]
    request_id = response.headers["x-amzn-RequestId"]
    start = messages.index(f"START RequestId: {request_id} Version: $LATEST")
    error = messages[start + 1]
    assert error.startswith("[ERROR] RuntimeError: handler bug\nTraceback (most recent call last):")
    assert messages[start + 2] == f"END RequestId: {request_id}"


def test_other_threads_keep_writing_where_they_did(
    logged_gateway: tuple[TestClient, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    client, log_path = logged_gateway
    client.post("/api/ok", content=b"{}")  # the streams are wrapped from now on
    before = log_path.read_text()

    print("from the test itself")
    worker = threading.Thread(target=lambda: sys.stdout.write("from another thread\n"))
    worker.start()
    worker.join()

    assert capsys.readouterr().out == "from the test itself\nfrom another thread\n"
    assert log_path.read_text() == before


def test_a_workers_output_reaches_its_file_and_the_callback(tmp_path: Path) -> None:
    lines: list[tuple[int, str]] = []
    supervisor = WorkerSupervisor(
        "endpoint/A",
        tmp_path / "no-model",  # no code/inference.py: the worker fails to load and says why
        tmp_path / "worker.log",
        BatchingConfig(),
        RestartPolicy(),
        threads=1,
        on_output=lambda pid, line: lines.append((pid, line)),
    )
    supervisor.start()
    try:
        with pytest.raises(WorkerStartError, match=r"the artifact has no code/inference\.py"):
            supervisor.wait_ready(timeout_s=60)
    finally:
        supervisor.stop()

    assert any("the artifact has no code/inference.py" in line for _, line in lines)
    assert len({pid for pid, _ in lines}) == 1
    assert (tmp_path / "worker.log").read_text().splitlines() == [line for _, line in lines]
