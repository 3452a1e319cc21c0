"""The SageMaker Runtime emulator: `InvokeEndpoint` over HTTP on 127.0.0.1.

It hosts every endpoint the SAM templates define (see `local.emulate.sagemaker.endpoints`), one
worker process per variant (see `local.emulate.sagemaker.worker`), and answers the real wire API
so that an unmodified boto3 `sagemaker-runtime` client with `endpoint_url=emulator.url` works:
weighted variant choice (seedable), `TargetVariant` pinning, the
`x-Amzn-Invoked-Production-Variant` response header, data capture where the endpoint config
enables it (`local.emulate.sagemaker.capture`, under `capture_root`), shadow variants, and
SageMaker's error shapes below. A shadow variant (`ShadowProductionVariants`) gets a copy of
each request to the production variant (its share: `EndpointSpec.shadow_share`), sent beside
it; the caller gets the production variant's answer alone and never waits for the shadow, whose
answer is captured under the shadow's name with the same InferenceId, and whose failure fails
nothing but its own metrics line (`local.emulate.sagemaker.metrics`, under `metrics_root`). It
also answers the control plane's DescribeEndpoint (a boto3 `sagemaker` client with the same
`endpoint_url`), which the health check uses. Errors of InvokeEndpoint:

- unknown endpoint or variant, payload too large: `ValidationError` (400);
- the model answered 4xx/5xx, or timed out: `ModelError` (424, with `OriginalStatusCode`,
  `OriginalMessage`, `LogStreamArn`);
- a realtime variant's worker is down or restarting: `ServiceUnavailable` (503);
- a serverless variant's worker is down or still loading: `ModelNotReadyException` (429);
- a serverless endpoint at its MaxConcurrency: `ThrottlingException` (429).

Example::

    with Emulator(profile="smoke") as emulator:
        runtime = emulator.client()
        reply = runtime.invoke_endpoint(
            EndpointName="pressroom-dev-headline", TargetVariant="B",
            ContentType="application/json", Body=b'{"inputs": "Markets rally"}')
        print(reply["InvokedProductionVariant"], reply["Body"].read())
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from local.cfn import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from local.emulate.sagemaker import wire
from local.emulate.sagemaker.batching import BatchingConfig
from local.emulate.sagemaker.capture import CaptureWriter, Exchange
from local.emulate.sagemaker.endpoints import (
    EndpointSpec,
    VariantSpec,
    endpoint_specs,
    load_local_stacks,
)
from local.emulate.sagemaker.metrics import Invocation, MetricsWriter
from local.emulate.sagemaker.supervisor import RestartPolicy, WorkerState, WorkerSupervisor
from local.emulate.sagemaker.worker import BATCH_SIZE_HEADER
from local.paths import DEFAULT_CAPTURE_ROOT, DEFAULT_METRICS_ROOT, DEFAULT_MODELS_ROOT
from local.plumbing.logfile import LogFile
from local.plumbing.server import BackgroundServer, Service
from local.registry import DEFAULT_REGISTRY_ROOT

INVOCATION_TIMEOUT_S = 60.0
"""SageMaker gives a container 60 seconds to answer an invocation."""
LOG_SOURCE = "sagemaker"
logger = logging.getLogger(__name__)
StartupProgress = Callable[[int, int, str], None]
"""`(ready, total, label)`: called with `(0, total, "")` when the workers start loading, then
once per worker as it is ready, e.g. `(1, 3, "pressroom-dev-headline/B (headline-lite)")`."""
_FORWARDED_HEADERS = (
    "content-type",
    "accept",
    wire.CUSTOM_ATTRIBUTES.lower(),
    wire.INFERENCE_ID.lower(),
)


@dataclass
class VariantStats:
    """What one variant answered since the emulator started."""

    invocations: int = 0
    model_errors: int = 0
    rejected: int = 0
    """Requests answered ServiceUnavailable / ModelNotReady / Throttling without reaching it."""
    batch_sizes: Counter[int] = field(default_factory=Counter)
    """How many requests shared each model call, counted per answered request."""

    @property
    def max_batch_size(self) -> int:
        return max(self.batch_sizes, default=0)


@dataclass
class _Variant:
    endpoint: EndpointSpec
    spec: VariantSpec
    supervisor: WorkerSupervisor
    stats: VariantStats = field(default_factory=VariantStats)
    in_flight: int = 0


class Emulator(Service):
    """SageMaker Runtime on 127.0.0.1, configured from the templates; a context manager.

    `profile` picks `models_root/<profile>/<model-name>/model` for each variant; a variant
    whose model data URL names a registered version (an experiment round's challenger) serves
    it from the local model registry at `registry_root`.
    `templates` defaults to `template-root.yaml` (or the app templates before it exists);
    `parameter_overrides` go to every template that declares them (e.g. `HostingMode`,
    `VariantAWeight`). `seed` makes the weighted variant choice reproducible.
    `threads_per_worker` (default: the CPU cores shared out among the workers) caps each
    worker's torch threads, since all variants share this machine's cores. `only_endpoints`
    hosts a subset of the templates' endpoints (by name). `log_file` receives every line the
    workers write, as CloudWatch would from the endpoint's containers (each worker also keeps
    its own file under `log_dir`); `on_progress` follows the start-up (see `StartupProgress`).
    `capture_root` receives the data capture of endpoints whose config enables it, laid out as
    SageMaker lays it out under `DestinationS3Uri` (None: capture nothing); `seed` also makes
    the capture sampling reproducible. `metrics_root` receives one line per invocation of the
    endpoints that have a shadow variant, production and shadow (None: none are kept).
    Single use: start it once (or enter it once) and stop it at the end.
    """

    def __init__(
        self,
        profile: str = "smoke",
        *,
        models_root: Path = DEFAULT_MODELS_ROOT,
        registry_root: Path = DEFAULT_REGISTRY_ROOT,
        templates: Sequence[Path] | None = None,
        parameter_overrides: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        batching: BatchingConfig | None = None,
        restart: RestartPolicy | None = None,
        log_dir: Path | None = None,
        startup_timeout_s: float = 600.0,
        invocation_timeout_s: float = INVOCATION_TIMEOUT_S,
        threads_per_worker: int | None = None,
        only_endpoints: Collection[str] | None = None,
        log_file: LogFile | None = None,
        on_progress: StartupProgress | None = None,
        capture_root: Path | None = DEFAULT_CAPTURE_ROOT,
        metrics_root: Path | None = DEFAULT_METRICS_ROOT,
    ) -> None:
        stacks = load_local_stacks(profile, models_root, templates, parameter_overrides)
        self.endpoints: dict[str, EndpointSpec] = {
            spec.name: spec for spec in endpoint_specs(stacks, profile, models_root, registry_root)
        }
        if only_endpoints is not None:
            unknown = sorted(set(only_endpoints) - set(self.endpoints))
            if unknown:
                raise ValueError(
                    f"only_endpoints: no endpoint {', '.join(unknown)} in the templates "
                    f"(they define {', '.join(self.endpoints)})"
                )
            self.endpoints = {n: s for n, s in self.endpoints.items() if n in only_endpoints}
        self.region = region
        self.account_id = account_id
        self._host = host
        self._requested_port = port
        self._rng = random.Random(seed)  # noqa: S311 - traffic splitting, not security
        self.capture_root = capture_root
        self._capture = None if capture_root is None else CaptureWriter(capture_root, seed)
        self.metrics_root = metrics_root
        self._metrics = None if metrics_root is None else MetricsWriter(metrics_root)
        # Shadow copies still running (they outlive the request they copy).
        self._shadows_running = 0
        self._shadows_done = threading.Condition()
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._startup_timeout_s = startup_timeout_s
        self._invocation_timeout_s = invocation_timeout_s
        self._log_file = log_file
        self._on_progress = on_progress
        log_root = log_dir or models_root.parent / "logs" / "sagemaker"
        variant_count = sum(len(endpoint.hosted) for endpoint in self.endpoints.values())
        self.threads_per_worker = threads_per_worker or max(
            1, (os.cpu_count() or 1) // max(1, variant_count)
        )
        self._variants: dict[tuple[str, str], _Variant] = {
            (endpoint.name, variant.name): _Variant(
                endpoint,
                variant,
                WorkerSupervisor(
                    f"{endpoint.name}/{variant.name}",
                    variant.artifact_dir,
                    log_root / endpoint.name / f"{variant.name}.log",
                    batching or BatchingConfig(),
                    restart or RestartPolicy(),
                    self.threads_per_worker,
                    self._worker_output(endpoint.name, variant.name),
                ),
            )
            for endpoint in self.endpoints.values()
            for variant in endpoint.hosted
        }
        self._started_at = time.time()
        self._server: BackgroundServer | None = None

    # ---- lifecycle

    def start(self) -> None:
        """Start every worker, wait until all answer /ping, then serve HTTP."""
        missing = sorted(
            {
                str(v.spec.artifact_dir)
                for v in self._variants.values()
                if not v.spec.artifact_dir.is_dir()
            }
        )
        if missing:
            raise FileNotFoundError(
                "model artifact(s) not built: "
                + ", ".join(missing)
                + " (build them with `pressroom build-all --profile <profile>`)"
            )
        try:
            for variant in self._variants.values():
                variant.supervisor.start()
            total = len(self._variants)
            self._progress(0, total, "")
            for ready, variant in enumerate(self._variants.values(), start=1):
                variant.supervisor.wait_ready(self._startup_timeout_s)
                label = f"{variant.supervisor.label} ({variant.spec.model_name})"
                self._progress(ready, total, label)
            self._serve_http()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        for variant in self._variants.values():
            variant.supervisor.stop()

    def _progress(self, ready: int, total: int, label: str) -> None:
        if self._on_progress is not None:
            self._on_progress(ready, total, label)

    def _worker_output(self, endpoint: str, variant: str) -> Callable[[int, str], None] | None:
        """Where a worker's lines go besides its own file: the endpoint's log group."""
        log_file = self._log_file
        if log_file is None:
            return None
        group = f"/aws/sagemaker/Endpoints/{endpoint}"

        def write(pid: int, line: str) -> None:
            log_file.write(LOG_SOURCE, group, f"{variant}/local-{pid}", line)

        return write

    def _serve_http(self) -> None:
        self._server = BackgroundServer(
            self._build_app(),
            self._host,
            self._requested_port,
            name="the SageMaker emulator's HTTP server",
            lifespan="on",
        )
        self._server.start()

    # ---- what callers use

    @property
    def url(self) -> str:
        """Base URL to pass as boto3's `endpoint_url`."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.origin

    @property
    def client_environment(self) -> dict[str, str]:
        """botocore's per-service endpoint variables that send SageMaker calls here."""
        return {
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url,
        }

    @property
    def endpoint_names(self) -> list[str]:
        return list(self.endpoints)

    def client(self, **config: Any) -> Any:
        """A boto3 `sagemaker-runtime` client pointed at the emulator (extra botocore Config
        options as keyword arguments, e.g. `retries={"total_max_attempts": 1}`)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id="x",
            aws_secret_access_key="x",  # noqa: S106 - the emulator checks no signature
            config=Config(**config),
        )

    def stats(self, endpoint: str, variant: str) -> VariantStats:
        return self._variant(endpoint, variant).stats

    def worker_state(self, endpoint: str, variant: str) -> WorkerState:
        return self._variant(endpoint, variant).supervisor.state

    def worker_restarts(self, endpoint: str, variant: str) -> int:
        """How many times the variant's worker has been restarted after dying."""
        return self._variant(endpoint, variant).supervisor.restarts

    def log_path(self, endpoint: str, variant: str) -> Path:
        return self._variant(endpoint, variant).supervisor.log_path

    def kill_worker(self, endpoint: str, variant: str) -> int:
        """Fault injection: SIGKILL a variant's worker (it restarts); returns the killed pid."""
        return self._variant(endpoint, variant).supervisor.kill()

    def wait_for_shadows(self, timeout_s: float = 120.0) -> None:
        """Block until every shadow copy sent so far has been answered (or has failed)."""
        with self._shadows_done:
            if not self._shadows_done.wait_for(lambda: self._shadows_running == 0, timeout_s):
                raise TimeoutError(
                    f"{self._shadows_running} shadow request(s) still running after {timeout_s} s"
                )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every variant's worker is ready again (e.g. after `kill_worker`)."""
        for variant in self._variants.values():
            variant.supervisor.wait_ready(timeout_s)

    def _variant(self, endpoint: str, variant: str) -> _Variant:
        try:
            return self._variants[(endpoint, variant)]
        except KeyError:
            raise KeyError(f"no variant {variant!r} on endpoint {endpoint!r}") from None

    # ---- the HTTP API

    def _build_app(self) -> Starlette:
        state: dict[str, httpx.AsyncClient] = {}

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            async with httpx.AsyncClient(limits=limits) as client:
                state["client"] = client
                yield

        async def invoke_endpoint(request: Request) -> Response:
            return await self._invoke(request, state["client"])

        async def control_plane(request: Request) -> Response:
            operation = request.headers.get(wire.TARGET, "").removeprefix("SageMaker.")
            if operation != "DescribeEndpoint":
                return wire.control_plane_error(
                    "UnknownOperationException", f"the emulator does not serve {operation!r}"
                )
            try:
                name = str(json.loads(await request.body())["EndpointName"])
            except (ValueError, KeyError, TypeError):
                return wire.control_plane_error("ValidationException", "EndpointName is required")
            return self._describe_endpoint(name)

        return Starlette(
            routes=[
                Route("/endpoints/{endpoint_name}/invocations", invoke_endpoint, methods=["POST"]),
                Route("/", control_plane, methods=["POST"]),
            ],
            lifespan=lifespan,
        )

    def _describe_endpoint(self, name: str) -> Response:
        """DescribeEndpoint: InService while every variant's worker is ready, else Updating."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return wire.control_plane_error(
                "ValidationException", f'Could not find endpoint "{name}".'
            )
        summaries: list[dict[str, Any]] = []
        shadow_summaries: list[dict[str, Any]] = []
        all_ready = True
        for spec in endpoint.hosted:
            supervisor = self._variants[(name, spec.name)].supervisor
            ready = supervisor.state is WorkerState.READY
            all_ready = all_ready and ready
            summary: dict[str, Any] = {
                "VariantName": spec.name,
                "CurrentWeight": spec.weight,
                "DesiredWeight": spec.weight,
            }
            if spec.max_concurrency is None:
                summary["CurrentInstanceCount"] = 1 if ready else 0
                summary["DesiredInstanceCount"] = 1
            else:
                summary["CurrentServerlessConfig"] = {
                    "MemorySizeInMB": spec.memory_mb,
                    "MaxConcurrency": spec.max_concurrency,
                }
            if not ready:
                summary["VariantStatus"] = [
                    {
                        "Status": "Creating",
                        "StatusMessage": f"model container {supervisor.state.value}",
                        "StartTime": time.time(),
                    }
                ]
            (shadow_summaries if spec is endpoint.shadow else summaries).append(summary)
        shadows = {"ShadowProductionVariants": shadow_summaries} if shadow_summaries else {}
        return wire.control_plane_response(
            {
                "EndpointName": name,
                "EndpointArn": f"arn:aws:sagemaker:{self.region}:{self.account_id}:endpoint/{name}",
                "EndpointConfigName": endpoint.config_name,
                "ProductionVariants": summaries,
                **shadows,
                "EndpointStatus": "InService" if all_ready else "Updating",
                "CreationTime": self._started_at,
                "LastModifiedTime": self._started_at,
            }
        )

    async def _invoke(self, request: Request, client: httpx.AsyncClient) -> Response:
        name = request.path_params["endpoint_name"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return wire.validation_error(f"Endpoint {name} of account {self.account_id} not found.")
        body = await request.body()
        limit = wire.MAX_SERVERLESS_PAYLOAD_BYTES if endpoint.serverless else wire.MAX_PAYLOAD_BYTES
        if len(body) > limit:
            return wire.validation_error(
                f"Received payload size of {len(body)} bytes exceeds the limit of {limit} bytes."
            )
        # When SageMaker received the request: the capture line's inferenceTime and hour.
        received_at = datetime.now(UTC)
        target = request.headers.get(wire.TARGET_VARIANT)
        if target is not None:
            if target not in {variant.name for variant in endpoint.variants}:
                return wire.validation_error(
                    f"Variant {target} not found for endpoint {name}. Valid variants: "
                    + ", ".join(variant.name for variant in endpoint.variants)
                )
            chosen = self._variants[(name, target)]
        else:
            weights = [variant.weight for variant in endpoint.variants]
            if sum(weights) <= 0:
                return wire.service_unavailable(
                    f"Endpoint {name} has no variant with traffic weight."
                )
            picked = self._rng.choices(endpoint.variants, weights=weights)[0]
            chosen = self._variants[(name, picked.name)]
        if endpoint.shadow is not None and self._rng.random() < endpoint.shadow_share:
            shadow = self._variants[(name, endpoint.shadow.name)]
            self._send_to_shadow(shadow, request, body, client, received_at)
        return await self._answer(chosen, request, body, client, received_at)

    async def _answer(
        self,
        variant: _Variant,
        request: Request,
        body: bytes,
        client: httpx.AsyncClient,
        received_at: datetime,
    ) -> Response:
        """Forward to `variant`, then capture its answer and, on an endpoint with a shadow,
        record the invocation's metrics."""
        started = time.perf_counter()
        response = await self._forward(variant, request, body, client)
        if self._metrics is not None and variant.endpoint.shadow is not None:
            self._metrics.record(
                Invocation(
                    endpoint=variant.endpoint.name,
                    variant=variant.spec.name,
                    at=received_at,
                    status=response.status_code,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    inference_id=request.headers.get(wire.INFERENCE_ID),
                )
            )
        if response.status_code == 200:
            self._capture_exchange(variant, request, body, response, received_at)
        return response

    def _send_to_shadow(
        self,
        shadow: _Variant,
        request: Request,
        body: bytes,
        client: httpx.AsyncClient,
        received_at: datetime,
    ) -> None:
        """Send the shadow its copy of the request beside the production variant; the caller
        never waits for it, and whatever it answers, or however it fails, goes no further
        than its capture, its metrics and its log."""

        async def copy() -> None:
            try:
                await self._answer(shadow, request, body, client, received_at)
            except Exception as error:  # a shadow's failure must never reach a caller
                self._log_shadow_failure(shadow, error)
            finally:
                with self._shadows_done:
                    self._shadows_running -= 1
                    self._shadows_done.notify_all()

        with self._shadows_done:
            self._shadows_running += 1
        task = asyncio.get_running_loop().create_task(copy())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    def _capture_exchange(
        self, variant: _Variant, request: Request, body: bytes, response: Response, at: datetime
    ) -> None:
        spec = variant.endpoint.capture
        if spec is None or self._capture is None:
            return
        exchange = Exchange(
            endpoint=variant.endpoint.name,
            variant=variant.spec.name,
            request_body=body,
            request_content_type=request.headers.get("content-type", "application/octet-stream"),
            response_body=bytes(response.body),
            response_content_type=response.headers.get("content-type", "application/json"),
            inference_id=request.headers.get(wire.INFERENCE_ID),
            at=at,
        )
        self._capture.capture(spec, exchange)

    async def _forward(
        self, variant: _Variant, request: Request, body: bytes, client: httpx.AsyncClient
    ) -> Response:
        endpoint, spec = variant.endpoint, variant.spec
        port = variant.supervisor.port
        if port is None:
            variant.stats.rejected += 1
            return self._unavailable(variant)
        if spec.max_concurrency is not None and variant.in_flight >= spec.max_concurrency:
            variant.stats.rejected += 1
            return wire.throttled(
                f"Endpoint {endpoint.name} is at its maximum concurrency ({spec.max_concurrency})."
            )
        headers = {
            key: value for key, value in request.headers.items() if key in _FORWARDED_HEADERS
        }
        variant.in_flight += 1
        try:
            answer = await client.post(
                f"http://127.0.0.1:{port}/invocations",
                content=body,
                headers=headers,
                timeout=self._invocation_timeout_s,
            )
        except httpx.TimeoutException:
            variant.stats.model_errors += 1
            return self._model_error(variant, None, None, "timed out while waiting for a response")
        except httpx.TransportError:
            # The worker died under this request; its supervisor restarts it.
            variant.stats.rejected += 1
            return self._unavailable(variant)
        finally:
            variant.in_flight -= 1
        variant.stats.invocations += 1
        if answer.status_code >= 400:
            variant.stats.model_errors += 1
            kind = "client" if answer.status_code < 500 else "server"
            return self._model_error(
                variant,
                answer.status_code,
                answer.text,
                f'received {kind} error ({answer.status_code}) with message "{answer.text}"',
            )
        batch_size = answer.headers.get(BATCH_SIZE_HEADER, "1")
        variant.stats.batch_sizes[int(batch_size)] += 1
        reply_headers = {
            wire.INVOKED_VARIANT: spec.name,
            wire.REQUEST_ID: wire.new_request_id(),
            BATCH_SIZE_HEADER: batch_size,
        }
        if wire.CUSTOM_ATTRIBUTES in answer.headers:
            reply_headers[wire.CUSTOM_ATTRIBUTES] = answer.headers[wire.CUSTOM_ATTRIBUTES]
        return Response(
            answer.content,
            status_code=200,
            media_type=answer.headers.get("content-type", "application/json"),
            headers=reply_headers,
        )

    def _log_shadow_failure(self, shadow: _Variant, error: Exception) -> None:
        line = f"shadow request to variant {shadow.spec.name} failed: {error!r}"
        if self._log_file is None:
            logger.warning("%s: %s", shadow.endpoint.name, line)
            return
        group = f"/aws/sagemaker/Endpoints/{shadow.endpoint.name}"
        self._log_file.write(LOG_SOURCE, group, f"{shadow.spec.name}/emulator", line)

    def _unavailable(self, variant: _Variant) -> Response:
        where = f"variant {variant.spec.name} of endpoint {variant.endpoint.name}"
        if variant.spec.max_concurrency is not None:
            return wire.model_not_ready(
                f"Model for {where} is not ready: its resources are still being provisioned. "
                "Retry the request."
            )
        return wire.service_unavailable(
            f"The model container of {where} is not running (restarting); retry the request."
        )

    def _model_error(
        self, variant: _Variant, status: int | None, original: str | None, what: str
    ) -> Response:
        endpoint = variant.endpoint.name
        log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
        log_stream_arn = (
            f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{log_group}"
            f":log-stream:{variant.spec.name}/local-{variant.supervisor.pid or 0}"
        )
        return wire.model_error(
            f"The model of variant {variant.spec.name} {what}. "
            f"See {variant.supervisor.log_path} for more information.",
            original_status=status,
            original_message=original,
            log_stream_arn=log_stream_arn,
        )
