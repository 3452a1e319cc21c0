"""Where things are in this repository: the one definition of each path the tools use.

The build folder and the built models are `training.paths`' (training never imports `local`),
taken from there; everything else the local tools read or write is defined here, under them.
"""

from __future__ import annotations

from training.paths import BUILD_DIR, DEFAULT_MODELS_ROOT, REPO_ROOT

__all__ = [
    "APPS_DIR",
    "BUILD_DIR",
    "DEFAULT_CAPTURE_ROOT",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_METRICS_ROOT",
    "DEFAULT_MODELS_ROOT",
    "REPO_ROOT",
    "ROOT_TEMPLATE",
    "SITE_DIR",
]

ROOT_TEMPLATE = REPO_ROOT / "template-root.yaml"
APPS_DIR = REPO_ROOT / "apps"
SITE_DIR = APPS_DIR / "frontend" / "site"
DEFAULT_CAPTURE_ROOT = BUILD_DIR / "capture"
"""Where the SageMaker emulator writes data capture (as SageMaker does under DestinationS3Uri)."""
DEFAULT_METRICS_ROOT = BUILD_DIR / "metrics"
"""Where the SageMaker emulator keeps the per-invocation metrics of endpoints with a shadow
variant (what CloudWatch holds per variant on AWS)."""
DEFAULT_DATABASE_URL = f"sqlite:///{BUILD_DIR / 'local' / 'pressroom.db'}"
"""The local stack's feedback store (`pressroom up`), which `retrain` and the reports read."""
