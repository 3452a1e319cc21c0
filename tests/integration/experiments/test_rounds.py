"""An experiment round through the whole local stack: a registered challenger version of
headline-base served on variant B, the champion still on A, the round's parameters reaching
the emulator and the functions; and what the emulator refuses."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from local.cfn import TemplateError
from local.devstack.stack import LocalStack
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.registry import RegisteredModel, register
from local.rounds.state import Round, RoundRefused, round_parameters
from tests.fixtures.sagemaker import models_root_of
from training.artifacts import Artifact

CHALLENGER_VERSION = "c0ffee0000000001"
GENERATOR_ENDPOINT = "pressroom-dev-headline"


def register_smoke_challenger(champion: Artifact, registry_root: Path) -> RegisteredModel:
    """The smoke headline-base under another version: what `pressroom retrain` registers, with
    the same weights (this test is about serving a registered version, not about training it).
    Hard links, since the emulator serves `model/` and copying 240 MB proves nothing; the
    tarball stays out for the same reason."""
    staging = registry_root / ".staging"
    shutil.copytree(champion.directory, staging / "model", copy_function=os.link)
    manifest = {**champion.manifest, "version": CHALLENGER_VERSION}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    return register(staging, "challenger: the smoke champion, renamed", registry_root)


@pytest.fixture(scope="module")
def challenger(
    smoke_artifacts: dict[str, Artifact], tmp_path_factory: pytest.TempPathFactory
) -> RegisteredModel:
    return register_smoke_challenger(
        smoke_artifacts["headline-base"], tmp_path_factory.mktemp("registry")
    )


@pytest.mark.slow
def test_variant_b_serves_the_registered_challenger_and_a_the_champion(
    smoke_artifacts: dict[str, Artifact], challenger: RegisteredModel, tmp_path: Path
) -> None:
    models_root = models_root_of(smoke_artifacts)
    registry_root = challenger.directory.parents[1]
    experiment_round = Round.start(
        challenger, share=0.1, started_at=datetime.now(UTC), models_root=models_root
    )
    champion_version = smoke_artifacts["headline-base"].manifest["version"]

    with LocalStack(
        "smoke",
        database_url=f"sqlite:///{tmp_path / 'feedback.db'}",
        models_root=models_root,
        registry_root=registry_root,
        parameter_overrides=round_parameters(experiment_round, registry_root),
        site_dir=None,
        instances_per_function=1,
    ) as stack:
        assert stack.emulator is not None
        generator = stack.emulator.endpoints[GENERATOR_ENDPOINT]
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            answers = {
                variant: client.post(
                    "api/generate",
                    json={"prompt": "Markets", "variant": variant, "max_new_tokens": 4},
                    headers={"X-User-Id": "round-reader"},
                ).json()
                for variant in ("A", "B")
            }
            stats = client.get("api/stats").json()

    assert generator.variant("B").artifact_dir == challenger.model_dir
    assert generator.variant("A").artifact_dir == smoke_artifacts["headline-base"].directory
    assert [(v.name, v.weight) for v in generator.variants] == [("A", 0.9), ("B", 0.1)]
    assert answers["B"]["model"] == {"name": "headline-base", "version": CHALLENGER_VERSION}
    assert answers["A"]["model"] == {"name": "headline-base", "version": champion_version}
    assert answers["B"]["headline"].startswith("Markets")
    # /api/stats reports the round by default: the two generations above, nothing before.
    assert datetime.fromisoformat(stats["since"]) == experiment_round.started_at
    assert stats["total_requests"] == 2


def test_a_challenger_url_naming_an_unregistered_version_is_refused_naming_the_parameter(
    smoke_artifacts: dict[str, Artifact], challenger: RegisteredModel, tmp_path: Path
) -> None:
    models_root = models_root_of(smoke_artifacts)
    experiment_round = Round.start(
        challenger, share=0.2, started_at=datetime.now(UTC), models_root=models_root
    )
    parameters = round_parameters(experiment_round, challenger.directory.parents[1])
    empty_registry = tmp_path / "empty-registry"
    stacks = load_local_stacks("smoke", models_root, None, parameters)

    with pytest.raises(TemplateError, match=r"ChallengerModelDataUrl s3://.*not registered in"):
        endpoint_specs(stacks, "smoke", models_root, empty_registry)
    with pytest.raises(RoundRefused, match=f"ChallengerModelVersion {CHALLENGER_VERSION}"):
        round_parameters(experiment_round, empty_registry)


def test_round_parameters_set_the_canary_weights_thompson_and_the_rounds_start(
    smoke_artifacts: dict[str, Artifact], challenger: RegisteredModel
) -> None:
    started = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    experiment_round = Round.start(
        challenger, share=0.1, started_at=started, models_root=models_root_of(smoke_artifacts)
    )

    assert round_parameters(experiment_round, challenger.directory.parents[1]) == {
        "ChallengerModelDataUrl": (
            f"s3://pressroom-local-artifacts/registry/headline-base/{CHALLENGER_VERSION}"
            "/model.tar.gz"
        ),
        "ChallengerModelVersion": CHALLENGER_VERSION,
        "VariantAWeight": "0.9",
        "VariantBWeight": "0.1",
        "RoutingStrategy": "thompson",
        "ExperimentStartedAt": "2026-05-01T09:30:00+00:00",
    }
