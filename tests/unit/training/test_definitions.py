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
    assert (lite.base.derived_from, lite.base.quantization) == ("headline-base", "dynamic-int8")
    assert lite.training is None
    splits = DataSplits(train=[], validation=[], test=[])
    assert build_key(lite, splits, "a-key") != build_key(lite, splits, "another-key")


@pytest.mark.parametrize(
    ("base", "training", "error"),
    [
        ({"derived_from": "headline-base"}, {"seed": 1}, "derived from another takes no training"),
        ({"pretrained": "gpt2"}, None, "every other model needs one"),
        ({"pretrained": "gpt2", "quantization": "dynamic-int8"}, None, "needs base.derived_from"),
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
