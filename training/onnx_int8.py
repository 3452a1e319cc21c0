"""The classifier's served ONNX model: int8 MatMuls, with the few that int8 hurts kept fp32.

ONNX Runtime's dynamic quantization stores each MatMul's weights in int8 (one scale per output
channel) and quantizes its input on the fly, one scale per tensor: at batch 1 on one thread the
classifier runs about 4x faster than PyTorch, 2x faster than fp32 ONNX. A MatMul whose input
carries outliers loses most (news-classifier: the first block's FFN output projection moved the
validation logits three times more than any other). So the MatMuls are ranked by how far each
one alone, in int8, moves the validation logits, and the served model keeps the fewest of them
in fp32 for which macro-F1 on both the validation and the test split is not lower than
PyTorch's (deciding on the test split alone would tune to its few borderline headlines). If
no such model keeps at most `MAX_KEPT_FP32` of them in fp32, the fp32 export is served.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

import models.serving.inference as serving
from training.data import Headline
from training.evaluate import classification_report, predict_labels

MAX_KEPT_FP32 = 8
SPLITS = ("validation", "test")


def weight_matmuls(path: Path) -> list[str]:
    """The MatMul nodes with a constant (weight) input: those dynamic quantization turns int8."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {initializer.name for initializer in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any(name in weights for name in node.input)
    ]


class _NoPreProcessingAdvice(logging.Filter):
    """The quantizer advises shape-inference pre-processing at every call; MatMul weights
    need no shapes to quantize."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize(source: Path, destination: Path, keep_fp32: Sequence[str]) -> None:
    root = logging.getLogger()
    advice = _NoPreProcessingAdvice()
    root.addFilter(advice)
    try:
        quantize_dynamic(
            source,
            destination,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_fp32),
        )
    finally:
        root.removeFilter(advice)


def sensitivity_order(model_dir: Path, fp32: Path, texts: Sequence[str]) -> list[str]:
    """The weight MatMuls, most sensitive first: mean squared change of the logits on `texts`
    when that MatMul alone is int8. Writes candidates to `model_dir`'s ONNX file."""
    served = model_dir / serving.ONNX_FILE
    shutil.copyfile(fp32, served)
    reference = serving.classifier_logits(serving.load_model(model_dir), list(texts))
    nodes = weight_matmuls(fp32)
    change = {}
    for node in nodes:
        quantize(fp32, served, [other for other in nodes if other != node])
        logits = serving.classifier_logits(serving.load_model(model_dir), list(texts))
        change[node] = float(np.mean((logits - reference) ** 2))
    return sorted(nodes, key=lambda node: -change[node])


def served_onnx(
    model_dir: Path,
    fp32: Path,
    validation: Sequence[Headline],
    test: Sequence[Headline],
) -> dict[str, Any]:
    """Write the served `model_dir/model.onnx` from the `fp32` export, chosen as the module
    docstring says; `model_dir` holds the PyTorch weights and tokenizer. Returns its figures
    beside PyTorch's (the `onnx` entry of the manifest's metrics)."""
    pytorch = serving.load_model(model_dir, prefer_onnx=False)
    splits = dict(zip(SPLITS, (validation, test), strict=True))

    def report(loaded: serving.LoadedModel) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for name, headlines in splits.items():
            actual = [h.category for h in headlines]
            figures |= classification_report(actual, predict_labels(loaded, headlines), name)
        return figures

    baseline = report(pytorch)
    order = sensitivity_order(model_dir, fp32, [h.text for h in validation])
    for kept in range(MAX_KEPT_FP32 + 1):
        quantize(fp32, model_dir / serving.ONNX_FILE, order[:kept])
        figures = report(serving.load_model(model_dir))
        if all(figures[f"{name}_macro_f1"] >= baseline[f"{name}_macro_f1"] for name in splits):
            return _record("int8", order[:kept], figures, baseline)
    shutil.copyfile(fp32, model_dir / serving.ONNX_FILE)
    return _record("fp32", [], report(serving.load_model(model_dir)), baseline)


def _record(
    weights: str, keep_fp32: list[str], figures: dict[str, Any], baseline: dict[str, Any]
) -> dict[str, Any]:
    macro_f1 = {f"{split}_macro_f1": figures[f"{split}_macro_f1"] for split in SPLITS}
    return {
        "weights": weights,
        "keep_fp32": keep_fp32,
        "test_accuracy": figures["test_accuracy"],
        **macro_f1,
        **{f"pytorch_{key}": baseline[key] for key in macro_f1},
    }
