"""Sticky A/B assignment, overrides and fallbacks."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pressroom_common.experiment.routing import FixedWeights, Router, build_strategy
from pressroom_common.experiment.settings import VariantConfig
from pressroom_common.platform.errors import ValidationError

from tests.fixtures.readers import reader_hash


def variants(weight_a: float, weight_b: float) -> dict[str, VariantConfig]:
    return {
        "A": VariantConfig(
            endpoint_name="e", model_name="headline-base", model_version="1", weight=weight_a
        ),
        "B": VariantConfig(
            endpoint_name="e", model_name="headline-lite", model_version="1", weight=weight_b
        ),
    }


def test_a_user_keeps_the_same_variant_across_router_instances() -> None:
    users = [reader_hash(f"reader-{n}") for n in range(200)]
    first = Router(FixedWeights(rng=random.Random(1)), variants(1, 1))
    second = Router(FixedWeights(rng=random.Random(2)), variants(1, 1))

    assert [first.assign(u).variant for u in users] == [second.assign(u).variant for u in users]
    assert [first.assign(u).variant for u in users] == [first.assign(u).variant for u in users]


def test_assignment_follows_the_weights() -> None:
    router = Router(FixedWeights(), variants(3, 1))

    shares = Counter(router.assign(reader_hash(f"reader-{n}")).variant for n in range(4000))

    assert 0.71 < shares["A"] / 4000 < 0.79


def test_a_zero_weight_variant_gets_no_routed_traffic() -> None:
    router = Router(FixedWeights(), variants(1, 0))

    assert {router.assign(reader_hash(f"u{n}")).variant for n in range(300)} == {"A"}


def test_anonymous_users_are_spread_over_the_variants() -> None:
    router = Router(FixedWeights(rng=random.Random(7)), variants(1, 1))

    assert {router.assign(None).variant for _ in range(100)} == {"A", "B"}


def test_changing_the_salt_reshuffles_users() -> None:
    users = [reader_hash(f"reader-{n}") for n in range(200)]
    old = Router(FixedWeights(salt="experiment-1"), variants(1, 1))
    new = Router(FixedWeights(salt="experiment-2"), variants(1, 1))

    assert [old.assign(u).variant for u in users] != [new.assign(u).variant for u in users]


def test_strategy_name_is_recorded_and_override_wins() -> None:
    router = Router(FixedWeights(), variants(1, 0))

    assert router.assign(reader_hash("x")).strategy == "fixed"
    assert (router.assign(reader_hash("x"), "B").variant, router.assign(None, "B").strategy) == (
        "B",
        "override",
    )


def test_unknown_override_names_the_field() -> None:
    with pytest.raises(ValidationError, match="variant"):
        Router(FixedWeights(), variants(1, 1)).assign(None, "Z")


def test_fallback_is_the_other_variant() -> None:
    router = Router(FixedWeights(), variants(1, 1))

    assert (router.fallback_for("A"), router.fallback_for("B")) == ("B", "A")
    assert Router(FixedWeights(), {"A": variants(1, 1)["A"]}).fallback_for("A") is None


def test_the_configured_strategy_name_builds_that_strategy() -> None:
    assert build_strategy("fixed").name == "fixed"
