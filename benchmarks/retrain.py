"""Do readers' votes train a challenger they prefer? (`make bench-retrain`)

One run of the simulated loop on the full models (`local.experiment.loop.close_the_loop`: round
one through the real API, `retrain`, round two of champion against challenger at a 10% canary
share), then, on exactly round one's votes, the same retraining twice more: with down-votes
ignored (`down_vote_weight` 0), the choice the objective was picked against, and with every copy
of a repeated vote training (`distinct_examples` off), the data the challenger collapsed on
before the offline gate. Each model's taste is also measured in-process on the same 120 seeded
prompts at the served defaults, beside its held-out bits/char and the gate's verdict, so the
choices compare on equal terms.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from statistics import fmean
from typing import Any

import torch
from pressroom_common.feedback.store import open_store
from pressroom_common.generation.contracts import GenerateRequest
from rich.console import Console
from rich.markdown import Markdown

from benchmarks import results
from local.experiment.loop import CONFIDENT, close_the_loop, write_loop_files
from local.experiment.simulate import PROMPTS, PrefersShortHeadlines
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT
from local.registry import DEFAULT_REGISTRY_ROOT
from models.serving.inference import generate, load_model, parse_request
from training.artifacts import ensure_artifacts
from training.feedback.cli import resolve_champion
from training.feedback.retrain import Champion, retrain, settings_for

READERS, ROUND_READERS, SHARE, SEED = 400, 600, 0.1, 7
TASTE_PROMPTS = 120
SERVED_MAX_NEW_TOKENS = GenerateRequest.model_fields["max_new_tokens"].default
OUT = BUILD_DIR / "loop"


def taste_of(model_dir: Path, taste: PrefersShortHeadlines) -> dict[str, float]:
    """Short share, words and expected up-rate of `TASTE_PROMPTS` headlines at the served
    defaults, one seed each (the same prompts and seeds for every model)."""
    model = load_model(model_dir)
    prompts = random.Random(SEED).choices(PROMPTS, k=TASTE_PROMPTS)  # noqa: S311 - not crypto
    headlines = []
    for index, prompt in enumerate(prompts):
        request = {"max_new_tokens": SERVED_MAX_NEW_TOKENS, "seed": 10_000 + index}
        _, parameters = parse_request({"inputs": prompt, "parameters": request}, "generator")
        [headline] = generate(model, [prompt], parameters)
        headlines.append(headline)
    return {
        "short": fmean(taste.is_short(headline) for headline in headlines),
        "words": fmean(len(headline.split()) for headline in headlines),
        "up_rate": fmean(taste({"headline": headline}) for headline in headlines),
    }


def main() -> None:
    console = Console()
    ensure_artifacts("full", root=DEFAULT_MODELS_ROOT, console=Console(stderr=True))
    taste = PrefersShortHeadlines()
    started = time.monotonic()
    loop = close_the_loop(
        "full",
        OUT / "feedback.db",
        readers=READERS,
        round_readers=ROUND_READERS,
        share=SHARE,
        seed=SEED,
        taste=taste,
        models_root=DEFAULT_MODELS_ROOT,
        registry_root=DEFAULT_REGISTRY_ROOT,
        console=console,
    )
    loop_s = time.monotonic() - started
    write_loop_files(loop, OUT)
    champion = Champion(resolve_champion(None, "full", DEFAULT_MODELS_ROOT, DEFAULT_REGISTRY_ROOT))
    round_one = open_store(f"sqlite:///{OUT / 'feedback.db'}").voted_generations()[:READERS]
    chosen = settings_for("full")
    alternatives = {
        # The objective's alternative, and the data's: every copy of a repeated vote trains.
        "likelihood of up-votes only": chosen.model_copy(update={"down_vote_weight": 0.0}),
        "every copy of a vote (before the gate)": chosen.model_copy(
            update={"distinct_examples": False}
        ),
    }
    with tempfile.TemporaryDirectory() as scratch:
        trained = {
            label: retrain(
                round_one, champion, Path(scratch) / str(index), console=console, settings=settings
            )
            for index, (label, settings) in enumerate(alternatives.items())
        }
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the served setting; also keeps the measures alike
        rows = [
            (
                "champion (no retraining)",
                champion.manifest,
                taste_of(champion.directory / "model", taste),
            ),
            (
                "likelihood + unlikelihood x 0.5, each distinct vote once (chosen)",
                loop.challenger.manifest,
                taste_of(loop.challenger.model_dir, taste),
            ),
            *(
                (label, trained[label], taste_of(Path(scratch) / str(index) / "model", taste))
                for index, label in enumerate(alternatives)
            ),
        ]
        torch.set_num_threads(threads)
    body = section(loop.to_json(), rows, loop_s, taste)
    console.print(Markdown(body))
    console.print(f"wrote {results.write_section('retrain', body)}")


def section(
    loop: dict[str, Any],
    rows: list[tuple[str, dict[str, Any], dict[str, float]]],
    loop_s: float,
    taste: PrefersShortHeadlines,
) -> str:
    confident_at = loop["challenger_confident_at"]
    learned = loop["challenger"]["learned_from"]
    lines = [
        "## Retraining on votes (`make bench-retrain` → `python -m benchmarks.retrain`)",
        "",
        f"Synthetic readers vote up {taste.up_if_short:.0%} of headlines of at most "
        f"{taste.max_words} words and {taste.up_otherwise:.0%} of the rest; no model is told. "
        f"Round one: {READERS} readers through the real API (fixed weights, as the stack runs "
        f"today); `retrain` on their {learned['examples']} votes ({learned['up']} up, "
        f"{learned['down']} down); round two: {ROUND_READERS} readers, champion on A against "
        f"challenger `{loop['challenger']['version']}` on B from a {SHARE:.0%} canary share, "
        f"Thompson sampling on the round's own votes. Full profile, seed {SEED}, one run of "
        f"{loop_s / 60:.1f} min (`build/loop/loop.json`, chart `build/loop/loop.png`).",
        "",
        "**Result: "
        + (
            f"the challenger reached P(best) >= {CONFIDENT} after {confident_at} readers "
            f"(votes) of round two, {loop['challenger_answers_at_confidence']} of them its own "
            "at the canary share.**"
            if confident_at
            else f"the challenger stayed below P(best) {CONFIDENT} for {ROUND_READERS} readers.**"
        ),
        "",
        f"`pressroom round decide` on round two: {loop['round_decision']}.",
        "",
        "| round | variant | model | answers | true up-rate | short | mean words | distinct |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for round_name in ("first_round", "second_round"):
        for variant, figures in sorted(loop[round_name].items()):
            lines.append(
                f"| {round_name.split('_')[0]} | {variant} | {figures['model']} | "
                f"{figures['answers']} | {figures['true_up_rate']:.3f} | "
                f"{figures['short_share']:.0%} | {figures['mean_words']:.1f} | "
                f"{figures['distinct_share']:.0%} |"
            )
    lines += [
        "",
        "Round two, every 50 readers (P(best) from the API's `/api/stats`, which counts the "
        "round alone; share: the challenger's part of the last 50 answers):",
        "",
        "| readers | P(challenger best) | challenger's share |",
        "|---:|---:|---:|",
    ]
    for checkpoint in loop["second_round_checkpoints"]:
        if checkpoint["requests"] % 50 == 0:
            lines.append(
                f"| {checkpoint['requests']} | {checkpoint['probability_best'].get('B', 0):.3f} "
                f"| {checkpoint['challenger_share_in_window']:.0%} |"
            )
    lines += [
        "",
        f"The objective, on round one's same {learned['examples']} votes (taste measured "
        f"in-process: {TASTE_PROMPTS} seeded headlines at the served defaults, one thread):",
        "",
        "| model | held-out bits/char | short | mean words | expected up-rate | steps (best) "
        "| distinct answers to a voted prompt | offline gate |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
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
            f"| {label} | {manifest['metrics']['test_bits_per_char']} | {measured['short']:.0%} "
            f"| {measured['words']:.2f} | {measured['up_rate']:.3f} | {steps} | {distinct} "
            f"| {verdict} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
