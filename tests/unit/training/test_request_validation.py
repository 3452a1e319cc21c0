"""Request validation in the serving code: allow-listed, bounded, errors that name the field."""

import pytest

from models.serving.inference import (
    GenerationParameters,
    InvalidRequestError,
    UnsupportedContentTypeError,
    input_fn,
    output_fn,
    parse_parameters,
    parse_request,
)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"max_new_tokens": 0}, "parameters.max_new_tokens"),
        ({"max_new_tokens": 65}, "parameters.max_new_tokens"),
        ({"max_new_tokens": 3.0}, "parameters.max_new_tokens"),
        ({"max_new_tokens": True}, "parameters.max_new_tokens"),
        ({"temperature": 0}, "parameters.temperature"),
        ({"temperature": 2.01}, "parameters.temperature"),
        ({"temperature": float("nan")}, "parameters.temperature"),
        ({"top_k": -1}, "parameters.top_k"),
        ({"top_k": 201}, "parameters.top_k"),
        ({"top_p": 0}, "parameters.top_p"),
        ({"top_p": 1.5}, "parameters.top_p"),
        ({"do_sample": "yes"}, "parameters.do_sample"),
        ({"seed": -1}, "parameters.seed"),
        ({"seed": 2**32}, "parameters.seed"),
        ({"return_full_text": 1}, "parameters.return_full_text"),
        ({"num_beams": 4}, "parameters.num_beams"),
    ],
)
def test_out_of_range_or_unknown_parameters_are_rejected_naming_the_field(
    parameters: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRequestError, match=rf"^{field}: "):
        parse_parameters(parameters)


def test_bounds_themselves_are_accepted() -> None:
    low = parse_parameters(
        {"max_new_tokens": 1, "temperature": 2, "top_k": 0, "top_p": 1, "seed": 0}
    )
    high = parse_parameters(
        {"max_new_tokens": 64, "top_k": 200, "seed": 2**32 - 1, "do_sample": False}
    )
    assert (low.max_new_tokens, low.temperature, low.top_k, low.top_p) == (1, 2.0, 0, 1.0)
    assert isinstance(low.temperature, float)
    assert (high.max_new_tokens, high.top_k, high.do_sample) == (64, 200, False)
    assert parse_parameters(None) == GenerationParameters()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({}, "inputs"),
        ({"inputs": ""}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["ok", 3]}, r"inputs\[1\]"),
        ({"inputs": ["ok", "   "]}, r"inputs\[1\]"),
        ({"inputs": "x" * 501}, "inputs"),
        ({"inputs": ["a"] * 65}, "inputs"),
        ({"inputs": "ok", "prompt": "x"}, "prompt"),
        ({"inputs": "ok", "parameters": [1]}, "parameters"),
    ],
)
def test_malformed_generator_requests_name_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidRequestError, match=rf"^{field}: "):
        parse_request(body, "generator")


def test_classifier_takes_no_parameters() -> None:
    with pytest.raises(InvalidRequestError, match=r"^parameters: "):
        parse_request({"inputs": "Stocks fall", "parameters": {"top_k": 3}}, "classifier")
    assert parse_request({"inputs": "Stocks  fall\n"}, "classifier") == (["Stocks fall"], None)


def test_input_fn_accepts_json_only() -> None:
    assert input_fn(b'{"inputs": "x"}', "application/json; charset=utf-8") == {"inputs": "x"}
    with pytest.raises(UnsupportedContentTypeError, match=r"^content_type: "):
        input_fn(b"inputs=x", "text/csv")
    with pytest.raises(InvalidRequestError, match=r"^body: "):
        input_fn(b"{not json", "application/json")
    with pytest.raises(InvalidRequestError, match=r"^body: "):
        input_fn(b"\xff\xfe", "application/json")


def test_output_fn_answers_json_only() -> None:
    assert (
        output_fn([{"label": "tech", "score": 0.5}], "application/json")
        == '[{"label": "tech", "score": 0.5}]'
    )
    assert output_fn([], None) == "[]"
    with pytest.raises(UnsupportedContentTypeError, match=r"^accept: "):
        output_fn([], "text/csv")
