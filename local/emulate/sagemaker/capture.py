"""SageMaker data capture, locally: what an endpoint config's `DataCaptureConfig` writes.

On AWS, SageMaker writes each sampled invocation as one JSON line under
`<DestinationS3Uri>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/<mm-ss-mmm>-<uuid>.jsonl` (UTC
hours); here the same layout lands under a local `capture_root` instead of the S3 prefix. Each
line is Model Monitor's capture record::

    {"captureData": {"endpointInput": {"observedContentType": "application/json",
                                       "mode": "INPUT", "data": "...", "encoding": "JSON"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<the caller's InferenceId>",
                       "inferenceTime": "2026-05-13T09:41:07Z"},
     "eventVersion": "0"}

A body whose content type is listed in `CaptureContentTypeHeader` is kept as text (`JSON` or
`CSV` encoding); any other is base64 (`BASE64`), as SageMaker does. `inferenceId` is present only
when the caller sent one; Model Monitor joins ground truth on it (else on `eventId`).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CaptureSpec:
    """An endpoint config's enabled `DataCaptureConfig`, as the emulator applies it."""

    sampling_percentage: float
    capture_input: bool
    capture_output: bool
    json_content_types: frozenset[str] = frozenset()
    csv_content_types: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CaptureSpec | None:
        """The spec of a resolved `DataCaptureConfig`; None when absent or not enabled
        (`EnableCapture` defaults to true, as in SageMaker)."""
        if not config or not _flag(config.get("EnableCapture", True)):
            return None
        modes = {str(option["CaptureMode"]) for option in config.get("CaptureOptions", [])}
        headers = config.get("CaptureContentTypeHeader") or {}
        return cls(
            sampling_percentage=float(config["InitialSamplingPercentage"]),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            json_content_types=_media_types(headers.get("JsonContentTypes")),
            csv_content_types=_media_types(headers.get("CsvContentTypes")),
        )

    def encode(self, body: bytes, content_type: str) -> tuple[str, str]:
        """`(data, encoding)` of a captured body."""
        media_type = _media_type(content_type)
        text_encoding = (
            "JSON"
            if media_type in self.json_content_types
            else "CSV"
            if media_type in self.csv_content_types
            else None
        )
        if text_encoding is not None:
            try:
                return body.decode("utf-8"), text_encoding
            except UnicodeDecodeError:
                pass  # not text after all: base64, as for an unlisted type
        return base64.b64encode(body).decode("ascii"), "BASE64"


@dataclass(frozen=True)
class Exchange:
    """One successful invocation: what the caller sent and what the variant answered."""

    endpoint: str
    variant: str
    request_body: bytes
    request_content_type: str
    response_body: bytes
    response_content_type: str
    inference_id: str | None
    at: datetime


def capture_record(spec: CaptureSpec, exchange: Exchange, event_id: str) -> dict[str, Any]:
    """The JSON line SageMaker writes for `exchange`."""
    capture: dict[str, Any] = {}
    if spec.capture_input:
        capture["endpointInput"] = _payload(
            spec, "INPUT", exchange.request_body, exchange.request_content_type
        )
    if spec.capture_output:
        capture["endpointOutput"] = _payload(
            spec, "OUTPUT", exchange.response_body, exchange.response_content_type
        )
    metadata = {"eventId": event_id}
    if exchange.inference_id is not None:
        metadata["inferenceId"] = exchange.inference_id
    metadata["inferenceTime"] = exchange.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


def hour_directory(root: Path, at: datetime) -> Path:
    """`<root>/<yyyy>/<mm>/<dd>/<hh>` of `at`'s UTC hour: Model Monitor's partitioning of
    captured data, which ground truth follows too."""
    return root / at.astimezone(UTC).strftime("%Y/%m/%d/%H")


def hourly_file_name(at: datetime) -> str:
    """`<mm>-<ss>-<mmm>-<uuid>.jsonl`, the name SageMaker gives a capture file it opens at `at`."""
    stamp = at.astimezone(UTC)
    return f"{stamp:%M-%S}-{stamp.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"


class HourlyJsonLines:
    """Appends JSON lines under `root`, one file per endpoint, variant and UTC hour, in data
    capture's layout. One lock keeps each line whole; a file's name is unique, so two
    emulators never share one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self._files: dict[tuple[str, str, Path], Path] = {}

    def append(self, endpoint: str, variant: str, at: datetime, record: dict[str, Any]) -> Path:
        """Write `record` as one line; the caller holds `lock`."""
        directory = hour_directory(self.root / endpoint / variant, at)
        key = (endpoint, variant, directory)
        path = self._files.get(key)
        if path is None:
            directory.mkdir(parents=True, exist_ok=True)
            path = self._files[key] = directory / hourly_file_name(at)
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        return path


class CaptureWriter:
    """Appends capture lines under `root` (`HourlyJsonLines`).

    Requests arrive concurrently; the one lock also keeps the sampling sequence reproducible
    (`seed`).
    """

    def __init__(self, root: Path, seed: int | None = None) -> None:
        self.root = root
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._lines = HourlyJsonLines(root)

    def capture(self, spec: CaptureSpec, exchange: Exchange) -> Path | None:
        """Write `exchange` if sampled; return the file written to (None when not sampled)."""
        with self._lines.lock:
            if self._rng.random() * 100 >= spec.sampling_percentage:
                return None
            record = capture_record(spec, exchange, str(uuid.uuid4()))
            return self._lines.append(exchange.endpoint, exchange.variant, exchange.at, record)


def _payload(spec: CaptureSpec, mode: str, body: bytes, content_type: str) -> dict[str, str]:
    data, encoding = spec.encode(body, content_type)
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _media_types(values: Any) -> frozenset[str]:
    return frozenset(_media_type(str(value)) for value in values or [])


def _flag(value: Any) -> bool:
    # A resolved template may hold the boolean as text ("true") after a Ref or an If.
    return value if isinstance(value, bool) else str(value).lower() == "true"
