"""`pressroom up`'s request path logs to its log file, as Lambda and API Gateway log to
CloudWatch: a generate request's log and metric lines land there, inside its START / END
frame, with the access log line, and nothing of it reaches stdout."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from local.cli import app
from local.devstack.stack import LocalStack
from local.plumbing.logfile import LogEvent


def events_of(path: Path) -> list[LogEvent]:
    return [e for e in map(LogEvent.from_json, path.read_text().splitlines()) if e is not None]


def invocation(events: list[LogEvent], request_id: str) -> list[str]:
    """The messages one invocation wrote: its stream from START to END, both included."""
    start_line = f"START RequestId: {request_id} Version: $LATEST"
    [start] = [event for event in events if event.message == start_line]
    stream = [event.message for event in events if event.logStreamName == start.logStreamName]
    first = stream.index(start_line)
    return stream[first : stream.index(f"END RequestId: {request_id}", first) + 1]


def test_a_generate_requests_log_and_metric_lines_go_to_the_log_file_not_stdout(
    local_stack: LocalStack, capfd: pytest.CaptureFixture[str]
) -> None:
    assert local_stack.log_path is not None
    capfd.readouterr()

    with httpx.Client(base_url=local_stack.url, timeout=60) as http:
        served = http.post(
            "/api/generate", json={"prompt": "Markets rally", "variant": "B", "max_new_tokens": 2}
        )
        rejected = http.post("/api/generate", json={"prompt": ""})

    assert served.status_code == 200, served.text
    assert rejected.status_code == 422, rejected.text
    out, err = capfd.readouterr()
    assert '"_aws"' not in out + err
    assert "request rejected" not in out + err
    events = events_of(local_stack.log_path)

    served_lines = invocation(events, served.headers["x-amzn-RequestId"])
    metrics = [json.loads(line) for line in served_lines if line.startswith('{"_aws"')]
    # Every metric of the request is the variant's, but for the cold start that the first
    # invocation in the process counts (`ColdStart`, by function name).
    variant_metrics = [metric for metric in metrics if "ColdStart" not in metric]
    assert variant_metrics, served_lines
    assert {metric.get("variant") for metric in variant_metrics} == {"B"}
    assert all(metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] for metric in metrics)

    rejected_lines = invocation(events, rejected.headers["x-amzn-RequestId"])
    logged = [json.loads(line) for line in rejected_lines if '"level"' in line]
    assert [(line["level"], line["message"]) for line in logged] == [("INFO", "request rejected")]

    access = {
        record["requestId"]: record
        for record in (json.loads(e.message) for e in events if e.source == "api")
    }
    assert access[served.headers["x-amzn-RequestId"]]["status"] == "200"
    assert access[rejected.headers["x-amzn-RequestId"]]["path"] == "/api/generate"
    sources = {e.source for e in events if e.message.startswith("START RequestId")}
    assert "generate" in sources


def test_pressroom_logs_reads_the_stacks_file(local_stack: LocalStack) -> None:
    assert local_stack.log_path is not None
    with httpx.Client(base_url=local_stack.url, timeout=60) as http:
        http.post("/api/generate", json={"prompt": "Logs", "variant": "B", "max_new_tokens": 2})

    result = CliRunner().invoke(
        app,
        ["logs", "--file", str(local_stack.log_path), "--function", "generate"],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert {line.split()[1] for line in lines} == {"generate"}
    assert any(" metric " in f" {line} " and "variant=B" in line for line in lines)
