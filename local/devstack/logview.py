"""`pressroom logs`: the local log file (see `local.plumbing.logfile`), read the way `sam logs`
reads CloudWatch: a time, where the line comes from, and the message made readable.

    pressroom logs                       # the last 10 minutes
    pressroom logs -f                    # ... and follow new lines (`sam logs --tail`)
    pressroom logs -f --function generate --since 1h --filter variant=B

Powertools JSON log lines become `LEVEL message key=value ...`, CloudWatch EMF lines become
`metric Name=value unit dimension=value`, the API's access log lines `METHOD path status
latency`; anything else (the runtime's START / END / REPORT lines, the model workers' output) is
shown as written. `--json` prints the file's own lines instead, e.g. for `jq`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from local.plumbing.logfile import DEFAULT_LOG_FILE, LogEvent

DEFAULT_SINCE = "10m"
POLL_S = 0.25
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SOURCE_STYLES = {"generate": "cyan", "feedback": "magenta", "api": "blue", "sagemaker": "yellow"}
_LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
}
# Keys every Powertools log line carries; the rest are the line's own details.
_POWERTOOLS_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "stage",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "xray_trace_id",
        "exception",
        "exception_name",
        "stack_trace",
    }
)
_PLATFORM_PREFIXES = ("START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START")
_UNITS = {"Count": "", "Milliseconds": " ms", "Seconds": " s", "Percent": "%", "None": ""}


# --------------------------------------------------------------------------- selecting


def parse_since(value: str, now: datetime | None = None) -> float:
    """`10m`, `2h`, `1d`, `90s` (ago), `all`, or a local date-time (`2026-01-01T09:00`);
    returns epoch seconds."""
    now = now or datetime.now()
    text = value.strip()
    if text.lower() in ("all", "0"):
        return 0.0
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        seconds = float(duration.group(1)) * _UNIT_SECONDS[duration.group(2).lower()]
        return (now - timedelta(seconds=seconds)).timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give a duration such as 10m, 2h, 1d, or a time such as 2026-01-01T09:00"
        ) from None


@dataclass(frozen=True)
class Selection:
    """Which events to show."""

    since_ms: int = 0
    sources: tuple[str, ...] = ()
    """`generate`, `feedback`, `api`, `sagemaker`, a function's full name or a log group name;
    empty: all."""
    contains: str | None = None

    def __call__(self, event: LogEvent) -> bool:
        if event.timestamp < self.since_ms:
            return False
        if self.sources and not any(
            source in (event.source, event.logGroupName)
            or event.logGroupName.endswith(f"/{source}")
            for source in self.sources
        ):
            return False
        return self.contains is None or self.contains in event.message


def read_events(lines: Iterable[str]) -> Iterator[LogEvent]:
    for line in lines:
        event = LogEvent.from_json(line)
        if event is not None:
            yield event


def follow_lines(
    path: Path, *, poll_s: float = POLL_S, keep_going: Callable[[], bool] = lambda: True
) -> Iterator[str]:
    """The file's lines, then each new complete line as it is appended while `keep_going()`
    (`tail -F`): waits for a file that is not there yet, and starts over when the file is
    replaced or truncated."""
    position, identity, partial = 0, None, ""
    while True:
        try:
            stat = path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None:
            if identity != (stat.st_dev, stat.st_ino) or stat.st_size < position:
                position, identity, partial = 0, (stat.st_dev, stat.st_ino), ""
            if stat.st_size > position:
                with path.open("rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                text = partial + chunk.decode("utf-8", errors="replace")
                *complete, partial = text.split("\n")
                yield from complete
        if not keep_going():
            return
        time.sleep(poll_s)


# --------------------------------------------------------------------------- rendering


def _timestamp(milliseconds: int, today: datetime) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000)
    clock = f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"
    return clock if moment.date() == today.date() else f"{moment:%Y-%m-%d} {clock}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0")
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _powertools_line(record: dict[str, Any]) -> Text:
    level = str(record.get("level", "")).upper()
    text = Text(f"{level:<7} ", style=_LEVEL_STYLES.get(level, ""))
    text.append(str(record.get("message", "")))
    details = [
        f"{key}={_value(value)}" for key, value in record.items() if key not in _POWERTOOLS_KEYS
    ]
    if details:
        text.append("  " + " ".join(details), style="dim")
    if record.get("exception"):
        text.append("\n" + str(record["exception"]).rstrip(), style="red")
    return text


def _metric_line(record: dict[str, Any]) -> Text:
    """A CloudWatch EMF record: every metric with its value and unit, then its dimensions."""
    text = Text("metric  ", style="bold green")
    metrics, dimensions = [], []
    for directive in record["_aws"].get("CloudWatchMetrics") or []:
        for metric in directive.get("Metrics") or []:
            name = str(metric.get("Name", ""))
            value = record.get(name)
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            unit = str(metric.get("Unit", "None"))
            metrics.append(f"{name}={_value(value)}{_UNITS.get(unit, ' ' + unit)}")
        for dimension_set in directive.get("Dimensions") or []:
            for key in dimension_set:
                entry = f"{key}={_value(record.get(key))}"
                if entry not in dimensions:
                    dimensions.append(entry)
    text.append(" ".join(metrics))
    if dimensions:
        text.append("  " + " ".join(dimensions), style="dim")
    return text


def _access_line(record: dict[str, Any]) -> Text:
    status = str(record.get("status", "-"))
    style = {"2": "green", "3": "green", "4": "yellow", "5": "red"}.get(status[:1], "")
    text = Text(f"{record.get('method', '-')} {record.get('path', '-')} ")
    text.append(status, style=style)
    text.append(f" {record.get('latency', '-')} ms")
    details = [
        f"{key}={record[key]}"
        for key in ("integrationLatency", "responseLength", "error", "requestId")
        if str(record.get(key, "-")) not in ("-", "")
    ]
    if details:
        text.append("  " + " ".join(details), style="dim")
    return text


def render_message(event: LogEvent) -> Text:
    """The message made readable (see the module docstring); as written when it is not one of
    the known shapes."""
    message = event.message
    if message.startswith("{"):
        try:
            record = json.loads(message)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if isinstance(record.get("_aws"), dict):
                return _metric_line(record)
            if "level" in record and "message" in record:
                return _powertools_line(record)
            if "status" in record and ("method" in record or "httpMethod" in record):
                return _access_line({"method": record.get("httpMethod"), **record})
    if message.startswith(_PLATFORM_PREFIXES):
        return Text(message.replace("\t", "  "), style="dim")
    if message.startswith("[ERROR]"):
        return Text(message, style="red")
    return Text(message)


def render_event(event: LogEvent, today: datetime | None = None) -> Text:
    """One line (or a few, for a stack trace): time, source, message."""
    text = Text(_timestamp(event.timestamp, today or datetime.now()) + " ", style="dim")
    text.append(f"{event.source:<9} ", style=_SOURCE_STYLES.get(event.source, "bold"))
    text.append_text(render_message(event))
    return text


# --------------------------------------------------------------------------- the command

commands = typer.Typer()


@commands.command("logs")
def logs(
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", "--tail", "-t", help="Keep printing new lines (Ctrl-C)."),
    ] = False,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            "-s",
            "--start-time",
            help="From when: 10m, 2h, 1d (ago), `all`, or a local time like 2026-01-01T09:00.",
        ),
    ] = DEFAULT_SINCE,
    function: Annotated[
        list[str] | None,
        typer.Option(
            "--function",
            "-n",
            "--name",
            help="Only this source: generate, feedback (functions; a full function name works "
            "too), api (access log), sagemaker (model workers); repeat for several.",
        ),
    ] = None,
    contains: Annotated[
        str | None, typer.Option("--filter", help="Only lines whose message contains this text.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the file's JSON lines as they are.")
    ] = False,
    file: Annotated[Path, typer.Option(help="The log file `pressroom up` writes.")] = (
        DEFAULT_LOG_FILE
    ),
) -> None:
    """Show the local stack's logs (functions, metrics, access log, model workers), like
    `sam logs`."""
    selection = Selection(int(parse_since(since) * 1000), tuple(function or ()), contains)
    console = Console(highlight=False, soft_wrap=True, emoji=False)
    if not follow and not file.exists():
        Console(stderr=True, soft_wrap=True).print(
            f"[yellow]No log file at {file}[/]: start the stack first (`make up` or `make demo`)."
        )
        raise typer.Exit(1)
    lines = follow_lines(file, keep_going=lambda: follow)
    try:
        for event in read_events(lines):
            if selection(event):
                console.print(event.to_json() if as_json else render_event(event), markup=False)
    except KeyboardInterrupt:
        pass
