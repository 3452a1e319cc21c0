"""The SageMaker Runtime emulator through an unmodified boto3 client, over real HTTP.

Every test talks to the session emulator (smoke artifacts, weights A:B = 3:1, seeded) the way
the generate Lambda does on AWS: `boto3.client("sagemaker-runtime").invoke_endpoint(...)`.
"""

import json
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.emulate.sagemaker import Emulator, WorkerState
from tests.fixtures.sagemaker import VARIANT_WEIGHTS

JSON = "application/json"


def _generator_endpoint(emulator: Emulator) -> str:
    return next(
        name
        for name, spec in emulator.endpoints.items()
        if {variant.name for variant in spec.variants} == {"A", "B"}
    )


def _classifier_endpoint(emulator: Emulator) -> str:
    return next(
        name
        for name, spec in emulator.endpoints.items()
        if [variant.model_name for variant in spec.variants] == ["news-classifier"]
    )


@pytest.fixture(scope="module")
def runtime(sagemaker_emulator: Emulator) -> Any:
    """A client that does not retry, so each error reaches the test as the emulator sent it."""
    return sagemaker_emulator.client(retries={"total_max_attempts": 1}, read_timeout=120)


def _generate(runtime: Any, endpoint: str, prompts: Any, **parameters: Any) -> Any:
    return runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType=JSON,
        Accept=JSON,
        Body=json.dumps({"inputs": prompts, "parameters": {"max_new_tokens": 2, **parameters}}),
    )


# ---- happy path and routing


def test_generator_answers_one_headline_per_input_and_names_the_variant(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    reply = runtime.invoke_endpoint(
        EndpointName=_generator_endpoint(sagemaker_emulator),
        ContentType=JSON,
        Accept=JSON,
        Body=json.dumps(
            {"inputs": ["Markets rally", "Storm hits coast"], "parameters": {"max_new_tokens": 4}}
        ),
        InferenceId="inference-1",
        CustomAttributes="trace=abc",
    )

    assert reply["ContentType"] == JSON
    assert reply["InvokedProductionVariant"] in {"A", "B"}
    headlines = json.loads(reply["Body"].read())
    assert [set(item) for item in headlines] == [{"generated_text"}] * 2
    assert headlines[0]["generated_text"].startswith("Markets rally")
    assert headlines[1]["generated_text"].startswith("Storm hits coast")


def test_a_realtime_invocation_is_captured_once_with_its_inference_id(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    endpoint = _generator_endpoint(sagemaker_emulator)
    request = json.dumps({"inputs": "Capture me", "parameters": {"max_new_tokens": 2}})
    inference_id = f"capture-{time.time_ns()}"

    reply = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetVariant="B",
        ContentType=JSON,
        Accept=JSON,
        Body=request,
        InferenceId=inference_id,
    )
    answer = reply["Body"].read().decode()
    runtime.invoke_endpoint(  # serverless: SageMaker captures nothing there
        EndpointName=_classifier_endpoint(sagemaker_emulator),
        ContentType=JSON,
        Body=json.dumps({"inputs": "Capture me"}),
        InferenceId=inference_id,
    )

    root = sagemaker_emulator.capture_root
    assert root is not None
    found = [
        (path, record)
        for path in root.rglob("*.jsonl")
        for record in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if record["eventMetadata"].get("inferenceId") == inference_id
    ]
    [(path, record)] = found
    endpoint_dir, variant_dir, *hour, _ = path.relative_to(root).parts
    assert (endpoint_dir, variant_dir) == (endpoint, "B")
    assert [len(part) for part in hour] == [4, 2, 2, 2]  # yyyy/mm/dd/hh
    assert record["captureData"] == {
        "endpointInput": {
            "observedContentType": JSON,
            "mode": "INPUT",
            "data": request,
            "encoding": "JSON",
        },
        "endpointOutput": {
            "observedContentType": JSON,
            "mode": "OUTPUT",
            "data": answer,
            "encoding": "JSON",
        },
    }
    assert record["eventVersion"] == "0"
    assert record["eventMetadata"]["inferenceTime"].endswith("Z")


def test_target_variant_pins_every_request(sagemaker_emulator: Emulator, runtime: Any) -> None:
    endpoint = _generator_endpoint(sagemaker_emulator)
    for variant in ("A", "B"):
        answered = {
            runtime.invoke_endpoint(
                EndpointName=endpoint,
                TargetVariant=variant,
                ContentType=JSON,
                Body=json.dumps({"inputs": "Pinned", "parameters": {"max_new_tokens": 1}}),
            )["InvokedProductionVariant"]
            for _ in range(12)
        }
        assert answered == {variant}


def test_classifier_answers_a_label_and_score(sagemaker_emulator: Emulator, runtime: Any) -> None:
    reply = runtime.invoke_endpoint(
        EndpointName=_classifier_endpoint(sagemaker_emulator),
        ContentType=JSON,
        Body=json.dumps({"inputs": ["Chancellor unveils budget", "Striker signs new deal"]}),
    )

    labels = {"business", "entertainment", "politics", "sport", "tech"}
    predictions = json.loads(reply["Body"].read())
    assert len(predictions) == 2
    for prediction in predictions:
        # a category, or none where the classifier is not confident enough (it abstains)
        assert prediction["label"] in labels or prediction["label"] is None
        assert 0.2 - 1e-9 <= prediction["score"] <= 1.0  # the arg-max of 5 probabilities


def test_unpinned_traffic_follows_the_template_weights(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    # Given weights A:B = 3:1 from the template parameters, when 200 requests go unpinned,
    requests = 200
    endpoint = _generator_endpoint(sagemaker_emulator)
    with ThreadPoolExecutor(max_workers=8) as pool:
        variants = Counter(
            pool.map(
                lambda _: _generate(runtime, endpoint, "Split", max_new_tokens=1)[
                    "InvokedProductionVariant"
                ],
                range(requests),
            )
        )

    # then A's share lies within 4.5 standard deviations of the binomial mean for p = 3/4.
    # An equal split (the default weights) would sit 8.2 deviations away, so this bound cannot
    # pass by accident; a correct 3:1 split leaves it with probability below 1e-5.
    p_a = VARIANT_WEIGHTS["A"] / sum(VARIANT_WEIGHTS.values())
    mean, deviation = requests * p_a, math.sqrt(requests * p_a * (1 - p_a))
    assert variants["A"] + variants["B"] == requests
    assert abs(variants["A"] - mean) <= 4.5 * deviation, variants


# ---- batching


def test_concurrent_classifier_requests_are_batched_and_each_gets_its_answer(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    endpoint = _classifier_endpoint(sagemaker_emulator)
    # As many as the serverless endpoint's concurrency lets in at once (the template's 5).
    headlines = [f"Story number {index} on the markets" for index in range(5)]

    def ask(headline: str) -> tuple[dict[str, Any], int]:
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType=JSON, Body=json.dumps({"inputs": headline})
        )
        batch_size = int(reply["ResponseMetadata"]["HTTPHeaders"]["x-pressroom-batch-size"])
        return json.loads(reply["Body"].read())[0], batch_size

    alone = [ask(headline)[0] for headline in headlines]
    start = threading.Barrier(len(headlines))

    def ask_together(headline: str) -> tuple[dict[str, Any], int]:
        start.wait()
        return ask(headline)

    # A busy machine can spread five requests past the 25 ms batch window, so the burst is
    # sent up to three times; the first in which the worker merged some is checked.
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=len(headlines)) as pool:
            together = list(pool.map(ask_together, headlines))
        if max(batch_size for _, batch_size in together) > 1:
            break

    # Each request got its own answer back, the one it gets alone, even in a shared model call,
    for (prediction, _), expected in zip(together, alone, strict=True):
        assert prediction["label"] == expected["label"]
        # (int8 activations are quantized per call, so a shared call moves a score a little)
        assert prediction["score"] == pytest.approx(expected["score"], abs=5e-3)
    # and the worker merged requests: some model call served more than one of them.
    assert max(batch_size for _, batch_size in together) > 1
    assert sagemaker_emulator.stats(endpoint, "AllTraffic").max_batch_size > 1


def test_concurrent_generator_requests_each_run_alone_on_the_engine(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    """A generator's engine decodes one prompt at a time, so merging would only make the first
    request wait for the others: the worker runs each request alone (`merges_requests`)."""
    endpoint = _generator_endpoint(sagemaker_emulator)
    prompts = [f"Story number {index}" for index in range(8)]
    start = threading.Barrier(len(prompts))

    def ask(prompt: str) -> tuple[str, int]:
        start.wait()
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="B",
            ContentType=JSON,
            Body=json.dumps(
                {"inputs": prompt, "parameters": {"max_new_tokens": 8, "do_sample": False}}
            ),
        )
        batch_size = int(reply["ResponseMetadata"]["HTTPHeaders"]["x-pressroom-batch-size"])
        return json.loads(reply["Body"].read())[0]["generated_text"], batch_size

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        answers = list(pool.map(ask, prompts))

    for prompt, (text, batch_size) in zip(prompts, answers, strict=True):
        assert text.startswith(prompt)
        assert batch_size == 1


def test_seeded_requests_are_never_merged_and_stay_reproducible(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    endpoint = _generator_endpoint(sagemaker_emulator)
    start = threading.Barrier(4)

    def ask(_: int) -> tuple[str, str]:
        start.wait()
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="A",
            ContentType=JSON,
            Body=json.dumps({"inputs": "Seeded", "parameters": {"max_new_tokens": 4, "seed": 7}}),
        )
        headers = reply["ResponseMetadata"]["HTTPHeaders"]
        return json.loads(reply["Body"].read())[0]["generated_text"], headers[
            "x-pressroom-batch-size"
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(ask, range(4)))

    assert {batch_size for _, batch_size in answers} == {"1"}
    assert len({text for text, _ in answers}) == 1


# ---- SageMaker's error shapes


def test_unknown_endpoint_raises_validation_error(runtime: Any) -> None:
    with pytest.raises(runtime.exceptions.ValidationError) as raised:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType=JSON, Body=b"{}")

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in raised.value.response["Error"]["Message"]


def test_unknown_target_variant_raises_validation_error(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    with pytest.raises(runtime.exceptions.ValidationError) as raised:
        runtime.invoke_endpoint(
            EndpointName=_generator_endpoint(sagemaker_emulator),
            TargetVariant="C",
            ContentType=JSON,
            Body=b'{"inputs": "x"}',
        )

    assert "Variant C" in raised.value.response["Error"]["Message"]


def test_bad_input_raises_model_error_with_the_original_status_and_field(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(
            EndpointName=_generator_endpoint(sagemaker_emulator),
            ContentType=JSON,
            Body=json.dumps({"inputs": "x", "parameters": {"max_new_tokens": 1000}}),
        )

    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "parameters.max_new_tokens" in response["OriginalMessage"]
    assert response["LogStreamArn"].startswith("arn:aws:logs:")


def test_unsupported_content_type_raises_model_error_415(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(
            EndpointName=_classifier_endpoint(sagemaker_emulator),
            ContentType="text/csv",
            Body=b"a,b",
        )

    assert raised.value.response["OriginalStatusCode"] == 415


# ---- control plane: DescribeEndpoint, as the health check calls it


@pytest.fixture(scope="module")
def control_plane(sagemaker_emulator: Emulator) -> Any:
    import boto3

    return boto3.client(
        "sagemaker",
        endpoint_url=sagemaker_emulator.url,
        region_name=sagemaker_emulator.region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_describe_endpoint_reports_in_service_variants_and_weights(
    sagemaker_emulator: Emulator, control_plane: Any
) -> None:
    described = control_plane.describe_endpoint(
        EndpointName=_generator_endpoint(sagemaker_emulator)
    )

    assert described["EndpointStatus"] == "InService"
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == (
        VARIANT_WEIGHTS
    )


def test_describe_unknown_endpoint_raises_validation_exception(control_plane: Any) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        control_plane.describe_endpoint(EndpointName="no-such-endpoint")

    assert raised.value.response["Error"]["Code"] == "ValidationException"


# ---- worker failure and recovery


def _wait_until_answers(call: Any, attempts: int = 240) -> Any:
    """Retry `call` (bounded) while the restarted worker loads."""
    for _ in range(attempts):
        try:
            return call()
        except Exception as error:  # the variant's unavailability errors while it restarts
            last = error
            time.sleep(0.5)
    raise AssertionError(f"the variant did not recover: {last}")


def test_killed_generator_worker_fails_only_its_variant_then_recovers(
    sagemaker_emulator: Emulator, runtime: Any, control_plane: Any
) -> None:
    endpoint = _generator_endpoint(sagemaker_emulator)
    restarts_before = sagemaker_emulator.worker_restarts(endpoint, "B")

    sagemaker_emulator.kill_worker(endpoint, "B")

    # The crashed variant is reported: the control plane shows it down, and invocations get
    # SageMaker's ServiceUnavailable (the fixture's restart back-off keeps it down meanwhile)...
    assert sagemaker_emulator.worker_state(endpoint, "B") is not WorkerState.READY
    described = control_plane.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "Updating"
    assert {
        v["VariantName"]: v["CurrentInstanceCount"] for v in described["ProductionVariants"]
    } == {
        "A": 1,
        "B": 0,
    }
    with pytest.raises(runtime.exceptions.ServiceUnavailable):
        runtime.invoke_endpoint(
            EndpointName=endpoint, TargetVariant="B", ContentType=JSON, Body=b'{"inputs": "x"}'
        )
    # ...while the other variant keeps answering,
    reply = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetVariant="A",
        ContentType=JSON,
        Body=b'{"inputs": "still up", "parameters": {"max_new_tokens": 1}}',
    )
    assert reply["InvokedProductionVariant"] == "A"
    # and the supervisor brings B back.
    recovered = _wait_until_answers(
        lambda: runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetVariant="B",
            ContentType=JSON,
            Body=b'{"inputs": "back", "parameters": {"max_new_tokens": 1}}',
        )
    )
    assert recovered["InvokedProductionVariant"] == "B"
    assert sagemaker_emulator.worker_restarts(endpoint, "B") == restarts_before + 1


def test_killed_serverless_worker_raises_model_not_ready_then_recovers(
    sagemaker_emulator: Emulator, runtime: Any
) -> None:
    endpoint = _classifier_endpoint(sagemaker_emulator)
    body = json.dumps({"inputs": "Minister resigns"})

    sagemaker_emulator.kill_worker(endpoint, "AllTraffic")

    with pytest.raises(runtime.exceptions.ModelNotReadyException):
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType=JSON, Body=body)
    recovered = _wait_until_answers(
        lambda: runtime.invoke_endpoint(EndpointName=endpoint, ContentType=JSON, Body=body)
    )
    # A classification again (the smoke classifier abstains, so its label may be null).
    [answer] = json.loads(recovered["Body"].read())
    assert set(answer) == {"label", "score"} and 0 < answer["score"] <= 1
