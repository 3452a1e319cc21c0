"""Hostile and malformed input never yields a 5xx, and never a stored partial record."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pydantic
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pressroom_common.generation.contracts import GenerateRequest

from tests.unit.api.conftest import GenerateFunction

FIELDS = ["prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "variant"]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=600),
    st.sampled_from(["A", "B", "<script>alert(1)</script>", "'; DROP TABLE generations;--"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8),
    json_values,
)
# Bytes as they can reach the function: API Gateway (and the local gateway, see
# test_gateway.py) refuses a text body that is not UTF-8 before any function runs.
raw_bodies = st.binary(max_size=200).map(lambda raw: raw.decode("utf-8", "replace").encode())


def row_count(function: GenerateFunction) -> int:
    engine = sa.create_engine(function.database_url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT COUNT(*) FROM generations")).scalar_one()
    engine.dispose()
    return int(count)


def is_valid(body: Any) -> bool:
    try:
        request = GenerateRequest.model_validate(body)
    except pydantic.ValidationError:
        return False
    return request.variant in (None, "A", "B")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_any_json_body_is_answered_200_or_422_and_stored_only_when_served(
    generate_function: GenerateFunction, body: Any
) -> None:
    valid = is_valid(body)
    if valid:
        generate_function.model_answers(" text", "A")
        generate_function.classifier_answers("tech", 0.5)
    before = row_count(generate_function)

    status, _, answer = generate_function.call(
        "POST", "/api/generate", raw_body=json.dumps(body).encode()
    )

    assert status == (200 if valid else 422), answer
    assert row_count(generate_function) == before + (1 if valid else 0)
    if not valid:
        assert answer["error"]["details"]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=raw_bodies)
def test_arbitrary_bytes_are_answered_422_and_store_nothing(
    generate_function: GenerateFunction, raw: bytes
) -> None:
    with contextlib.suppress(ValueError):  # bytes that are not JSON: just what we are after
        assume(not is_valid(json.loads(raw.decode())))

    status, _, answer = generate_function.call("POST", "/api/generate", raw_body=raw)

    assert status == 422, answer
    assert row_count(generate_function) == 0
