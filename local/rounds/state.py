"""The state of an experiment round: a registered challenger against the champion.

A round puts a registered challenger (a newer version of headline-base, retrained on readers'
votes) on variant B at a small share of the traffic (a canary) beside the champion on variant
A, or first as A's shadow, answering unseen (`local.rounds.shadow`). This module is what a
round is (`Round`), where the running one is kept (`ROUND_FILE`), the root-template parameters
that serve it (`round_parameters`, for `pressroom up`; `round_overrides`, locally and on AWS)
and how it ends (`end_round`: the decision recorded in the local model registry). The
`pressroom round` commands that change it are `local.experiment.rounds`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from local.champion import ChampionError, local_champion, record_champion
from local.emulate.sagemaker.endpoints import registry_artifact_url
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT
from local.registry import (
    APPROVED,
    DEFAULT_REGISTRY_ROOT,
    REJECTED,
    RegisteredModel,
    find,
    set_status,
)
from local.rounds.shadow import SHADOW_VARIANT, Stage, shadow_overrides
from training.feedback import CHAMPION

ROUND_FILE = BUILD_DIR / "local" / "round.json"
MAX_SHARE = 0.5  # a canary: the challenger never starts with more traffic than the champion
DEFAULT_SHARE = 0.1


class RoundRefused(Exception):
    """A round that cannot start, be served or end; the message says which input and why."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str


@dataclass(frozen=True)
class Round:
    """One experiment round: the champion on variant A, the challenger on B at `share` (its
    canary stage) or as A's shadow, answering unseen (its shadow stage)."""

    champion: ModelVersion
    challenger: ModelVersion
    share: float
    started_at: datetime
    stage: Stage = Stage.CANARY

    @classmethod
    def start(
        cls,
        challenger: RegisteredModel,
        *,
        share: float,
        started_at: datetime,
        models_root: Path = DEFAULT_MODELS_ROOT,
        stage: Stage = Stage.CANARY,
    ) -> Round:
        """A round of `challenger` against the built champion of the challenger's profile."""
        if (problem := share_problem(share)) is not None:
            raise RoundRefused(problem)
        if challenger.name != CHAMPION:
            raise RoundRefused(
                f"{challenger.name} {challenger.version}: only a {CHAMPION} version "
                "can challenge (variant B serves the challenger in its place)"
            )
        if challenger.status == REJECTED:
            why = challenger.reason or "a round it lost, or a person's decision"
            raise RoundRefused(
                f"{challenger.name} {challenger.version} is Rejected in the registry ({why}); "
                "retrain for a new challenger"
            )
        profile = str(challenger.manifest["profile"])
        # The champion: the one a round promoted in the challenger's registry, else the built.
        try:
            champion = local_champion(profile, models_root, challenger.directory.parent.parent)
        except ChampionError as error:
            raise RoundRefused(f"no champion: {error}") from None
        if champion is None:
            raise RoundRefused(
                f"no champion: {CHAMPION} is not built for profile {profile} in "
                f"{models_root} (run `pressroom build-all --profile {profile}`)"
            )
        champion_version = champion.version
        if champion_version == challenger.version:
            raise RoundRefused(
                f"{challenger.name} {challenger.version} is the champion already: "
                "nothing to challenge"
            )
        return cls(
            champion=ModelVersion(CHAMPION, champion_version),
            challenger=ModelVersion(challenger.name, challenger.version),
            share=share,
            # Whole seconds: what ExperimentStartedAt carries is what the round says.
            started_at=started_at.astimezone(UTC).replace(microsecond=0),
            stage=stage,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat(timespec="seconds")}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Round:
        return cls(
            champion=ModelVersion(**record["champion"]),
            challenger=ModelVersion(**record["challenger"]),
            share=float(record["share"]),
            started_at=datetime.fromisoformat(record["started_at"]),
            stage=Stage(record.get("stage", Stage.CANARY)),
        )


def round_parameters(
    experiment_round: Round, registry_root: Path = DEFAULT_REGISTRY_ROOT
) -> dict[str, str]:
    """The root-template parameter overrides that serve `experiment_round` (for `LocalStack`,
    whose `registry_root` must be the same): the challenger on variant B at the round's share,
    Thompson sampling, and the round's start for the counts and `/api/stats`; in the shadow
    stage, the challenger as the generator's shadow (`shadow_overrides`)."""
    challenger = experiment_round.challenger
    if find(challenger.name, challenger.version, registry_root) is None:
        raise RoundRefused(
            f"ChallengerModelVersion {challenger.version}: {challenger.name} of that version "
            f"is not registered in {registry_root}"
        )
    data_url = registry_artifact_url(challenger.name, challenger.version)
    started_at = experiment_round.started_at.isoformat(timespec="seconds")
    if experiment_round.stage is Stage.SHADOW:
        return shadow_overrides(
            data_url=data_url, version=challenger.version, started_at=started_at
        )
    return round_overrides(
        data_url=data_url,
        version=challenger.version,
        share=experiment_round.share,
        started_at=started_at,
    )


def round_overrides(
    *, data_url: str, version: str, share: float, started_at: str
) -> dict[str, str]:
    """Root-template parameters of an experiment round, locally and on AWS: the challenger
    artifact at `data_url` on variant B at `share` of the traffic (the rest to A), Thompson
    sampling, and the round's start (ISO 8601) for the counts and `/api/stats`."""
    return {
        "ChallengerModelDataUrl": data_url,
        "ChallengerModelVersion": version,
        "VariantAWeight": f"{1 - share:g}",
        "VariantBWeight": f"{share:g}",
        "RoutingStrategy": "thompson",
        "ExperimentStartedAt": started_at,
    }


# The root parameters a round sets, in one place: what a deploy keeps from the running stack.
ROUND_PARAMETERS = tuple(
    round_overrides(data_url="", version="", share=DEFAULT_SHARE, started_at="")
)


def share_problem(share: float) -> str | None:
    """Why `share` cannot be a challenger's first share of traffic (`--share`), or None."""
    if 0 < share <= MAX_SHARE:
        return None
    return (
        f"--share {share:g}: the challenger's share must be above 0 and at most {MAX_SHARE:g} "
        "(a canary; the bandit moves traffic from there)"
    )


def save_round(experiment_round: Round, path: Path = ROUND_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(experiment_round.to_json(), indent=2) + "\n")


def load_round(path: Path = ROUND_FILE) -> Round | None:
    """The current round, or None when none is running."""
    if not path.is_file():
        return None
    return Round.from_json(json.loads(path.read_text()))


class Keep(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


def end_round(
    experiment_round: Round,
    keep: Keep,
    registry_root: Path = DEFAULT_REGISTRY_ROOT,
    reason: str | None = None,
) -> RegisteredModel:
    """Record the decision on the challenger, and why: Approved when kept, and then the champion
    that variant A serves from the next `pressroom up` (`local.champion`); Rejected otherwise."""
    challenger = experiment_round.challenger
    registered = find(challenger.name, challenger.version, registry_root)
    if registered is None:
        raise RoundRefused(
            f"{challenger.name} {challenger.version}: not registered in {registry_root}, "
            "so there is no status to record"
        )
    decided = set_status(registered, APPROVED if keep is Keep.CHALLENGER else REJECTED, reason)
    if keep is Keep.CHALLENGER:
        record_champion(decided, replaced=experiment_round.champion.version, reason=reason)
    return decided


def describe_round(experiment_round: Round) -> str:
    """One line: who is on which variant, at what share, since when."""
    champion, challenger = experiment_round.champion, experiment_round.challenger
    if experiment_round.stage is Stage.SHADOW:
        return (
            f"champion {champion.name} {champion.version} on A answers every reader; challenger "
            f"{challenger.name} {challenger.version} shadows it (variant {SHADOW_VARIANT}: its "
            "answers captured, never served), since "
            f"{experiment_round.started_at.isoformat(timespec='seconds')}"
        )
    return (
        f"champion {champion.name} {champion.version} on A, challenger {challenger.name} "
        f"{challenger.version} on B at {experiment_round.share:.0%}, since "
        f"{experiment_round.started_at.isoformat(timespec='seconds')}"
    )
