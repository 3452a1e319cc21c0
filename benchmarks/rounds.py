"""How many readers a round needs before it is decided (`make bench-rounds`).

The round's own code, without models: `ThompsonSampling` routes each reader (the challenger on
variant B from the canary share `local.rounds.state.DEFAULT_SHARE`), the reader votes up with
the true up-rate of the variant it got, and every `CHECK_EVERY` readers `report.judge` reads the
votes as `/api/stats` does. A run ends at the first decision (winner or no lift) or at
`MAX_READERS`. The same seeds run the rules before this change (a warm-up of 100 votes per
variant, plain Thompson sampling, no futility stop) and today's defaults, side by side.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from pressroom_common.experiment.adaptive import ThompsonSampling
from pressroom_common.experiment.report import DecisionRules, judge
from pressroom_common.experiment.routing import FixedWeights
from pressroom_common.experiment.settings import ThompsonParameters, VariantConfig
from pressroom_common.experiment.statistics import percentile
from rich.console import Console
from rich.markdown import Markdown

from benchmarks import results
from local.rounds.state import DEFAULT_SHARE

SEEDS = 200
CHECK_EVERY = 25  # how often the verdict is read, as the loop's checkpoints do
MAX_READERS = 3_000
CHAMPION_RATE = 0.40
SCENARIOS = {"+0.08 lift": 0.48, "no lift": 0.40, "-0.08 (worse)": 0.32}
TARGETS = {"+0.08 lift": 800, "no lift": 1_500}  # readers by which the issue wants a decision
VARIANTS = {
    "A": VariantConfig(
        endpoint_name="a", model_name="champion", model_version="1", weight=1 - DEFAULT_SHARE
    ),
    "B": VariantConfig(
        endpoint_name="b", model_name="challenger", model_version="1", weight=DEFAULT_SHARE
    ),
}


@dataclass(frozen=True)
class Rules:
    label: str
    thompson: ThompsonParameters  # refresh_s 0: every reader sees every earlier vote
    decision: DecisionRules


RULES = (
    Rules(
        "before: 100-vote warm-up, plain Thompson, no futility",
        ThompsonParameters(warmup_votes=100, top_two_probability=1.0, refresh_s=0.0),
        DecisionRules(min_lift=None),
    ),
    Rules(
        "now: defaults",
        ThompsonParameters(refresh_s=0.0),
        DecisionRules(),
    ),
)


class Votes:
    """The round's counts, as the store's `variant_counts` gives them."""

    def __init__(self) -> None:
        self.counts = {name: [0, 0, 0] for name in VARIANTS}

    def variant_counts(self, since: object = None) -> dict[str, tuple[int, int, int]]:
        return {name: (shown, up, down) for name, (shown, up, down) in self.counts.items()}


@dataclass(frozen=True)
class Run:
    readers: int | None  # None: undecided at MAX_READERS
    outcome: str  # "B wins", "A wins", "no lift" or "undecided"
    challenger_share: float


def run(rules: Rules, challenger_rate: float, seed: int) -> Run:
    rng = random.Random(seed)  # noqa: S311 - simulated readers, not cryptography
    votes = Votes()
    strategy = ThompsonSampling(
        votes,
        FixedWeights(rng=random.Random(seed + 1)),  # noqa: S311
        rules.thompson,
        rng=random.Random(seed + 2),  # noqa: S311
        run_refresh=lambda refresh: refresh(),
    )
    rates = {"A": CHAMPION_RATE, "B": challenger_rate}
    served: Counter[str] = Counter()
    for reader in range(1, MAX_READERS + 1):
        variant = strategy.choose(None, VARIANTS)
        served[variant] += 1
        counts = votes.counts[variant]
        counts[0] += 1
        counts[1 if rng.random() < rates[variant] else 2] += 1
        if reader % CHECK_EVERY == 0:
            judgement = judge(
                {name: (up, down) for name, (_, up, down) in votes.counts.items()},
                rules.decision,
            )
            if judgement.decision == "winner":
                return Run(reader, f"{judgement.leader} wins", served["B"] / reader)
            if judgement.decision == "no_lift":
                return Run(reader, "no lift", served["B"] / reader)
    return Run(None, "undecided", served["B"] / MAX_READERS)


def main() -> None:
    console = Console()
    started = time.monotonic()
    rows = []
    for scenario, challenger_rate in SCENARIOS.items():
        for rules in RULES:
            runs = [run(rules, challenger_rate, seed) for seed in range(SEEDS)]
            rows.append((scenario, rules, runs))
            console.print(f"{scenario}, {rules.label}: done")
    body = section(rows, time.monotonic() - started)
    console.print(Markdown(body))
    console.print(f"wrote {results.write_section('rounds', body)}")


def section(rows: list[tuple[str, Rules, list[Run]]], seconds: float) -> str:
    now = RULES[-1]
    lines = [
        "## Readers to a decision (`make bench-rounds` → `python -m benchmarks.rounds`)",
        "",
        f"The round's routing and verdict code without models: champion A at a true up-rate of "
        f"{CHAMPION_RATE:.2f}, the challenger on B from a {DEFAULT_SHARE:.0%} canary share, "
        f"every reader votes, the verdict read every {CHECK_EVERY} readers, {SEEDS} seeded runs "
        f"per row (seeds 0-{SEEDS - 1}), at most {MAX_READERS:,} readers; {seconds:.0f} s. "
        f"Today's defaults: warm-up until each variant has {now.warmup_votes} votes (the "
        f"challenger's first votes at the canary share), then top-two Thompson sampling "
        f"(leader's share {now.top_two_probability:g}); a winner at P(best) >= "
        f"{now.decision.decision_probability} with {now.decision.min_votes_per_variant} votes "
        f"each, no lift (futility) once the up-rates are within {now.decision.min_lift} of each "
        f"other with that probability.",
        "",
        "| true up-rates A → B | rules | readers to a decision: median | p80 | p90 "
        "| decided by target | B wins | A wins | no lift | undecided | B's share of traffic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, rules, runs in rows:
        readers = [float(item.readers or MAX_READERS + 1) for item in runs]
        outcomes = Counter(item.outcome for item in runs)
        target = TARGETS.get(scenario)
        by_target = (
            f"{sum(1 for value in readers if value <= target) / len(runs):.0%} by {target:,}"
            if target
            else "-"
        )

        def readers_at(fraction: float, values: list[float] = readers) -> str:
            value = percentile(values, fraction)
            return f"> {MAX_READERS:,}" if value > MAX_READERS else f"{value:,.0f}"

        share = sum(item.challenger_share for item in runs) / len(runs)
        shares = " | ".join(
            f"{outcomes[name] / len(runs):.0%}"
            for name in ("B wins", "A wins", "no lift", "undecided")
        )
        lines.append(
            f"| {CHAMPION_RATE:.2f} → {SCENARIOS[scenario]:.2f} ({scenario}) | {rules.label} "
            f"| {readers_at(0.5)} | {readers_at(0.8)} | {readers_at(0.9)} | {by_target} "
            f"| {shares} | {share:.0%} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
