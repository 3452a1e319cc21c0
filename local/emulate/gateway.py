"""The local API Gateway: every `Api` route of the SAM templates, on 127.0.0.1, no Docker.

It reads the root template and its nested apps (through `local.cfn`), finds each REST API
(`AWS::Serverless::Api`) with its routes — the `Api` events of functions in its template and the
`aws_proxy` integrations of its `DefinitionBody` — and serves them the way API Gateway does: a
REST proxy event per request (see `local.emulate.events`), the real handler invoked in-process
with the environment the template gives the function, the stage's throttling as a token bucket
(429), the integration timeout (504), and the API's `GatewayResponses` for its own errors. Given
a `LogFile`, it also logs as AWS does (see `local.plumbing.logfile`): each function's output
with the runtime's START / END / REPORT lines, and the stage's access log in its
`AccessLogSetting` format.

In front of it, a `local.emulate.waf.WebAclFilter` applies the site's web ACL, as CloudFront
does in front of API Gateway.

Each function runs as a small pool of independently loaded "instances": Lambda runs one event
at a time per execution environment, so an instance is never shared by two requests at once.
Their resolvers keep the event being resolved per thread (`pressroom_common.platform.api`),
so instances resolve concurrently in one process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import queue
import re
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from local.cfn import Resource, Stack
from local.emulate.events import is_binary, proxy_event
from local.emulate.functions import Handler, function_service, load_handler
from local.emulate.throttling import Throttle, TokenBucket
from local.emulate.waf import WebAclFilter
from local.plumbing.logfile import FunctionLog, LogFile, function_output

# API Gateway stops waiting for an integration after 29 seconds.
INTEGRATION_TIMEOUT_S = 29.0
# API Gateway's payload quota: a larger request body is answered 413 without calling the function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_INSTANCES_PER_FUNCTION = 4
ANY_METHOD = "ANY"
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_OPENAPI_ANY_METHOD = "x-amazon-apigateway-any-method"
_FUNCTION_ARN = re.compile(r"arn:[^:]+:lambda:[^:]*:[0-9]*:function:([A-Za-z0-9_-]+)")
_LOG_GROUP_ARN = re.compile(r"arn:[^:]+:logs:[^:]*:[0-9]*:log-group:([^:]+)")
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z.]+)")
ACCESS_LOG_SOURCE = "api"
# API Gateway's built-in bodies and statuses, used where the API sets no GatewayResponses.
_DEFAULT_STATUS = {
    "THROTTLED": 429,
    "INTEGRATION_TIMEOUT": 504,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "REQUEST_TOO_LARGE": 413,
    "BAD_REQUEST_BODY": 400,
}


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class LambdaFunction:
    """A function as its template declares it, with the environment resolved."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int

    @property
    def label(self) -> str:
        """A short name for logs: `GenerateFunction` -> `generate`."""
        stem = self.logical_id.removesuffix("Function") or self.logical_id
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", stem).lower()


@dataclass(frozen=True)
class ApiRoute:
    method: str
    """Upper-case HTTP method, or ANY."""
    resource: str
    """The template path, e.g. `/api/generate` or `/api/{proxy+}`."""
    function: LambdaFunction
    pattern: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", resource_pattern(self.resource))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, ANY_METHOD):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()

    @property
    def precedence(self) -> tuple[int, int, int]:
        """API Gateway prefers literal paths over variables over greedy `{proxy+}`, and an
        explicit method over ANY."""
        segments = self.resource.strip("/").split("/")
        greedy = sum(segment.endswith("+}") for segment in segments)
        variables = sum(segment.startswith("{") for segment in segments)
        return (greedy, variables, int(self.method == ANY_METHOD))


@dataclass(frozen=True)
class GatewayResponse:
    status: int | None
    template: str | None


@dataclass(frozen=True)
class AccessLog:
    """The stage's `AccessLogSetting`: where each request's line goes, in which format."""

    group: str
    format: str

    def line(self, context: Mapping[str, str]) -> str:
        """The format with its `$context.*` variables filled in; API Gateway writes `-` for a
        variable without a value."""
        return _CONTEXT_VARIABLE.sub(lambda found: context.get(found.group(1)) or "-", self.format)


@dataclass(frozen=True)
class RestApi:
    logical_id: str
    stage: str
    routes: tuple[ApiRoute, ...]
    throttle: Throttle | None
    gateway_responses: dict[str, GatewayResponse]
    binary_media_types: tuple[str, ...] = ()
    access_log: AccessLog | None = None

    def route_for(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        for route in sorted(self.routes, key=lambda r: r.precedence):
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None


def resource_pattern(resource: str) -> re.Pattern[str]:
    """`/api/{id}` → one segment per variable; `/{proxy+}` → the rest of the path."""
    parts = []
    for segment in resource.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts))


# --------------------------------------------------------------------------- discovery


def discover_apis(root: Stack) -> list[RestApi]:
    """Every `AWS::Serverless::Api` in the stack tree, with its routes and settings."""
    functions = {
        function.arn: function for stack in root.walk() for function in _functions_of(stack)
    }
    apis = []
    for api in root.walk_resources("AWS::Serverless::Api"):
        routes = [*_event_routes(api), *_definition_routes(api, functions)]
        apis.append(
            RestApi(
                logical_id=api.logical_id,
                stage=str(api.properties.get("StageName", "Prod")),
                routes=tuple(routes),
                throttle=stage_throttle(api.properties.get("MethodSettings") or []),
                gateway_responses={
                    name: GatewayResponse(
                        status=int(spec["StatusCode"]) if "StatusCode" in spec else None,
                        template=(spec.get("ResponseTemplates") or {}).get("application/json"),
                    )
                    for name, spec in (api.properties.get("GatewayResponses") or {}).items()
                },
                # The template escapes "/" as "~1" (image~1png), as API Gateway's API does.
                binary_media_types=tuple(
                    str(media_type).replace("~1", "/")
                    for media_type in api.properties.get("BinaryMediaTypes") or []
                ),
                access_log=_access_log(api.properties.get("AccessLogSetting") or {}),
            )
        )
    return apis


def _access_log(setting: Mapping[str, Any]) -> AccessLog | None:
    destination = _LOG_GROUP_ARN.fullmatch(str(setting.get("DestinationArn", "")))
    if destination is None or not setting.get("Format"):
        return None
    return AccessLog(destination.group(1), str(setting["Format"]))


def _functions_of(stack: Stack) -> Iterator[LambdaFunction]:
    for resource in stack.resources.values():
        if resource.type != "AWS::Serverless::Function":
            continue
        properties = resource.properties
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        yield LambdaFunction(
            logical_id=resource.logical_id,
            name=resource.physical_name,
            arn=f"arn:aws:lambda:{stack.region}:{stack.account_id}:function:{resource.physical_name}",
            code_dir=(stack.path.parent / str(properties["CodeUri"])).resolve(),
            handler=str(properties["Handler"]),
            environment={name: _env_text(value) for name, value in variables.items()},
            timeout_s=float(properties.get("Timeout", 3)),
            memory_mb=int(properties.get("MemorySize", 128)),
        )


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _event_routes(api: Resource) -> Iterator[ApiRoute]:
    """The `Api` events of functions in the API's own template that attach to it."""
    for function in _functions_of(api.stack):
        resource = api.stack.resources[function.logical_id]
        for event in (resource.properties.get("Events") or {}).values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "Api" and properties.get("RestApiId") in (
                api.ref,
                api.physical_name,
            ):
                yield ApiRoute(str(properties["Method"]).upper(), str(properties["Path"]), function)


def _definition_routes(
    api: Resource, functions: Mapping[str, LambdaFunction]
) -> Iterator[ApiRoute]:
    """`aws_proxy` integrations of the DefinitionBody that name a function of the stack tree."""
    paths = (api.properties.get("DefinitionBody") or {}).get("paths") or {}
    for path, operations in paths.items():
        for method, operation in operations.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            if str(integration.get("type", "")).lower() != "aws_proxy":
                continue
            target = _FUNCTION_ARN.search(str(integration.get("uri", "")))
            function = next(
                (f for f in functions.values() if target and f.name == target.group(1)), None
            )
            if function is None:
                raise LookupError(f"{api.logical_id} {method.upper()} {path}: no such function")
            verb = ANY_METHOD if method == _OPENAPI_ANY_METHOD else method.upper()
            yield ApiRoute(verb, path, function)


def stage_throttle(method_settings: list[dict[str, Any]]) -> Throttle | None:
    """The stage-wide setting (`/*`, `*`); per-method settings are not emulated."""
    for setting in method_settings:
        stage_wide = setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*"
        if stage_wide and {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= setting.keys():
            return Throttle(
                float(setting["ThrottlingRateLimit"]), int(setting["ThrottlingBurstLimit"])
            )
    return None


# --------------------------------------------------------------------------- runtime pieces


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context` (the fields handlers and Powertools read)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class _Instance:
    """One loaded copy of a function (an execution environment) and its log stream."""

    handler: Handler
    log: FunctionLog | None
    init_ms: float | None
    """The cold start, reported on the first invocation's REPORT line, as Lambda does."""


class FunctionInstances:
    """A fixed pool of loaded copies of one function; each serves one event at a time.

    With a `log_file`, what each copy writes goes there (see `local.plumbing.logfile`), framed by
    the Lambda runtime's START, END and REPORT lines.
    """

    def __init__(
        self,
        function: LambdaFunction,
        environment: Mapping[str, str],
        size: int,
        log_file: LogFile | None = None,
    ) -> None:
        self.function = function
        self._environment = dict(environment)
        self._idle: queue.Queue[_Instance] = queue.Queue()
        for _ in range(size):
            log = FunctionLog(log_file, function.label, function.name) if log_file else None
            started = time.perf_counter()
            with function_output(log), function_service(environment):
                handler = load_handler(function.code_dir, function.handler, environment)
            self._idle.put(_Instance(handler, log, (time.perf_counter() - started) * 1000))

    def invoke(self, event: dict[str, Any], request_id: str) -> Any:
        instance = self._idle.get()
        log = instance.log
        started = time.perf_counter()
        try:
            context = LambdaContext(
                function_name=self.function.name,
                memory_limit_in_mb=self.function.memory_mb,
                invoked_function_arn=self.function.arn,
                aws_request_id=request_id,
                deadline=time.monotonic() + self.function.timeout_s,
            )
            if log is not None:
                log.emit(f"START RequestId: {request_id} Version: $LATEST")
            with function_output(log), function_service(self._environment):
                return instance.handler(event, context)
        except Exception as error:
            if log is not None:
                log.emit(_error_report(error))
            raise
        finally:
            if log is not None:
                log.emit(f"END RequestId: {request_id}")
                log.emit(self._report(request_id, (time.perf_counter() - started) * 1000, instance))
            instance.init_ms = None
            self._idle.put(instance)

    def _report(self, request_id: str, duration_ms: float, instance: _Instance) -> str:
        fields = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {duration_ms:.2f} ms",
            f"Billed Duration: {math.ceil(duration_ms)} ms",
            f"Memory Size: {self.function.memory_mb} MB",
        ]
        if instance.init_ms is not None:
            fields.append(f"Init Duration: {instance.init_ms:.2f} ms")
        return "\t".join(fields)


def _error_report(error: BaseException) -> str:
    """The Python runtime's log line for an exception the handler let out."""
    summary = "".join(traceback.format_exception_only(error)).strip()
    stack = "".join(traceback.format_tb(error.__traceback__))
    return f"[ERROR] {summary}\nTraceback (most recent call last):\n{stack}".rstrip()


def lambda_environment(
    function: LambdaFunction, region: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    """The template's variables, the ones Lambda itself sets, then the local overrides."""
    return {
        **function.environment,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(function.timeout_s)),
        **overrides,
    }


# --------------------------------------------------------------------------- the gateway


@dataclass
class _Trace:
    """What one request's access log line needs from inside the gateway."""

    resource: str | None = None
    integration_ms: float | None = None


class Gateway:
    """An ASGI app serving one REST API's routes (under their own paths, e.g. `/api/...`)."""

    def __init__(
        self,
        api: RestApi,
        *,
        region: str,
        environment_overrides: Mapping[str, str],
        instances_per_function: int = DEFAULT_INSTANCES_PER_FUNCTION,
        log_file: LogFile | None = None,
        edge: WebAclFilter | None = None,
    ) -> None:
        self.api = api
        # The web ACL in front of the API (CloudFront's; locally, the origin's), if any.
        self.edge = edge
        self._bucket = TokenBucket(api.throttle) if api.throttle else None
        self._log_file = log_file
        self._access_log_stream = f"{api.logical_id}-{api.stage}-local"
        functions = {route.function.name: route.function for route in api.routes}
        self._instances = {
            name: FunctionInstances(
                function,
                lambda_environment(function, region, environment_overrides),
                instances_per_function,
                log_file,
            )
            for name, function in functions.items()
        }
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, len(functions) * instances_per_function),
            thread_name_prefix="lambda",
        )

    def routes(self) -> list[StarletteRoute]:
        """One Starlette route per API route prefix; matching and precedence happen here."""
        prefixes = sorted(
            {"/" + route.resource.strip("/").split("/")[0] for route in self.api.routes}
        )
        return [
            StarletteRoute(f"{prefix}/{{rest:path}}", self.handle, methods=HTTP_METHODS)
            for prefix in prefixes
        ] + [StarletteRoute(prefix, self.handle, methods=HTTP_METHODS) for prefix in prefixes]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def handle(self, request: Request) -> Response:
        if self.edge is not None:
            client_ip = request.client.host if request.client else "127.0.0.1"
            blocked = self.edge.blocked(request.url.path, request.headers, client_ip)
            if blocked is not None:
                # Answered at the edge: API Gateway never sees it, so no access log line.
                _, answer = blocked
                return Response(
                    answer.body,
                    status_code=answer.status,
                    media_type=answer.content_type,
                    headers=dict(answer.headers),
                )
        request_id = str(uuid.uuid4())
        received = time.time()
        started = time.perf_counter()
        trace = _Trace()
        response = await self._respond(request, request_id, trace)
        if self._log_file is not None and self.api.access_log is not None:
            context = {
                "requestId": request_id,
                "identity.sourceIp": request.client.host if request.client else "127.0.0.1",
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(received)),
                "requestTimeEpoch": str(int(received * 1000)),
                "httpMethod": request.method,
                "path": request.url.path,
                "resourcePath": trace.resource or "",
                "stage": self.api.stage,
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "status": str(response.status_code),
                "responseLength": response.headers.get("content-length", ""),
                "responseLatency": str(round((time.perf_counter() - started) * 1000)),
                "integrationLatency": (
                    "" if trace.integration_ms is None else str(round(trace.integration_ms))
                ),
                "error.responseType": response.headers.get("x-amzn-ErrorType", ""),
            }
            self._log_file.write(
                ACCESS_LOG_SOURCE,
                self.api.access_log.group,
                self._access_log_stream,
                self.api.access_log.line(context),
            )
        return response

    async def _respond(self, request: Request, request_id: str, trace: _Trace) -> Response:
        path = request.url.path
        found = self.api.route_for(request.method, path)
        if found is None:
            return self._gateway_error(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", request_id
            )
        if self._bucket is not None and not self._bucket.try_acquire():
            return self._gateway_error("THROTTLED", "Too Many Requests", request_id)
        route, path_parameters = found
        trace.resource = route.resource
        body = await _body_within(request, MAX_PAYLOAD_BYTES)
        if body is None:
            return self._gateway_error("REQUEST_TOO_LARGE", "Request Too Large", request_id)
        content_type = request.headers.get("content-type", "")
        if not is_binary(content_type, self.api.binary_media_types) and not _is_utf8(body):
            # A text body reaches the function as a string; bytes that are not UTF-8 cannot.
            return self._gateway_error(
                "BAD_REQUEST_BODY", "The request body is not valid UTF-8", request_id
            )
        event = proxy_event(
            request.method,
            path,
            resource=route.resource,
            path_parameters=path_parameters,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            query=list(request.query_params.multi_items()),
            body=body or None,
            stage=self.api.stage,
            source_ip=request.client.host if request.client else "127.0.0.1",
            request_id=request_id,
            binary_media_types=self.api.binary_media_types,
        )
        instances = self._instances[route.function.name]
        future = self._executor.submit(instances.invoke, event, request_id)
        timeout = min(INTEGRATION_TIMEOUT_S, route.function.timeout_s)
        integration_started = time.perf_counter()
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            return self._gateway_error(
                "INTEGRATION_TIMEOUT", "Endpoint request timed out", request_id
            )
        except Exception:  # the handler raised: Lambda reports an error, API Gateway a 502
            return self._gateway_error("DEFAULT_5XX", "Internal server error", request_id, 502)
        finally:
            trace.integration_ms = (time.perf_counter() - integration_started) * 1000
        return self._proxy_response(result, request_id)

    def _proxy_response(self, result: Any, request_id: str) -> Response:
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            return self._gateway_error("DEFAULT_5XX", "Internal server error", request_id, 502)
        headers: list[tuple[str, str]] = []
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(value)) for value in values)
        for name, value in (result.get("headers") or {}).items():
            if not any(existing.lower() == name.lower() for existing, _ in headers):
                headers.append((name, str(value)))
        headers.append(("x-amzn-RequestId", request_id))
        body = result.get("body") or ""
        content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        response = Response(content=content, status_code=result["statusCode"])
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in headers
            if k.lower() != "content-length"
        ] + [(b"content-length", str(len(content)).encode())]
        return response

    def _gateway_error(
        self, response_type: str, message: str, request_id: str, status: int | None = None
    ) -> Response:
        """API Gateway's own answer, shaped by the API's GatewayResponses when it has them."""
        default_status = status or _DEFAULT_STATUS.get(response_type, 500)
        family = "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX"
        configured = self.api.gateway_responses.get(
            response_type
        ) or self.api.gateway_responses.get(family)
        body = json.dumps({"message": message})
        answered = default_status
        if configured is not None:
            answered = configured.status or default_status
            if configured.template is not None:
                body = (
                    configured.template.replace("$context.error.messageString", json.dumps(message))
                    .replace("$context.error.message", message)
                    .replace("$context.requestId", request_id)
                )
        return Response(
            body,
            status_code=answered,
            media_type="application/json",
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": response_type},
        )


async def _body_within(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is over `limit` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
