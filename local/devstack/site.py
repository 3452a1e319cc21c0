"""The static site (`apps/frontend/site/`) served at `/` of the local origin, as CloudFront does."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from local.paths import SITE_DIR


def site_mount(directory: Path = SITE_DIR) -> Mount:
    """`/` → index.html, `/dashboard.html`, assets; a missing file is a plain 404."""
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(f"no site at {directory} (expected index.html)")
    return Mount("/", app=StaticFiles(directory=directory, html=True), name="site")
