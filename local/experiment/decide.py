"""`pressroom round decide`: end an experiment round once its verdict is decisive.

The rules (`decide`), from the round, the API's `GET /api/stats` over the round and the
guardrail's thresholds, in this order:

1. The guardrail tripped on the challenger (variant B): over at least the guardrail's minimum
   requests, its error rate or p95 latency is above the generate function's own guardrail
   thresholds (its `GUARDRAIL_*` settings) -> reject.
2. The verdict is `winner`: the challenger (B) leads -> promote; the champion (A) leads -> reject.
3. The verdict is `no_lift`: the up-rates are within the smallest lift worth detecting with the
   decision probability (futility) -> reject: the champion stays.
4. Otherwise (`too_few_votes`, `too_close`, `one_variant`) -> wait, saying why: the votes,
   P(best) and the votes each variant likely still needs.

Promoting approves the challenger in the registry and makes it the champion that variant A
serves from the next start (locally: `pressroom up`, see `local.champion`; on AWS: an Approved
package of pressroom-headline-base, which the next deploy's `release-parameters` serves);
rejecting records why. Both end the round (locally, `round.json` goes; on AWS the next deploy
must end it: `make deploy END_ROUND=1`, which the Deploy workflow runs).

Exit codes: 0 decided (promoted or rejected), 3 waiting (the reason on stderr), 4 no round is
running, 1 an error (the API unreachable, the stack missing...), each with one line on stderr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pressroom_common.experiment.report import StatsReport, VariantStats
from pressroom_common.experiment.settings import GuardrailSettings, GuardrailThresholds
from pydantic import ValidationError
from rich.console import Console

from local.registry import APPROVED, PENDING, REJECTED
from local.rounds.shadow import Stage
from local.rounds.state import Keep, ModelVersion, end_round, load_round
from training.feedback import CHAMPION

CHAMPION_VARIANT = "A"  # a round serves the champion on A and the challenger on B
CHALLENGER_VARIANT = "B"

EXIT_DECIDED = 0
EXIT_ERROR = 1
EXIT_WAITING = 3
EXIT_NO_ROUND = 4

STATS_TIMEOUT_S = 30.0
MAX_APPROVAL_DESCRIPTION = 1024  # UpdateModelPackage's ApprovalDescription


class DecideError(Exception):
    """Nothing can be decided; the message says why. Nothing was changed."""


class NoRound(DecideError):
    """No experiment round is running, so there is nothing to decide."""


@dataclass(frozen=True)
class Promote:
    reason: str


@dataclass(frozen=True)
class Reject:
    reason: str


@dataclass(frozen=True)
class Wait:
    reason: str


Outcome = Promote | Reject | Wait


class Contest(Protocol):
    """What the rules read of a round: who is on A and B, and since when."""

    @property
    def champion(self) -> ModelVersion: ...

    @property
    def challenger(self) -> ModelVersion: ...

    @property
    def started_at(self) -> datetime: ...


# --------------------------------------------------------------------------- the rules


def decide(contest: Contest, report: StatsReport, guardrail: GuardrailThresholds) -> Outcome:
    """Promote, reject or wait (see the module's docstring), with the reason in words."""
    challenger = f"the challenger {contest.challenger.name} {contest.challenger.version} (B)"
    champion = f"the champion {contest.champion.name} {contest.champion.version} (A)"
    variants = {item.variant: item for item in report.variants}
    breach = guardrail_breach(variants.get(CHALLENGER_VARIANT), guardrail)
    if breach is not None:
        return Reject(f"the guardrail tripped on {challenger}: {breach}")
    verdict = report.verdict
    votes = _votes(report)
    if verdict.decision == "winner":
        p_best = verdict.probability_best.get(verdict.leader or "", 0.0)
        preferred = (
            f"P(best) {p_best:.3f} >= {verdict.decision_probability:g} with at least "
            f"{verdict.min_votes_per_variant} votes each ({votes})"
        )
        if verdict.leader == CHALLENGER_VARIANT:
            return Promote(f"readers prefer {challenger}: {preferred}")
        if verdict.leader == CHAMPION_VARIANT:
            return Reject(f"readers prefer {champion}: {preferred}")
        return Wait(
            f"the leader is variant {verdict.leader}, neither the champion (A) nor the "
            "challenger (B): a round has only those two"
        )
    if verdict.decision == "no_lift":
        lift = f" of {verdict.min_lift:g}" if verdict.min_lift is not None else ""
        certainty = (
            f" with P {verdict.probability_no_lift:.3f}"
            if verdict.probability_no_lift is not None
            else ""
        )
        return Reject(
            f"no lift worth detecting{lift}: the up-rates are that close{certainty} ({votes}); "
            f"{champion} stays"
        )
    return Wait(_why_waiting(report))


def guardrail_breach(stats: VariantStats | None, thresholds: GuardrailThresholds) -> str | None:
    """Why the variant's figures over the round trip the guardrail, or None (also below the
    guardrail's minimum requests, where it judges nothing)."""
    if stats is None or stats.requests < thresholds.min_requests:
        return None
    over = f"over {stats.requests} requests"
    if stats.error_rate > thresholds.max_error_rate:
        return (
            f"error rate {stats.error_rate:.1%} {over}, above the guardrail's "
            f"{thresholds.max_error_rate:.1%}"
        )
    p95 = stats.latency_ms.p95
    if p95 is not None and p95 > thresholds.max_p95_latency_ms:
        return (
            f"p95 latency {p95:,.0f} ms {over}, above the guardrail's "
            f"{thresholds.max_p95_latency_ms:,.0f} ms"
        )
    return None


def guardrail_thresholds(environment: Mapping[str, str] | None = None) -> GuardrailThresholds:
    """The thresholds the generate function's guardrail uses: its `GUARDRAIL_*` settings, from
    `environment` (this process's by default) where set, else their defaults."""
    environment = os.environ if environment is None else environment
    given = {
        name: environment[name.upper()]
        for name in GuardrailSettings.model_fields
        if name.upper() in environment
    }
    try:
        # model_validate, not the constructor: only `environment` is read, never os.environ.
        return GuardrailSettings.model_validate(given).guardrail
    except ValidationError as error:
        problem = error.errors()[0]
        name = str(problem["loc"][0])
        raise DecideError(f"{name.upper()}={given[name]!r}: {problem['msg']}") from None


def _votes(report: StatsReport) -> str:
    """`B 48 up of 73 (66%), A 31 up of 60 (52%)`: each variant's votes, in words."""
    parts = []
    for item in sorted(report.variants, key=lambda each: each.variant, reverse=True):
        votes = item.up + item.down
        rate = f" ({item.up_rate:.0%})" if item.up_rate is not None else ""
        parts.append(f"{item.variant} {item.up} up of {votes}{rate}")
    return ", ".join(parts) or "no votes"


def _why_waiting(report: StatsReport) -> str:
    verdict = report.verdict
    needed = ", ".join(
        f"{variant} {count}" for variant, count in sorted(verdict.votes_needed.items()) if count
    )
    more = f"; more votes likely needed: {needed}" if needed else ""
    p_best = ", ".join(
        f"{variant} {probability:.3f}"
        for variant, probability in sorted(verdict.probability_best.items())
    )
    if verdict.decision == "one_variant":
        served = ", ".join(item.variant for item in report.variants) or "none"
        return (
            f"only one variant has served the round (variants with traffic: {served}): "
            "both need readers"
        )
    if verdict.decision == "too_few_votes":
        return (
            f"too few votes: each variant needs {verdict.min_votes_per_variant} "
            f"({_votes(report)}); P(best) {p_best}{more}"
        )
    return (
        f"too close: no variant's P(best) reaches {verdict.decision_probability:g} "
        f"(P(best) {p_best}; {_votes(report)}){more}"
    )


# --------------------------------------------------------------------------- /api/stats


def parse_stats(payload: Any) -> StatsReport:
    """The `/api/stats` body as a `StatsReport`; an API from before the futility rule (no
    `no_lift`, `votes_needed`) reads as one without it, and one from before the verdict by
    category as one with no categories."""
    if isinstance(payload, dict) and isinstance(payload.get("verdict"), dict):
        verdict = payload["verdict"]
        payload = {
            "by_category": [],
            **payload,
            "verdict": {
                "probability_no_lift": None,
                "votes_needed": {},
                "min_lift": None,
                **verdict,
            },
        }
    return StatsReport.model_validate(payload)


def fetch_stats(
    api_url: str, since: datetime, *, timeout_s: float = STATS_TIMEOUT_S
) -> StatsReport:
    """`GET <api_url>/api/stats?since=<since>`: the round's statistics and verdict."""
    url = f"{api_url.rstrip('/')}/api/stats"
    started = since.isoformat(timespec="seconds")
    try:
        response = httpx.get(url, params={"since": started}, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise DecideError(f"GET {url}: {error or type(error).__name__}") from None
    if response.status_code != 200:
        raise DecideError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    try:
        report = parse_stats(response.json())
    except (ValueError, ValidationError) as error:
        raise DecideError(f"GET {url}: not a stats report: {str(error)[:200]}") from None
    if report.since is None or report.since != since:
        raise DecideError(
            f"GET {url} reported since {report.since}, not the round's start {started}"
        )
    return report


# --------------------------------------------------------------------------- locally


def decide_local(
    *,
    api_url: str,
    round_file: Path,
    registry_root: Path,
    dry_run: bool,
    console: Console,
    environment: Mapping[str, str] | None = None,
) -> int:
    """The local round in `round_file` against the local API: promote, reject or wait. Returns
    the exit code; raises `DecideError` (a `NoRound` when none is running)."""
    experiment_round = load_round(round_file)
    if experiment_round is None:
        raise NoRound(f"no round is running ({round_file} does not exist)")
    if experiment_round.stage is Stage.SHADOW:
        console.print(
            "[yellow]waiting[/]: the round is in its shadow stage, where no reader sees the "
            f"challenger: `pressroom round start {experiment_round.challenger.version}` gates "
            "it for the canary, whose votes decide"
        )
        return EXIT_WAITING
    report = fetch_stats(api_url, experiment_round.started_at)
    outcome = decide(experiment_round, report, guardrail_thresholds(environment))
    if isinstance(outcome, Wait):
        console.print(f"[yellow]waiting[/]: {outcome.reason}")
        return EXIT_WAITING
    challenger = experiment_round.challenger
    keep = Keep.CHALLENGER if isinstance(outcome, Promote) else Keep.CHAMPION
    status = APPROVED if keep is Keep.CHALLENGER else REJECTED
    if dry_run:
        console.print(
            f"[bold]would {_verb(outcome)}[/] {challenger.name} {challenger.version} "
            f"({status}) and end the round: {outcome.reason}"
        )
        return EXIT_DECIDED
    decided = end_round(experiment_round, keep, registry_root, reason=outcome.reason)
    round_file.unlink()
    served = (
        "variant A serves it from the next `pressroom up`"
        if keep is Keep.CHALLENGER
        else f"the champion {experiment_round.champion.version} stays on variant A"
    )
    console.print(
        f"[green]{_done(outcome)}[/] {decided.name} {decided.version} ({decided.status}), "
        f"round ended; {served}: {outcome.reason}"
    )
    return EXIT_DECIDED


def _verb(outcome: Promote | Reject) -> str:
    return "promote" if isinstance(outcome, Promote) else "reject"


def _done(outcome: Promote | Reject) -> str:
    return "promoted" if isinstance(outcome, Promote) else "rejected"


# --------------------------------------------------------------------------- on AWS


@dataclass(frozen=True)
class DeployedRound:
    """The round an environment's stack serves, from its parameters and outputs."""

    champion: ModelVersion
    challenger: ModelVersion
    started_at: datetime
    api_url: str


def deployed_round(cloudformation: Any, stack_name: str) -> DeployedRound | None:
    """The round `stack_name` serves (None: none), with the API's URL (output `ApiUrl`)."""
    from botocore.exceptions import ClientError

    from local.ops.deploy import model_parameters

    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise DecideError(f"stack {stack_name} does not exist: deploy it first") from None
        raise
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
    }
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    version = parameters.get("ChallengerModelVersion", "")
    if not version:
        return None
    if "ApiUrl" not in outputs:
        raise DecideError(f"stack {stack_name} has no output ApiUrl: deploy it first")
    champion = parameters.get(model_parameters()[CHAMPION].version, "unknown")
    try:
        started_at = datetime.fromisoformat(parameters.get("ExperimentStartedAt", ""))
    except ValueError:
        raise DecideError(
            f"stack {stack_name} serves challenger {version} without a valid "
            f"ExperimentStartedAt ({parameters.get('ExperimentStartedAt')!r})"
        ) from None
    return DeployedRound(
        champion=ModelVersion(CHAMPION, champion),
        challenger=ModelVersion(CHAMPION, version),
        started_at=started_at,
        api_url=outputs["ApiUrl"],
    )


def conclude_on_aws(
    sagemaker: Any, contest: Contest, outcome: Promote | Reject, *, approved_only: bool
) -> str:
    """Record the decision in the SageMaker Model Registry; returns what changed, in words.

    The challenger's package in `CHALLENGER_GROUP` becomes Approved or Rejected, the reason in
    its ApprovalDescription. A promoted challenger is also registered in
    pressroom-headline-base (its artifact and container), so that the next deploy's
    `release-parameters` serves it on variant A: Approved where the environment serves only
    Approved packages (`approved_only`: prod, whose round a person approved the challenger
    for), PendingManualApproval elsewhere, so a dev round never changes prod's champion
    (`pressroom promote` stays the gate). Running it again changes nothing more."""
    from local.ops.publish import (
        CHALLENGER_GROUP,
        PROFILE_KEY,
        default_group_name,
        find_package,
        promote,
        register,
    )

    version = contest.challenger.version
    package = find_package(sagemaker, CHALLENGER_GROUP, version)
    if package is None:
        raise DecideError(
            f"challenger {version} is not registered in model package group {CHALLENGER_GROUP}"
        )
    status = APPROVED if isinstance(outcome, Promote) else REJECTED
    sagemaker.update_model_package(
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus=status,
        ApprovalDescription=f"round decided: {outcome.reason}"[:MAX_APPROVAL_DESCRIPTION],
        # Re-sent unchanged: an update that omits it must not lose the version tag.
        CustomerMetadataProperties=package["CustomerMetadataProperties"],
    )
    changed = f"{CHALLENGER_GROUP} {version}: {status}"
    if isinstance(outcome, Reject):
        return changed
    container = package["InferenceSpecification"]["Containers"][0]
    group = default_group_name(CHAMPION)
    registration = register(
        sagemaker,
        group=group,
        name=CHAMPION,
        version=version,
        profile=package["CustomerMetadataProperties"].get(PROFILE_KEY, "full"),
        model_data_url=container["ModelDataUrl"],
        container={key: container[key] for key in ("Image", "Environment") if key in container},
        approval_status=APPROVED if approved_only else PENDING,
    )
    if approved_only and not registration.registered:  # registered by an earlier run
        promote(sagemaker, group=group, version=version)
    return f"{changed}; {group} {version}: {APPROVED if approved_only else PENDING}"


def decide_aws(*, environment: str, dry_run: bool, console: Console) -> int:
    """ENV's deployed round against ENV's API: promote or reject in the model registry (the
    next deploy with END_ROUND=1 ends the round), or wait. Returns the exit code."""
    from botocore.exceptions import BotoCoreError, ClientError

    from local.ops.deploy import DeployError

    try:
        return _decide_aws(environment=environment, dry_run=dry_run, console=console)
    except (DeployError, BotoCoreError, ClientError) as error:
        raise DecideError(str(error)) from None


def _decide_aws(*, environment: str, dry_run: bool, console: Console) -> int:
    import boto3

    from local.ops.deploy import environment_config
    from local.ops.publish import APPROVED_ONLY_ENVIRONMENTS

    config = environment_config(environment)
    session = boto3.session.Session(region_name=config.region)
    contest = deployed_round(session.client("cloudformation"), config.stack_name)
    if contest is None:
        raise NoRound(f"{environment} ({config.stack_name}) serves no experiment round")
    report = fetch_stats(contest.api_url, contest.started_at)
    outcome = decide(contest, report, guardrail_thresholds())
    if isinstance(outcome, Wait):
        console.print(f"[yellow]waiting[/]: {outcome.reason}")
        return EXIT_WAITING
    if dry_run:
        console.print(
            f"[bold]would {_verb(outcome)}[/] challenger {contest.challenger.version} in "
            f"{environment}: {outcome.reason}"
        )
        return EXIT_DECIDED
    changed = conclude_on_aws(
        session.client("sagemaker"),
        contest,
        outcome,
        approved_only=environment in APPROVED_ONLY_ENVIRONMENTS,
    )
    console.print(
        f"[green]{_done(outcome)}[/] challenger {contest.challenger.version} in {environment} "
        f"({changed}): {outcome.reason}; end the round with `make deploy ENV={environment} "
        "END_ROUND=1`"
    )
    return EXIT_DECIDED
