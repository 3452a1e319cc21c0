"""Shared pytest set-up: each area's fixtures live in tests/fixtures/<area>.py, registered here."""

pytest_plugins: list[str] = [
    "tests.fixtures.artifacts",
    "tests.fixtures.sagemaker",
    "tests.fixtures.stack",
    "tests.fixtures.postgres",
    "tests.fixtures.feedback",
    "tests.fixtures.data_api",
    "tests.fixtures.browser",
]
