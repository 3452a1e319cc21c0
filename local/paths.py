"""Where things are in this repository: the one definition of each path the tools use."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ROOT_TEMPLATE = REPO_ROOT / "template-root.yaml"
APPS_DIR = REPO_ROOT / "apps"
SITE_DIR = APPS_DIR / "frontend" / "site"
BUILD_DIR = REPO_ROOT / "build"
DEFAULT_MODELS_ROOT = BUILD_DIR / "models"
DEFAULT_CAPTURE_ROOT = BUILD_DIR / "capture"
"""Where the SageMaker emulator writes data capture (as SageMaker does under DestinationS3Uri)."""
DEFAULT_METRICS_ROOT = BUILD_DIR / "metrics"
"""Where the SageMaker emulator keeps the per-invocation metrics of endpoints with a shadow
variant (what CloudWatch holds per variant on AWS)."""
