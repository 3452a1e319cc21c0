"""Both generator variants measured side by side in one run, from their packaged artifacts.

Each artifact loads through the serving code's `model_fn` (so variant B is quantized exactly as
it is served), then both get the same held-out split, the same reader prompts and interleaved
one-thread timings, so machine load hits both alike. `pressroom evaluate` prints the table;
`make bench-variants` writes it to BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import models.serving.inference as serving
from training.artifacts import Artifact
from training.data import build_corpus
from training.definitions import MODEL_NAMES, load_definition
from training.evaluate import (
    SAMPLE_PARAMETERS,
    SAMPLE_PROMPTS,
    VariantFigures,
    held_out_metrics,
    reading_metrics,
    speed_metrics,
)
from training.pipeline import select_data, training_spec


def generator_names() -> list[str]:
    return [name for name in MODEL_NAMES if load_definition(name, "full").kind == "generator"]


def compare_generators(root: Path, profile: str, *, timing_rounds: int = 3) -> list[VariantFigures]:
    """Measure every packaged generator; timings alternate between models round by round."""
    corpus = build_corpus()
    loaded: dict[str, tuple[Artifact, serving.LoadedModel]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for name in generator_names():
        artifact = Artifact.read(root / profile / name)
        if artifact is None:
            raise FileNotFoundError(
                f"{name} ({profile}) is not packaged; run `pressroom build-all --profile {profile}`"
            )
        model = serving.model_fn(str(artifact.directory))
        definition = load_definition(name, profile)
        test_set = select_data(definition, corpus).test
        max_length = training_spec(definition).max_length
        assert model.model is not None
        loaded[name] = (artifact, model)
        figures[name] = {
            **held_out_metrics(model.model, model.tokenizer, test_set, max_length),
            **reading_metrics(model),
        }
    timings: dict[str, list[dict[str, Any]]] = {name: [] for name in loaded}
    for _ in range(timing_rounds):
        for name, (_, model) in loaded.items():
            timings[name].append(speed_metrics(model))
    results = []
    for name, (artifact, model) in loaded.items():
        for key in timings[name][0]:
            figures[name][key] = round(statistics.median(t[key] for t in timings[name]), 2)
        samples = serving.generate(model, list(SAMPLE_PROMPTS), SAMPLE_PARAMETERS)
        results.append(
            VariantFigures(
                name,
                artifact.manifest["version"],
                figures[name],
                dict(zip(SAMPLE_PROMPTS, samples, strict=True)),
            )
        )
    return results
