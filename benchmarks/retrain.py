"""Do readers' votes train a challenger they prefer, without collapsing? (`make bench-retrain`)

For each of two hidden tastes (`TASTES`: short headlines, headlines holding a number), one run of
the simulated loop on the full models (`local.experiment.loop.close_the_loop`: round one through
the real API, `retrain`, round two of champion against challenger from a 10% canary share at the
default routing and decision rules), with what `pressroom round decide` makes of round two.
Then, on exactly the first taste's round-one votes, the same retraining with the choices the
default was picked against (`ALTERNATIVES`). Each model's taste and variety are also measured
in-process on the same 120 seeded prompts at the served defaults, beside its held-out bits/char
and the offline gate's verdict, so the choices compare on equal terms.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import Any

import torch
from pressroom_common.feedback.store import open_store
from pressroom_common.generation.contracts import GenerateRequest
from rich.console import Console
from rich.markdown import Markdown

from benchmarks import results
from local.experiment.loop import CONFIDENT, LoopResult, close_the_loop, write_loop_files
from local.experiment.simulate import PROMPTS, HeadlineTaste, PrefersNumbers, PrefersShortHeadlines
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT
from local.registry import DEFAULT_REGISTRY_ROOT
from local.retrain import resolve_champion
from models.serving.inference import generate, load_model, parse_request
from training.artifacts import ensure_artifacts
from training.feedback.retrain import Champion, RetrainSettings, retrain, settings_for

# Round two gets the 800 readers in which the default round rules call a +0.08 lift
# (`make bench-rounds`).
READERS, ROUND_READERS, SHARE, SEED = 400, 800, 0.1, 7
TASTES: tuple[HeadlineTaste, ...] = (PrefersShortHeadlines(), PrefersNumbers())
TASTE_PROMPTS = 120
SERVED_MAX_NEW_TOKENS = GenerateRequest.model_fields["max_new_tokens"].default
OUT = BUILD_DIR / "loop"
CHOSEN = settings_for("full")
ALTERNATIVES: dict[str, RetrainSettings] = {
    "KL anchor x 1 (the default before)": CHOSEN.model_copy(update={"anchor_weight": 1.0}),
    "without the KL anchor to the champion": CHOSEN.model_copy(update={"anchor_weight": 0.0}),
    "likelihood of up-votes only": CHOSEN.model_copy(update={"down_vote_weight": 0.0}),
    "every copy of a vote (before the gate)": CHOSEN.model_copy(
        update={"distinct_examples": False}
    ),
}


def objective(settings: RetrainSettings) -> str:
    words = [
        f"likelihood + unlikelihood x {settings.down_vote_weight:g}"
        if settings.down_vote_weight
        else "likelihood of up-votes"
    ]
    if settings.anchor_weight:
        words.append(f"KL anchor x {settings.anchor_weight:g}")
    words.append("each distinct vote once" if settings.distinct_examples else "every copy")
    return ", ".join(words)


def taste_of(model_dir: Path, taste: HeadlineTaste) -> dict[str, float]:
    """Liked share, words, expected up-rate and distinct share of `TASTE_PROMPTS` headlines at
    the served defaults, one seed each (the same prompts and seeds for every model)."""
    model = load_model(model_dir)
    prompts = random.Random(SEED).choices(PROMPTS, k=TASTE_PROMPTS)  # noqa: S311 - not crypto
    headlines = []
    for index, prompt in enumerate(prompts):
        request = {"max_new_tokens": SERVED_MAX_NEW_TOKENS, "seed": 10_000 + index}
        _, parameters = parse_request({"inputs": prompt, "parameters": request}, "generator")
        [headline] = generate(model, [prompt], parameters)
        headlines.append(headline)
    return {
        "liked": fmean(taste.likes(headline) for headline in headlines),
        "words": fmean(len(headline.split()) for headline in headlines),
        "up_rate": fmean(taste({"headline": headline}) for headline in headlines),
        "distinct": len(set(headlines)) / len(headlines),
    }


def main() -> None:
    console = Console()
    ensure_artifacts("full", root=DEFAULT_MODELS_ROOT, console=Console(stderr=True))
    loops: list[tuple[LoopResult, float]] = []
    for taste in TASTES:
        started = time.monotonic()
        loop = close_the_loop(
            "full",
            OUT / taste.name / "feedback.db",
            readers=READERS,
            round_readers=ROUND_READERS,
            share=SHARE,
            seed=SEED,
            taste=taste,
            models_root=DEFAULT_MODELS_ROOT,
            registry_root=DEFAULT_REGISTRY_ROOT,
            console=console,
        )
        loops.append((loop, time.monotonic() - started))
        write_loop_files(loop, OUT / taste.name)
    first, _ = loops[0]
    champion = Champion(resolve_champion(None, "full", DEFAULT_MODELS_ROOT, DEFAULT_REGISTRY_ROOT))
    database = OUT / first.taste.name / "feedback.db"
    round_one = open_store(f"sqlite:///{database}").voted_generations()[:READERS]
    with tempfile.TemporaryDirectory() as scratch:
        trained = {
            label: retrain(
                round_one, champion, Path(scratch) / str(index), console=console, settings=settings
            )
            for index, (label, settings) in enumerate(ALTERNATIVES.items())
        }
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the served setting; also keeps the measures alike
        rows = [
            (
                "champion (no retraining)",
                champion.manifest,
                taste_of(champion.directory / "model", first.taste),
            ),
            (
                f"{objective(CHOSEN)} (chosen)",
                first.challenger.manifest,
                taste_of(first.challenger.model_dir, first.taste),
            ),
            *(
                (label, trained[label], taste_of(Path(scratch) / str(index) / "model", first.taste))
                for index, label in enumerate(ALTERNATIVES)
            ),
        ]
        torch.set_num_threads(threads)
    body = section(loops, champion.manifest, rows)
    console.print(Markdown(body))
    console.print(f"wrote {results.write_section('retrain', body)}")


def loop_lines(loop: LoopResult, seconds: float, champion: dict[str, Any]) -> list[str]:
    figures = loop.to_json()
    learned = figures["challenger"]["learned_from"]
    drift = (
        loop.challenger.manifest["metrics"]["test_bits_per_char"]
        - champion["metrics"]["test_bits_per_char"]
    )
    lines = [
        f"### Readers who like {loop.taste.description}",
        "",
        f"They vote up {loop.taste.up_if_liked:.0%} of those and {loop.taste.up_otherwise:.0%} of "
        f"the rest. `retrain` on round one's {learned['examples']} votes ({learned['up']} up, "
        f"{learned['down']} down) gave challenger `{figures['challenger']['version']}` "
        f"(held-out bits/char drift {drift:+.4f}); one run of {seconds / 60:.1f} min "
        f"(`build/loop/{loop.taste.name}/loop.json`, chart `loop.png` beside it).",
        "",
        result_line(loop, figures),
        "",
        "| round | variant | model | answers | true up-rate | liked | mean words | distinct |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for round_name in ("first_round", "second_round"):
        for variant, row in sorted(figures[round_name].items()):
            lines.append(
                f"| {round_name.split('_')[0]} | {variant} | {row['model']} | {row['answers']} "
                f"| {row['true_up_rate']:.3f} | {row['liked_share']:.0%} | "
                f"{row['mean_words']:.1f} | {row['distinct_share']:.0%} |"
            )
    hundreds = [c for c in figures["second_round_checkpoints"] if c["requests"] % 100 == 0]
    if not hundreds:
        return [*lines, ""]
    lines += [
        "",
        checkpoint_row("readers of round two", hundreds, lambda c: str(c["requests"])),
        "|---|" + "---:|" * (ROUND_READERS // 100),
        checkpoint_row(
            "P(challenger best)", hundreds, lambda c: f"{c['probability_best'].get('B', 0):.3f}"
        ),
        checkpoint_row(
            "challenger's share of the last 50",
            hundreds,
            lambda c: f"{c['challenger_share_in_window']:.0%}",
        ),
        "",
    ]
    return lines


def result_line(loop: LoopResult, figures: dict[str, Any]) -> str:
    """What the loop came to: the gate's refusal, or round two's verdict and `round decide`'s
    (`figures`: the loop's `to_json`)."""
    if loop.second_round is None:
        return (
            f"**Result: the offline gate rejected the challenger, so round two did not run:** "
            f"{loop.challenger.reason}."
        )
    confident_at = figures["challenger_confident_at"]
    verdict = (
        f"the challenger reached P(best) >= {CONFIDENT} after {confident_at} readers of round "
        f"two, {figures['challenger_answers_at_confidence']} of them its own."
        if confident_at
        else f"the challenger stayed below P(best) {CONFIDENT} for {ROUND_READERS} readers."
    )
    return f"**Result: {verdict}** `pressroom round decide` on round two: {loop.decision}."


def checkpoint_row(
    title: str, checkpoints: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str]
) -> str:
    """One markdown row: the title, then one cell per checkpoint."""
    return f"| {title} | " + " | ".join(cell(c) for c in checkpoints) + " |"


def section(
    loops: list[tuple[LoopResult, float]],
    champion: dict[str, Any],
    rows: list[tuple[str, dict[str, Any], dict[str, float]]],
) -> str:
    first, _ = loops[0]
    lines = [
        "## Retraining on votes (`make bench-retrain` → `python -m benchmarks.retrain`)",
        "",
        f"Round one: {READERS} readers through the real API (fixed weights, as the stack runs "
        f"today); round two: {ROUND_READERS} readers, champion on A against the challenger on B "
        f"from a {SHARE:.0%} canary share at the default routing and decision rules. Full "
        f"profile, seed {SEED}; the challenger's objective: {objective(CHOSEN)}. 'distinct': the "
        "share of a variant's answers no earlier one repeated word for word.",
        "",
    ]
    for loop, seconds in loops:
        lines += loop_lines(loop, seconds, champion)
    learned = first.challenger.manifest["training"]["votes"]
    lines += [
        f"### The objective, on the first taste's same {learned['examples']} votes",
        "",
        f"Taste and variety measured in-process: {TASTE_PROMPTS} seeded headlines at the served "
        "defaults, one thread.",
        "",
        "| model | held-out bits/char | liked | mean words | expected up-rate | distinct "
        "| steps (best) | distinct answers to a voted prompt | offline gate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, manifest, measured in rows:
        training = manifest["training"]
        steps = f"{training['steps']} ({training['best_step']})" if "votes" in training else "-"
        gate = training.get("gate")
        verdict, distinct = (
            ("-", "-")
            if gate is None
            else (
                "passed" if gate["passed"] else "failed: " + "; ".join(gate["reasons"]),
                f"{gate['figures']['challenger']['voted_distinct_share']:.0%}",
            )
        )
        lines.append(
            f"| {label} | {manifest['metrics']['test_bits_per_char']} | {measured['liked']:.0%} "
            f"| {measured['words']:.2f} | {measured['up_rate']:.3f} | {measured['distinct']:.0%} "
            f"| {steps} | {distinct} | {verdict} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
