"""Packaged model artifacts: `build/models/<profile>/<name>/{model.tar.gz, manifest.json, model/}`.

`ensure_artifacts` is what everyone else calls: it builds what is missing or stale and skips the
rest. An artifact is stale when its build key (definition + training and serving code + data
fingerprint) changed. Builds hold a per-profile file lock and swap the finished directory into
place, so concurrent test sessions never see half an artifact.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from training.data import Corpus, build_corpus
from training.definitions import MODEL_NAMES, load_definition
from training.paths import DEFAULT_MODELS_ROOT
from training.pipeline import (
    build_key,
    evaluate_model,
    package_model,
    save_checkpoint,
    select_data,
    source_manifest,
    train_model,
    work_dir,
)


@dataclass(frozen=True)
class Artifact:
    name: str
    directory: Path  # the unpacked model/ directory
    tarball: Path
    manifest: dict[str, Any]

    @classmethod
    def read(cls, destination: Path) -> Artifact | None:
        """The artifact in `destination`, or None when any part of it is missing."""
        manifest_path = destination / "manifest.json"
        directory, tarball = destination / "model", destination / "model.tar.gz"
        if not (
            manifest_path.exists() and tarball.exists() and (directory / "config.json").exists()
        ):
            return None
        manifest = json.loads(manifest_path.read_text())
        return cls(manifest["name"], directory, tarball, manifest)


def _with_sources(names: Sequence[str], profile: str) -> list[str]:
    """The named models and those they derive from, sources first (in MODEL_NAMES order)."""
    wanted = set(names)
    for name in names:
        source = load_definition(name, profile).base.derived_from
        if source is not None:
            wanted.add(source)
    return [name for name in MODEL_NAMES if name in wanted]


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _swap_into_place(staging: Path, destination: Path) -> None:
    retired = destination.with_name(f".{destination.name}.retired")
    shutil.rmtree(retired, ignore_errors=True)
    if destination.exists():
        destination.rename(retired)
    staging.rename(destination)
    shutil.rmtree(retired, ignore_errors=True)


def ensure_artifacts(
    profile: str,
    names: Sequence[str] | None = None,
    root: Path = DEFAULT_MODELS_ROOT,
    *,
    console: Console | None = None,
) -> dict[str, Artifact]:
    """Build (train, evaluate, package) every named model that is missing or stale."""
    console = console or Console(stderr=True)
    artifacts: dict[str, Artifact] = {}
    corpus: Corpus | None = None
    with _exclusive(root / f".{profile}.lock"):
        for name in _with_sources(names or MODEL_NAMES, profile):
            definition = load_definition(name, profile)
            corpus = corpus or build_corpus()
            splits = select_data(definition, corpus)
            destination = root / profile / name
            existing = Artifact.read(destination)
            source = source_manifest(definition, root)
            key = build_key(definition, splits, source["build_key"] if source else None)
            if existing is not None and existing.manifest.get("build_key") == key:
                version = existing.manifest["version"]
                console.print(f"[green]up to date[/] {name} ({profile}) version {version}")
                artifacts[name] = existing
                continue
            console.rule(f"[bold]{name}[/] ({profile})")
            started = time.monotonic()
            trained = train_model(definition, splits, console, root)
            save_checkpoint(trained, work_dir(root, definition))
            with console.status(f"evaluating {name} on {len(splits.test)} test headlines"):
                metrics = evaluate_model(definition, trained, splits, console)
            headline_figures = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            console.print(f"{name} evaluated: {headline_figures}")
            staging = destination.with_name(f".{name}.staging")
            with console.status(f"packaging {name} into {destination}"):
                package_model(definition, trained, metrics, staging, splits, source)
            _swap_into_place(staging, destination)
            built = Artifact.read(destination)
            assert built is not None
            seconds = time.monotonic() - started
            version = built.manifest["version"]
            console.print(f"[green]built[/] {name} ({profile}) version {version} in {seconds:.0f}s")
            artifacts[name] = built
    return artifacts
