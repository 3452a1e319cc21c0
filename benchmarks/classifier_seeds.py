"""How much of the classifier's macro-F1 is the recipe, and how much the seed
(`make bench-classifier-seeds`).

The BBC test split holds 193 headlines: one headline is half a point of accuracy. This trains
the packaged recipe (`models/news-classifier.yaml`, full profile) and, side by side on the same
seeds, the BBC-only recipe it replaced (the same definition without other publishers'
headlines), evaluates each exactly as `make models` does, and reports the spread: on BBC test,
on the publishers neither recipe ever trains on, and on the other publishers' test split.
`--seeds N` runs the packaged seed and N-1 others (five unless told).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import torch
from rich.console import Console

from benchmarks import results
from local.paths import DEFAULT_MODELS_ROOT
from training.data import HELD_OUT_PUBLISHERS, build_corpus
from training.definitions import ModelDefinition, load_definition
from training.pipeline import evaluate_model, select_data, train_model

EXTRA_SEEDS = (1, 2, 3, 4)
# (metric key, column title) per recipe and seed.
COLUMNS = (
    ("test_macro_f1", "BBC test macro-F1"),
    ("test_accuracy", "BBC test accuracy"),
    ("held_out_publishers_macro_f1", "publishers never trained on, macro-F1"),
    ("publishers_test_macro_f1", "other publishers' test split, macro-F1"),
)


def recipes(definition: ModelDefinition) -> dict[str, ModelDefinition]:
    """The packaged recipe and the BBC-only one it replaced."""
    bbc_only = definition.data.model_copy(
        update={"publisher_sections": False, "publisher_sections_repeat": 1}
    )
    return {
        "BBC only (before)": definition.model_copy(update={"data": bbc_only}),
        "packaged": definition,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=1 + len(EXTRA_SEEDS), choices=range(2, 6))
    arguments = parser.parse_args()
    console = Console()
    definition = load_definition("news-classifier", "full")
    assert definition.training is not None
    corpus = build_corpus(definition.data.sources)
    seeds = (definition.training.seed, *EXTRA_SEEDS[: arguments.seeds - 1])
    rows: list[tuple[int, str, dict[str, Any], float, int]] = []
    for seed in seeds:
        for name, recipe in recipes(definition).items():
            assert recipe.training is not None
            seeded = recipe.model_copy(
                update={"training": recipe.training.model_copy(update={"seed": seed})}
            )
            splits = select_data(seeded, corpus)
            started = time.perf_counter()
            trained = train_model(seeded, splits, console, DEFAULT_MODELS_ROOT)
            seconds = time.perf_counter() - started
            metrics = evaluate_model(seeded, trained, splits, console)
            rows.append((seed, name, metrics, seconds, len(splits.train)))
            console.print(
                f"seed {seed}, {name}: "
                + ", ".join(f"{title} {metrics[key]:.4f}" for key, title in COLUMNS)
                + f", {seconds:.0f} s"
            )
    first = rows[0][2]
    sizes = ", ".join(f"{name} {n}" for _, name, _, _, n in rows[: len(recipes(definition))])
    lines = [
        "## Classifier: recipe versus seed (`make bench-classifier-seeds`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with "
        f"{torch.get_num_threads()} torch threads, Python {sys.version.split()[0]}, "
        f"torch {torch.__version__}. The `news-classifier` full recipe (packaged) beside the "
        f"BBC-only recipe it replaced, on the same seeds; training headlines: {sizes}. "
        f"Evaluated (PyTorch) on the {first['test_headlines']} BBC test headlines, the "
        f"{first['held_out_publishers_headlines']} headlines of publishers neither recipe "
        f"trains on ({', '.join(HELD_OUT_PUBLISHERS)}) and the "
        f"{first['publishers_test_headlines']} of the other publishers' test split (by a hash "
        "of the URL), both labelled by their URL section; the first seed is the packaged one.",
        "",
        "| seed | recipe | " + " | ".join(title for _, title in COLUMNS) + " | training s |",
        "|---" * (len(COLUMNS) + 3) + "|",
        *(
            f"| {seed} | {name} | "
            + " | ".join(f"{metrics[key]:.4f}" for key, _ in COLUMNS)
            + f" | {seconds:.0f} |"
            for seed, name, metrics, seconds, _ in rows
        ),
        "",
    ]
    for name in recipes(definition):
        for key, title in (COLUMNS[0], COLUMNS[2]):
            values = [metrics[key] for _, recipe, metrics, _, _ in rows if recipe == name]
            lines.append(
                f"- {name}, {title} over {len(values)} seeds: mean {statistics.mean(values):.4f}, "
                f"min {min(values):.4f}, max {max(values):.4f}, "
                f"standard deviation {statistics.stdev(values):.4f}."
            )
    console.print(f"wrote {results.write_section('classifier-seeds', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
