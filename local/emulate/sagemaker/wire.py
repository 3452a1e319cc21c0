"""SageMaker's wire formats: header names and error responses.

SageMaker Runtime speaks `rest-json` (botocore's service model `sagemaker-runtime/2017-05-13`):
botocore reads an error's code from the `x-amzn-ErrorType` header (the part before `:`) and the
modeled members (`OriginalStatusCode`, ...) from the JSON body, so an error answered here raises
the same `client.exceptions.<Code>` with the same `e.response` fields as on AWS. The control
plane (`sagemaker`, for DescribeEndpoint) speaks `json` 1.1: `POST /` with `X-Amz-Target`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
REQUEST_ID = "x-amzn-RequestId"
ERROR_TYPE = "x-amzn-ErrorType"
TARGET = "X-Amz-Target"
CONTROL_PLANE_MEDIA_TYPE = "application/x-amz-json-1.1"

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint's request payload limit (realtime endpoints)."""
MAX_SERVERLESS_PAYLOAD_BYTES = 4 * 1024 * 1024
"""The lower payload limit of serverless endpoints."""


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_response(code: str, status: int, message: str, **members: Any) -> Response:
    """An error as SageMaker Runtime sends it: the code in a header, the members in JSON."""
    body = {
        "message": message,
        **{key: value for key, value in members.items() if value is not None},
    }
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={ERROR_TYPE: code, REQUEST_ID: new_request_id()},
    )


def validation_error(message: str) -> Response:
    """400 ValidationError: the request names something that does not exist or is malformed."""
    return error_response("ValidationError", 400, message)


def service_unavailable(message: str) -> Response:
    """503 ServiceUnavailable: the variant cannot take the request now (botocore retries it)."""
    return error_response("ServiceUnavailable", 503, message)


def model_not_ready(message: str) -> Response:
    """429 ModelNotReadyException: a serverless variant is still being provisioned."""
    return error_response("ModelNotReadyException", 429, message)


def throttled(message: str) -> Response:
    """429 ThrottlingException: a serverless endpoint is at its MaxConcurrency."""
    return error_response("ThrottlingException", 429, message)


def model_error(
    message: str,
    *,
    original_status: int | None,
    original_message: str | None,
    log_stream_arn: str,
) -> Response:
    """424 ModelError: the model container answered 4xx/5xx, or did not answer in time."""
    return error_response(
        "ModelError",
        424,
        message,
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn=log_stream_arn,
    )


def control_plane_response(body: dict[str, Any], status: int = 200) -> Response:
    """A `json` 1.1 answer of the SageMaker control plane."""
    return Response(
        json.dumps(body),
        status_code=status,
        media_type=CONTROL_PLANE_MEDIA_TYPE,
        headers={REQUEST_ID: new_request_id()},
    )


def control_plane_error(code: str, message: str) -> Response:
    """A control-plane client error: the code in `__type`, as the `json` protocol has it."""
    return control_plane_response({"__type": code, "message": message}, status=400)
