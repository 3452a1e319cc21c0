"""The generate function in-process: an API Gateway proxy event in, a proxy response out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.experiment.settings import VariantConfig
from pressroom_common.generation.service import headline

from tests.fixtures.readers import TEST_READER_KEYS, reader_hash
from tests.unit.api.conftest import (
    CLASSIFIER_ENDPOINT,
    REALTIME_ENDPOINT,
    SERVERLESS_VARIANTS,
    VARIANTS,
    GenerateFunction,
    loaded_generate_function,
    streaming,
)


def stored_generations(function: GenerateFunction) -> list[dict[str, Any]]:
    engine = sa.create_engine(function.database_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM generations")).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def test_generate_answers_the_design_response_and_records_the_generation(
    generate_function: GenerateFunction,
) -> None:
    generate_function.model_answers(" rates rise again", "B")
    generate_function.classifier_answers("business", 0.91)

    status, headers, body = generate_function.call(
        "POST",
        "/api/generate",
        {"prompt": "  Bank of England ", "variant": "B", "seed": 7},
        headers={"X-User-Id": "reader-1"},
    )

    assert status == 200, body
    assert body["prompt"] == "Bank of England"
    assert body["text"] == " rates rise again"
    assert body["headline"] == "Bank of England rates rise again"
    assert body["variant"] == "B"
    assert body["model"] == {"name": "headline-lite", "version": "lite-v1"}
    assert body["strategy"] == "override"
    assert body["category"] == {"label": "business", "score": 0.91}
    assert body["category_confidence"] == 0.91
    assert set(body["latency_ms"]) == {"model", "classifier", "total"}
    assert body["latency_ms"]["total"] >= body["latency_ms"]["model"]
    assert headers["X-Request-Id"]
    [row] = stored_generations(generate_function)
    assert row["id"] == body["generation_id"]
    assert (row["variant"], row["model_name"], row["model_version"]) == (
        "B",
        "headline-lite",
        "lite-v1",
    )
    assert row["category_label"] == "business"
    assert row["error_code"] is None
    # The reader is stored as a keyed hash, and only they get the token to vote with.
    assert row["user_hash"] == reader_hash("reader-1")
    assert body["vote_token"] == TEST_READER_KEYS.vote_token(
        body["generation_id"], row["user_hash"]
    )


def test_a_reader_without_an_id_gets_a_headline_but_no_vote_token(
    generate_function: GenerateFunction,
) -> None:
    generate_function.model_answers(" rates rise again", "A")
    generate_function.classifier_answers("business", 0.91)

    status, _, body = generate_function.call("POST", "/api/generate", {"prompt": "Bank"})

    assert status == 200, body
    assert body["vote_token"] is None
    assert stored_generations(generate_function)[0]["user_hash"] == "anonymous"


class SentInferenceIds:
    """An `expected_params` value that matches any InferenceId and keeps each one sent: the
    generation id it must equal is known only from the response."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __eq__(self, sent: object) -> bool:
        self.values.append(sent)
        return True

    __hash__ = None  # type: ignore[assignment]


def test_realtime_hosting_pins_the_assigned_variant_with_target_variant(
    generate_function: GenerateFunction,
) -> None:
    sent = SentInferenceIds()
    generate_function.generator.add_response(
        "invoke_endpoint",
        {"Body": streaming([{"generated_text": " wins"}]), "InvokedProductionVariant": "A"},
        expected_params={
            "EndpointName": REALTIME_ENDPOINT,
            "TargetVariant": "A",
            "Body": generator_request("x"),
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": sent,
        },
    )
    classifier_reads(generate_function, "x wins", sent)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 200, body
    generate_function.generator.assert_no_pending_responses()
    generate_function.classifier.assert_no_pending_responses()
    assert sent.values == [body["generation_id"]] * 2


def test_every_model_call_carries_the_generation_id_as_inference_id(
    generate_function: GenerateFunction,
) -> None:
    # Data capture records InferenceId; votes are exported keyed by the generation id, so the
    # generator, its fallback and the classifier must all send that id for the two to join.
    user = user_assigned_to("A")
    sent = SentInferenceIds()
    request = {
        "EndpointName": REALTIME_ENDPOINT,
        "Body": generator_request("x"),
        "ContentType": "application/json",
        "Accept": "application/json",
        "InferenceId": sent,
    }
    generate_function.generator.add_client_error(
        "invoke_endpoint",
        service_error_code="ServiceUnavailable",
        http_status_code=503,
        expected_params={**request, "TargetVariant": "A"},
    )
    generate_function.generator.add_response(
        "invoke_endpoint",
        {"Body": streaming([{"generated_text": " saved"}]), "InvokedProductionVariant": "B"},
        expected_params={**request, "TargetVariant": "B"},
    )
    classifier_reads(generate_function, "x saved", sent)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x"}, headers={"X-User-Id": user}
    )

    assert status == 200, body
    assert body["strategy"] == "fallback"
    generate_function.classifier.assert_no_pending_responses()
    assert sent.values == [body["generation_id"]] * 3
    assert [row["id"] for row in stored_generations(generate_function)] == sent.values[:1]


def generator_request(prompt: str) -> bytes:
    """The Hugging Face text-generation request for `prompt` with the API's default settings."""
    parameters = {
        "max_new_tokens": 24,
        "temperature": 0.8,
        "top_k": 50,
        "top_p": 0.95,
        "do_sample": True,
        "return_full_text": False,
    }
    return json.dumps({"inputs": prompt, "parameters": parameters}).encode()


def classifier_reads(function: GenerateFunction, text: str, sent: SentInferenceIds) -> None:
    """The classifier answers once, and only if it is asked about exactly this text (its
    InferenceId goes to `sent`)."""
    function.classifier.add_response(
        "invoke_endpoint",
        {"Body": streaming([{"label": "sport", "score": 0.8}])},
        expected_params={
            "EndpointName": CLASSIFIER_ENDPOINT,
            "Body": json.dumps({"inputs": text}).encode(),
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": sent,
        },
    )


# The generator answers the continuation as the Hugging Face pipeline does: a leading space when
# the model began a new word, none when it went on with the prompt's last word.
JOINS = [
    pytest.param("Football club", " signs new season", "Football club signs new season", id="word"),
    pytest.param("Stock", "s climb", "Stocks climb", id="same-word"),
]


@pytest.mark.parametrize(("prompt", "continuation", "shown"), JOINS)
def test_headline_joins_prompt_and_continuation_as_the_model_wrote_them(
    prompt: str, continuation: str, shown: str
) -> None:
    assert headline(prompt, continuation) == shown


@pytest.mark.parametrize(("prompt", "continuation", "shown"), JOINS)
def test_the_classifier_and_the_reader_get_the_same_joined_headline(
    generate_function: GenerateFunction, prompt: str, continuation: str, shown: str
) -> None:
    generate_function.model_answers(continuation, "A")
    classifier_reads(generate_function, shown, SentInferenceIds())

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": prompt, "variant": "A"}
    )

    assert status == 200, body
    assert (body["prompt"], body["text"], body["headline"]) == (prompt, continuation, shown)
    generate_function.classifier.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "max_new_tokens": 0}, "max_new_tokens"),
        ({"prompt": "x", "max_new_tokens": 65}, "max_new_tokens"),
        ({"prompt": "x", "temperature": 0}, "temperature"),
        ({"prompt": "x", "temperature": 2.5}, "temperature"),
        ({"prompt": "x", "top_k": 201}, "top_k"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "seed": "seven"}, "seed"),
        ({"prompt": "x", "variant": "A; DROP TABLE"}, "variant"),
        ({"prompt": "x", "surprise": True}, "surprise"),
        ({"prompt": 42}, "prompt"),
    ],
)
def test_invalid_generate_request_is_422_naming_the_field(
    generate_function: GenerateFunction, request_body: dict[str, Any], field: str
) -> None:
    status, _, body = generate_function.call("POST", "/api/generate", request_body)

    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert field in [detail["field"] for detail in body["error"]["details"]]
    assert field in body["error"]["message"]
    assert stored_generations(generate_function) == []


def test_malformed_json_is_422_on_the_body(generate_function: GenerateFunction) -> None:
    status, _, body = generate_function.call("POST", "/api/generate", raw_body=b'{"prompt": ')

    assert status == 422
    assert body["error"]["details"][0]["field"] == "body"


def test_unknown_variant_override_is_422_naming_variant(
    generate_function: GenerateFunction,
) -> None:
    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "C"}
    )

    assert status == 422
    assert body["error"]["details"][0]["field"] == "variant"
    assert stored_generations(generate_function) == []


def test_a_failing_variant_is_answered_by_the_other_one(
    generate_function: GenerateFunction,
) -> None:
    user = user_assigned_to("A")
    generate_function.model_fails("ServiceUnavailable", 503)
    generate_function.model_answers(" saved by B", "B")
    generate_function.classifier_answers("tech", 0.7)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x"}, headers={"X-User-Id": user}
    )

    assert status == 200, body
    assert (body["variant"], body["strategy"]) == ("B", "fallback")
    assert body["model"]["name"] == "headline-lite"


def test_an_explicit_variant_never_falls_back(generate_function: GenerateFunction) -> None:
    generate_function.model_fails("ModelError", 424)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 502
    assert body["error"]["code"] == "dependency_failed"
    generate_function.generator.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("aws_code", "http_status", "status", "code"),
    [
        ("ServiceUnavailable", 503, 503, "dependency_unavailable"),
        ("ModelNotReadyException", 429, 503, "dependency_unavailable"),
        ("ModelError", 424, 502, "dependency_failed"),
        ("InternalFailure", 500, 502, "dependency_failed"),
    ],
)
def test_both_variants_failing_is_answered_with_the_dependency_status_and_recorded(
    generate_function: GenerateFunction, aws_code: str, http_status: int, status: int, code: str
) -> None:
    generate_function.model_fails(aws_code, http_status)
    generate_function.model_fails(aws_code, http_status)

    answered, _, body = generate_function.call("POST", "/api/generate", {"prompt": "x"})

    assert answered == status
    assert body["error"]["code"] == code
    assert "Traceback" not in str(body)
    [row] = stored_generations(generate_function)
    assert row["error_code"] == code
    assert row["text"] == ""


def test_throttling_is_retried_before_giving_up(generate_function: GenerateFunction) -> None:
    generate_function.model_fails("ThrottlingException", 400)
    generate_function.model_answers(" after a retry", "A")
    generate_function.classifier_answers("tech", 0.7)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 200, body
    assert body["text"] == " after a retry"


def test_classifier_failure_still_answers_200_without_a_category(
    generate_function: GenerateFunction,
) -> None:
    generate_function.model_answers(" headline", "A")
    generate_function.classifier.add_client_error(
        "invoke_endpoint", service_error_code="ServiceUnavailable", http_status_code=503
    )

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 200, body
    assert body["category"] is None and body["category_confidence"] is None
    [row] = stored_generations(generate_function)
    assert row["category_label"] is None and row["text"] == " headline"
    assert row["category_score"] is None


def test_an_abstaining_classifier_answers_no_category_but_its_confidence(
    generate_function: GenerateFunction,
) -> None:
    # Given a classifier not confident enough to name a category (below its threshold)
    generate_function.model_answers(" votes on something", "A")
    generate_function.classifier_answers(None, 0.41)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "Parliament", "variant": "A"}
    )

    # Then the headline has no category, the answer says how sure the classifier was, and the
    # store keeps the abstention (no label, its confidence) apart from a failure (neither)
    assert status == 200, body
    assert body["category"] is None
    assert body["category_confidence"] == 0.41
    assert body["latency_ms"]["classifier"] is not None
    [row] = stored_generations(generate_function)
    assert (row["category_label"], row["category_score"]) == (None, 0.41)


def test_the_openapi_document_says_when_category_is_null(
    generate_function: GenerateFunction,
) -> None:
    _, _, document = generate_function.call("GET", "/api/openapi.json")
    response = document["components"]["schemas"]["GenerateResponse"]
    category = response["properties"]["category"]
    confidence = response["properties"]["category_confidence"]
    assert {"type": "null"} in category["anyOf"] and "category" in response["required"]
    assert "abstains" in category["description"]
    assert {"type": "null"} in confidence["anyOf"]
    assert "threshold" in confidence["description"]


def test_classifier_answer_of_the_wrong_shape_counts_as_a_failure(
    generate_function: GenerateFunction,
) -> None:
    generate_function.model_answers(" headline", "A")
    generate_function.classifier.add_response(
        "invoke_endpoint", {"Body": streaming({"unexpected": True})}
    )

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 200 and body["category"] is None


def test_generator_answer_without_generated_text_is_502(
    generate_function: GenerateFunction,
) -> None:
    generate_function.generator.add_response("invoke_endpoint", {"Body": streaming([{"x": 1}])})

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 502 and body["error"]["code"] == "dependency_failed"


def test_health_reports_each_endpoint_and_the_database(generate_function: GenerateFunction) -> None:
    generate_function.control.endpoints.update(
        {
            REALTIME_ENDPOINT: {
                "EndpointStatus": "InService",
                "ProductionVariants": [{"VariantName": "A"}],
            }
        }
    )

    status, _, body = generate_function.call("GET", "/api/health")

    assert status == 200
    assert body["database"]["status"] == "ok"
    assert body["endpoints"]["generator-A"]["status"] == "ok"
    assert body["endpoints"]["generator-B"] == {"status": "unavailable", "detail": "no variant B"}
    assert body["endpoints"]["classifier"]["status"] == "unavailable"
    assert body["status"] == "degraded"


def test_health_is_ok_when_everything_is_in_service(generate_function: GenerateFunction) -> None:
    in_service = {
        "EndpointStatus": "InService",
        "ProductionVariants": [{"VariantName": "A"}, {"VariantName": "B"}],
    }
    generate_function.control.endpoints.update(
        {REALTIME_ENDPOINT: in_service, CLASSIFIER_ENDPOINT: in_service}
    )

    status, _, body = generate_function.call("GET", "/api/health")

    assert status == 200 and body["status"] == "ok"


def test_openapi_document_lists_the_routes(generate_function: GenerateFunction) -> None:
    status, _, body = generate_function.call("GET", "/api/openapi.json")

    assert status == 200
    assert {"/api/generate", "/api/health"} <= set(body["paths"])
    schema = body["components"]["schemas"]["GenerateRequest"]
    assert schema["properties"]["max_new_tokens"]["maximum"] == 64
    answer = body["components"]["schemas"]["GenerateResponse"]
    assert {"text", "headline"} <= set(answer["required"])
    assert "the prompt, then the continuation" in answer["properties"]["headline"]["description"]
    responses = body["paths"]["/api/generate"]["post"]["responses"]
    assert {"200", "422", "429", "502", "503", "504"} <= set(responses)
    assert "ErrorResponse" in body["components"]["schemas"]


def test_unknown_route_is_a_json_404(generate_function: GenerateFunction) -> None:
    status, _, body = generate_function.call("GET", "/api/nothing-here")

    assert status == 404 and body["error"]["code"] == "route_not_found"


def test_cors_headers_only_for_the_configured_origin(generate_function: GenerateFunction) -> None:
    _, allowed, _ = generate_function.call(
        "GET", "/api/openapi.json", headers={"Origin": "https://news.example.com"}
    )
    _, other, _ = generate_function.call(
        "GET", "/api/openapi.json", headers={"Origin": "https://evil.example.com"}
    )

    assert allowed["Access-Control-Allow-Origin"] == "https://news.example.com"
    assert "Access-Control-Allow-Origin" not in other


def user_assigned_to(variant: str) -> str:
    """A user id that the sticky strategy (the template's default, `fixed`) sends to `variant`
    (found by trying ids in order)."""
    router = Router(FixedWeights(), {name: VariantConfig(**v) for name, v in VARIANTS.items()})
    return next(
        user
        for user in (f"reader-{n}" for n in range(1000))
        if router.assign(reader_hash(user)).variant == variant
    )


def test_health_flags_a_realtime_variant_without_instances(
    generate_function: GenerateFunction,
) -> None:
    generate_function.control.endpoints.update(
        {
            REALTIME_ENDPOINT: {
                "EndpointStatus": "Updating",
                "ProductionVariants": [
                    {"VariantName": "A", "CurrentInstanceCount": 1},
                    {"VariantName": "B", "CurrentInstanceCount": 0},
                ],
            },
            CLASSIFIER_ENDPOINT: {"EndpointStatus": "InService"},
        }
    )

    _, _, body = generate_function.call("GET", "/api/health")

    assert body["endpoints"]["generator-A"]["status"] == "ok"
    assert body["endpoints"]["generator-B"]["status"] == "unavailable"
    assert body["endpoints"]["classifier"]["status"] == "ok"


def test_cors_preflight_is_answered_for_the_configured_origin(
    generate_function: GenerateFunction,
) -> None:
    status, headers, _ = generate_function.call(
        "OPTIONS",
        "/api/feedback",
        headers={"Origin": "https://news.example.com", "Access-Control-Request-Method": "POST"},
        raw_body=b"",
    )

    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://news.example.com"
    assert "X-User-Id" in headers["Access-Control-Allow-Headers"]


def test_serverless_hosting_calls_the_variants_own_endpoint_without_target_variant(
    serverless_generate_function: GenerateFunction,
) -> None:
    function = serverless_generate_function
    sent = SentInferenceIds()
    function.generator.add_response(
        "invoke_endpoint",
        {"Body": streaming([{"generated_text": " lite"}])},
        expected_params={
            "EndpointName": SERVERLESS_VARIANTS["B"]["endpoint_name"],
            "Body": generator_request("x"),
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": sent,
        },
    )
    classifier_reads(function, "x lite", sent)

    status, _, body = function.call("POST", "/api/generate", {"prompt": "x", "variant": "B"})

    assert status == 200, body
    assert body["model"]["name"] == "headline-lite"
    function.generator.assert_no_pending_responses()
    assert sent.values == [body["generation_id"]] * 2


def test_the_variant_sagemaker_says_answered_is_the_one_recorded(
    generate_function: GenerateFunction,
) -> None:
    generate_function.model_answers(" from B", "B")  # asked for A, SageMaker says B answered
    generate_function.classifier_answers("tech", 0.6)

    status, _, body = generate_function.call(
        "POST", "/api/generate", {"prompt": "x", "variant": "A"}
    )

    assert status == 200
    assert (body["variant"], body["model"]["name"]) == ("B", "headline-lite")
    [row] = stored_generations(generate_function)
    assert (row["variant"], row["model_name"]) == ("B", "headline-lite")


def test_an_unreachable_database_is_503_and_health_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = f"sqlite:///{tmp_path / 'no-such-dir' / 'feedback.db'}"
    with loaded_generate_function(
        tmp_path, monkeypatch, "realtime", VARIANTS, database_url=unreachable
    ) as function:
        function.model_answers(" text", "A")
        function.classifier_answers("tech", 0.6)
        status, _, body = function.call("POST", "/api/generate", {"prompt": "x", "variant": "A"})
        _, _, health = function.call("GET", "/api/health")

    assert status == 503
    assert body["error"]["code"] == "database_unavailable"
    assert health["database"]["status"] == "unavailable"
