"""The continuous-batching decode loop: the same headlines as Hugging Face's `generate()`, for
every row however the batch around it comes and goes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import (
    GenerationMixin,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from models.serving.inference import (
    DecodeBatch,
    GenerationParameters,
    InvalidRequestError,
    LoadedModel,
    WordFirst,
    continuation,
    generate,
    headline_context_ids,
    headline_prompt_ids,
    model_fn,
    warp,
)
from training.artifacts import Artifact

pytestmark = pytest.mark.slow

PROMPTS = ["Government announces", "Stocks fall as", "Man Utd 2-1 Chelsea", "Stock", "東京."]
GREEDY = GenerationParameters(max_new_tokens=8, do_sample=False, return_full_text=False)


@pytest.fixture(scope="module")
def generator(smoke_artifacts: dict[str, Artifact]) -> LoadedModel:
    return model_fn(str(smoke_artifacts["headline-base"].directory))


class _WordFirstForGenerate(LogitsProcessor):
    """The word guarantee over `generate()`'s (input_ids, scores), for the reference run."""

    def __init__(self, model: LoadedModel, width: int, max_new_tokens: int) -> None:
        self.word_first = WordFirst(model.tokenizer, model.vocabulary)
        self.width, self.max_new_tokens = width, max_new_tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        new_ids = input_ids[:, self.width :].tolist()
        left = [self.max_new_tokens - len(ids) for ids in new_ids]
        return self.word_first(new_ids, left, scores)


def reference_greedy(model: LoadedModel, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Hugging Face's `generate()` on the same left-padded batch, greedy."""
    tokenizer, pad = model.tokenizer, int(model.tokenizer.pad_token_id)
    rows = [headline_prompt_ids(tokenizer, prompt, model.headline_context) for prompt in prompts]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows])
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    assert model.model is not None
    lm: Any = model.model
    assert isinstance(lm, GenerationMixin)
    with torch.inference_mode():
        output = lm.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            logits_processor=LogitsProcessorList(
                [_WordFirstForGenerate(model, width, max_new_tokens)]
            ),
        )
    context = len(headline_context_ids(tokenizer, model.headline_context))
    return [
        continuation(tokenizer, row[context:], output_row[width:].tolist())
        for row, output_row in zip(rows, output, strict=True)
    ]


def test_greedy_headlines_are_those_of_hugging_face_generate(generator: LoadedModel) -> None:
    assert generate(generator, PROMPTS, GREEDY) == reference_greedy(generator, PROMPTS, 8)


def test_a_row_writes_the_same_headline_alone_in_a_batch_or_joining_one_midway(
    generator: LoadedModel,
) -> None:
    alone = [generate(generator, [prompt], GREEDY)[0] for prompt in PROMPTS]
    batch = DecodeBatch(generator)
    first = batch.add(PROMPTS[:2], GREEDY)
    done = batch.step()
    done |= batch.step()
    later = batch.add(PROMPTS[2:], GREEDY)
    for _ in range(16):
        done |= batch.step()
    assert batch.rows == 0
    texts = [item["generated_text"] for item in done[first] + done[later]]
    assert texts == alone


def test_each_request_keeps_its_own_parameters_in_a_shared_batch(generator: LoadedModel) -> None:
    short_full = GenerationParameters(max_new_tokens=2, do_sample=False)
    batch = DecodeBatch(generator)
    long_request = batch.add(["Stocks fall as"], GREEDY)
    short_request = batch.add(["Stocks fall as"], short_full)
    first_done = batch.step() | batch.step()
    assert short_request in first_done and long_request not in first_done
    (short,) = first_done[short_request]
    assert short["generated_text"].startswith("Stocks fall as")
    expected = generate(generator, ["Stocks fall as"], short_full)[0]
    assert short["generated_text"] == expected


def test_a_seed_gives_the_same_sample_every_time(generator: LoadedModel) -> None:
    seeded = GenerationParameters(max_new_tokens=8, seed=11)
    assert generate(generator, PROMPTS, seeded) == generate(generator, PROMPTS, seeded)
    other = GenerationParameters(max_new_tokens=8, seed=12)
    assert generate(generator, PROMPTS, seeded) != generate(generator, PROMPTS, other)


def test_a_refused_request_adds_nothing(generator: LoadedModel) -> None:
    batch = DecodeBatch(generator)
    with pytest.raises(InvalidRequestError, match=r"parameters\.max_new_tokens"):
        batch.add_request({"inputs": "x", "parameters": {"max_new_tokens": 0}})
    assert batch.rows == 0


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(0.8, 50, 0.95), (1.3, 0, 0.5), (0.5, 3, 1.0), (1.0, 1, 0.9)],
)
def test_warping_matches_hugging_face_warpers_row_by_row(
    temperature: float, top_k: int, top_p: float
) -> None:
    scores = torch.randn(3, 400, generator=torch.Generator().manual_seed(5)) * 4
    # Three rows, each with other settings: the row under test and two neighbours.
    settings = [(temperature, top_k, top_p), (0.7, 20, 0.8), (1.0, 0, 1.0)]
    warped = warp(
        scores,
        torch.tensor([t for t, _, _ in settings]),
        [k for _, k, _ in settings],
        torch.tensor([p for _, _, p in settings]),
    )
    for row, (t, k, p) in enumerate(settings):
        expected = TemperatureLogitsWarper(t)(None, scores[row : row + 1])  # type: ignore[arg-type]
        if k > 0:
            expected = TopKLogitsWarper(k)(None, expected)  # type: ignore[arg-type]
        if p < 1.0:
            expected = TopPLogitsWarper(p)(None, expected)  # type: ignore[arg-type]
        assert torch.equal(torch.isinf(warped[row]), torch.isinf(expected[0]))
        kept = ~torch.isinf(expected[0])
        assert torch.allclose(warped[row][kept], expected[0][kept])
