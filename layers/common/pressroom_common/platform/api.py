"""The HTTP app factory every Lambda function uses: one place maps errors to responses.

Handlers stay `return app.resolve(event, context)`; routes raise the domain errors of
`pressroom_common.platform.errors` and this module answers
`{"error": {"code", "message", "details"}}` with the status the error carries. Request
validation errors (pydantic, via Powertools' OpenAPI validation) name the field and the
reason; anything unexpected becomes a logged 500 with no stack trace in the body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from pressroom_common.platform.errors import DomainError
from pressroom_common.platform.observability import logger
from pressroom_common.platform.readers import USER_ID_HEADER
from pressroom_common.platform.settings import ApiSettings


class ErrorBody(BaseModel):
    """The error shape, for the OpenAPI document (`error_response` builds the bodies)."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


REQUEST_ID_HEADER = "X-Request-Id"
OPENAPI_PATH = "/api/openapi.json"


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI entries for a route's error statuses, all in the one error shape."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
        for status in statuses
    }


def error_response(
    status: HTTPStatus | int, code: str, message: str, details: Any = None
) -> Response[str]:
    """The one error body shape of the API."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": error}),
    )


def describe_validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Turn pydantic errors into `{field, location, reason}`, without echoing the input back."""
    described = []
    for error in errors:
        location, *path = [str(part) for part in error.get("loc", ())] or ["body"]
        reason = str(error.get("msg") or error.get("type", "invalid"))
        if error.get("type") == "json_invalid":
            # Powertools reports a JSON syntax error at ("body", <character offset>), and the
            # decoder's own words ("Expecting value", "nested too deeply") in ctx.
            path = []
            reason = f"{reason}: {error.get('ctx', {}).get('error', 'invalid JSON')}"
        described.append(
            {"field": ".".join(path) or location, "location": location, "reason": reason}
        )
    return described


def decode_json_body(body: str) -> Any:
    """Request bodies as JSON, where whatever the decoder cannot take (nesting past the recursion
    limit, integers of thousands of digits) is a JSON error like any other: a 422 on the body."""
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:120]
        raise json.JSONDecodeError(reason, "", 0) from error


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Any media type Powertools would hand to its own body parser that this JSON API does not read:
# presented as this, so Powertools raises RequestUnsupportedContentType (our 415).
UNREAD_CONTENT_TYPE = "application/octet-stream"


class JsonApiResolver(APIGatewayRestResolver):
    """A resolver for an API whose every body is JSON.

    The request's media type is decided here, once, before Powertools parses the body:
    - `curl -d '{"prompt": "Stocks"}'` (and an HTML form) label a JSON body
      `application/x-www-form-urlencoded`; Powertools would parse it as form fields, so such a
      body is read as JSON instead (invalid JSON still answers 422);
    - `multipart/*` would reach Powertools' multipart parser, which raises a bare ValueError
      (a 500) when the boundary is missing: this API reads no multipart body, so it answers 415.
    Any other non-JSON content type answers 415 as it is.
    """

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        relabelled = _content_type_for_json_api(event)
        _resolving.event = APIGatewayProxyEvent(relabelled, decode_json_body)
        _resolving.context = context
        return super().resolve(relabelled, context)

    # Powertools keeps the event being resolved on its BaseRouter class: one per process, right
    # for Lambda (one event at a time per execution environment) but not for a process whose
    # threads resolve events of several function instances at once (the local gateway, tests).
    # Each thread reads its own, so a feedback call never validates a concurrent generate body.
    @property  # type: ignore[override]
    def current_event(self) -> APIGatewayProxyEvent:
        event: APIGatewayProxyEvent = _resolving.event
        return event

    @current_event.setter
    def current_event(self, event: APIGatewayProxyEvent) -> None:
        _resolving.event = event

    @property
    def lambda_context(self) -> LambdaContext:
        context: LambdaContext = _resolving.context
        return context

    @lambda_context.setter
    def lambda_context(self, context: LambdaContext) -> None:
        _resolving.context = context


_resolving = threading.local()  # the event and context this thread is resolving


def _content_type_for_json_api(event: Mapping[str, Any]) -> dict[str, Any]:
    relabelled = dict(event)
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field) or {}
        for name, value in headers.items():
            if name.lower() != "content-type":
                continue
            values = value if isinstance(value, list) else [value]
            media_types = {str(v).split(";")[0].strip().lower() for v in values}
            if FORM_CONTENT_TYPE in media_types:
                read_as = content_types.APPLICATION_JSON
            elif any(media.startswith("multipart/") for media in media_types):
                read_as = UNREAD_CONTENT_TYPE
            else:
                continue
            relabelled[field] = {**headers, name: [read_as] if isinstance(value, list) else read_as}
    return relabelled


def create_app(settings: ApiSettings) -> JsonApiResolver:
    """Build the resolver with validation, CORS from settings, error mapping and request ids.

    The routes come from `pressroom_common.routes`: each function includes its own routers.
    """
    cors = (
        CORSConfig(
            allow_origin=settings.cors_allowed_origins[0],
            extra_origins=list(settings.cors_allowed_origins[1:]),
            allow_headers=[USER_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
        if settings.cors_allowed_origins
        else None
    )
    app = JsonApiResolver(
        cors=cors, enable_validation=True, json_body_deserializer=decode_json_body
    )
    logger.append_keys(stage=settings.stage)
    app.use(middlewares=[_echo_request_id])
    _register_error_handlers(app)
    return app


def _echo_request_id(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Answer API Gateway's request id, the correlation id of every log line of the request
    (the handlers' `logger.inject_lambda_context` sets it)."""
    response = next_middleware(app)
    response.headers[REQUEST_ID_HEADER] = app.current_event.request_context.request_id
    return response


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    handlers: dict[type[Exception], Callable[[Any], Response[str]]] = {
        DomainError: _domain_error,
        RequestValidationError: _request_validation_error,
        RequestUnsupportedContentType: _unsupported_content_type,
        NotFoundError: _route_not_found,
        ServiceError: _service_error,
        Exception: _unexpected_error,
    }
    for exception_type, handler in handlers.items():
        app.exception_handler(exception_type)(_with_request_id(app, handler))


def _with_request_id(
    app: APIGatewayRestResolver, handler: Callable[[Any], Response[str]]
) -> Callable[[Any], Response[str]]:
    """Error responses skip the middleware chain, so they get the request id header here."""

    def handle(error: Any) -> Response[str]:
        response = handler(error)
        response.headers[REQUEST_ID_HEADER] = app.current_event.request_context.request_id
        return response

    return handle


def _domain_error(error: DomainError) -> Response[str]:
    log = logger.warning if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR else logger.info
    log("request failed", extra={"error_code": error.code, "status": int(error.status)})
    return error_response(error.status, error.code, error.message, error.details)


def _request_validation_error(error: RequestValidationError) -> Response[str]:
    details = describe_validation_errors(error.errors())
    summary = "; ".join(f"{item['field']}: {item['reason']}" for item in details)
    logger.info("request rejected", extra={"validation_errors": details})
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", f"Invalid request: {summary}", details
    )


def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response[str]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type must be application/json",
        [{"field": "Content-Type", "location": "header", "reason": "not application/json"}],
    )


def _route_not_found(_: NotFoundError) -> Response[str]:
    return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "No such route")


def _service_error(error: ServiceError) -> Response[str]:
    code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
    return error_response(error.status_code, code, str(error.msg))


def _unexpected_error(error: Exception) -> Response[str]:
    # The stack trace goes to the log (with the correlation id), never to the caller.
    logger.exception("unhandled error", extra={"error_type": type(error).__name__})
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "Internal error; see the request id"
    )
