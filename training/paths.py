"""Where the training pipeline writes: the build folder and what it keeps there.

The one definition of these paths: `local.paths` takes them from here (training never imports
`local`, so they cannot live there) and adds the local runtime's own.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build"
"""Every build output: models, the local stack's files, caches (`make clean` removes it)."""
DEFAULT_MODELS_ROOT = BUILD_DIR / "models"
"""Packaged models: `<profile>/<name>/{model.tar.gz, manifest.json, model/}`."""
CORPUS_FILE = BUILD_DIR / "data" / "headlines.jsonl"
"""The headline corpus as `pressroom data` writes it, for inspection."""
BASES_CACHE_DIR = BUILD_DIR / "cache" / "bases"
"""Base checkpoints converted once into Hugging Face directories (`training.modeling`)."""
