"""One OpenAPI document describes every route the templates send to any function."""

from __future__ import annotations

import httpx

from local.devstack.stack import LocalStack

OPENAPI_PATH = "/api/openapi.json"


def test_the_document_lists_every_route_of_every_function(local_stack: LocalStack) -> None:
    routed = {
        (route.method.lower(), route.resource)
        for gateway in local_stack.gateways
        for route in gateway.api.routes
        # The document itself and the CORS preflight route are not API operations.
        if route.resource != OPENAPI_PATH and route.method != "OPTIONS"
    }

    document = httpx.get(f"{local_stack.url}api/openapi.json", timeout=30).json()

    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert documented == routed
    functions = {
        route.function.logical_id
        for gateway in local_stack.gateways
        for route in gateway.api.routes
    }
    assert {"GenerateFunction", "FeedbackFunction"} <= functions


def test_the_feedback_routes_document_their_bodies_and_errors(local_stack: LocalStack) -> None:
    document = httpx.get(f"{local_stack.url}api/openapi.json", timeout=30).json()

    feedback = document["paths"]["/api/feedback"]["post"]
    stats = document["paths"]["/api/stats"]["get"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/FeedbackRequest"
    )
    assert {"200", "404", "422", "503"} <= set(feedback["responses"])
    assert [parameter["name"] for parameter in stats["parameters"]] == ["since"]
    assert {"StatsReport", "FeedbackResponse", "GenerateRequest", "ErrorResponse"} <= set(
        document["components"]["schemas"]
    )
