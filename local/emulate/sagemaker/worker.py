"""The model container of one production variant, run as its own process.

SageMaker runs one container per variant and talks to it through the container contract
(`GET /ping`, `POST /invocations`); this process is that container for a local variant. It loads
the unpacked artifact through its own `code/inference.py` (imported by path, exactly the file
the Hugging Face DLC would run), then serves the contract on 127.0.0.1, one model call at a
time; concurrent requests that share parameters run as one `predict_fn` call where the
artifact's model gains from it (`merges_requests` in its inference.py: the classifier).

Start-up handshake with the supervisor: the worker loads the model first, then binds a free
port and writes it as one line to the file descriptor given by `--port-fd`; a worker that dies
while loading closes that descriptor unwritten, which the supervisor reads as a failed start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.emulate.sagemaker.batching import BatchingConfig, DynamicBatcher, batch_key
from local.plumbing.server import tcp_listener

logger = logging.getLogger("pressroom.sagemaker.worker")

BATCH_SIZE_HEADER = "X-Pressroom-Batch-Size"
"""Local diagnostic: how many requests shared the model call that answered this one."""
DEFAULT_CONTENT_TYPE = "application/json"
_HOOKS = ("model_fn", "input_fn", "predict_fn", "output_fn")


def load_inference_module(model_dir: Path) -> ModuleType:
    """Import `<model_dir>/code/inference.py` by path, as the inference toolkit does."""
    code_dir = model_dir / "code"
    script = code_dir / "inference.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: the artifact has no code/inference.py")
    # The toolkit puts code/ on sys.path so inference.py can import its sibling modules.
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location("inference", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    missing = [hook for hook in _HOOKS if not callable(getattr(module, hook, None))]
    if missing:
        raise AttributeError(f"{script}: missing hook(s) {', '.join(missing)}")
    return module


@dataclass(frozen=True)
class _Request:
    """A decoded request, with what batching needs to know about it."""

    data: Any
    inputs: list[Any] | None
    """The request's inputs as a list when it can be merged with others, else None."""


class InferenceHandler:
    """The four hooks of one loaded artifact, plus merging of compatible requests."""

    def __init__(self, model_dir: Path) -> None:
        self.module = load_inference_module(model_dir)
        self.model = self.module.model_fn(str(model_dir))

    def decode(self, body: bytes, content_type: str) -> _Request:
        data = self.module.input_fn(body, content_type)
        return _Request(data, _mergeable_inputs(data))

    def encode(self, prediction: Any, accept: str) -> str | bytes:
        result: str | bytes = self.module.output_fn(prediction, accept)
        return result

    def predict(self, data: Any) -> Any:
        return self.module.predict_fn(data, self.model)

    def merges_requests(self) -> bool:
        """Whether requests gain from sharing a model call, as the artifact's inference.py
        says (an artifact that does not say: yes)."""
        hook = getattr(self.module, "merges_requests", None)
        return bool(hook(self.model)) if hook is not None else True

    def predict_many(self, requests: list[_Request]) -> list[Any]:
        """One prediction per request; several requests share one `predict_fn` call."""
        if len(requests) == 1:
            return [self.predict(requests[0].data)]
        merged_inputs = [value for request in requests for value in request.inputs or []]
        merged = {**requests[0].data, "inputs": merged_inputs}
        outputs = list(self.module.predict_fn(merged, self.model))
        predictions, start = [], 0
        for request in requests:
            end = start + len(request.inputs or [])
            predictions.append(outputs[start:end])
            start = end
        return predictions


def _mergeable_inputs(data: Any) -> list[Any] | None:
    """Inputs of a plain `{"inputs", "parameters"?}` request; anything else runs alone so that
    `predict_fn` sees (and rejects) exactly what was sent."""
    if not isinstance(data, dict) or not set(data) <= {"inputs", "parameters"}:
        return None
    inputs = data.get("inputs")
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, list) and inputs:
        return inputs
    return None


def _request_key(request: _Request) -> str | None:
    if request.inputs is None:
        return None
    parameters = request.data.get("parameters")
    return batch_key(parameters) if isinstance(parameters, dict) or parameters is None else None


def _error_status(error: ValueError) -> int:
    """The toolkit's convention: a ValueError is the client's fault; 415 for media types."""
    return 415 if "ContentType" in type(error).__name__ else 400


def build_app(handler: InferenceHandler, batching: BatchingConfig) -> Starlette:
    """The container contract over one loaded handler."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
    if not handler.merges_requests():
        batching = BatchingConfig(max_batch_size=1, window_ms=0)
    batcher = DynamicBatcher(handler.predict_many, executor, batching)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)

    async def ping(_: Request) -> Response:
        return Response(status_code=200)

    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", DEFAULT_CONTENT_TYPE)
        accept = request.headers.get("accept", DEFAULT_CONTENT_TYPE)
        try:
            decoded = handler.decode(await request.body(), content_type)
            size = len(decoded.inputs or [None])
            answer = await batcher.submit(decoded, _request_key(decoded), size)
            body = handler.encode(answer.result, accept)
        except ValueError as error:
            return _error(_error_status(error), error)
        except Exception as error:
            logger.exception("inference failed")
            return _error(500, error)
        media_type = DEFAULT_CONTENT_TYPE if accept in ("", "*/*") else accept
        return Response(
            body,
            media_type=media_type,
            headers={BATCH_SIZE_HEADER: str(answer.batch_requests)},
        )

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def _error(status: int, error: Exception) -> Response:
    """The error body of the inference toolkit's model server: code, type and message."""
    return JSONResponse(
        {"code": status, "type": type(error).__name__, "message": str(error)}, status_code=status
    )


def _exit_with_parent() -> None:
    """Exit when stdin (a pipe the supervisor never writes) closes: the emulator is gone."""
    sys.stdin.buffer.read()
    os._exit(0)


def serve(model_dir: Path, port_fd: int, batching: BatchingConfig) -> None:
    """Load the model, announce the port on `port_fd`, serve until SIGTERM or parent exit."""
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    started = time.perf_counter()
    handler = InferenceHandler(model_dir)
    logger.info("loaded %s in %.1fs", model_dir, time.perf_counter() - started)
    listener = tcp_listener("127.0.0.1", 0)
    listener.listen(256)
    with os.fdopen(port_fd, "w") as announce:
        announce.write(f"{listener.getsockname()[1]}\n")
    config = uvicorn.Config(
        build_app(handler, batching), log_level="warning", access_log=False, lifespan="on"
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port-fd", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=BatchingConfig.max_batch_size)
    parser.add_argument("--batch-window-ms", type=float, default=BatchingConfig.window_ms)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.model_dir, args.port_fd, BatchingConfig(args.max_batch_size, args.batch_window_ms))


if __name__ == "__main__":
    main()
