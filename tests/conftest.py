"""Shared pytest set-up: each area's fixtures live in tests/fixtures/<area>.py, registered here."""

import os

from hypothesis import settings

pytest_plugins: list[str] = [
    "tests.fixtures.artifacts",
    "tests.fixtures.sagemaker",
    "tests.fixtures.stack",
    "tests.fixtures.postgres",
    "tests.fixtures.feedback",
    "tests.fixtures.data_api",
    "tests.fixtures.browser",
]

# In CI the property-based tests draw the same examples on every run, so a result never depends
# on luck; locally they keep exploring new examples (and replay failures from .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
