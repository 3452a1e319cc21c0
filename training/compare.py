"""Both generator variants measured side by side in one run, from their packaged artifacts,
beside the fp32 PyTorch model they were converted from.

Each artifact loads through the serving code (`load_generator`: the engine at the precision its
card names, one thread), then both get the same held-out split, the same reader prompts and
interleaved one-thread timings, so machine load hits every column alike. The first column is
the reference a team starts from: headline-base's fp32 weights on PyTorch, decoded by
transformers' `generate` (greedy timings, bits/char of the same weights; its samples come
from `generate`'s own sampling, without the serving code's word guarantee). `pressroom
evaluate` prints the table; `make bench-variants` writes it to BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

import models.serving.inference as serving
from training.artifacts import Artifact
from training.data import build_corpus
from training.definitions import MODEL_NAMES, load_definition
from training.evaluate import (
    SAMPLE_PARAMETERS,
    SAMPLE_PROMPTS,
    TIMING_PARAMETERS,
    VariantFigures,
    held_out_metrics,
    reading_metrics,
    served_bits_per_char,
    speed_metrics,
    timed_headlines,
)
from training.pipeline import select_data, training_spec

REFERENCE = "fp32 PyTorch (transformers generate)"
REFERENCE_WEIGHTS = "headline-base"  # the trained weights every variant is converted from


def generator_names() -> list[str]:
    return [name for name in MODEL_NAMES if load_definition(name, "full").kind == "generator"]


def compare_generators(root: Path, profile: str, *, timing_rounds: int = 3) -> list[VariantFigures]:
    """Measure the fp32 reference and every packaged generator; timings alternate between
    them round by round."""
    corpus = build_corpus()
    served: dict[str, tuple[Artifact, serving.LoadedModel]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for name in generator_names():
        artifact = Artifact.read(root / profile / name)
        if artifact is None:
            raise FileNotFoundError(
                f"{name} ({profile}) is not packaged; run `pressroom build-all --profile {profile}`"
            )
        loaded = serving.load_generator(artifact.directory, threads=1)
        definition = load_definition(name, profile)
        test_set = select_data(definition, corpus).test
        max_length = training_spec(definition).max_length
        weights = AutoModelForCausalLM.from_pretrained(artifact.directory).eval()
        served[name] = (artifact, loaded)
        fp32 = held_out_metrics(weights, loaded.tokenizer, test_set, max_length)
        figures[name] = {
            **fp32,
            "served_bits_per_char": served_bits_per_char(loaded, test_set, max_length),
            **reading_metrics(loaded),
        }
        if name == REFERENCE_WEIGHTS:
            figures[REFERENCE] = dict(fp32)
            reference = (weights, loaded)
    timers: dict[str, Callable[[], dict[str, Any]]] = {
        REFERENCE: lambda: reference_speed(*reference),
        **{
            name: (lambda loaded=loaded: speed_metrics(loaded))
            for name, (_, loaded) in served.items()
        },
    }
    timings: dict[str, list[dict[str, Any]]] = {name: [] for name in timers}
    for _ in range(timing_rounds):
        for name, timer in timers.items():
            timings[name].append(timer())
    for name, rounds in timings.items():
        for key in rounds[0]:
            figures[name][key] = round(statistics.median(t[key] for t in rounds), 2)
    results = [VariantFigures(REFERENCE, "fp32", figures[REFERENCE], reference_samples(*reference))]
    for name, (artifact, loaded) in served.items():
        samples = serving.generate(loaded, list(SAMPLE_PROMPTS), SAMPLE_PARAMETERS)
        results.append(
            VariantFigures(
                name,
                artifact.manifest["version"],
                figures[name],
                dict(zip(SAMPLE_PROMPTS, samples, strict=True)),
            )
        )
    return results


def _generate(
    model: PreTrainedModel, loaded: serving.LoadedModel, prompt: str, **options: Any
) -> list[int]:
    """transformers' `generate` after the same context and prompt tokens; the new ids."""
    ids = serving.headline_prompt_ids(loaded.tokenizer, prompt, loaded.headline_context)
    eos = loaded.tokenizer.eos_token_id
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]
            torch.tensor([ids]), eos_token_id=eos, pad_token_id=eos, **options
        )
    return [int(token) for token in output[0, len(ids) :]]


def reference_speed(model: PreTrainedModel, loaded: serving.LoadedModel) -> dict[str, Any]:
    """`speed_metrics` for transformers' greedy `generate` at one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    options = {"max_new_tokens": TIMING_PARAMETERS.max_new_tokens, "do_sample": False}
    try:
        return timed_headlines(lambda prompt: len(_generate(model, loaded, prompt, **options)))
    finally:
        torch.set_num_threads(threads)


def reference_samples(model: PreTrainedModel, loaded: serving.LoadedModel) -> dict[str, str]:
    """`generate`'s own sampling with the served defaults (seeded once)."""
    torch.manual_seed(SAMPLE_PARAMETERS.seed or 0)
    p = SAMPLE_PARAMETERS
    samples = {}
    for prompt in SAMPLE_PROMPTS:
        new_ids = _generate(
            model,
            loaded,
            prompt,
            max_new_tokens=p.max_new_tokens,
            do_sample=True,
            temperature=p.temperature,
            top_k=p.top_k,
            top_p=p.top_p,
        )
        samples[prompt] = prompt + serving.continuation(loaded.tokenizer, [], new_ids)
    return samples
