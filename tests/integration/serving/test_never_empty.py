"""Every continuation holds a word, whatever the prompt, the decoding and the request.

The smoke-profile generators are tiny and write near-noise (punctuation, the end token, line
breaks), so without the guarantee many of these answers would be empty or wordless.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.serving.inference import (
    GenerationParameters,
    LoadedModel,
    WordFirst,
    generate,
    has_word,
    model_fn,
)
from training.artifacts import Artifact
from training.definitions import MODEL_NAMES, load_definition

pytestmark = pytest.mark.slow

GENERATORS = [name for name in MODEL_NAMES if load_definition(name, "smoke").kind == "generator"]
HEADLINES = (
    "Football club signs new striker",
    "Oil prices fall as demand weakens",
    "Minister resigns over expenses row",
    "Scientists discover water on distant moon",
    "Storm hits coast",
    "Markets rally as",
    "Zürich bank cuts jobs",
    "Stock",
)
ENDINGS = (".", ":", ")", "?", "!", "...", " (AP)", '.")')
PROMPTS = (
    # one word, any script, digits, capitals, symbols
    *("Stocks", "Government", "Apple", "Football", "Zürich", "東京", "Москва", "Αθήνα"),
    *("São Paulo", "Kraków", "القاهرة", "मुंबई", "2024", "3-0", "£5bn", "10%", "COVID-19"),
    *("BREAKING", "BREAKING NEWS:", "NASA LAUNCHES ROCKET", "UK", "G7", "iPhone", "e-mail"),
    # quotes
    *('"Quoted"', "'Single'", "“Curly quotes”", "«Guillemets»", 'He said "no"', "It's"),
    # emoji and punctuation-only prompts, including runs without a space
    *("🚀", "Stocks 📈", "🎉🎉🎉", "Rain ☔", "...", "?!?!", "(((", "))):", "!!!", "—", "***"),
    *("#", "@", "&", "-", "Wait...!?", "End.)", "Done!!!", "Why?!", "Next:", "Over)."),
    # whole headlines, and whole headlines with every ending a reader may type
    *HEADLINES,
    *(headline + ending for headline in HEADLINES for ending in ENDINGS),
    # long prompts
    "Markets rally as " + "very " * 80,
    " ".join(HEADLINES) + ".",
)
# The last allowed token must then be the word: budgets of one or two tokens test that.
BUDGETS = (1, 2, 3, 8)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", params=GENERATORS)
def generator(request: pytest.FixtureRequest, smoke_artifacts: dict[str, Artifact]) -> LoadedModel:
    return model_fn(str(smoke_artifacts[request.param].directory))


def assert_every_continuation_has_a_word(prompts: list[str], continuations: list[str]) -> None:
    wordless = [
        (prompt, text)
        for prompt, text in zip(prompts, continuations, strict=True)
        if not has_word(text)
    ]
    assert wordless == [], f"{len(wordless)} of {len(prompts)} continuations hold no word"
    for text in continuations:
        assert "\n" not in text and "\ufffd" not in text and text == text.rstrip()


def test_there_are_a_hundred_prompt_shapes() -> None:
    assert len(set(PROMPTS)) >= 100 and len(GENERATORS) >= 2


@pytest.mark.parametrize("seed", [*SEEDS, None], ids=[*(f"seed-{s}" for s in SEEDS), "greedy"])
def test_one_prompt_at_a_time(generator: LoadedModel, seed: int | None) -> None:
    continuations = [
        text
        for index, prompt in enumerate(PROMPTS)
        for text in generate(
            generator,
            [prompt],
            GenerationParameters(
                max_new_tokens=BUDGETS[index % len(BUDGETS)],
                do_sample=seed is not None,
                seed=seed,
                return_full_text=False,
            ),
        )
    ]
    assert_every_continuation_has_a_word(list(PROMPTS), continuations)


@pytest.mark.parametrize("max_new_tokens", [1, 4])
@pytest.mark.parametrize("do_sample", [True, False], ids=["sampled", "greedy"])
def test_every_prompt_in_one_request(
    generator: LoadedModel, max_new_tokens: int, do_sample: bool
) -> None:
    parameters = GenerationParameters(
        max_new_tokens=max_new_tokens, do_sample=do_sample, seed=3, return_full_text=False
    )
    assert_every_continuation_has_a_word(
        list(PROMPTS), generate(generator, list(PROMPTS), parameters)
    )


def test_the_full_text_is_the_prompt_then_the_continuation(generator: LoadedModel) -> None:
    prompts = ["Markets rally as", "Stock", "東京."]
    full = generate(generator, prompts, GenerationParameters(max_new_tokens=4, seed=5))
    alone = generate(
        generator, prompts, GenerationParameters(max_new_tokens=4, seed=5, return_full_text=False)
    )
    assert full == [prompt + text for prompt, text in zip(prompts, alone, strict=True)]


def test_where_the_model_holds_the_last_word_whole_its_first_token_starts_a_new_word(
    generator: LoadedModel,
) -> None:
    tokenizer = generator.tokenizer
    glued = tokenizer.encode("user", add_special_tokens=False)[0]  # letters onto "Chelsea"
    spaced = tokenizer.encode(" clash", add_special_tokens=False)[0]
    vocabulary = generator.vocabulary
    assert vocabulary is not None
    word_first = WordFirst(tokenizer, vocabulary)

    def first_step(*ranked: int) -> np.ndarray:
        """The processed first-step scores when the model ranks these tokens first to last."""
        scores = np.full((1, len(vocabulary.words)), -1e9, dtype=np.float32)
        scores[0, list(ranked)] = [3.0, 2.0, 1.0]
        return np.asarray(word_first([[]], [8], scores)[0])

    eos = int(tokenizer.eos_token_id)
    ended = first_step(eos, glued, spaced)  # the model would end the headline here
    assert ended[eos] == -math.inf and ended[glued] == -math.inf
    assert ended[spaced] == 1.0
    went_on = first_step(glued, eos, spaced)  # it continues the word itself ("Stock" + "s")
    assert went_on[glued] == 3.0
    sampled = first_step(spaced, eos, glued)  # a rare suffix is never sampled onto a whole word
    assert sampled[glued] == -math.inf and sampled[spaced] == 3.0
