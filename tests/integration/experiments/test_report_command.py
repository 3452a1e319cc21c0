"""`pressroom report` and `pressroom sample-size` from the terminal, over a real store file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pressroom_common.experiment.routing import FixedWeights, Router
from pressroom_common.feedback.store import GenerationRecord, open_store
from typer.testing import CliRunner

from local.cli import app
from local.experiment.charts import POSTERIORS_PNG, REPORT_HTML, TRAFFIC_PNG, UP_RATE_PNG
from local.experiment.report import sample_size_per_variant
from tests.fixtures.experiments import VARIANTS, FakeClock, serve_readers

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def store_with_readers(path: Path, readers: int) -> str:
    url = f"sqlite:///{path}"
    store = open_store(url, migrate=True)
    serve_readers(Router(FixedWeights(), VARIANTS), store, readers, seed=3, clock=FakeClock())
    store.engine.dispose()
    return url


def test_report_prints_the_table_and_writes_charts_and_a_page(tmp_path: Path) -> None:
    url = store_with_readers(tmp_path / "feedback.db", 300)
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["report", "--database-url", url, "--out", str(out), "--bucket-s", "60"]
    )

    assert result.exit_code == 0, result.output
    assert "headline-base (A)" in result.output and "headline-lite (B)" in result.output
    assert "Sample-ratio check (weights A=1, B=1): p = " in result.output
    assert "Verdict:" in result.output
    for chart in (POSTERIORS_PNG, UP_RATE_PNG, TRAFFIC_PNG):
        content = (out / chart).read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 10_000, chart
    page = (out / REPORT_HTML).read_text()
    assert 'src="posteriors.png"' in page and "headline-lite (B)" in page
    assert "Verdict:" in page and "Up-rate difference" in page


def test_report_breaks_the_verdict_down_by_category_and_names_a_turned_winner(
    tmp_path: Path,
) -> None:
    # Sport's readers prefer B; everyone else, A (and more of them): A leads overall.
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = open_store(url, migrate=True)
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    tastes = {"sport": {"A": 10, "B": 35}, "business": {"A": 38, "B": 12}, None: {"A": 30, "B": 25}}
    for category, ups in tastes.items():
        for variant, up in ups.items():
            for index in range(40):
                generation_id = f"{category}-{variant}-{index}"
                store.record_generation(
                    GenerationRecord(
                        id=generation_id,
                        created_at=start + timedelta(minutes=index),
                        user_hash=generation_id,
                        prompt="Markets",
                        text="Markets rally",
                        variant=variant,
                        model_name={"A": "headline-base", "B": "headline-lite"}[variant],
                        model_version="v1",
                        strategy="fixed",
                        category_label=category,
                        latency_model_ms=50.0,
                        latency_total_ms=60.0,
                    )
                )
                store.record_vote(generation_id, generation_id, "up" if index < up else "down")
    store.engine.dispose()

    result = CliRunner().invoke(app, ["report", "--database-url", url], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "By category" in result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "│" in line}
    assert {"business", "sport", "uncategorised"} <= set(rows)
    assert "40 (0.250)" in rows["sport"] and "B wins (≠ overall)" in rows["sport"]
    assert "A wins" in rows["business"] and "≠" not in rows["business"]
    assert (
        "In sport, headline-lite (B) wins (P(best) 1.000) although headline-base (A) leads "
        "overall." in result.output
    )


def test_report_says_not_enough_data_with_a_handful_of_votes(tmp_path: Path) -> None:
    url = store_with_readers(tmp_path / "feedback.db", 20)

    result = CliRunner().invoke(app, ["report", "--database-url", url])

    assert result.exit_code == 0, result.output
    assert "Not enough data yet" in result.output


def test_report_on_an_empty_store_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url, migrate=True).engine.dispose()

    result = CliRunner().invoke(app, ["report", "--database-url", url])

    assert result.exit_code == 0
    assert "No generations recorded yet" in result.output


def test_report_on_a_missing_sqlite_file_says_what_to_run_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.db"

    result = CliRunner().invoke(app, ["report", "--database-url", f"sqlite:///{missing}"])

    assert result.exit_code == 1
    assert "pressroom up" in result.output
    assert not missing.exists()


def test_report_rejects_a_malformed_weight_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--weight", "A:1"]
    )

    assert result.exit_code == 2
    assert "--weight" in result.output and "VARIANT=NUMBER" in result.output


def test_sample_size_matches_the_textbook_two_proportion_figure() -> None:
    # 50% vs 60%, alpha 0.05 two-sided, power 0.8: 388 per group (Fleiss, no continuity).
    assert sample_size_per_variant(0.5, 0.1) == 388
    # Halving the difference roughly quadruples the sample.
    assert 1500 < sample_size_per_variant(0.5, 0.05) < 1600

    result = CliRunner().invoke(app, ["sample-size", "--baseline", "0.5", "--difference", "0.1"])
    assert result.exit_code == 0, result.output
    assert "388 votes per variant" in result.output


@pytest.mark.parametrize(("baseline", "difference"), [(0.5, 0.0), (0.95, 0.1), (1.2, 0.1)])
def test_sample_size_rejects_impossible_rates(baseline: float, difference: float) -> None:
    result = CliRunner().invoke(
        app, ["sample-size", "--baseline", str(baseline), "--difference", str(difference)]
    )

    assert result.exit_code == 2
