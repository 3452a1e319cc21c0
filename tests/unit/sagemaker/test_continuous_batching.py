"""The worker's continuous batcher, driven step by step with a scripted engine: who joins the
running batch, who waits, and what a failure takes with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.emulate.sagemaker.batching import BatchResult, ContinuousBatcher


class ScriptedEngine:
    """A request is `{"steps": n, "rows": r}` (r defaults to 1): it finishes after n steps.
    `fail` breaks the next step."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.left: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.next_handle = 0
        self.fail = False

    @property
    def rows(self) -> int:
        return sum(self.sizes[handle] for handle in self.left)

    def add_request(self, data: Any) -> int:
        if data["steps"] < 1:
            raise ValueError("steps: must be at least 1")
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.left[handle] = data["steps"]
        self.sizes[handle] = data.get("rows", 1)
        return handle

    def step(self) -> dict[int, Any]:
        self.log.append(f"step with {sorted(self.left)}")
        if self.fail:
            raise RuntimeError("the model broke")
        for handle in self.left:
            self.left[handle] -= 1
        done = [handle for handle, left in self.left.items() if left == 0]
        for handle in done:
            del self.left[handle]
        return {handle: f"result {handle}" for handle in done}


def run(
    scenario: Callable[[ContinuousBatcher, list[ScriptedEngine], list[str]], Awaitable[None]],
    max_rows: int = 4,
) -> list[str]:
    log: list[str] = []
    engines: list[ScriptedEngine] = []

    def new_engine() -> ScriptedEngine:
        engines.append(ScriptedEngine(log))
        return engines[-1]

    def run_alone(data: Any) -> str:
        log.append(f"alone {data}")
        return "alone result"

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1) as executor:
            batcher = ContinuousBatcher(new_engine, run_alone, executor, max_rows)
            batcher.start()
            try:
                await scenario(batcher, engines, log)
            finally:
                await batcher.close()

    # A thread of its own: an earlier test in the session may leave a loop running on this one.
    with ThreadPoolExecutor(max_workers=1) as runner:
        runner.submit(asyncio.run, main()).result()
    return log


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def test_a_request_joins_the_running_batch_and_can_finish_first() -> None:
    async def scenario(batcher: ContinuousBatcher, _: Any, log: list[str]) -> None:
        long = asyncio.ensure_future(batcher.submit({"steps": 50}, "k"))
        await until(lambda: len(log) >= 2)  # the long request is decoding
        short = await batcher.submit({"steps": 2}, "k")
        assert not long.done()
        assert short == BatchResult("result 1", 2)
        assert (await long).batch_requests == 2

    log = run(scenario)
    assert "step with [0, 1]" in log


def test_requests_with_other_keys_share_the_batch_but_not_past_max_rows() -> None:
    async def scenario(batcher: ContinuousBatcher, engines: list[ScriptedEngine], _: Any) -> None:
        answers = await asyncio.gather(
            batcher.submit({"steps": 3, "rows": 2}, "greedy", size=2),
            batcher.submit({"steps": 3, "rows": 2}, "sampled", size=2),
            batcher.submit({"steps": 1}, "greedy", size=1),
        )
        assert [answer.batch_requests for answer in answers] == [2, 2, 1]

    log = run(scenario, max_rows=4)
    assert log[0] == "step with [0, 1]"  # four rows: the third request waits
    assert "step with [2]" in log


def test_a_request_that_must_run_alone_waits_for_the_batch_and_newcomers_wait_for_it() -> None:
    async def scenario(batcher: ContinuousBatcher, _: Any, log: list[str]) -> None:
        first = asyncio.ensure_future(batcher.submit({"steps": 3}, "k"))
        await until(lambda: len(log) >= 1)
        seeded = asyncio.ensure_future(batcher.submit("seeded", None))
        await asyncio.sleep(0)
        later = asyncio.ensure_future(batcher.submit({"steps": 1}, "k"))
        assert (await seeded) == BatchResult("alone result", 1)
        await asyncio.gather(first, later)

    log = run(scenario)
    alone = log.index("alone seeded")
    assert all(entry.startswith("step with [0]") for entry in log[:alone])
    assert log[alone + 1 :] == ["step with [1]"]


def test_a_refused_body_fails_only_its_own_request() -> None:
    async def scenario(batcher: ContinuousBatcher, _: Any, __: Any) -> None:
        good, bad = await asyncio.gather(
            batcher.submit({"steps": 2}, "k"),
            batcher.submit({"steps": 0}, "k"),
            return_exceptions=True,
        )
        assert good == BatchResult("result 0", 1)
        assert isinstance(bad, ValueError) and "steps" in str(bad)

    run(scenario)


def test_a_model_failure_fails_the_batch_and_the_next_request_gets_a_fresh_engine() -> None:
    async def scenario(batcher: ContinuousBatcher, engines: list[ScriptedEngine], _: Any) -> None:
        engines[0].fail = True
        with pytest.raises(RuntimeError, match="the model broke"):
            await batcher.submit({"steps": 2}, "k")
        assert (await batcher.submit({"steps": 1}, "k")).result == "result 0"
        assert len(engines) == 2

    run(scenario)
