"""The decode loop on ONNX Runtime GenAI: greedy headlines are the engine's own greedy search,
whatever was served before them; each request keeps its parameters; warping is Hugging Face's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime_genai as og
import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from models.serving.inference import (
    ENGINE_DIR,
    GenerationParameters,
    LoadedModel,
    WordFirst,
    continuation,
    generate,
    has_word,
    headline_context_ids,
    headline_prompt_ids,
    load_generator,
    merges_requests,
    predict_fn,
    warp,
)
from training.artifacts import Artifact
from training.definitions import MODEL_NAMES, load_definition

pytestmark = pytest.mark.slow

GENERATORS = [name for name in MODEL_NAMES if load_definition(name, "smoke").kind == "generator"]
PROMPTS = ["Government announces", "Stocks fall as", "Man Utd 2-1 Chelsea", "Stock", "東京."]
# Where the word guarantee changes the argmax `generate` is meant to differ from plain greedy
# search: enough prompts that several are left to compare (all 22 on headline-base, 9 on lite).
MORE_PROMPTS = [
    *("Football club signs", "Minister resigns over", "Scientists discover", "Oil prices"),
    *("Government plans", "Chelsea win the cup", "New phone unveiled", "MPs vote on"),
    *("Film star", "Bank of England", "Prime Minister", "Police arrest", "World Cup"),
    *("Election results", "Heatwave", "Apple unveils", "Markets rally as"),
]
GREEDY = GenerationParameters(max_new_tokens=8, do_sample=False, return_full_text=False)
# The engine and the reference run on one thread alike: the same sums in the same order.
THREADS = 1


@pytest.fixture(scope="module", params=GENERATORS)
def artifact(request: pytest.FixtureRequest, smoke_artifacts: dict[str, Artifact]) -> Artifact:
    return smoke_artifacts[request.param]


@pytest.fixture(scope="module")
def generator(artifact: Artifact) -> LoadedModel:
    return load_generator(artifact.directory, THREADS)


def _engine_model(engine_dir: Path) -> og.Model:
    config = og.Config(str(engine_dir))
    options = {"intra_op_num_threads": THREADS, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    return og.Model(config)


def reference_greedy(
    model: LoadedModel, engine_dir: Path, prompts: list[str], max_new_tokens: int
) -> list[tuple[str, bool]]:
    """ONNX Runtime GenAI's own greedy search, a fresh generator per prompt fed the context and
    the prompt from scratch (no rewind), ended where `generate` ends a headline; with whether
    `WordFirst` would have changed the argmax on any step (where it does, `generate` is meant
    to differ)."""
    assert model.vocabulary is not None
    engine = _engine_model(engine_dir)
    word_first = WordFirst(model.tokenizer, model.vocabulary)
    context_length = len(headline_context_ids(model.tokenizer, model.headline_context))
    answers = []
    for prompt in prompts:
        ids = headline_prompt_ids(model.tokenizer, prompt, model.headline_context)
        params = og.GeneratorParams(engine)
        params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens)
        search = og.Generator(engine, params)
        search.append_tokens(ids)
        new_ids: list[int] = []
        word_first_acts = False
        while True:
            logits = np.asarray(search.get_logits(), dtype=np.float32).reshape(-1)
            left = [max_new_tokens - len(new_ids)]
            word_first_acts |= word_first([new_ids], left, logits[None]).argmax() != logits.argmax()
            search.generate_next_token()
            new_ids.append(int(search.get_next_tokens()[0]))
            if len(new_ids) == max_new_tokens or model.vocabulary.endings[new_ids[-1]]:
                break
        answers.append(
            (continuation(model.tokenizer, ids[context_length:], new_ids), word_first_acts)
        )
    return answers


def test_greedy_headlines_are_the_engines_own_greedy_search_from_scratch(
    artifact: Artifact, generator: LoadedModel
) -> None:
    prompts = PROMPTS + MORE_PROMPTS
    # Served in one request, each prompt rewinds to the context the engine computed at load.
    served = generate(generator, prompts, GREEDY)
    reference = reference_greedy(generator, artifact.directory / ENGINE_DIR, prompts, 8)
    compared = [
        (prompt, text, expected)
        for prompt, text, (expected, word_first_acts) in zip(
            prompts, served, reference, strict=True
        )
        if not word_first_acts
    ]
    assert len(compared) >= 5, "too few prompts where the word guarantee leaves the argmax"
    assert [text for _, text, _ in compared] == [expected for _, _, expected in compared]


def test_a_prompt_served_after_others_reads_as_if_served_first(artifact: Artifact) -> None:
    fresh = load_generator(artifact.directory, THREADS)
    assert fresh.engine is not None
    prompt_ids = headline_prompt_ids(fresh.tokenizer, "Stock", fresh.headline_context)
    text_ids = prompt_ids[len(headline_context_ids(fresh.tokenizer, fresh.headline_context)) :]
    first_logits = fresh.engine.start(text_ids).copy()
    (first,) = generate(fresh, ["Stock"], GREEDY)

    # A longer prompt and a sampled headline leave keys and values beyond "Stock"'s positions.
    generate(fresh, ["Markets rally as " + "very " * 40], GenerationParameters(seed=3))
    generate(fresh, PROMPTS, GREEDY)
    assert generate(fresh, ["Stock"], GREEDY) == [first]
    assert generate(fresh, [PROMPTS[0], "Stock"], GREEDY)[1] == first
    np.testing.assert_allclose(fresh.engine.start(text_ids), first_logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("max_new_tokens", [1, 3, 6])
def test_no_headline_takes_more_new_tokens_than_asked(
    generator: LoadedModel, max_new_tokens: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = generator.engine
    assert engine is not None
    fed: list[list[int]] = []  # per prompt, the new tokens fed back to the engine
    start, feed = engine.start, engine.feed

    def counting_start(prompt_ids: list[int]) -> np.ndarray:
        fed.append([])
        return start(prompt_ids)

    def counting_feed(token_id: int) -> np.ndarray:
        fed[-1].append(token_id)
        return feed(token_id)

    monkeypatch.setattr(engine, "start", counting_start)
    monkeypatch.setattr(engine, "feed", counting_feed)
    # Hot sampling over the whole vocabulary: the tiny smoke model rarely ends on its own.
    parameters = GenerationParameters(
        max_new_tokens=max_new_tokens,
        temperature=1.5,
        top_k=0,
        top_p=1.0,
        seed=9,
        return_full_text=False,
    )
    texts = generate(generator, PROMPTS, parameters)

    # Every new token but the last is fed back: a headline of n tokens makes n - 1 feeds.
    new_tokens = [len(tokens) + 1 for tokens in fed]
    assert len(new_tokens) == len(PROMPTS)
    assert max(new_tokens) == max_new_tokens, "the budget should be reached at least once"
    for text in texts:
        assert len(generator.tokenizer(text, add_special_tokens=False)["input_ids"]) <= (
            max_new_tokens
        ), repr(text)


def test_each_request_keeps_its_own_parameters(generator: LoadedModel) -> None:
    assert not merges_requests(generator), "a generator's requests are served one at a time"
    prompt = "Stocks fall as"
    greedy = {"max_new_tokens": 8, "do_sample": False}
    only_new = {**greedy, "return_full_text": False}
    (full,) = predict_fn({"inputs": prompt, "parameters": greedy}, generator)
    (tail,) = predict_fn({"inputs": prompt, "parameters": only_new}, generator)
    assert full["generated_text"].startswith(prompt)
    assert not tail["generated_text"].startswith(prompt) and has_word(tail["generated_text"])
    assert full["generated_text"] == prompt + tail["generated_text"]

    # A sampled request with another budget in between changes nothing of the next one.
    sampled = predict_fn(
        {"inputs": [prompt, "Stock"], "parameters": {"max_new_tokens": 2, "seed": 4}}, generator
    )
    for answer, asked in zip(sampled, [prompt, "Stock"], strict=True):
        assert answer["generated_text"].startswith(asked)
    assert predict_fn({"inputs": prompt, "parameters": only_new}, generator) == [tail]


def test_a_seed_gives_the_same_sample_every_time(generator: LoadedModel) -> None:
    seeded = GenerationParameters(max_new_tokens=8, seed=11)
    first = generate(generator, PROMPTS, seeded)
    generate(generator, PROMPTS, GenerationParameters(max_new_tokens=8, seed=5))
    assert generate(generator, PROMPTS, seeded) == first, "whatever was served in between"
    other = GenerationParameters(max_new_tokens=8, seed=12)
    assert generate(generator, PROMPTS, other) != first


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
        scores.numpy(),
        np.array([t for t, _, _ in settings]),
        [k for _, k, _ in settings],
        np.array([p for _, _, p in settings]),
    )
    assert isinstance(warped, np.ndarray) and warped.shape == tuple(scores.shape)
    for row, (t, k, p) in enumerate(settings):
        expected = TemperatureLogitsWarper(t)(None, scores[row : row + 1])
        if k > 0:
            expected = TopKLogitsWarper(k)(None, expected)
        if p < 1.0:
            expected = TopPLogitsWarper(p)(None, expected)
        reference = expected[0].numpy()
        np.testing.assert_array_equal(np.isinf(warped[row]), np.isinf(reference))
        kept = ~np.isinf(reference)
        np.testing.assert_allclose(warped[row][kept], reference[kept], rtol=1e-5)
