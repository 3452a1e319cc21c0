"""A simulated loop whose challenger the offline gate rejected: no round two, and the result,
its files and its figures say why instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

from local.experiment.loop import LoopResult, write_loop_files
from local.experiment.simulate import PrefersShortHeadlines, SimulationResult
from local.registry import REJECTED, RegisteredModel

REASON = "distinct answers to a voted prompt 0.93 (champion 1; must be at least 0.95)"


def rejected_loop(tmp_path: Path) -> LoopResult:
    directory = tmp_path / "headline-base" / "c0ffee"
    directory.mkdir(parents=True)
    votes = {"examples": 4, "up": 3, "down": 1}
    (directory / "manifest.json").write_text(json.dumps({"training": {"votes": votes}}))
    first = SimulationResult(
        served=["A", "B", "A", "B"],
        up_probabilities=[0.8, 0.2, 0.8, 0.8],
        headlines=["Markets rally", "Markets rally as stocks fall", "Markets rally", "Storm"],
        models={"A": "headline-base c0", "B": "headline-lite c1"},
    )
    challenger = RegisteredModel(
        name="headline-base",
        version="c0ffee",
        directory=directory,
        status=REJECTED,
        registered_at="2026-12-07T19:00:00+00:00",
        description="retrained",
        reason=REASON,
    )
    return LoopResult(
        taste=PrefersShortHeadlines(),
        first_round=first,
        challenger=challenger,
        second_round=None,
        share=0.1,
        decision=f"no round: the offline gate rejected the challenger ({REASON})",
    )


def test_a_rejected_challenger_leaves_round_one_figures_and_no_round_two(tmp_path: Path) -> None:
    loop = rejected_loop(tmp_path)

    assert loop.challenger_confident_at() is None
    assert loop.taste_figures("second") == {}
    first = loop.taste_figures("first")
    assert first["A"].answers == 2 and first["A"].distinct_share == 0.5
    figures = loop.to_json()
    assert figures["second_round"] == {}
    assert figures["second_round_checkpoints"] == []
    assert figures["challenger"]["status"] == REJECTED
    assert REASON in figures["round_decision"]


def test_a_rejected_loop_writes_its_figures_and_no_chart(tmp_path: Path) -> None:
    written = write_loop_files(rejected_loop(tmp_path), tmp_path / "loop")

    assert [path.name for path in written] == ["loop.json"]
    assert json.loads(written[0].read_text())["challenger_answers_at_confidence"] == 0
    assert not (tmp_path / "loop" / "loop.png").exists()
