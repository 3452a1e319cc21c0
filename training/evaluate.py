"""Held-out metrics on the test split.

Generators: bits per character (tokenizer-independent, so the two variants compare fairly)
and per-token perplexity of the trained weights and of the model as served on its engine, what
readers would read, speed, and sample headlines for fixed prompts. The classifier: accuracy,
macro-F1, per-class F1 and the confusion matrix on BBC test headlines, and accuracy, macro-F1
and per-class F1 on other publishers' headlines (those of publishers it never trains on, and
the test split of the others: `classifier_metrics`); and for its calibrated
probabilities (`training.calibration`) the expected calibration error, and the precision and
coverage of the labels it answers at its threshold.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pressroom_common.generation.service import headline
from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.serving.inference import (
    HEADLINE_CONTEXT_CONFIG_KEY,
    GenerationParameters,
    LoadedModel,
    class_probabilities,
    generate,
    has_word,
    headline_text_ids,
)
from training.data import LABELS, Headline, held_out_publishers, training_publishers
from training.engine import Precision, served
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
# What readers type: a word, half a headline, a whole one, trailing punctuation, quotes, digits,
# capitals. Reading quality is measured on these with the served defaults.
READER_PROMPTS = (
    *SAMPLE_PROMPTS,
    "Prime Minister",
    "Oil prices",
    "Champions League",
    "Apple",
    "Markets rally as",
    "Police say",
    "Minister resigns over",
    "Football club signs",
    "Record sales for",
    "The future of",
    "Why the",
    "Hollywood stars",
    "Election results:",
    "Breaking:",
    "Bank of England raises interest rates",
    "England beat Wales in Six Nations opener",
    "Chancellor unveils budget.",
    "Tech giant fined (again)",
    "Is this the end?",
    '"We will win"',
    "Man Utd 2-1 Chelsea",
    "2024 in review",
    "UK economy grows 0.3%",
    "BREAKING NEWS",
    "US",
    "Scotland",
    "Music",
    "Strike",
    "Mobile phone sales",
    "Festival",
    "Parliament votes on",
    "Star's new film",
    "Shares in",
    "Zürich",
)
READING_PARAMETERS = replace(SAMPLE_PARAMETERS, return_full_text=False)
# Greedy, so the one-thread timing compares the same work on every model.
TIMING_PARAMETERS = GenerationParameters(do_sample=False, max_new_tokens=16, return_full_text=False)
TIMING_PROMPTS = READER_PROMPTS[:20]
_BACK_TO_BACK = re.compile(r"\b([^\W\d_]+)\s+\1\b", re.IGNORECASE)


def has_back_to_back_repeat(text: str) -> bool:
    """A word written twice in a row ("the the"), which readers notice at once."""
    return _BACK_TO_BACK.search(text) is not None


def generator_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_set: Sequence[Headline],
    max_length: int,
    precision: Precision,
    console: Console,
) -> dict[str, Any]:
    """The trained weights' held-out bits/char and perplexity (PyTorch, fp32: what training
    and the offline gate compare), then the same figures for the model as served (converted for
    its engine at `precision`), what readers would read, speed at one thread, and samples."""
    figures = held_out_metrics(model, tokenizer, test_set, max_length)
    with served(model, tokenizer, precision, console) as loaded:
        return {**figures, **served_metrics(loaded, test_set, max_length)}


def served_metrics(
    loaded: LoadedModel, test_set: Sequence[Headline], max_length: int
) -> dict[str, Any]:
    """Figures of a generator on its engine (see `generator_metrics`)."""
    samples = generate(loaded, list(SAMPLE_PROMPTS), SAMPLE_PARAMETERS)
    return {
        "served_bits_per_char": served_bits_per_char(loaded, test_set, max_length),
        **reading_metrics(loaded),
        **speed_metrics(loaded),
        "samples": dict(zip(SAMPLE_PROMPTS, samples, strict=True)),
    }


def served_bits_per_char(
    loaded: LoadedModel, test_set: Sequence[Headline], max_length: int
) -> float:
    """`held_out_metrics`' bits per character, from the engine's logits: the same tokens (each
    headline cut as training cuts it, then its end), given the context, token by token."""
    assert loaded.engine is not None
    tokenizer = loaded.tokenizer
    end_id = int(tokenizer.eos_token_id)
    nats = 0.0
    with loaded.engine.lock:
        for item in test_set:
            targets = [*headline_text_ids(tokenizer, item.text)[: max_length - 2], end_id]
            logits = loaded.engine.start([])
            for position, token in enumerate(targets):
                nats += float(np.logaddexp.reduce(logits.astype(np.float64)) - logits[token])
                if position + 1 < len(targets):
                    logits = loaded.engine.feed(token)
    characters = sum(len(h.text) + 1 for h in test_set)
    return round(nats / math.log(2) / characters, 4)


@torch.no_grad()
def held_out_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_set: Sequence[Headline],
    max_length: int,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Bits per character of the test headlines: every token of the headline and its end,
    given the start token, divided by the characters (each headline's end counts as one)."""
    model.eval()
    context = getattr(model.config, HEADLINE_CONTEXT_CONFIG_KEY, None)
    collate = causal_lm_collate(tokenizer, max_length, context)
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
    return {
        "test_bits_per_char": round(nats / math.log(2) / characters, 4),
        "test_perplexity": round(math.exp(nats / tokens), 3),
        "test_headlines": len(test_set),
    }


def reading_metrics(loaded: LoadedModel) -> dict[str, Any]:
    """What a reader would see for READER_PROMPTS with the served defaults (seeded)."""
    continuations = generate(loaded, list(READER_PROMPTS), READING_PARAMETERS)
    words = [sum(has_word(part) for part in text.split()) for text in continuations]
    repeats = [
        has_back_to_back_repeat(headline(prompt, text))
        for prompt, text in zip(READER_PROMPTS, continuations, strict=True)
    ]
    return {
        "reader_prompts": len(READER_PROMPTS),
        "no_word_share": round(sum(n == 0 for n in words) / len(words), 4),
        "repeated_word_share": round(sum(repeats) / len(repeats), 4),
        "median_words": float(np.median(words)),
    }


def speed_metrics(loaded: LoadedModel) -> dict[str, Any]:
    """Milliseconds per headline and per new token, greedy, on the engine as loaded (one thread
    for `generator_metrics`): the cost of serving one request on one core (the median over
    TIMING_PROMPTS, after one warm-up call)."""

    def write(prompt: str) -> int:
        (text,) = generate(loaded, [prompt], TIMING_PARAMETERS)
        return max(1, len(headline_text_ids(loaded.tokenizer, text)))

    return timed_headlines(write)


def timed_headlines(write: Callable[[str], int]) -> dict[str, Any]:
    """Milliseconds per headline (median) and per new token over TIMING_PROMPTS, after one
    warm-up call; `write(prompt)` writes one headline and returns how many tokens it took."""
    write(TIMING_PROMPTS[0])
    seconds, new_tokens = [], 0
    for prompt in TIMING_PROMPTS:
        started = time.perf_counter()
        new_tokens += write(prompt)
        seconds.append(time.perf_counter() - started)
    return {
        "ms_per_headline_1_thread": round(float(np.median(seconds)) * 1000, 1),
        "ms_per_token_1_thread": round(sum(seconds) * 1000 / max(1, new_tokens), 2),
    }


# (metric key, column title) in the order the table shows them.
COLUMNS = (
    ("test_bits_per_char", "bits/char (test, fp32)"),
    ("served_bits_per_char", "bits/char (test, served)"),
    ("test_perplexity", "perplexity"),
    ("ms_per_headline_1_thread", "ms/headline, 1 thread"),
    ("ms_per_token_1_thread", "ms/token, 1 thread"),
    ("no_word_share", "no word"),
    ("repeated_word_share", "word repeated back to back"),
    ("median_words", "median words"),
)


@dataclass(frozen=True)
class VariantFigures:
    name: str
    version: str
    metrics: dict[str, Any]
    samples: dict[str, str]


def markdown_table(results: list[VariantFigures]) -> str:
    """Metrics as rows, variants as columns, then the samples, in GitHub markdown."""
    header = "| | " + " | ".join(f"{r.name} `{r.version[:8]}`" for r in results) + " |"
    lines = [header, "|---" + "|---:" * len(results) + "|"]
    for key, title in COLUMNS:
        lines.append(
            f"| {title} | " + " | ".join(str(r.metrics.get(key, "n/a")) for r in results) + " |"
        )
    for key, unit in (("ms_per_headline_1_thread", "headline"), ("ms_per_token_1_thread", "token")):
        speedups = _speedup(results, key)
        if speedups is not None:
            lines.append(
                f"| speed-up per {unit} over {results[0].name} | " + " | ".join(speedups) + " |"
            )
    lines += ["", "| prompt | " + " | ".join(r.name for r in results) + " |"]
    lines.append("|---" * (len(results) + 1) + "|")
    for prompt in SAMPLE_PROMPTS:
        cells = [r.samples[prompt].replace("|", "\\|") for r in results]
        lines.append(f"| {prompt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speedup(results: list[VariantFigures], key: str) -> list[str] | None:
    if len(results) < 2 or not all(key in r.metrics for r in results):
        return None
    baseline = results[0].metrics[key]
    return [f"{baseline / r.metrics[key]:.2f}x" for r in results]


def classifier_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_set: Sequence[Headline],
    other_publishers: Sequence[Headline],
) -> dict[str, Any]:
    """The BBC test split (`test_*`), and headlines of other publishers and years labelled by
    their URL section (`section_labelled_headlines`): those of the publishers the classifier
    never trains on (`held_out_publishers_*`), and the test split, by a hash of the URL, of
    the publishers it may train on (`publishers_test_*`)."""
    loaded = LoadedModel("classifier", model, tokenizer, dict(enumerate(LABELS)))
    sets = {
        "test": test_set,
        "held_out_publishers": held_out_publishers(other_publishers),
        "publishers_test": training_publishers(other_publishers, "test"),
    }
    metrics: dict[str, Any] = {}
    for prefix, headlines in sets.items():
        actual = [h.category for h in headlines]
        metrics |= classification_report(actual, predict_labels(loaded, headlines), prefix)
    return metrics


def predict_labels(loaded: LoadedModel, headlines: Sequence[Headline]) -> list[str]:
    """The most likely category of each headline, whether or not the threshold is reached."""
    assert loaded.labels is not None
    predicted: list[str] = []
    for chunk in batches_in_order(headlines, 64):
        top = class_probabilities(loaded, [h.text for h in chunk]).argmax(axis=1)
        predicted += [loaded.labels[int(i)] for i in top]
    return predicted


def label_ids(headlines: Sequence[Headline]) -> np.ndarray:
    """Each headline's category as its index in LABELS (the classifier's id2label order)."""
    index = {label: i for i, label in enumerate(LABELS)}
    if any(h.category is None for h in headlines):
        raise ValueError("classifier evaluation needs labelled headlines")
    return np.array([index[h.category] for h in headlines if h.category is not None], dtype=int)


# Equal-width confidence bins for the expected calibration error (as Guo et al., 2017).
ECE_BINS = 15


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """The gap between confidence (the top probability) and accuracy, per equal-width bin of
    confidence ((0, 1/bins], ..., ((bins-1)/bins, 1]), averaged weighted by each bin's share
    of the headlines."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(gap)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log p(true category), in nats."""
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(chosen, 1e-300, None))))


def selective_report(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float
) -> dict[str, Any]:
    """What a reader sees at `threshold`: the share of headlines labelled (coverage), the
    share of those labels that are right (precision; None when nothing is labelled), and the
    accuracy when every headline is labelled (the classifier without abstention)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    labelled = confidence >= threshold
    return {
        "headlines": len(labels),
        "labelled": int(labelled.sum()),
        "coverage": round(float(labelled.mean()), 4) if len(labels) else None,
        "precision": round(float(correct[labelled].mean()), 4) if labelled.any() else None,
        "accuracy_labelling_all": round(float(correct.mean()), 4) if len(labels) else None,
    }


def classification_report(
    actual: Sequence[str | None], predicted: Sequence[str], prefix: str = "test"
) -> dict[str, Any]:
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
        f"{prefix}_accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        f"{prefix}_macro_f1": round(float(np.mean(list(per_class.values()))), 4),
        f"{prefix}_f1_per_class": {label: round(float(f1), 4) for label, f1 in per_class.items()},
        f"{prefix}_confusion_matrix": {
            "labels": list(LABELS),
            "rows_actual_columns_predicted": confusion.tolist(),
        },
        f"{prefix}_headlines": len(actual),
    }
