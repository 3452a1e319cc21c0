"""Shared pytest set-up: each area's fixtures live in tests/fixtures/<area>.py, registered here."""

pytest_plugins: list[str] = []
