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
from training.pipeline import (
    build_key,
    evaluate_model,
    package_model,
    save_checkpoint,
    select_data,
    train_model,
    work_dir,
)

DEFAULT_ROOT = Path("build/models")


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
    root: Path = DEFAULT_ROOT,
    *,
    console: Console | None = None,
) -> dict[str, Artifact]:
    """Build (train, evaluate, package) every named model that is missing or stale."""
    console = console or Console(stderr=True)
    artifacts: dict[str, Artifact] = {}
    corpus: Corpus | None = None
    with _exclusive(root / f".{profile}.lock"):
        for name in names or MODEL_NAMES:
            definition = load_definition(name, profile)
            corpus = corpus or build_corpus()
            splits = select_data(definition, corpus)
            destination = root / profile / name
            existing = Artifact.read(destination)
            key = build_key(definition, splits)
            if existing is not None and existing.manifest.get("build_key") == key:
                version = existing.manifest["version"]
                console.print(f"[green]up to date[/] {name} ({profile}) version {version}")
                artifacts[name] = existing
                continue
            console.rule(f"[bold]{name}[/] ({profile})")
            started = time.monotonic()
            trained = train_model(definition, splits, console)
            save_checkpoint(trained, work_dir(root, definition))
            metrics = evaluate_model(definition, trained, splits)
            staging = destination.with_name(f".{name}.staging")
            package_model(definition, trained, metrics, staging)
            _swap_into_place(staging, destination)
            built = Artifact.read(destination)
            assert built is not None
            seconds = time.monotonic() - started
            version = built.manifest["version"]
            console.print(f"[green]built[/] {name} ({profile}) version {version} in {seconds:.0f}s")
            artifacts[name] = built
    return artifacts
