"""The shadow stage of an experiment round: the challenger answers readers' requests unseen.

`pressroom round shadow VERSION` starts a round in its shadow stage. `pressroom up` then serves
the generator endpoint with the champion as its one production variant (A) and the challenger
as its shadow variant (`Shadow`, the template's `ShadowProductionVariants`, `ChallengerStage`
shadow): every request to A is copied to the shadow, readers get A's answer alone, and data
capture keeps both answers under the same InferenceId (`<capture>/<endpoint>/A/...` and
`<capture>/<endpoint>/Shadow/...`); the emulator also keeps each invocation's latency and status
(`local.emulate.sagemaker.metrics`), what CloudWatch holds on AWS.

`pressroom round start VERSION` on a shadow round of that version re-runs the offline gate on
those live answers before the canary (`live_gate`, with `training.feedback.gate.judge_live`):
enough answers, the shadow's error rate, its p95 latency against the champion's on the same
requests, and the offline gate's measures of what readers would have read (distinct answers,
answers without a word, words repeated back to back, length, the blocklist), under the same
thresholds (`GateThresholds`, per profile). A pass moves the round to its canary stage; a
failure records the challenger `Rejected` in the registry with the reasons. The shadow stage is
optional: `round start` without one starts the canary straight away.

Serverless endpoints take no shadow variants (SageMaker), so the shadow stage needs realtime
hosting; the template refuses it too (apps/inference-api's rule
`ShadowStageNeedsRealtimeHosting`, which the local runtime checks as CloudFormation does).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.cfn import load_template
from local.emulate.sagemaker.metrics import Invocation, read_invocations
from local.paths import DEFAULT_CAPTURE_ROOT, DEFAULT_METRICS_ROOT, ROOT_TEMPLATE
from local.registry import REJECTED, RegisteredModel, set_status

if TYPE_CHECKING:  # the gate imports torch: only the commands that judge load it
    from training.feedback.gate import GateVerdict

CHAMPION_VARIANT = "A"
SHADOW_VARIANT = "Shadow"
"""The shadow variant's name in apps/inference-api/template.yaml (`ShadowProductionVariants`)."""
P95 = 0.95


class Stage(StrEnum):
    """Where a round's challenger answers: beside the champion unseen, or to a share of readers."""

    SHADOW = "shadow"
    CANARY = "canary"


class Hosting(StrEnum):
    REALTIME = "realtime"
    SERVERLESS = "serverless"


def served_hosting_mode(root_template: Path = ROOT_TEMPLATE) -> Hosting:
    """The hosting mode `pressroom up` serves: the root template's `HostingMode` default."""
    parameters = load_template(root_template).get("Parameters") or {}
    return Hosting(str(parameters["HostingMode"]["Default"]))


def hosting_problem(hosting: Hosting) -> str | None:
    """Why a shadow stage cannot run under `hosting`, or None."""
    if hosting is Hosting.REALTIME:
        return None
    return (
        f"HostingMode {hosting}: serverless endpoints take no shadow variants (SageMaker), so "
        "a shadow stage needs realtime hosting; start the round as a canary with "
        "`pressroom round start` instead"
    )


def shadow_overrides(*, data_url: str, version: str, started_at: str) -> dict[str, str]:
    """Root-template parameters of a round's shadow stage: the challenger artifact at
    `data_url` as the generator's shadow variant, every reader on A (weights 1 and 0, so the
    sample-ratio check expects no B), and the stage's start (ISO 8601) for `/api/stats`."""
    return {
        "ChallengerModelDataUrl": data_url,
        "ChallengerModelVersion": version,
        "ChallengerStage": Stage.SHADOW.value,
        "VariantAWeight": "1",
        "VariantBWeight": "0",
        "RoutingStrategy": "fixed",
        "ExperimentStartedAt": started_at,
    }


# --------------------------------------------------------------------------- live answers


@dataclass(frozen=True)
class LiveAnswer:
    """One answer data capture kept: the request's prompt and the generated continuation."""

    inference_id: str | None
    prompt: str
    text: str


def captured_answers(
    capture_root: Path, endpoint: str, variant: str, since: datetime
) -> list[LiveAnswer]:
    """The generator answers `variant` of `endpoint` gave since `since`, from the capture
    records under `capture_root` (a record that holds several prompts gives one per prompt)."""
    answers = []
    for record in _capture_records(capture_root / endpoint / variant):
        metadata = record["eventMetadata"]
        at = datetime.fromisoformat(metadata["inferenceTime"].replace("Z", "+00:00"))
        capture = record["captureData"]
        if at < since or "endpointInput" not in capture or "endpointOutput" not in capture:
            continue
        request = json.loads(_captured_text(capture["endpointInput"]))
        outputs = json.loads(_captured_text(capture["endpointOutput"]))
        prompts = request["inputs"] if isinstance(request["inputs"], list) else [request["inputs"]]
        full_text = (request.get("parameters") or {}).get("return_full_text", True)
        for prompt, output in zip(prompts, outputs, strict=True):
            text = str(output["generated_text"])
            if full_text and text.startswith(prompt):
                text = text[len(prompt) :]
            answers.append(LiveAnswer(metadata.get("inferenceId"), prompt, text))
    return answers


def live_figures(answers: Sequence[LiveAnswer], calls: Sequence[Invocation]) -> dict[str, Any]:
    """What `judge_live` compares, for one variant: its answers (`text_figures` and variety),
    the share of its invocations that failed, and its p95 latency over those that answered."""
    from pressroom_common.experiment.statistics import percentile

    from training.feedback.gate import distinct_share, text_figures

    by_prompt: dict[str, list[str]] = {}
    for answer in answers:
        by_prompt.setdefault(answer.prompt.strip(), []).append(answer.text)
    # Variety among the answers to a prompt readers asked again; when none was, among all the
    # answers (a model collapsed onto one headline writes it whatever the prompt).
    asked_again = [prompt for prompt, texts in by_prompt.items() if len(texts) > 1]
    variety = 0.0
    if asked_again:
        variety = distinct_share(by_prompt, asked_again)
    elif answers:
        variety = distinct_share({"": [answer.text for answer in answers]}, [""])
    latencies = [call.latency_ms for call in calls if call.ok]
    failed = sum(not call.ok for call in calls)
    return {
        "answers": len(answers),
        "prompts_asked_again": len(asked_again),
        "invocations": len(calls),
        "error_rate": round(failed / len(calls), 4) if calls else 0.0,
        "p95_latency_ms": round(percentile(latencies, P95), 1) if latencies else 0.0,
        "distinct_share": variety,
        **(
            text_figures([(a.prompt, a.text) for a in answers])
            if answers
            else {
                "no_word_share": 0.0,
                "repeated_word_share": 0.0,
                "median_words": 0.0,
                "blocklisted_answers": 0,
            }
        ),
    }


@dataclass(frozen=True)
class LiveVerdict:
    verdict: GateVerdict
    figures: dict[str, dict[str, Any]]
    """`challenger` (the shadow) and `champion` (A on the same requests)."""

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def reasons(self) -> list[str]:
        return self.verdict.reasons()


def live_gate(
    *,
    since: datetime,
    profile: str,
    capture_root: Path = DEFAULT_CAPTURE_ROOT,
    metrics_root: Path = DEFAULT_METRICS_ROOT,
) -> LiveVerdict:
    """The gate on the shadow's live answers since `since` (the shadow stage's start), beside
    the champion's answers to the same requests, under the thresholds of `profile`."""
    from training.feedback.gate import judge_live
    from training.feedback.retrain import settings_for

    endpoints = sorted(
        {
            path.parent.name
            for root in (capture_root, metrics_root)
            for path in root.glob(f"*/{SHADOW_VARIANT}")
        }
    )
    shadow_calls = [
        call
        for endpoint in endpoints
        for call in read_invocations(metrics_root, endpoint, SHADOW_VARIANT, since)
    ]
    champion_calls = [
        call
        for endpoint in endpoints
        for call in read_invocations(metrics_root, endpoint, CHAMPION_VARIANT, since)
    ]
    shadow = _answers(capture_root, endpoints, SHADOW_VARIANT, since)
    champion = _answers(capture_root, endpoints, CHAMPION_VARIANT, since)
    # The champion on the requests the shadow got a copy of (all of them at the template's
    # share; fewer where the shadow's weight copies only some).
    copied = {call.inference_id for call in shadow_calls if call.inference_id is not None}
    if copied:
        champion = [answer for answer in champion if answer.inference_id in copied]
        champion_calls = [call for call in champion_calls if call.inference_id in copied]
    figures = {
        "challenger": live_figures(shadow, shadow_calls),
        "champion": live_figures(champion, champion_calls),
    }
    verdict = judge_live(figures["challenger"], figures["champion"], settings_for(profile).gate)
    return LiveVerdict(verdict, figures)


def gate_shadow_stage(
    challenger: RegisteredModel,
    since: datetime,
    capture_root: Path = DEFAULT_CAPTURE_ROOT,
    metrics_root: Path = DEFAULT_METRICS_ROOT,
) -> str | None:
    """The live gate on `challenger`'s shadow stage since `since`: None when it passes;
    otherwise the challenger is recorded Rejected in the registry with the reasons, which the
    returned refusal names."""
    verdict = live_gate(
        since=since,
        profile=str(challenger.manifest["profile"]),
        capture_root=capture_root,
        metrics_root=metrics_root,
    )
    if verdict.passed:
        return None
    reasons = "; ".join(verdict.reasons)
    set_status(challenger, REJECTED, f"the shadow stage's live answers failed the gate: {reasons}")
    return (
        f"the shadow's live answers failed the gate: {reasons}. {challenger.name} "
        f"{challenger.version} is now Rejected in the registry (readers only ever saw the "
        "champion)"
    )


def _answers(
    capture_root: Path, endpoints: Iterable[str], variant: str, since: datetime
) -> list[LiveAnswer]:
    return [
        answer
        for endpoint in endpoints
        for answer in captured_answers(capture_root, endpoint, variant, since)
    ]


def _capture_records(variant_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(variant_dir.glob("*/*/*/*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


def _captured_text(payload: dict[str, Any]) -> str:
    data = str(payload["data"])
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data
