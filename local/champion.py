"""The local champion: the headline-base version variant A serves on this machine.

Until a round promotes a challenger it is the built model of the profile
(`build/models/<profile>/headline-base`). A challenger that wins a round (`pressroom round
decide`, or `pressroom round end --keep challenger`) is Approved in the local model registry and
recorded as the profile's champion in the registry's `champions.json`; from then on
`pressroom up` serves that registered version on variant A (`champion_parameters`, through
`registry_artifact_url`), `pressroom round start` pits the next challenger against it and
`pressroom retrain` fine-tunes it. On AWS the model registry plays the same part: a promoted
challenger becomes an Approved package of `pressroom-headline-base`, which the next deploy serves.

The record lives in the registry whose version it names, so a registry of its own (a test's,
`pressroom simulate-retrain`'s) has a champion of its own, and deleting the record serves the
built model again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.emulate.sagemaker.endpoints import parameter_stem, registry_artifact_url
from local.paths import DEFAULT_MODELS_ROOT
from local.registry import APPROVED, DEFAULT_REGISTRY_ROOT, RegisteredModel, find
from training.feedback import CHAMPION

CHAMPIONS = "champions.json"  # in the registry's root: {model: {profile: record}}
# The root parameters that carry variant A's model.
CHAMPION_DATA_URL_PARAMETER = f"{parameter_stem(CHAMPION)}ModelDataUrl"
CHAMPION_VERSION_PARAMETER = f"{parameter_stem(CHAMPION)}ModelVersion"


class ChampionError(Exception):
    """A champion record that cannot be served; the message says which and what to do."""


@dataclass(frozen=True)
class Champion:
    """The model variant A serves: the built one, or a challenger a round promoted."""

    name: str
    version: str
    directory: Path  # holds manifest.json and model/, built or registered alike
    promoted: RegisteredModel | None  # None: the built model


def local_champion(
    profile: str,
    models_root: Path = DEFAULT_MODELS_ROOT,
    registry_root: Path = DEFAULT_REGISTRY_ROOT,
) -> Champion | None:
    """`profile`'s champion: the version a round promoted in `registry_root`, else the built
    headline-base in `models_root`; None when neither is there."""
    champions_file = registry_root / CHAMPIONS
    record = _records(registry_root).get(CHAMPION, {}).get(profile)
    if record is not None:
        version = str(record["version"])
        registered = find(CHAMPION, version, registry_root)
        if registered is None or registered.status != APPROVED:
            state = "not registered" if registered is None else registered.status
            raise ChampionError(
                f"{champions_file} names {CHAMPION} {version} as the {profile} champion, but it "
                f"is {state} in {registry_root}; remove its entry to serve the built model"
            )
        return Champion(CHAMPION, version, registered.directory, registered)
    manifest = models_root / profile / CHAMPION / "manifest.json"
    if not manifest.is_file():
        return None
    version = str(json.loads(manifest.read_text())["version"])
    return Champion(CHAMPION, version, manifest.parent, None)


def champion_parameters(
    profile: str,
    models_root: Path = DEFAULT_MODELS_ROOT,
    registry_root: Path = DEFAULT_REGISTRY_ROOT,
) -> dict[str, str]:
    """Root-template parameters that serve a promoted champion on variant A from the registry
    (for `LocalStack`, whose `registry_root` must be the same); none for the built model, which
    the local model parameters already serve."""
    champion = local_champion(profile, models_root, registry_root)
    if champion is None or champion.promoted is None:
        return {}
    return {
        CHAMPION_DATA_URL_PARAMETER: registry_artifact_url(CHAMPION, champion.version),
        CHAMPION_VERSION_PARAMETER: champion.version,
    }


def record_champion(model: RegisteredModel, *, replaced: str, reason: str | None = None) -> None:
    """Make the Approved `model` the champion of its profile in its registry."""
    if model.name != CHAMPION or model.status != APPROVED:
        raise ChampionError(
            f"{model.name} {model.version} is {model.status}: only an Approved {CHAMPION} "
            "can become the champion"
        )
    registry_root = model.directory.parent.parent
    records = _records(registry_root)
    records.setdefault(CHAMPION, {})[str(model.manifest["profile"])] = {
        "version": model.version,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "replaced": replaced,
        "reason": reason,
    }
    (registry_root / CHAMPIONS).write_text(json.dumps(records, indent=2) + "\n")


def _records(registry_root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    path = registry_root / CHAMPIONS
    if not path.is_file():
        return {}
    records: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text())
    return records
