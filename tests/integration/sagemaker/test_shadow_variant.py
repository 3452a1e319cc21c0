"""A round's shadow stage: the templates' `ShadowProductionVariants`, and the emulator serving
them through an unmodified boto3 `sagemaker-runtime` client, over real HTTP.

The challenger shadows the champion: the caller always gets variant A's answer, the shadow
answers a copy of every request, captured under the shadow's name with the caller's
InferenceId, and a shadow that fails fails no caller."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from local.cfn import Stack, TemplateError, load_stack
from local.devstack.stack import LocalStack
from local.emulate.sagemaker import Emulator, RestartPolicy
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.emulate.sagemaker.metrics import read_invocations
from local.paths import APPS_DIR, DEFAULT_MODELS_ROOT
from local.registry import RegisteredModel
from local.rounds.shadow import SHADOW_VARIANT, Stage, live_gate
from local.rounds.state import Round, round_parameters
from tests.fixtures.sagemaker import models_root_of
from tests.integration.experiments.test_rounds import (
    GENERATOR_ENDPOINT,
    register_smoke_challenger,
)
from training.artifacts import Artifact

INFERENCE_API = APPS_DIR / "inference-api" / "template.yaml"
JSON = "application/json"
GENERATOR = {
    "HeadlineBaseModelDataUrl": "s3://pressroom-models/headline-base/v1/model.tar.gz",
    "HeadlineBaseModelVersion": "v1",
    "HeadlineLiteModelDataUrl": "s3://pressroom-models/headline-lite/v2/model.tar.gz",
    "HeadlineLiteModelVersion": "v2",
    "ChallengerModelDataUrl": "s3://pressroom-models/headline-base/v9/model.tar.gz",
    "ChallengerModelVersion": "v9",
}


def _generator_stack(**overrides: Any) -> Stack:
    return load_stack(INFERENCE_API, {**GENERATOR, **overrides}, placeholder_missing=True)


# ---- the templates


def test_the_shadow_stage_serves_a_alone_with_the_challenger_as_its_shadow() -> None:
    stack = _generator_stack(ChallengerStage="shadow", VariantAWeight=1, VariantBWeight=0)

    config = stack.resources["GeneratorRealtimeEndpointConfig"].properties
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["A"]
    [shadow] = config["ShadowProductionVariants"]
    assert (shadow["VariantName"], shadow["InitialVariantWeight"]) == (SHADOW_VARIANT, 1)
    model = stack.find_by_name("AWS::SageMaker::Model", shadow["ModelName"])
    assert (
        model.properties["PrimaryContainer"]["ModelDataUrl"] == GENERATOR["ChallengerModelDataUrl"]
    )
    assert config["DataCaptureConfig"]["EnableCapture"] is True  # the shadow's answers are kept
    # Readers are routed to A alone, and nothing scales a variant B that does not exist.
    variables = stack.resources["GenerateFunction"].properties["Environment"]["Variables"]
    assert list(json.loads(variables["VARIANTS"])) == ["A"]
    targets = stack.walk_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert [target.properties["ResourceId"].rsplit("/", 1)[-1] for target in targets] == ["A"]
    (spec,) = endpoint_specs([stack], "smoke", DEFAULT_MODELS_ROOT)
    assert [v.name for v in spec.variants] == ["A"]
    assert spec.shadow is not None and spec.shadow.challenger and spec.shadow_share == 1.0


def test_the_canary_stage_is_the_default_and_has_no_shadow() -> None:
    stack = _generator_stack()

    config = stack.resources["GeneratorRealtimeEndpointConfig"].properties
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["A", "B"]
    assert "ShadowProductionVariants" not in config


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        (
            {"HostingMode": "serverless", "ChallengerStage": "shadow"},
            "serverless endpoints take no shadow variants",
        ),
        (
            {"ChallengerStage": "shadow", "ChallengerModelDataUrl": ""},
            "ChallengerStage shadow needs a challenger",
        ),
    ],
)
def test_the_template_rule_refuses_a_shadow_it_cannot_serve(
    parameters: dict[str, str], refusal: str
) -> None:
    with pytest.raises(TemplateError, match=f"rule ShadowStageNeedsRealtimeHosting: .*{refusal}"):
        _generator_stack(**parameters)
    # The root template passes the stage on, so the local stack refuses it the same way.
    challenger = {"ChallengerModelDataUrl": GENERATOR["ChallengerModelDataUrl"]}
    with pytest.raises(TemplateError, match=refusal):
        load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, {**challenger, **parameters})


# ---- the emulator, through boto3


@pytest.fixture(scope="module")
def challenger(
    smoke_artifacts: dict[str, Artifact], tmp_path_factory: pytest.TempPathFactory
) -> RegisteredModel:
    return register_smoke_challenger(
        smoke_artifacts["headline-base"], tmp_path_factory.mktemp("registry")
    )


@pytest.fixture(scope="module")
def shadow_round(smoke_artifacts: dict[str, Artifact], challenger: RegisteredModel) -> Round:
    return Round.start(
        challenger,
        share=0.1,
        started_at=datetime.now(UTC),
        models_root=models_root_of(smoke_artifacts),
        stage=Stage.SHADOW,
    )


@pytest.fixture(scope="module")
def emulator(
    smoke_artifacts: dict[str, Artifact],
    challenger: RegisteredModel,
    shadow_round: Round,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Emulator]:
    """The generator endpoint as `pressroom up` serves a shadow round; capture and metrics in
    the test's folders."""
    registry_root = challenger.directory.parents[1]
    with Emulator(
        "smoke",
        models_root=models_root_of(smoke_artifacts),
        registry_root=registry_root,
        parameter_overrides=round_parameters(shadow_round, registry_root),
        only_endpoints=[GENERATOR_ENDPOINT],
        capture_root=tmp_path_factory.mktemp("capture"),
        metrics_root=tmp_path_factory.mktemp("metrics"),
        # A killed shadow stays down for a few seconds, so the test sees requests meet it down.
        restart=RestartPolicy(initial_backoff_s=3.0),
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def runtime(emulator: Emulator) -> Any:
    return emulator.client(retries={"total_max_attempts": 1}, read_timeout=120)


def _invoke(
    runtime: Any, prompt: str, inference_id: str, seed: int | None = None, **extra: Any
) -> Any:
    parameters = {"max_new_tokens": 4, "return_full_text": False}
    return runtime.invoke_endpoint(
        EndpointName=GENERATOR_ENDPOINT,
        ContentType=JSON,
        Accept=JSON,
        Body=json.dumps(
            {
                "inputs": prompt,
                "parameters": {**parameters, **({} if seed is None else {"seed": seed})},
            }
        ),
        InferenceId=inference_id,
        **extra,
    )


def _captured(root: Path | None, variant: str) -> dict[str, dict[str, Any]]:
    """inferenceId -> capture record of `variant` of the generator."""
    assert root is not None
    return {
        record["eventMetadata"]["inferenceId"]: record
        for path in (root / GENERATOR_ENDPOINT / variant).rglob("*.jsonl")
        for record in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    }


@pytest.mark.slow
def test_the_shadow_answers_every_request_captured_while_callers_get_the_champion(
    emulator: Emulator, runtime: Any, challenger: RegisteredModel, shadow_round: Round
) -> None:
    prompts = ["Markets", "Storm hits", "Election", "Football club"] * 6
    run = f"shadow-{time.time_ns()}"
    replies = {}
    for index, prompt in enumerate(prompts):
        # Seeded: the challenger here has the champion's weights, so its answers are the
        # champion's and the gate's comparison is not left to sampling.
        reply = _invoke(runtime, prompt, f"{run}-{index}", seed=index)
        replies[f"{run}-{index}"] = (reply["InvokedProductionVariant"], reply["Body"].read())
    emulator.wait_for_shadows()

    champion = _captured(emulator.capture_root, "A")
    shadow = _captured(emulator.capture_root, SHADOW_VARIANT)
    # Every caller got variant A's answer: the one A's capture holds for that request.
    assert {variant for variant, _ in replies.values()} == {"A"}
    for inference_id, (_, body) in replies.items():
        assert champion[inference_id]["captureData"]["endpointOutput"]["data"] == body.decode()
    # The shadow answered every one of the same requests, kept under its own name with the
    # caller's InferenceId.
    assert set(replies) <= set(shadow)
    for inference_id in replies:
        copied = shadow[inference_id]["captureData"]
        assert copied["endpointInput"] == champion[inference_id]["captureData"]["endpointInput"]
        assert json.loads(copied["endpointOutput"]["data"])[0]["generated_text"]
    assert emulator.endpoints[GENERATOR_ENDPOINT].shadow is not None
    assert emulator.endpoints[GENERATOR_ENDPOINT].variant(SHADOW_VARIANT).artifact_dir == (
        challenger.model_dir
    )
    # The gate reads those live answers: all of them, none failed, and every check on what
    # readers would have read passes (latency on two shared cores is noise here; the unit
    # tests judge it on built records).
    verdict = live_gate(
        since=shadow_round.started_at,
        profile="smoke",
        capture_root=emulator.capture_root,  # type: ignore[arg-type]
        metrics_root=emulator.metrics_root,  # type: ignore[arg-type]
    )
    for side in ("challenger", "champion"):
        assert verdict.figures[side]["answers"] >= len(prompts)
        assert verdict.figures[side]["error_rate"] == 0
    # Same weights, same seeds: the gate read the same texts on both sides (the smoke slivers'
    # four-token answers may still miss the variety floor, the champion's as much as theirs).
    same = {
        key: value for key, value in verdict.figures["challenger"].items() if "latency" not in key
    }
    assert same == {
        key: value for key, value in verdict.figures["champion"].items() if "latency" not in key
    }
    assert not [r for r in verdict.reasons if "answers captured" in r or "error rate" in r]


@pytest.mark.slow
def test_readers_of_the_api_only_ever_get_the_champion(
    emulator: Emulator,
    challenger: RegisteredModel,
    shadow_round: Round,
    smoke_artifacts: dict[str, Artifact],
    tmp_path: Path,
) -> None:
    """The whole request path as `pressroom up` serves a shadow round: the generate function
    routes to A alone, and its generation ids reach the shadow's capture as InferenceIds."""
    registry_root = challenger.directory.parents[1]
    champion_version = smoke_artifacts["headline-base"].manifest["version"]
    stack = LocalStack(
        "smoke",
        database_url=f"sqlite:///{tmp_path / 'feedback.db'}",
        models_root=models_root_of(smoke_artifacts),
        registry_root=registry_root,
        parameter_overrides=round_parameters(shadow_round, registry_root),
        site_dir=None,
        instances_per_function=1,
        emulator=emulator,  # the generator alone: answers come without a category
    )
    with stack, httpx.Client(base_url=stack.url, timeout=60) as client:
        answers = [
            client.post(
                "api/generate",
                json={"prompt": "Markets", "max_new_tokens": 4},
                headers={"X-User-Id": f"reader-{index}"},
            ).json()
            for index in range(4)
        ]
        asked_for_b = client.post(
            "api/generate",
            json={"prompt": "Markets", "variant": "B", "max_new_tokens": 4},
            headers={"X-User-Id": "reader-b"},
        )
    emulator.wait_for_shadows()

    assert [(a["variant"], a["model"]["version"]) for a in answers] == [("A", champion_version)] * 4
    # No variant B in a shadow stage, and the shadow is no variant a reader can ask for.
    assert asked_for_b.status_code == 422
    assert "unknown variant 'B'; choose one of A" in asked_for_b.text
    shadow = _captured(emulator.capture_root, SHADOW_VARIANT)
    assert {answer["generation_id"] for answer in answers} <= set(shadow)


@pytest.mark.slow
def test_callers_cannot_target_the_shadow_and_the_control_plane_lists_it(
    emulator: Emulator, runtime: Any
) -> None:
    with pytest.raises(runtime.exceptions.ValidationError, match="Variant Shadow not found"):
        _invoke(runtime, "Markets", "target-shadow", TargetVariant=SHADOW_VARIANT)

    control_plane = boto3.client(
        "sagemaker",
        endpoint_url=emulator.url,
        region_name=emulator.region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    described = control_plane.describe_endpoint(EndpointName=GENERATOR_ENDPOINT)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["A"]
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == [SHADOW_VARIANT]


@pytest.mark.slow
def test_a_failing_shadow_fails_no_caller(emulator: Emulator, runtime: Any) -> None:
    emulator.kill_worker(GENERATOR_ENDPOINT, SHADOW_VARIANT)
    started = datetime.now(UTC).replace(microsecond=0)
    run = f"down-{time.time_ns()}"

    replies = [_invoke(runtime, "Markets", f"{run}-{index}") for index in range(3)]
    emulator.wait_for_shadows()

    assert [reply["InvokedProductionVariant"] for reply in replies] == ["A"] * 3
    assert all(json.loads(reply["Body"].read())[0]["generated_text"] for reply in replies)
    assert not any(key.startswith(run) for key in _captured(emulator.capture_root, SHADOW_VARIANT))
    assert emulator.metrics_root is not None
    failed = [
        call
        for call in read_invocations(
            emulator.metrics_root, GENERATOR_ENDPOINT, SHADOW_VARIANT, started
        )
        if (call.inference_id or "").startswith(run)
    ]
    assert [call.status for call in failed] == [503] * 3  # what the shadow's metrics show
    emulator.wait_ready()
