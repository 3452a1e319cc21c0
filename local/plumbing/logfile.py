"""The local runtime's log file: what CloudWatch Logs would hold, one JSON event per line.

On AWS a Lambda function's stdout and stderr become log events in `/aws/lambda/<function>`
(the Powertools JSON log lines and the CloudWatch EMF metric lines among them, and the
runtime's `START` / `END` / `REPORT` lines), API Gateway writes one access log line per request
in the format of its stage's `AccessLogSetting`, and a SageMaker endpoint's containers log to
`/aws/sagemaker/Endpoints/<endpoint>`. The local runtime writes all of it to one file
(`build/logs/pressroom.log` for `pressroom up`), never to the terminal. Each line is one event
as CloudWatch Logs returns it, plus `source`, a short name to filter on::

    {"timestamp": 1767225600123, "source": "generate",
     "logGroupName": "/aws/lambda/pressroom-inferenceapi-generatefunction-1e71fe0ef7b3",
     "logStreamName": "2026/01/01/[$LATEST]5f0c...", "message": "{\\"level\\":\\"INFO\\",...}"}

`message` is exactly the text the function (or gateway, or model container) wrote, without
the line break. `pressroom logs` (`local.devstack.logview`) renders the file the way `sam logs`
does.

A function's output is captured per thread: the gateway runs each invocation on its own
thread inside `function_output(...)`, and `sys.stdout`, `sys.stderr` and the Powertools loggers'
streams are wrapped so that writes from such a thread go to the function's log, while every
other thread writes where it did before.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from local.paths import BUILD_DIR

DEFAULT_LOG_FILE = BUILD_DIR / "logs" / "pressroom.log"


@dataclass(frozen=True)
class LogEvent:
    """One line of the log file."""

    timestamp: int
    """Milliseconds since the epoch, as CloudWatch Logs keeps it."""
    source: str
    """`generate`, `feedback` (a function), `api` (the access log) or `sagemaker`."""
    # CloudWatch Logs' own field names:
    logGroupName: str
    logStreamName: str
    message: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> LogEvent | None:
        """The event on one line of the file; None for a line that is not one (e.g. cut short)."""
        try:
            data = json.loads(line)
            return cls(
                timestamp=int(data["timestamp"]),
                source=str(data["source"]),
                logGroupName=str(data["logGroupName"]),
                logStreamName=str(data["logStreamName"]),
                message=str(data["message"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def now_ms() -> int:
    return int(time.time() * 1000)


class LogFile:
    """Appends events to the log file, one line each, flushed at once (so a tail sees it).

    Thread-safe; the folder and the file are created when it opens.
    """

    def __init__(self, path: Path = DEFAULT_LOG_FILE) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(
        self,
        source: str,
        group: str,
        stream: str,
        message: str,
        timestamp_ms: int | None = None,
    ) -> None:
        event = LogEvent(timestamp_ms or now_ms(), source, group, stream, message)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(event.to_json() + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def lambda_stream_name() -> str:
    """A log stream name the way Lambda names one per execution environment."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


class FunctionLog:
    """The log stream of one execution environment of a function: whole lines become events."""

    def __init__(self, log_file: LogFile, source: str, function_name: str) -> None:
        self.log_file = log_file
        self.source = source
        self.group = f"/aws/lambda/{function_name}"
        self.stream = lambda_stream_name()
        self._partial = ""

    def emit(self, message: str) -> None:
        """One event, as is (it may span lines, like the runtime's error report)."""
        self.log_file.write(self.source, self.group, self.stream, message)

    def write(self, text: str) -> int:
        """What the function wrote to stdout or stderr: one event per complete line."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.emit(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.emit(self._partial)
            self._partial = ""


_bound = threading.local()
_routing_lock = threading.Lock()


class _Routed:
    """A text stream that sends the writes of a thread running a function to that function's
    log, and every other write to the stream it wraps."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback

    def write(self, text: str) -> int:
        target: FunctionLog | None = getattr(_bound, "log", None)
        if target is not None:
            return target.write(text)
        return self.fallback.write(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if getattr(_bound, "log", None) is None:
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _route_streams() -> None:
    """Wrap `sys.stdout`, `sys.stderr` and the Powertools loggers' streams, where not yet done.

    Checked on every invocation: a test runner may put its own `sys.stdout` back meanwhile. A
    Powertools `Logger` keeps the stream it found when it was created (the function's module
    may have been imported before any routing), so its handler's stream is wrapped too.
    """
    with _routing_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Routed):
                setattr(sys, name, _Routed(stream))
        for logger in list(logging.Logger.manager.loggerDict.values()):
            handler = getattr(logger, "powertools_handler", None)
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler.stream, _Routed
            ):
                handler.setStream(cast(TextIO, _Routed(handler.stream)))


@contextmanager
def function_output(log: FunctionLog | None) -> Iterator[None]:
    """While the block runs, what this thread writes goes to `log` (no change when None)."""
    if log is None:
        yield
        return
    _route_streams()
    previous = getattr(_bound, "log", None)
    _bound.log = log
    try:
        yield
    finally:
        _bound.log = previous
        log.flush()
