"""The word guarantee's logits processor on a ten-token vocabulary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.serving.inference import WordFirst, has_word, vocabulary_masks

END = 0
VOCABULARY = ["<end>", "\n", " the", ".", ":", " ", "\nNews", "Zürich", "東", "🚀"]
WORDS = {" the", "Zürich", "東"}  # "\nNews" holds a word, but after the cut at the newline
ENDINGS = {"<end>", "\n", "\nNews"}


class FakeTokenizer:
    eos_token_id = END

    def batch_decode(self, sequences: list[list[int]], skip_special_tokens: bool) -> list[str]:
        assert skip_special_tokens
        return ["".join(VOCABULARY[i] for i in ids if i != END) for ids in sequences]


MASKS = vocabulary_masks(FakeTokenizer(), len(VOCABULARY))  # type: ignore[arg-type]


WORD_FIRST = WordFirst(FakeTokenizer(), MASKS)  # type: ignore[arg-type]


def allowed(scores: np.ndarray) -> list[set[str]]:
    return [{VOCABULARY[i] for i in np.flatnonzero(np.isfinite(row))} for row in scores]


@pytest.mark.parametrize("text", ["s climb", " 2024", " Zürich", "東京", " Ωμέγα"])
def test_a_letter_or_a_digit_in_any_script_is_a_word(text: str) -> None:
    assert has_word(text)


@pytest.mark.parametrize("text", ["", " ", ".:)", "🚀!", "\ufffd"])
def test_spaces_punctuation_and_symbols_are_no_word(text: str) -> None:
    assert not has_word(text)


def test_the_masks_name_the_word_tokens_and_the_tokens_that_end_a_headline() -> None:
    assert MASKS.words.dtype == MASKS.endings.dtype == np.bool_
    assert MASKS.words.shape == MASKS.endings.shape == (len(VOCABULARY),)
    assert {VOCABULARY[i] for i in np.flatnonzero(MASKS.words)} == WORDS
    assert {VOCABULARY[i] for i in np.flatnonzero(MASKS.endings)} == ENDINGS


def test_a_row_without_a_word_may_not_end_and_its_last_token_must_be_a_word() -> None:
    new_ids = [[2], [4], [5]]  # one new token each: a word, punctuation, a space
    scores = np.zeros((3, len(VOCABULARY)), dtype=np.float32)
    everything = set(VOCABULARY)

    early = WORD_FIRST(new_ids, [3, 3, 3], scores.copy())
    assert allowed(early) == [everything, everything - ENDINGS, everything - ENDINGS]

    last = WORD_FIRST(new_ids, [1, 1, 1], scores)
    assert allowed(last) == [everything, WORDS, WORDS]
    assert last[1, END] == -math.inf
    assert last.shape == scores.shape and np.isfinite(scores).all()  # the input stays as it was


def first_step_scores(favoured: str) -> np.ndarray:
    scores = np.zeros((1, len(VOCABULARY)), dtype=np.float32)
    scores[0, VOCABULARY.index(favoured)] = 5.0
    return scores


def test_with_one_new_token_allowed_it_is_a_word() -> None:
    scores = WORD_FIRST([[]], [1], first_step_scores("Zürich"))
    assert allowed(scores) == [WORDS]


def test_letters_are_glued_onto_the_prompt_only_where_the_model_goes_on_with_its_word() -> None:
    glue = {"Zürich", "東"}  # letters first: they would extend the prompt's last word
    went_on = WORD_FIRST([[]], [4], first_step_scores("Zürich"))
    assert allowed(went_on) == [set(VOCABULARY) - ENDINGS]
    whole = WORD_FIRST([[]], [4], first_step_scores(" the"))
    assert allowed(whole) == [set(VOCABULARY) - ENDINGS - glue]
