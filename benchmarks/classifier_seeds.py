"""How much of the classifier's test macro-F1 is the recipe, and how much the seed
(`make bench-classifier-seeds`).

The BBC test split holds 193 headlines: one headline is half a point of accuracy. This trains
the packaged recipe (`models/news-classifier.yaml`, full profile) with its own seed and four
others, evaluates each exactly as `make models` does, and reports the spread.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from datetime import UTC, datetime

import torch
from rich.console import Console

from benchmarks import results
from local.paths import DEFAULT_MODELS_ROOT
from training.data import build_corpus
from training.definitions import load_definition
from training.pipeline import evaluate_model, select_data, train_model

EXTRA_SEEDS = (1, 2, 3, 4)


def main() -> None:
    console = Console()
    definition = load_definition("news-classifier", "full")
    assert definition.training is not None
    splits = select_data(definition, build_corpus(definition.data.sources))
    seeds = (definition.training.seed, *EXTRA_SEEDS)
    console.print(f"training news-classifier with {len(seeds)} seeds (about a minute each)")
    rows = []
    for seed in seeds:
        seeded = definition.model_copy(
            update={"training": definition.training.model_copy(update={"seed": seed})}
        )
        started = time.perf_counter()
        trained = train_model(seeded, splits, console, DEFAULT_MODELS_ROOT)
        seconds = time.perf_counter() - started
        metrics = evaluate_model(seeded, trained, splits)
        rows.append((seed, metrics, seconds))
        console.print(
            f"seed {seed}: test macro-F1 {metrics['test_macro_f1']:.4f}, "
            f"accuracy {metrics['test_accuracy']:.4f}, {seconds:.0f} s"
        )
    f1s = [metrics["test_macro_f1"] for _, metrics, _ in rows]
    lines = [
        "## Classifier: recipe versus seed (`make bench-classifier-seeds`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
        f"{torch.get_num_threads()} torch threads, Python {sys.version.split()[0]}, "
        f"torch {torch.__version__}. The `news-classifier` full recipe, {len(splits.train)} "
        f"training headlines, evaluated on the {rows[0][1]['test_headlines']} BBC test "
        "headlines and the second set (other publishers, labelled by URL section); the first "
        "seed is the packaged one.",
        "",
        "| seed | test macro-F1 | test accuracy | second set macro-F1 | training s |",
        "|---|---|---|---|---|",
        *(
            f"| {seed} | {m['test_macro_f1']:.4f} | {m['test_accuracy']:.4f} | "
            f"{m['sections_macro_f1']:.4f} | {seconds:.0f} |"
            for seed, m, seconds in rows
        ),
        "",
        f"Test macro-F1 over {len(rows)} seeds: mean {statistics.mean(f1s):.4f}, "
        f"min {min(f1s):.4f}, max {max(f1s):.4f}, standard deviation {statistics.stdev(f1s):.4f}.",
    ]
    console.print(f"wrote {results.write_section('classifier-seeds', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
