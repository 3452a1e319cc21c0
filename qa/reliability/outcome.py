"""What every check of the suite returns: the expectation, whether it held, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    area: str
    """load, faults, hostile input, fuzzing, security."""
    name: str
    held: bool
    evidence: str
    """The figures that decide it, short enough for one table cell."""


def expect(area: str, name: str, held: bool, evidence: str) -> Expectation:
    return Expectation(area, name, bool(held), evidence)
