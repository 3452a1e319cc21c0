"""Model definitions and their per-profile overrides."""

from pathlib import Path

import pytest

from training.definitions import DEFINITIONS_DIR, MODEL_NAMES, load_definition
from training.pipeline import DataSplits, build_key


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_smoke_profile_overrides_only_what_it_names(name: str) -> None:
    full, smoke = load_definition(name, "full"), load_definition(name, "smoke")
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

    (tmp_path / "headline-lite.yaml").write_text(source.replace("max_steps: 200", "max_steps: 201"))
    assert build_key(load_definition("headline-lite", "full"), splits) != original
