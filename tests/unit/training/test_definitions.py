"""Model definitions and their per-profile overrides."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from training.definitions import DEFINITIONS_DIR, MODEL_NAMES, ModelDefinition, load_definition
from training.pipeline import DataSplits, build_key

TRAINED = [name for name in MODEL_NAMES if load_definition(name, "full").training is not None]


@pytest.mark.parametrize("name", TRAINED)
def test_smoke_profile_overrides_only_what_it_names(name: str) -> None:
    full, smoke = load_definition(name, "full"), load_definition(name, "smoke")
    assert full.training is not None and smoke.training is not None
    assert smoke.training.max_steps < full.training.max_steps
    assert smoke.training.learning_rate == full.training.learning_rate  # not overridden
    assert smoke.data.sources == full.data.sources
    assert smoke.fingerprint() != full.fingerprint()


def test_unknown_model_and_profile_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="model: unknown model 'nope'"):
        load_definition("nope", "full")
    with pytest.raises(ValueError, match="profile: unknown profile 'huge'"):
        load_definition("headline-lite", "huge")


def test_the_build_key_follows_the_parsed_definition_not_its_comments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = DataSplits(train=[], validation=[], test=[])
    original = build_key(load_definition("headline-lite", "full"), splits)
    source = (DEFINITIONS_DIR / "headline-lite.yaml").read_text()
    monkeypatch.setattr("training.definitions.DEFINITIONS_DIR", tmp_path)

    (tmp_path / "headline-lite.yaml").write_text("# a new comment\n" + source)
    assert build_key(load_definition("headline-lite", "full"), splits) == original

    changed = source.replace("description: ", "description: Changed. ")
    (tmp_path / "headline-lite.yaml").write_text(changed)
    assert build_key(load_definition("headline-lite", "full"), splits) != original


def test_the_challenger_derives_from_variant_a_and_is_stale_when_a_changes() -> None:
    lite = load_definition("headline-lite", "full")
    base = load_definition("headline-base", "full")
    assert lite.base.derived_from == "headline-base"
    assert lite.training is None
    # The one difference between the variants: the precision of the engine's weights.
    assert base.engine is not None and lite.engine is not None
    assert (base.engine.precision, lite.engine.precision) == ("int8", "int4")
    splits = DataSplits(train=[], validation=[], test=[])
    assert build_key(lite, splits, "a-key") != build_key(lite, splits, "another-key")


@pytest.mark.parametrize(
    ("base", "training", "error"),
    [
        ({"derived_from": "headline-base"}, {"seed": 1}, "derived from another takes no training"),
        ({"pretrained": "gpt2"}, None, "every other model needs one"),
        ({"derived_from": "headline-base", "gguf_file": "x.gguf"}, None, "gguf_file needs"),
        ({"derived_from": "nope"}, None, "unknown model 'nope'"),
        ({"pretrained": "gpt2", "derived_from": "headline-base"}, None, "exactly one of"),
    ],
)
def test_definitions_that_cannot_be_built_are_refused_with_the_field_named(
    base: dict[str, object], training: dict[str, object] | None, error: str
) -> None:
    raw = load_definition("headline-lite", "full").model_dump(exclude={"base", "training"})
    spec = (
        None
        if training is None
        else {**load_definition("headline-base", "full").model_dump()["training"], **training}
    )
    with pytest.raises(ValidationError, match=error):
        ModelDefinition.model_validate({**raw, "base": base, "training": spec})


def test_a_generator_needs_an_engine_and_a_classifier_takes_none() -> None:
    generator = load_definition("headline-base", "full").model_dump()
    classifier = load_definition("news-classifier", "full").model_dump()
    assert classifier["engine"] is None
    with pytest.raises(ValidationError, match="engine: every generator names its engine"):
        ModelDefinition.model_validate({**generator, "engine": None})
    with pytest.raises(ValidationError, match=r"engine: .*only a generator"):
        ModelDefinition.model_validate({**classifier, "engine": {"precision": "int8"}})
    with pytest.raises(ValidationError, match=r"engine\.precision"):
        ModelDefinition.model_validate({**generator, "engine": {"precision": "int3"}})
