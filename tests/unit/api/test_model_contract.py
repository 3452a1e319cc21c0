"""The API and the model server agree on every generation setting's bounds.

The API validates a request (`GenerateRequest`) before it calls SageMaker; the model server
(`inference.py`) validates whatever any caller sends to the endpoint. The edge values below are
read from the API's own JSON schema, so a bound changed on one side only fails here, instead of
as a 502 when the model server refuses what the API accepted.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pressroom_common.generation.contracts import GenerateRequest, GenerationParameters

from models.serving.inference import InvalidRequestError, parse_parameters

SCHEMA = GenerateRequest.model_json_schema()["properties"]


def edge_values(name: str) -> list[Any]:
    """Each bound of `name` in the API's schema, and the nearest value beyond it."""
    property_ = SCHEMA[name]
    bounds = next(item for item in property_.get("anyOf", [property_]) if item["type"] != "null")
    step = 1 if bounds["type"] == "integer" else 1e-9
    values = []
    if "minimum" in bounds:
        values += [bounds["minimum"], bounds["minimum"] - step]
    if "exclusiveMinimum" in bounds:
        values += [bounds["exclusiveMinimum"], bounds["exclusiveMinimum"] + step]
    values += [bounds["maximum"], bounds["maximum"] + step]
    return values


def api_accepts(name: str, value: Any) -> bool:
    try:
        GenerateRequest.model_validate({"prompt": "Markets", name: value})
    except pydantic.ValidationError:
        return False
    return True


def model_accepts(name: str, value: Any) -> bool:
    try:
        parse_parameters({name: value})
    except InvalidRequestError:
        return False
    return True


@pytest.mark.parametrize("name", list(GenerationParameters.model_fields))
def test_the_api_and_the_model_server_accept_the_same_values(name: str) -> None:
    values = edge_values(name)
    assert len(values) == 4, f"{name}: a lower and an upper bound"
    accepted = [api_accepts(name, value) for value in values]
    assert accepted.count(True) == 2, f"{name}: each bound is inside, each neighbour outside"
    assert accepted == [model_accepts(name, value) for value in values], values
