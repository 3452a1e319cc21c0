"""Held-out metrics on the test split.

Generators: bits per character (tokenizer-independent, so the two variants compare fairly)
and per-token perplexity, plus sample headlines for fixed prompts. The classifier: accuracy,
macro-F1, per-class F1 and the confusion matrix on BBC test headlines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.serving.inference import GenerationParameters, LoadedModel, classify, generate
from training.data import LABELS, Headline
from training.train import IGNORE_INDEX, batches_in_order, causal_lm_collate

SAMPLE_PROMPTS = (
    "Government",
    "Stocks",
    "Film star",
    "Football club",
    "New smartphone",
    "Scientists",
)
# Sampled but seeded: the card shows what the served model writes with its default parameters.
SAMPLE_PARAMETERS = GenerationParameters(seed=7)


@torch.no_grad()
def generator_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_set: Sequence[Headline],
    max_length: int,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Bits per character of the test headlines: every token of the headline and its end,
    given the start token, divided by the characters (each headline's end counts as one)."""
    model.eval()
    collate = causal_lm_collate(tokenizer, max_length)
    nats, tokens = 0.0, 0
    for chunk in batches_in_order(test_set, batch_size):
        inputs = collate(chunk).inputs
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits
        targets = inputs["labels"][:, 1:]
        nats += float(
            F.cross_entropy(
                logits[:, :-1].transpose(1, 2).float(),
                targets,
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
        )
        tokens += int((targets != IGNORE_INDEX).sum())
    characters = sum(len(h.text) + 1 for h in test_set)
    samples = generate(
        LoadedModel("generator", model, tokenizer), list(SAMPLE_PROMPTS), SAMPLE_PARAMETERS
    )
    return {
        "test_bits_per_char": round(nats / math.log(2) / characters, 4),
        "test_perplexity": round(math.exp(nats / tokens), 3),
        "test_headlines": len(test_set),
        "samples": dict(zip(SAMPLE_PROMPTS, samples, strict=True)),
    }


def classifier_metrics(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, test_set: Sequence[Headline]
) -> dict[str, Any]:
    loaded = LoadedModel("classifier", model, tokenizer, dict(enumerate(LABELS)))
    predicted: list[str] = []
    for chunk in batches_in_order(test_set, 64):
        predicted += [p["label"] for p in classify(loaded, [h.text for h in chunk])]
    actual = [h.category for h in test_set]
    return classification_report(actual, predicted)


def classification_report(actual: Sequence[str | None], predicted: Sequence[str]) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(LABELS)}
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)  # rows: actual, columns: predicted
    for truth, guess in zip(actual, predicted, strict=True):
        if truth is None:
            raise ValueError("classifier evaluation needs labelled headlines")
        confusion[index[truth], index[guess]] += 1
    per_class = {}
    for i, label in enumerate(LABELS):
        true_positive = confusion[i, i]
        precision = true_positive / max(confusion[:, i].sum(), 1)
        recall = true_positive / max(confusion[i, :].sum(), 1)
        per_class[label] = (
            0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        )
    return {
        "test_accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        "test_macro_f1": round(float(np.mean(list(per_class.values()))), 4),
        "test_f1_per_class": {label: round(float(f1), 4) for label, f1 in per_class.items()},
        "confusion_matrix": {
            "labels": list(LABELS),
            "rows_actual_columns_predicted": confusion.tolist(),
        },
        "test_headlines": len(actual),
    }
