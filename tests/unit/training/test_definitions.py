"""Model definitions and their per-profile overrides."""

import pytest

from training.definitions import MODEL_NAMES, load_definition


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
