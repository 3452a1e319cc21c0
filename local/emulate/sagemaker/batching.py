"""Dynamic batching of concurrent requests in a model worker.

Concurrent requests that share parameters run as one `predict_fn` call, for models whose
forward pass takes a batch (the classifier). A generator's engine decodes one prompt at a
time, so merging would only make the first request wait for the others: its artifact says so
(`merges_requests` in its inference.py) and the worker runs each request alone.

`predict_fn` takes a list of inputs with one shared parameter set, so requests with equal
parameters can be merged. While the model is busy new requests queue, and the next model call
takes every queued request with the same parameters (up to `max_batch_size` inputs). When the
last call served several requests (traffic is concurrent), the first waiting request also opens
a short collection window for companions; a lone client never pays that wait.

A request that carries a `seed` is never merged: a seeded sample must be reproducible, and a
batch draws all its rows from one random stream, so the same seed would give different text
depending on its neighbours.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[list[Any]], Sequence[Any]]
"""Runs the model once on several mergeable requests; returns one result per request."""


@dataclass(frozen=True)
class BatchingConfig:
    """How long to hold the first request for companions, and how many inputs one batch takes.

    The window only applies under concurrent traffic; it must outlast the round trip in which
    the clients of the previous batch send their next requests, or batches alternate between
    one early request and the rest.
    """

    max_batch_size: int = 16
    window_ms: float = 25.0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.window_ms < 0:
            raise ValueError("window_ms must not be negative")


@dataclass(frozen=True)
class BatchResult:
    """The result for one request, and how many requests shared its model call."""

    result: Any
    batch_requests: int


@dataclass
class _Pending:
    request: Any
    key: str | None
    """Requests with equal keys may merge; None never merges."""
    size: int
    """How many inputs the request carries (a batch holds at most max_batch_size inputs)."""
    future: asyncio.Future[BatchResult] = field(repr=False)


def batch_key(parameters: Mapping[str, Any] | None) -> str | None:
    """Canonical form of the parameters, or None for seeded requests (never merged)."""
    if parameters is not None and parameters.get("seed") is not None:
        return None
    return json.dumps(parameters or {}, sort_keys=True, default=str)


class _Batcher:
    """What both batchers share: a queue that `submit` fills and a task that serves it.

    Created and used inside one running event loop; call `start()` there and `close()` at the
    end. The model runs in `executor` (a single thread) so the loop keeps accepting requests.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._pending: list[_Pending] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in [*self._pending, *self._in_flight()]:
            item.future.cancel()

    async def submit(self, request: Any, key: str | None, size: int = 1) -> BatchResult:
        """Queue one request; resolves to its own result once the model has answered it.

        Requests with the same `key` may share a model call; `None` runs the request alone.
        """
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, key, size, future))
        self._arrived.set()
        return await future

    async def _serve_forever(self) -> None:
        raise NotImplementedError

    def _in_flight(self) -> list[_Pending]:
        """Requests taken from the queue and not answered yet."""
        return []


class DynamicBatcher(_Batcher):
    """Merges concurrent `submit` calls into model calls run one at a time on `executor`."""

    def __init__(self, run_batch: RunBatch, executor: Executor, config: BatchingConfig) -> None:
        super().__init__(executor)
        self._run_batch = run_batch
        self._config = config
        self._last_batch_requests = 0

    async def _serve_forever(self) -> None:
        while True:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._collect_companions(self._pending[0])
            batch = self._take_batch()
            await self._run(batch)

    async def _collect_companions(self, first: _Pending) -> None:
        """Under concurrent traffic, hold the first request up to the window for companions."""
        if first.key is None or self._config.window_ms == 0 or self._last_batch_requests < 2:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.window_ms / 1000
        while self._queued_inputs(first.key) < self._config.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _queued_inputs(self, key: str) -> int:
        return sum(item.size for item in self._pending if item.key == key)

    def _take_batch(self) -> list[_Pending]:
        """The oldest request plus, in arrival order, the requests that fit with it."""
        first = self._pending[0]
        batch = [first]
        size = first.size
        if first.key is not None:
            for item in self._pending[1:]:
                if item.key == first.key and size + item.size <= self._config.max_batch_size:
                    batch.append(item)
                    size += item.size
        taken = {id(item) for item in batch}
        self._pending = [item for item in self._pending if id(item) not in taken]
        return [item for item in batch if not item.future.cancelled()]

    async def _run(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        self._last_batch_requests = len(batch)
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self._run_batch, [item.request for item in batch]
            )
        except ValueError as error:
            if len(batch) == 1:
                _fail(batch, error)
                return
            # One request's input was refused: rerun each alone so only that request fails.
            for item in batch:
                await self._run([item])
            return
        except Exception as error:
            _fail(batch, error)
            return
        if len(results) != len(batch):
            _fail(batch, RuntimeError(f"{len(results)} results for {len(batch)} requests"))
            return
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(BatchResult(result, len(batch)))


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
