"""Per-invocation metrics of endpoints with a shadow variant, as JSON lines.

On AWS, CloudWatch holds what each variant of an endpoint did, shadow variants included
(namespace `AWS/SageMaker`, dimensions `EndpointName` and `VariantName`: `Invocations`,
`ModelLatency`, `Invocation4XXErrors`/`5XXErrors`, `ModelError`). Data capture holds the answers
but neither the time they took nor the requests that failed, and the shadow stage of a round
judges both (`local.rounds.shadow`). So the emulator keeps, for each endpoint with a shadow,
one line per invocation of the production variant and of the shadow, in data capture's layout
(`<root>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/<mm-ss-mmm>-<uuid>.jsonl`)::

    {"time": "2026-05-13T09:41:07.123Z", "inferenceId": "<the caller's InferenceId>",
     "status": 200, "modelLatencyMs": 812.5}

`status` is what the variant answered (200, or the error SageMaker would return: 424 for a
model error, 503 or 429 when the variant could not take the request); `inferenceId` is absent
when the caller sent none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.emulate.sagemaker.capture import HourlyJsonLines


@dataclass(frozen=True)
class Invocation:
    """One invocation of one variant."""

    endpoint: str
    variant: str
    at: datetime
    status: int
    latency_ms: float
    inference_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        stamp = self.at.astimezone(UTC)
        record: dict[str, Any] = {
            "time": f"{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}Z"
        }
        if self.inference_id is not None:
            record["inferenceId"] = self.inference_id
        return {**record, "status": self.status, "modelLatencyMs": round(self.latency_ms, 3)}


class MetricsWriter:
    """Appends invocation lines under `root` (`HourlyJsonLines`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lines = HourlyJsonLines(root)

    def record(self, invocation: Invocation) -> Path:
        with self._lines.lock:
            return self._lines.append(
                invocation.endpoint, invocation.variant, invocation.at, invocation.to_json()
            )


def read_invocations(
    root: Path, endpoint: str, variant: str, since: datetime | None = None
) -> Iterator[Invocation]:
    """The invocations of `variant` of `endpoint` recorded under `root`, at or after `since`."""
    for path in sorted((root / endpoint / variant).glob("*/*/*/*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            at = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
            if since is not None and at < since:
                continue
            yield Invocation(
                endpoint=endpoint,
                variant=variant,
                at=at,
                status=int(record["status"]),
                latency_ms=float(record["modelLatencyMs"]),
                inference_id=record.get("inferenceId"),
            )
