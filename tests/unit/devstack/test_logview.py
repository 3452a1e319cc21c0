"""`pressroom logs` over a small log file: each kind of line made readable, the selections
(`--since`, `--function`, `--filter`), following appended lines, and the summary `pressroom up`
prints."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from local.cli import app
from local.devstack.logview import follow_lines, parse_since
from local.devstack.summary import figures, served_models, summary_panel
from local.emulate.sagemaker.endpoints import EndpointSpec, VariantSpec
from local.plumbing.logfile import LogEvent, LogFile

GENERATE_GROUP = "/aws/lambda/pressroom-inferenceapi-generatefunction-1e71fe0ef7b3"
STREAM = "2026/01/01/[$LATEST]0123456789abcdef"
POWERTOOLS_LINE = json.dumps(
    {
        "level": "INFO",
        "location": "_request_validation_error:211",
        "message": "request rejected",
        "timestamp": "2026-01-01 09:00:00,000+0000",
        "service": "generate",
        "correlation_id": "req-1",
        "validation_errors": [{"field": "prompt"}],
    }
)
EMF_LINE = json.dumps(
    {
        "_aws": {
            "Timestamp": 1767258000000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Pressroom",
                    "Dimensions": [["variant"]],
                    "Metrics": [{"Name": "ModelLatency", "Unit": "Milliseconds"}],
                }
            ],
        },
        "variant": "B",
        "ModelLatency": [12.5],
    }
)
ACCESS_LINE = json.dumps(
    {
        "requestId": "req-1",
        "method": "POST",
        "path": "/api/generate",
        "status": "422",
        "latency": "31",
        "integrationLatency": "30",
        "error": "-",
    }
)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "pressroom.log"
    now = int(datetime.now().timestamp() * 1000)
    log = LogFile(path)
    log.write("generate", GENERATE_GROUP, STREAM, "START RequestId: req-1 Version: $LATEST", now)
    log.write("generate", GENERATE_GROUP, STREAM, POWERTOOLS_LINE, now)
    log.write("generate", GENERATE_GROUP, STREAM, EMF_LINE, now)
    log.write("api", "/aws/apigateway/pressroom-dev/access", "Api-dev-local", ACCESS_LINE, now)
    log.write("sagemaker", "/aws/sagemaker/Endpoints/e", "B/local-7", "loaded model in 2.0s", now)
    log.write("feedback", "/aws/lambda/fb", STREAM, "an hour old", now - 3_600_000)
    log.close()
    return path


def run(*arguments: str) -> list[str]:
    result = CliRunner().invoke(app, ["logs", *arguments], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_each_kind_of_line_is_made_readable(log_path: Path) -> None:
    lines = run("--file", str(log_path))

    assert len(lines) == 5  # the hour-old line is outside the default 10 minutes
    sources = [line.split()[1] for line in lines]
    assert sources == ["generate", "generate", "generate", "api", "sagemaker"]
    start, logged, metric, access, worker = (line.split(maxsplit=2)[2] for line in lines)
    assert start == "START RequestId: req-1 Version: $LATEST"
    assert logged.split() == [
        "INFO",
        "request",
        "rejected",
        'validation_errors=[{"field":"prompt"}]',
    ]
    assert metric.split() == ["metric", "ModelLatency=12.5", "ms", "variant=B"]
    assert access.split() == [
        "POST",
        "/api/generate",
        "422",
        "31",
        "ms",
        "integrationLatency=30",
        "requestId=req-1",
    ]
    assert worker == "loaded model in 2.0s"


def test_lines_are_selected_by_function_time_and_text(log_path: Path) -> None:
    assert {line.split()[1] for line in run("--file", str(log_path), "-n", "generate")} == {
        "generate"
    }
    assert run("--file", str(log_path), "--function", "feedback") == []  # an hour ago
    for name in ("feedback", "fb", "/aws/lambda/fb"):  # short, full function or group name
        everything = run("--file", str(log_path), "--since", "all", "--function", name)
        # After the function's label: an hour ago may be yesterday, and then the time shows a date.
        assert [line.split("feedback", 1)[1].strip() for line in everything] == ["an hour old"]
    assert len(run("--file", str(log_path), "--filter", "variant")) == 1


def test_json_prints_the_files_own_lines(log_path: Path) -> None:
    lines = run("--file", str(log_path), "--json", "-n", "api")

    assert [LogEvent.from_json(line) for line in lines] == [
        LogEvent.from_json(log_path.read_text().splitlines()[3])
    ]


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["logs", "--file", str(tmp_path / "none.log")])

    assert result.exit_code == 1
    assert "start the stack first" in result.output


def test_since_reads_durations_and_times() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0)

    assert parse_since("10m", now) == datetime(2026, 1, 1, 11, 50).timestamp()
    assert parse_since("2h", now) == datetime(2026, 1, 1, 10, 0).timestamp()
    assert parse_since("2026-01-01T09:30", now) == datetime(2026, 1, 1, 9, 30).timestamp()
    assert parse_since("all", now) == 0.0


def test_following_yields_appended_lines_and_starts_over_after_truncation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "growing.log"
    steps = iter(
        [
            lambda: path.write_text("one\ntw"),
            lambda: path.open("a").write("o\n"),
            lambda: path.write_text("fresh\n"),  # truncated and written again
        ]
    )

    def keep_going() -> bool:
        step = next(steps, None)
        if step is not None:
            step()
        return step is not None

    assert list(follow_lines(path, poll_s=0, keep_going=keep_going)) == ["one", "two", "fresh"]


def write_manifest(directory: Path, manifest: dict[str, object]) -> Path:
    (directory / "model").mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory / "model"


def test_figures_show_the_known_metrics_and_degrade_gracefully() -> None:
    assert figures({"test_bits_per_char": 1.5432, "test_perplexity": 4.71}) == (
        "1.54 bits/char · ppl 4.71"
    )
    assert figures({"test_macro_f1": 0.9012, "test_accuracy": 0.91, "test_headlines": 9}) == (
        "macro-F1 0.90 · accuracy 0.91"
    )
    assert figures({"test_reading_score": 0.25, "notes": "x"}) == "reading score 0.25"
    assert figures({}) == figures(None) == "no metrics in the manifest"


def test_the_summary_names_the_models_the_url_and_the_logs(tmp_path: Path) -> None:
    base = write_manifest(
        tmp_path / "base", {"version": "v-base", "metrics": {"test_bits_per_char": 1.54}}
    )
    lite = write_manifest(tmp_path / "lite", {"version": "v-lite"})  # no metrics yet
    endpoint = EndpointSpec(
        "pressroom-dev-headline",
        "config",
        (
            VariantSpec("A", "headline-base", base, 3.0, None, None),
            VariantSpec("B", "headline-lite", lite, 1.0, None, None),
        ),
        serverless=False,
    )
    models = served_models({endpoint.name: endpoint})
    console = Console(width=220, record=True)

    console.print(summary_panel("http://127.0.0.1:8080/", models, tmp_path / "p.log"))

    text = console.export_text()
    rows = [line.strip("│ ").split() for line in text.splitlines()]
    assert ["headline-base", "A", "75%", "v-base", "1.54", "bits/char"] in rows
    assert ["headline-lite", "B", "25%", "v-lite", "no", "metrics", "in", "the", "manifest"] in rows
    assert """curl http://127.0.0.1:8080/api/generate -d '{"prompt":"Stocks"}'""" in text
    assert f"logs -f --file {tmp_path / 'p.log'}" in text
    assert "Ctrl-C stops it." in text


def test_the_summary_marks_an_experiment_rounds_challenger(tmp_path: Path) -> None:
    champion = write_manifest(tmp_path / "champion", {"version": "v-base"})
    challenger = write_manifest(tmp_path / "challenger", {"version": "v-votes"})
    endpoint = EndpointSpec(
        "pressroom-dev-headline",
        "config",
        (
            VariantSpec("A", "headline-base", champion, 0.9, None, None),
            VariantSpec("B", "headline-base", challenger, 0.1, None, None, challenger=True),
        ),
        serverless=False,
    )

    models = served_models({endpoint.name: endpoint})

    assert [(m.name, m.variant, m.version) for m in models] == [
        ("headline-base", "A", "v-base"),
        ("headline-base (challenger)", "B", "v-votes"),
    ]
