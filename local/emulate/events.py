"""API Gateway REST proxy events, in the shape `sam local generate-event apigateway aws-proxy`
prints, so handlers see locally exactly what API Gateway hands them on AWS."""

from __future__ import annotations

import base64
import fnmatch
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "local"


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    query: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    binary_media_types: Sequence[str] = (),
) -> dict[str, Any]:
    """Build the Lambda proxy integration event for one HTTP request.

    `headers` and `query` are (name, value) pairs so repeated names keep every value, as in
    API Gateway's `multiValue*` fields; the single-value fields keep the last one, like AWS.
    A body reaches the handler as text unless its content type is one of the API's
    `binary_media_types` (e.g. `image/png`, `*/*`), which arrive base64-encoded.
    """
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
    is_text = body is None or not is_binary(content_type, binary_media_types)
    now = datetime.now(UTC)
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), None)
    return {
        "body": _encode_body(body, is_text),
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "isBase64Encoded": not is_text,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "headers": {k: v[-1] for k, v in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "resourceId": "local",
            "stage": stage,
            "requestId": request_id or str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": source_ip,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "path": f"/{stage}{path}",
            "resourcePath": resource or path,
            "httpMethod": method,
            "apiId": LOCAL_API_ID,
            "protocol": "HTTP/1.1",
        },
    }


def is_binary(content_type: str, binary_media_types: Sequence[str]) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return any(fnmatch.fnmatchcase(media_type, pattern.lower()) for pattern in binary_media_types)


def _encode_body(body: bytes | None, is_text: bool) -> str | None:
    if body is None:
        return None
    if is_text:
        return body.decode("utf-8", errors="replace")
    return base64.b64encode(body).decode("ascii")
