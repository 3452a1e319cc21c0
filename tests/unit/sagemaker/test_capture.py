"""The emulator's data capture: SageMaker's record, layout, sampling and concurrent writes."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from local.emulate.sagemaker.capture import CaptureSpec, CaptureWriter, Exchange

CONFIG = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": "s3://pressroom-dev-capture-123456789012/capture",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
}
AT = datetime(2026, 5, 13, 9, 41, 7, 250_000, tzinfo=UTC)


def exchange(
    inference_id: str | None = "gen-1", content_type: str = "application/json"
) -> Exchange:
    return Exchange(
        endpoint="pressroom-dev-headline",
        variant="B",
        request_body=b'{"inputs": "Markets"}',
        request_content_type=content_type,
        response_body=b'[{"generated_text": " rally"}]',
        response_content_type="application/json",
        inference_id=inference_id,
        at=AT,
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_capture_line_is_sagemakers_record_in_its_hourly_layout(tmp_path: Path) -> None:
    spec = CaptureSpec.from_config(CONFIG)
    assert spec is not None

    path = CaptureWriter(tmp_path, seed=1).capture(spec, exchange())

    assert path is not None
    relative = path.relative_to(tmp_path)
    assert relative.parts[:6] == ("pressroom-dev-headline", "B", "2026", "05", "13", "09")
    assert relative.name.startswith("41-07-250-") and relative.suffix == ".jsonl"
    [record] = lines(path)
    event = record["eventMetadata"]
    assert isinstance(event, dict) and event.pop("eventId")
    assert record == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": '{"inputs": "Markets"}',
                "encoding": "JSON",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": '[{"generated_text": " rally"}]',
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"inferenceId": "gen-1", "inferenceTime": "2026-05-13T09:41:07Z"},
        "eventVersion": "0",
    }


def test_unlisted_content_types_are_base64_and_a_missing_inference_id_is_left_out(
    tmp_path: Path,
) -> None:
    spec = CaptureSpec.from_config({**CONFIG, "CaptureOptions": [{"CaptureMode": "Input"}]})
    assert spec is not None

    path = CaptureWriter(tmp_path).capture(spec, exchange(None, "text/plain"))

    assert path is not None
    [record] = lines(path)
    assert record["captureData"] == {
        "endpointInput": {
            "observedContentType": "text/plain",
            "mode": "INPUT",
            "data": base64.b64encode(b'{"inputs": "Markets"}').decode(),
            "encoding": "BASE64",
        }
    }
    assert isinstance(record["eventMetadata"], dict)
    assert "inferenceId" not in record["eventMetadata"]


def test_capture_off_or_disabled_is_no_spec() -> None:
    assert CaptureSpec.from_config(None) is None
    assert CaptureSpec.from_config({**CONFIG, "EnableCapture": False}) is None
    assert CaptureSpec.from_config({**CONFIG, "EnableCapture": "false"}) is None


def test_sampling_follows_the_percentage(tmp_path: Path) -> None:
    none = CaptureSpec.from_config({**CONFIG, "InitialSamplingPercentage": 0})
    half = CaptureSpec.from_config({**CONFIG, "InitialSamplingPercentage": 50})
    assert none is not None and half is not None

    assert [CaptureWriter(tmp_path / "0", seed=3).capture(none, exchange()) for _ in range(50)] == [
        None
    ] * 50
    assert not (tmp_path / "0").exists()
    # Seeded: the same requests are sampled on every run.
    first, second = (
        [writer.capture(half, exchange()) is not None for _ in range(200)]
        for writer in (
            CaptureWriter(tmp_path / "a", seed=3),
            CaptureWriter(tmp_path / "b", seed=3),
        )
    )
    assert first == second
    assert 60 < sum(first) < 140


def test_concurrent_captures_write_whole_lines_to_one_file_per_hour(tmp_path: Path) -> None:
    spec = CaptureSpec.from_config(CONFIG)
    assert spec is not None
    writer = CaptureWriter(tmp_path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = set(pool.map(lambda i: writer.capture(spec, exchange(f"gen-{i}")), range(400)))

    [path] = paths
    assert path is not None
    ids = [record["eventMetadata"]["inferenceId"] for record in lines(path)]  # type: ignore[index]
    assert sorted(ids) == sorted(f"gen-{i}" for i in range(400))
