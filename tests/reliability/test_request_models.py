"""Property-based tests of the request models and the body decoder: any input is either a valid
request within the design's bounds or a validation error, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pressroom_common.feedback.contracts import FeedbackRequest
from pressroom_common.generation.contracts import GenerateRequest
from pressroom_common.platform.api import decode_json_body, describe_validation_errors

hostile_text = st.one_of(
    st.text(max_size=700),
    st.sampled_from(
        [
            "'; DROP TABLE generations; --",
            "<script>alert(1)</script>",
            "a\x00b",
            "\u202e\ufeff",
            " " * 600,
        ]
    ),
)
numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
values = st.one_of(
    st.none(), st.booleans(), numbers, hostile_text, st.lists(st.integers(), max_size=3)
)
generate_bodies = st.fixed_dictionaries(
    {},
    optional={
        "prompt": hostile_text,
        "max_new_tokens": values,
        "temperature": values,
        "top_k": values,
        "top_p": values,
        "seed": values,
        "variant": st.one_of(hostile_text, st.sampled_from(["A", "B"])),
    },
)
feedback_bodies = st.fixed_dictionaries(
    {},
    optional={
        "generation_id": st.one_of(hostile_text, st.uuids().map(str)),
        "vote": st.one_of(hostile_text, st.sampled_from(["up", "down"])),
    },
)


def validated(model: type[pydantic.BaseModel], body: dict[str, Any]) -> pydantic.BaseModel | None:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        # What the API answers names a field the body sent (or lacks), or the body itself.
        fields = set(model.model_fields) | set(body) | {"body"}
        for detail in describe_validation_errors(error.errors(include_input=False)):
            assert detail["field"].split(".")[0] in fields and detail["reason"], detail
        return None


@settings(max_examples=300, deadline=None)
@given(body=generate_bodies)
def test_a_generate_body_is_valid_within_bounds_or_rejected(body: dict[str, Any]) -> None:
    request = validated(GenerateRequest, body)

    if request is not None:
        assert isinstance(request, GenerateRequest)
        assert 1 <= len(request.prompt) <= 500 and request.prompt == request.prompt.strip()
        assert "\x00" not in request.prompt
        assert 1 <= request.max_new_tokens <= 64 and 0 <= request.top_k <= 200
        assert 0 < request.temperature <= 2 and 0 < request.top_p <= 1
        assert request.seed is None or 0 <= request.seed < 2**32
        assert GenerateRequest.model_validate(request.model_dump()) == request


@settings(max_examples=300, deadline=None)
@given(body=feedback_bodies)
def test_a_feedback_body_is_a_vote_on_an_id_or_rejected(body: dict[str, Any]) -> None:
    request = validated(FeedbackRequest, body)

    if request is not None:
        assert isinstance(request, FeedbackRequest)
        assert 1 <= len(request.generation_id) <= 64 and "\x00" not in request.generation_id
        assert request.vote in ("up", "down")


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.from_regex(r"\A[\[{\]}0-9\",: ]*\Z")))
def test_the_body_decoder_raises_only_json_errors(text: str) -> None:
    try:
        decoded = decode_json_body(text)
    except json.JSONDecodeError as error:
        assert error.msg
    else:
        assert decoded == json.loads(text)


@pytest.mark.parametrize(
    ("body", "reason"),
    [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("1" + "0" * 5000, "digits")],
)
def test_bodies_the_decoder_cannot_take_are_json_errors_saying_why(body: str, reason: str) -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        decode_json_body(body)

    assert reason in raised.value.msg
