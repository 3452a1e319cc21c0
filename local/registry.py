"""The local model registry: what the SageMaker Model Registry is on AWS, as folders.

`build/registry/<model>/<version>/` holds a packaged model exactly as `training.package` writes
it (`model/`, `model.tar.gz`, `manifest.json`) plus `registration.json`: its approval status
(`PendingManualApproval` when registered, as on AWS), when it was registered and why, and the
reason of its latest status change (e.g. what the offline gate rejected it for). A version
is a content hash, so a folder never changes meaning: registering a version that is already
there changes nothing, and nothing is ever overwritten.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from local.paths import BUILD_DIR

DEFAULT_REGISTRY_ROOT = BUILD_DIR / "registry"
REGISTRATION = "registration.json"
ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
PENDING: ApprovalStatus = "PendingManualApproval"
APPROVED: ApprovalStatus = "Approved"
REJECTED: ApprovalStatus = "Rejected"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    directory: Path  # <root>/<name>/<version>
    status: ApprovalStatus
    registered_at: str
    description: str
    reason: str | None = None

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    @property
    def tarball(self) -> Path:
        return self.directory / "model.tar.gz"

    @property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.directory / "manifest.json").read_text())
        return manifest


def find(name: str, version: str, root: Path = DEFAULT_REGISTRY_ROOT) -> RegisteredModel | None:
    """The registered `name` `version`, or None."""
    registration = root / name / version / REGISTRATION
    if not registration.is_file():
        return None
    record = json.loads(registration.read_text())
    return RegisteredModel(
        name=name,
        version=version,
        directory=registration.parent,
        status=record["status"],
        registered_at=record["registered_at"],
        description=record["description"],
        reason=record.get("reason"),
    )


def versions(name: str, root: Path = DEFAULT_REGISTRY_ROOT) -> list[RegisteredModel]:
    """Every registered version of `name`, newest first."""
    found = [find(name, path.name, root) for path in (root / name).glob("*/")]
    registered = [model for model in found if model is not None]
    return sorted(registered, key=lambda model: model.registered_at, reverse=True)


def register(
    packaged: Path, description: str, root: Path = DEFAULT_REGISTRY_ROOT
) -> RegisteredModel:
    """Move the packaged model in `packaged` into the registry as `PendingManualApproval`.

    The version is the manifest's content hash; when it is registered already, the registered
    one is returned unchanged and `packaged` is left where it is.
    """
    manifest = json.loads((packaged / "manifest.json").read_text())
    name, version = str(manifest["name"]), str(manifest["version"])
    existing = find(name, version, root)
    if existing is not None:
        return existing
    destination = root / name / version
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(destination, ignore_errors=True)  # an earlier attempt that never registered
    shutil.move(packaged, destination)
    record = {
        "status": PENDING,
        "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "description": description,
    }
    # Written last: a folder without it is not registered (see `find`).
    (destination / REGISTRATION).write_text(json.dumps(record, indent=2) + "\n")
    registered = find(name, version, root)
    assert registered is not None
    return registered


def set_status(
    model: RegisteredModel, status: ApprovalStatus, reason: str | None = None
) -> RegisteredModel:
    """Approve or reject a registered version (a person's decision, as on AWS, or the offline
    gate's), recording why."""
    path = model.directory / REGISTRATION
    record = {**json.loads(path.read_text()), "status": status, "reason": reason}
    path.write_text(json.dumps(record, indent=2) + "\n")
    updated = find(model.name, model.version, model.directory.parent.parent)
    assert updated is not None
    return updated
