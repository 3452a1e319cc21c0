"""A round's shadow stage: `pressroom round shadow`, then `round start` gating the canary on the
shadow's live answers. The live answers here are written by the emulator's own capture and
metrics writers (`CaptureWriter`, `MetricsWriter`), so they are laid out as the emulator lays
them out; `tests/integration/sagemaker/test_shadow_variant.py` captures real ones."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local.emulate.sagemaker.capture import CaptureSpec, CaptureWriter, Exchange
from local.emulate.sagemaker.metrics import Invocation, MetricsWriter
from local.registry import PENDING, REJECTED, find, set_status
from local.rounds.shadow import CHAMPION_VARIANT, SHADOW_VARIANT, Stage, live_gate
from local.rounds.state import load_round, round_parameters
from tests.unit.experiments.test_rounds import CHALLENGER_VERSION, Workspace

ENDPOINT = "pressroom-dev-headline"
JSON = "application/json"
CAPTURE = CaptureSpec(100, True, True, frozenset({JSON}))
PROMPTS = ("Markets", "Storm hits", "Election", "Football club")
HEALTHY = (
    " rally as rates fall",
    " climbs to a record",
    " hopes fade in the north",
    " wins the cup final",
    " warns of a long winter",
    " signs a new deal",
)
# A challenger collapsed onto one headline: readers asking again get the same one.
COLLAPSED = (" rally as rates fall",)

Answers = Callable[[int, str], str]


class LiveTraffic:
    """Requests to the generator as the generate function sends them, each answered by A and
    copied to the shadow, written where `round start` reads them."""

    def __init__(self, root: Path) -> None:
        self.capture_root = root / "capture"
        self.metrics_root = root / "metrics"
        self._capture = CaptureWriter(self.capture_root, seed=1)
        self._metrics = MetricsWriter(self.metrics_root)

    def serve(
        self,
        requests: int,
        *,
        shadow: Answers,
        champion: Answers | None = None,
        at: datetime | None = None,
        shadow_latency_ms: float = 100.0,
        shadow_fails: Sequence[int] = (),
    ) -> None:
        champion = champion or (lambda index, _: HEALTHY[asked(index) % len(HEALTHY)])
        at = at or datetime.now(UTC)
        for index in range(requests):
            prompt = PROMPTS[index % len(PROMPTS)]
            inference_id = f"generation-{at.timestamp():.0f}-{index}"
            self._answer(CHAMPION_VARIANT, inference_id, prompt, champion(index, prompt), at, 100)
            if index in shadow_fails:
                self._metrics.record(
                    Invocation(ENDPOINT, SHADOW_VARIANT, at, 424, 5.0, inference_id)
                )
                continue
            answer = shadow(index, prompt)
            self._answer(SHADOW_VARIANT, inference_id, prompt, answer, at, shadow_latency_ms)

    def _answer(
        self, variant: str, inference_id: str, prompt: str, text: str, at: datetime, ms: float
    ) -> None:
        request = {"inputs": prompt, "parameters": {"do_sample": True, "return_full_text": False}}
        self._capture.capture(
            CAPTURE,
            Exchange(
                endpoint=ENDPOINT,
                variant=variant,
                request_body=json.dumps(request).encode(),
                request_content_type=JSON,
                response_body=json.dumps([{"generated_text": text}]).encode(),
                response_content_type=JSON,
                inference_id=inference_id,
                at=at,
            ),
        )
        self._metrics.record(Invocation(ENDPOINT, variant, at, 200, ms, inference_id))


def asked(index: int) -> int:
    """How many times request `index`'s prompt was asked before it."""
    return index // len(PROMPTS)


def healthy(index: int, _: str) -> str:
    return HEALTHY[(asked(index) + 1) % len(HEALTHY)]


def collapsed(index: int, _: str) -> str:
    return COLLAPSED[0]


@pytest.fixture
def traffic(tmp_path: Path) -> LiveTraffic:
    return LiveTraffic(tmp_path)


def judged(traffic: LiveTraffic, since: datetime) -> list[str]:
    verdict = live_gate(
        since=since,
        profile="full",
        capture_root=traffic.capture_root,
        metrics_root=traffic.metrics_root,
    )
    return verdict.reasons


# ---- the gate on live answers


def test_healthy_live_answers_pass_the_gate(traffic: LiveTraffic) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    traffic.serve(24, shadow=healthy, shadow_latency_ms=120)

    verdict = live_gate(
        since=since,
        profile="full",
        capture_root=traffic.capture_root,
        metrics_root=traffic.metrics_root,
    )

    assert verdict.passed, verdict.reasons
    assert verdict.figures["challenger"]["answers"] == verdict.figures["champion"]["answers"] == 24
    assert verdict.figures["challenger"]["distinct_share"] == 1.0
    assert verdict.figures["challenger"]["p95_latency_ms"] == 120


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"shadow": collapsed}, "distinct answers to a prompt asked again 0.1667"),
        ({"shadow": lambda index, _: " ..."}, "answers without a word 1"),
        ({"shadow_latency_ms": 400.0}, "p95 latency (ms) 400 (champion 100; must be at most 150"),
        ({"shadow_fails": (3, 7)}, "error rate 0.0833"),
        ({"shadow": lambda index, _: " damn the rates"}, "answers with a blocklisted word 24"),
    ],
)
def test_collapsed_failing_or_slow_live_answers_are_refused_naming_why(
    traffic: LiveTraffic, change: dict[str, object], refusal: str
) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    traffic.serve(24, **{"shadow": healthy, **change})  # type: ignore[arg-type]

    reasons = judged(traffic, since)

    assert any(reason.startswith(refusal) for reason in reasons), reasons


def test_too_few_live_answers_are_not_judged_a_pass(traffic: LiveTraffic) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    traffic.serve(8, shadow=healthy)

    assert judged(traffic, since) == ["live answers captured 8 (champion 8; must be at least 20)"]


def test_only_the_answers_since_the_shadow_stage_began_count(traffic: LiveTraffic) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    traffic.serve(24, shadow=collapsed, at=since - timedelta(hours=2))  # an earlier shadow
    traffic.serve(24, shadow=healthy, at=since)

    assert judged(traffic, since) == []


def test_no_live_answers_at_all_are_refused(traffic: LiveTraffic) -> None:
    reasons = judged(traffic, datetime.now(UTC))

    assert reasons[0] == "live answers captured 0 (champion 0; must be at least 20)"


# ---- pressroom round shadow, then round start


class ShadowWorkspace(Workspace):
    def run(self, *arguments: str) -> tuple[int, str]:
        if arguments[0] == "shadow":  # which champion it shadows: the workspace's
            arguments = (*arguments, "--models-root", str(self.models_root))
        return super().run(*arguments)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    workspace = ShadowWorkspace(tmp_path)
    workspace.register(CHALLENGER_VERSION)
    return workspace


def start_after_shadow(workspace: Workspace, traffic: LiveTraffic, *more: str) -> tuple[int, str]:
    return workspace.run(
        "start",
        CHALLENGER_VERSION,
        "--capture-root",
        str(traffic.capture_root),
        "--metrics-root",
        str(traffic.metrics_root),
        *more,
    )


def test_shadow_starts_a_shadow_round_that_up_serves_as_the_generators_shadow(
    workspace: Workspace,
) -> None:
    code, output = workspace.run("shadow", CHALLENGER_VERSION)

    assert code == 0, output
    experiment_round = load_round(workspace.round_file)
    assert experiment_round is not None and experiment_round.stage is Stage.SHADOW
    assert round_parameters(experiment_round, workspace.registry) == {
        "ChallengerModelDataUrl": (
            f"s3://pressroom-local-artifacts/registry/headline-base/{CHALLENGER_VERSION}"
            "/model.tar.gz"
        ),
        "ChallengerModelVersion": CHALLENGER_VERSION,
        "ChallengerStage": "shadow",
        "VariantAWeight": "1",
        "VariantBWeight": "0",
        "RoutingStrategy": "fixed",
        "ExperimentStartedAt": experiment_round.started_at.isoformat(timespec="seconds"),
    }
    _, shown = workspace.run("show")
    assert f"challenger headline-base {CHALLENGER_VERSION} shadows it" in shown


def test_start_after_a_healthy_shadow_moves_the_round_to_its_canary(
    workspace: Workspace, traffic: LiveTraffic
) -> None:
    workspace.run("shadow", CHALLENGER_VERSION)
    shadow_round = load_round(workspace.round_file)
    assert shadow_round is not None
    traffic.serve(24, shadow=healthy, at=shadow_round.started_at)

    code, output = start_after_shadow(workspace, traffic, "--share", "0.2")

    assert code == 0, output
    assert "the shadow stage passed the gate on its live answers" in output
    canary = load_round(workspace.round_file)
    assert canary is not None
    assert (canary.stage, canary.share) == (Stage.CANARY, 0.2)
    assert canary.started_at >= shadow_round.started_at  # the canary's votes count from here
    registered = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert registered is not None and registered.status == PENDING


def test_start_after_a_collapsed_shadow_refuses_and_records_the_rejection(
    workspace: Workspace, traffic: LiveTraffic
) -> None:
    workspace.run("shadow", CHALLENGER_VERSION)
    shadow_round = load_round(workspace.round_file)
    assert shadow_round is not None
    traffic.serve(24, shadow=collapsed, at=shadow_round.started_at)

    code, output = start_after_shadow(workspace, traffic)

    assert code == 1
    assert "the shadow's live answers failed the gate: distinct answers to a prompt" in output
    assert "the round has ended" in output
    assert not workspace.round_file.exists()
    registered = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert registered is not None and registered.status == REJECTED
    assert registered.reason is not None
    assert "distinct answers to a prompt asked again 0.1667" in registered.reason
    # ...so it cannot come back as a canary or a shadow.
    assert workspace.run("start", CHALLENGER_VERSION)[0] == 1
    assert "Rejected in the registry" in workspace.run("shadow", CHALLENGER_VERSION)[1]


def test_without_a_shadow_start_starts_the_canary_at_once(workspace: Workspace) -> None:
    code, output = workspace.run("start", CHALLENGER_VERSION)

    assert code == 0, output
    experiment_round = load_round(workspace.round_file)
    assert experiment_round is not None and experiment_round.stage is Stage.CANARY


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (
            ("shadow", CHALLENGER_VERSION, "--hosting-mode", "serverless"),
            "serverless endpoints take no shadow variants",
        ),
        (("shadow", "0123456789abcdef"), "headline-base 0123456789abcdef is not registered"),
    ],
)
def test_shadow_refusals_name_why_and_write_nothing(
    workspace: Workspace, arguments: tuple[str, ...], refusal: str
) -> None:
    code, output = workspace.run(*arguments)

    assert code == 1
    assert refusal in output
    assert not workspace.round_file.exists()


def test_a_rejected_challenger_cannot_shadow(workspace: Workspace) -> None:
    registered = find("headline-base", CHALLENGER_VERSION, workspace.registry)
    assert registered is not None
    set_status(registered, REJECTED, "the offline gate")

    code, output = workspace.run("shadow", CHALLENGER_VERSION)

    assert code == 1
    assert f"{CHALLENGER_VERSION} is Rejected in the registry (the offline gate)" in output


def test_a_shadow_round_of_another_version_blocks_start(workspace: Workspace) -> None:
    workspace.register("challenger000002")
    workspace.run("shadow", CHALLENGER_VERSION)

    code, output = workspace.run("start", "challenger000002")

    assert code == 1
    assert "a round is running" in output
    running = load_round(workspace.round_file)
    assert running is not None and running.stage is Stage.SHADOW
