"""The feedback loop, simulated end to end: do readers' votes train a challenger they prefer?

1. Round one: the stack as it runs today. Synthetic readers with a taste no model is told
   (a `HeadlineTaste`, such as `PrefersShortHeadlines`) ask for headlines and vote through the
   real API.
2. `pressroom retrain` learns from those votes and registers a challenger.
3. Round two: the challenger is promoted into variant B at a canary share, Thompson sampling
   routes, and readers of the same taste vote. The API's own `/api/stats` (which counts the
   round alone) gives P(best) at every checkpoint; the simulation reports when the challenger
   first reached P(best) >= 0.95 and how the taste moved.

A challenger the offline gate rejected cannot start a round: the result then has no round two,
and says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

import httpx
from rich.console import Console

from local.devstack.stack import LocalStack
from local.experiment.decide import decide, fetch_stats, guardrail_thresholds
from local.experiment.simulate import HeadlineTaste, SimulationResult, simulate
from local.registry import REJECTED, RegisteredModel
from local.retrain import run_retrain
from local.rounds.state import Round, round_parameters

CONFIDENT = 0.95
CHALLENGER_VARIANT = "B"


@dataclass(frozen=True)
class TasteFigures:
    """How one variant's answers sat with the readers' taste in one round."""

    model: str
    answers: int
    true_up_rate: float  # mean up-probability of what it served
    liked_share: float  # share of its answers the taste likes
    mean_words: float
    distinct_share: float  # share of its answers no earlier answer repeated word for word


@dataclass(frozen=True)
class LoopResult:
    taste: HeadlineTaste
    first_round: SimulationResult
    challenger: RegisteredModel
    second_round: SimulationResult | None  # None: the offline gate rejected the challenger
    share: float
    decision: str  # what `pressroom round decide` makes of round two, in words

    def challenger_confident_at(self) -> int | None:
        """Readers of round two until the API first gave the challenger P(best) >= 0.95."""
        checkpoints = self.second_round.checkpoints if self.second_round else []
        for checkpoint in checkpoints:
            if checkpoint.probability_best.get(CHALLENGER_VARIANT, 0.0) >= CONFIDENT:
                return checkpoint.requests
        return None

    def taste_figures(self, round_name: str) -> dict[str, TasteFigures]:
        result = self.first_round if round_name == "first" else self.second_round
        figures: dict[str, TasteFigures] = {}
        if result is None:
            return figures
        for variant, model in result.models.items():
            served = [
                (probability, headline)
                for served_variant, probability, headline in zip(
                    result.served, result.up_probabilities, result.headlines, strict=True
                )
                if served_variant == variant
            ]
            if not served:
                continue
            figures[variant] = TasteFigures(
                model=model,
                answers=len(served),
                true_up_rate=fmean(probability for probability, _ in served),
                liked_share=fmean(self.taste.likes(headline) for _, headline in served),
                mean_words=fmean(len(headline.split()) for _, headline in served),
                distinct_share=len({headline for _, headline in served}) / len(served),
            )
        return figures

    def to_json(self) -> dict[str, Any]:
        confident_at = self.challenger_confident_at()
        second = self.second_round
        return {
            "taste": self.taste.to_json(),
            "challenger": {
                "version": self.challenger.version,
                "status": self.challenger.status,
                "learned_from": self.challenger.manifest["training"]["votes"],
            },
            "canary_share": self.share,
            "first_round": {k: vars(v) for k, v in self.taste_figures("first").items()},
            "second_round": {k: vars(v) for k, v in self.taste_figures("second").items()},
            "second_round_checkpoints": [
                {
                    "requests": checkpoint.requests,
                    "challenger_share_in_window": share_of(
                        second, checkpoint.requests, CHALLENGER_VARIANT
                    ),
                    "probability_best": checkpoint.probability_best,
                }
                for checkpoint in second.checkpoints
            ]
            if second
            else [],
            "challenger_confident_at": confident_at,
            "round_decision": self.decision,
            # How many of those readers the canary had served (and so how many votes it had).
            "challenger_answers_at_confidence": (
                second.served[: confident_at or 0].count(CHALLENGER_VARIANT) if second else 0
            ),
        }


def share_of(result: SimulationResult, requests: int, variant: str, window: int = 50) -> float:
    """Share of the `window` answers up to request `requests` that `variant` served."""
    served = result.served[max(0, requests - window) : requests]
    return sum(1 for name in served if name == variant) / len(served) if served else 0.0


def close_the_loop(
    profile: str,
    database: Path,
    *,
    readers: int,
    round_readers: int,
    share: float,
    seed: int,
    taste: HeadlineTaste,
    models_root: Path,
    registry_root: Path,
    console: Console,
    checkpoint_every: int = 25,
    on_request: Callable[[], None] = lambda: None,
) -> LoopResult:
    """Round one, retrain, round two (see the module's docstring), in a fresh SQLite store at
    `database` (replaced if it exists; kept afterwards for `pressroom report` or `retrain`).
    What the stacks log goes to `pressroom.log` beside it, as `pressroom up` logs."""
    database.unlink(missing_ok=True)
    database_url = f"sqlite:///{database}"
    log_path = database.with_name("pressroom.log")
    with LocalStack(
        profile,
        database_url=database_url,
        models_root=models_root,
        site_dir=None,
        log_path=log_path,
    ) as stack:
        first = _readers(stack, taste, readers, seed, checkpoint_every, on_request)
    challenger = run_retrain(
        database_url,
        profile=profile,
        champion_version=None,
        overrides={},
        models_root=models_root,
        registry_root=registry_root,
        console=console,
    )
    if challenger.status == REJECTED:
        return LoopResult(
            taste=taste,
            first_round=first,
            challenger=challenger,
            second_round=None,
            share=share,
            decision=f"no round: the offline gate rejected the challenger ({challenger.reason})",
        )
    experiment_round = Round.start(
        challenger, share=share, started_at=datetime.now(UTC), models_root=models_root
    )
    with LocalStack(
        profile,
        database_url=database_url,
        models_root=models_root,
        registry_root=registry_root,
        site_dir=None,
        log_path=log_path,
        parameter_overrides=round_parameters(experiment_round, registry_root=registry_root),
        # Seconds-long rounds: re-read the counts every second instead of every few.
        function_environment={"THOMPSON_REFRESH_S": "1"},
    ) as stack:
        second = _readers(stack, taste, round_readers, seed + 1, checkpoint_every, on_request)
        # What `round decide` would do (the registry is left as it is: this is a simulation).
        outcome = decide(
            experiment_round,
            fetch_stats(stack.url, experiment_round.started_at),
            guardrail_thresholds(),
        )
    return LoopResult(
        taste=taste,
        first_round=first,
        challenger=challenger,
        second_round=second,
        share=share,
        decision=f"{type(outcome).__name__.lower()}: {outcome.reason}",
    )


def _readers(
    stack: LocalStack,
    taste: HeadlineTaste,
    readers: int,
    seed: int,
    checkpoint_every: int,
    on_request: Callable[[], None],
) -> SimulationResult:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        # The served default length: the taste is about whole headlines.
        return simulate(
            client,
            taste,
            requests=readers,
            seed=seed,
            checkpoint_every=checkpoint_every,
            max_new_tokens=None,
            on_request=on_request,
        )


def write_loop_files(result: LoopResult, out_dir: Path) -> list[Path]:
    """`loop.json` (every figure) and, when round two ran, `loop.png` (its P(best) curve) in
    `out_dir`."""
    from local.experiment.charts import loop_chart, save_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "loop.json"
    figures.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if result.second_round is None:
        return [figures]
    return [figures, save_chart(loop_chart(result.to_json()), out_dir / "loop.png")]
