"""`pressroom round decide`: the rules on the feedback store's own statistics, and the local
command against a real `/api/stats` on 127.0.0.1: a winning challenger is promoted (Approved,
the champion variant A serves next), a losing one rejected with the reason, an undecided round
waits saying why."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pressroom_common.experiment.adaptive import GuardrailThresholds
from pressroom_common.experiment.report import StatsReport
from pressroom_common.feedback.service import stats_report
from pressroom_common.generation.settings import GenerateSettings
from typer.testing import CliRunner

from local.champion import champion_parameters, local_champion
from local.cli import app
from local.emulate.sagemaker.endpoints import (
    endpoint_specs,
    load_local_stacks,
    registry_artifact_url,
)
from local.experiment.decide import (
    EXIT_ERROR,
    EXIT_NO_ROUND,
    EXIT_WAITING,
    DecideError,
    Promote,
    Reject,
    Wait,
    decide,
    guardrail_thresholds,
    parse_stats,
)
from local.registry import APPROVED, PENDING, REJECTED, find, register
from local.retrain import resolve_champion
from local.rounds.state import ModelVersion, Round, load_round, save_round
from tests.fixtures.stats_api import ROUND_START, WEIGHTS, StatsApi, stats_api

CHAMPION_VERSION = "champion00000001"
CHALLENGER_VERSION = "challenger000001"
ROUND = Round(
    champion=ModelVersion("headline-base", CHAMPION_VERSION),
    challenger=ModelVersion("headline-base", CHALLENGER_VERSION),
    share=0.1,
    started_at=ROUND_START,
)
GUARDRAIL = guardrail_thresholds({})


@pytest.fixture
def api() -> Iterator[StatsApi]:
    with stats_api() as running:
        yield running


def round_report(api: StatsApi) -> StatsReport:
    """The round's `/api/stats` report, built as the API builds it."""
    return stats_report(api.store, since=ROUND_START, weights=WEIGHTS)


def outcome_of(api: StatsApi, guardrail: GuardrailThresholds = GUARDRAIL) -> object:
    return decide(
        ROUND,
        round_report(api),
        guardrail,
    )


# --------------------------------------------------------------------------- the rules


def test_a_winning_challenger_is_promoted(api: StatsApi) -> None:
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8)

    outcome = outcome_of(api)

    assert isinstance(outcome, Promote)
    assert f"readers prefer the challenger headline-base {CHALLENGER_VERSION} (B)" in (
        outcome.reason
    )
    assert "B 32 up of 40 (80%), A 10 up of 40 (25%)" in outcome.reason


def test_a_winning_champion_rejects_the_challenger(api: StatsApi) -> None:
    api.serve("A", up=32, down=8)
    api.serve("B", up=10, down=30)

    outcome = outcome_of(api)

    assert isinstance(outcome, Reject)
    assert f"readers prefer the champion headline-base {CHAMPION_VERSION} (A)" in outcome.reason


def test_no_lift_worth_detecting_rejects_the_challenger(api: StatsApi) -> None:
    # Equal and extreme up-rates: the posteriors are narrow enough for futility at 200 votes.
    api.serve("A", up=96, down=4)
    api.serve("B", up=96, down=4)
    report = round_report(api)
    assert report.verdict.decision == "no_lift"

    outcome = decide(ROUND, report, GUARDRAIL)

    assert isinstance(outcome, Reject)
    assert outcome.reason.startswith("no lift worth detecting of 0.07")
    assert outcome.reason.endswith(f"the champion headline-base {CHAMPION_VERSION} (A) stays")


def test_a_failing_challenger_trips_the_guardrail_even_while_it_leads(api: StatsApi) -> None:
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8, errors=50)

    outcome = outcome_of(api)

    assert isinstance(outcome, Reject)
    assert outcome.reason == (
        f"the guardrail tripped on the challenger headline-base {CHALLENGER_VERSION} (B): "
        "error rate 55.6% over 90 requests, above the guardrail's 50.0%"
    )


def test_a_slow_challenger_trips_the_guardrail(api: StatsApi) -> None:
    api.serve("A", up=5, down=5)
    api.serve("B", up=5, down=20, latency_ms=12_000)

    outcome = outcome_of(api)

    assert isinstance(outcome, Reject)
    assert "p95 latency 12,000 ms over 25 requests, above the guardrail's 10,000 ms" in (
        outcome.reason
    )


def test_the_guardrail_judges_nothing_below_its_minimum_requests(api: StatsApi) -> None:
    api.serve("A", up=5, down=5)
    api.serve("B", errors=19)  # every request failed, but one short of the minimum

    assert isinstance(outcome_of(api), Wait)
    assert isinstance(outcome_of(api, GuardrailThresholds(min_requests=19)), Reject)


def test_too_few_votes_waits_saying_how_many_are_missing(api: StatsApi) -> None:
    api.serve("A", up=8, down=12)
    api.serve("B", up=4, down=1)

    outcome = outcome_of(api)

    assert isinstance(outcome, Wait)
    assert outcome.reason.startswith(
        "too few votes: each variant needs 30 (B 4 up of 5 (80%), A 8 up of 20 (40%)); P(best) A "
    )
    assert "more votes likely needed: A " in outcome.reason


def test_too_close_waits_with_p_best_and_the_votes_needed(api: StatsApi) -> None:
    api.serve("A", up=20, down=20)
    api.serve("B", up=24, down=16)
    report = round_report(api)
    assert report.verdict.decision == "too_close"

    outcome = decide(ROUND, report, GUARDRAIL)

    assert isinstance(outcome, Wait)
    assert outcome.reason.startswith("too close: no variant's P(best) reaches 0.95 (P(best) A 0.")
    needed = report.verdict.votes_needed
    assert f"more votes likely needed: A {needed['A']}, B {needed['B']}" in outcome.reason


def test_one_variant_with_traffic_waits(api: StatsApi) -> None:
    api.serve("A", up=40, down=10)

    outcome = outcome_of(api)

    assert isinstance(outcome, Wait)
    assert "only one variant has served the round (variants with traffic: A)" in outcome.reason


def test_the_guardrail_thresholds_are_the_generate_functions_settings() -> None:
    fields = GenerateSettings.model_fields
    assert guardrail_thresholds({}) == GuardrailThresholds(
        min_requests=fields["guardrail_min_requests"].default,
        max_error_rate=fields["guardrail_max_error_rate"].default,
        max_p95_latency_ms=fields["guardrail_max_p95_latency_ms"].default,
    )
    tightened = guardrail_thresholds(
        {"GUARDRAIL_MAX_ERROR_RATE": "0.2", "GUARDRAIL_MIN_REQUESTS": "5"}
    )
    assert (tightened.max_error_rate, tightened.min_requests) == (0.2, 5)
    with pytest.raises(DecideError, match=r"GUARDRAIL_MAX_ERROR_RATE='2': .*less than or equal"):
        guardrail_thresholds({"GUARDRAIL_MAX_ERROR_RATE": "2"})


def test_a_report_from_before_the_futility_rule_still_reads(api: StatsApi) -> None:
    api.serve("A", up=8, down=12)
    payload = json.loads(round_report(api).model_dump_json())
    for added in ("probability_no_lift", "votes_needed", "min_lift"):
        del payload["verdict"][added]
    del payload["by_category"]  # nor the verdict by category

    report = parse_stats(payload)

    assert report.verdict.votes_needed == {}
    assert report.by_category == []
    assert isinstance(decide(ROUND, report, GUARDRAIL), Wait)


# --------------------------------------------------------------------------- the local command


class Workspace:
    """A built champion, a registered challenger and its round, as `round start` leaves them."""

    def __init__(self, root: Path, api_url: str) -> None:
        self.models_root = root / "models"
        self.registry = root / "registry"
        self.round_file = root / "local" / "round.json"
        self.api_url = api_url
        built = self.models_root / "smoke" / "headline-base"
        (built / "model").mkdir(parents=True)
        (built / "model" / "config.json").write_text("{}")
        (built / "model.tar.gz").write_bytes(b"")
        (built / "manifest.json").write_text(json.dumps(self.manifest(CHAMPION_VERSION)))
        self.register(CHALLENGER_VERSION)
        save_round(ROUND, self.round_file)

    def manifest(self, version: str) -> dict[str, str]:
        return {"name": "headline-base", "version": version, "profile": "smoke"}

    def register(self, version: str) -> None:
        staging = self.registry.parent / f"staging-{version}"
        staging.mkdir()
        (staging / "manifest.json").write_text(json.dumps(self.manifest(version)))
        register(staging, "a test challenger", self.registry)

    def decide(self, *options: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            app,
            [
                "round", "decide", "--api-url", self.api_url, "--registry", str(self.registry),
                "--round-file", str(self.round_file), *options,
            ],
        )  # fmt: skip
        return result.exit_code, " ".join(result.output.split())

    def challenger_status(self) -> tuple[str, str | None]:
        registered = find("headline-base", CHALLENGER_VERSION, self.registry)
        assert registered is not None
        return registered.status, registered.reason


@pytest.fixture
def workspace(tmp_path: Path, api: StatsApi) -> Workspace:
    return Workspace(tmp_path, api.url)


def test_decide_promotes_a_winner_that_variant_a_then_serves(
    workspace: Workspace, api: StatsApi
) -> None:
    api.serve("A", up=40, down=0, at=ROUND_START - timedelta(days=1))  # the round before
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8)

    code, output = workspace.decide()

    assert code == 0, output
    assert f"promoted headline-base {CHALLENGER_VERSION} (Approved), round ended" in output
    assert api.queries == [{"since": [ROUND_START.isoformat()]}]
    status, reason = workspace.challenger_status()
    assert status == APPROVED
    assert reason is not None and reason.startswith("readers prefer the challenger")
    assert load_round(workspace.round_file) is None
    # The champion, everywhere it is resolved: `pressroom up`'s variant A, the next round,
    # and `pressroom retrain`.
    champion = local_champion("smoke", workspace.models_root, workspace.registry)
    assert champion is not None and champion.version == CHALLENGER_VERSION
    parameters = champion_parameters("smoke", workspace.models_root, workspace.registry)
    assert parameters == {
        "HeadlineBaseModelDataUrl": registry_artifact_url("headline-base", CHALLENGER_VERSION),
        "HeadlineBaseModelVersion": CHALLENGER_VERSION,
    }
    stacks = load_local_stacks("smoke", workspace.models_root, None, parameters)
    [generator] = [
        spec
        for spec in endpoint_specs(stacks, "smoke", workspace.models_root, workspace.registry)
        if any(variant.model_name == "headline-base" for variant in spec.variants)
    ]
    assert generator.variant("A").artifact_dir == champion.directory / "model"
    workspace.register("challenger000002")
    next_round = Round.start(
        find("headline-base", "challenger000002", workspace.registry),  # type: ignore[arg-type]
        share=0.1,
        started_at=ROUND_START,
        models_root=workspace.models_root,
    )
    assert next_round.champion.version == CHALLENGER_VERSION
    retrained_from = resolve_champion(None, "smoke", workspace.models_root, workspace.registry)
    assert retrained_from == champion.directory


def test_decide_rejects_a_loser_with_the_reason(workspace: Workspace, api: StatsApi) -> None:
    api.serve("A", up=32, down=8)
    api.serve("B", up=10, down=30)

    code, output = workspace.decide()

    assert code == 0, output
    assert f"rejected headline-base {CHALLENGER_VERSION} (Rejected), round ended" in output
    assert f"the champion {CHAMPION_VERSION} stays on variant A" in output
    status, reason = workspace.challenger_status()
    assert status == REJECTED
    assert reason is not None and reason.startswith("readers prefer the champion")
    assert load_round(workspace.round_file) is None
    champion = local_champion("smoke", workspace.models_root, workspace.registry)
    assert champion is not None and (champion.version, champion.promoted) == (
        CHAMPION_VERSION,
        None,
    )
    assert champion_parameters("smoke", workspace.models_root, workspace.registry) == {}


def test_decide_waits_saying_why_and_changes_nothing(workspace: Workspace, api: StatsApi) -> None:
    api.serve("A", up=8, down=12)
    api.serve("B", up=4, down=1)

    code, output = workspace.decide()

    assert code == EXIT_WAITING
    assert "waiting: too few votes: each variant needs 30" in output
    assert workspace.challenger_status() == (PENDING, None)
    assert load_round(workspace.round_file) == ROUND


def test_a_dry_run_says_what_it_would_decide_and_changes_nothing(
    workspace: Workspace, api: StatsApi
) -> None:
    api.serve("A", up=10, down=30)
    api.serve("B", up=32, down=8)

    code, output = workspace.decide("--dry-run")

    assert code == 0, output
    assert f"would promote headline-base {CHALLENGER_VERSION} (Approved) and end the round" in (
        output
    )
    assert workspace.challenger_status() == (PENDING, None)
    assert load_round(workspace.round_file) == ROUND


def test_without_a_round_there_is_nothing_to_decide(workspace: Workspace) -> None:
    workspace.round_file.unlink()

    code, output = workspace.decide()

    assert code == EXIT_NO_ROUND
    assert (
        output == f"Nothing to decide: no round is running ({workspace.round_file} does not exist)"
    )


def test_an_unreachable_or_failing_api_is_one_line_and_exit_1(
    workspace: Workspace, api: StatsApi
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    workspace.api_url = closed

    code, output = workspace.decide()

    assert code == EXIT_ERROR
    assert output.startswith(f"Not decided: GET {closed}/api/stats: ")
    workspace.api_url = api.url
    api.fail_with = 503
    code, output = workspace.decide()
    assert code == EXIT_ERROR
    assert output.startswith(f"Not decided: GET {api.url}/api/stats answered 503: ")
    assert load_round(workspace.round_file) == ROUND
