"""Calibration for int8 serving: which Linear layers must stay fp32.

Dynamic int8 quantization gives each input tensor one scale. A few layers of a trained LLM see
inputs whose peak is tens to thousands of times a typical token's (the massive activations of
the MLP's down projection in some blocks), so one scale crushes every other value there and
held-out bits/char collapses (headline-base: 1.45 in fp32, 1.91 with every layer int8, 1.63
with the six worst down projections left in fp32, 1.55 with all thirty). Those few layers are
found here, from real headlines, and named in the artifact's config for `model_fn` to skip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.data import Headline
from training.train import causal_lm_collate

CALIBRATION_HEADLINES = 64


@torch.no_grad()
def outlier_linears(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    headlines: Sequence[Headline],
    *,
    context: str | None,
    max_length: int,
    ratio: float,
) -> list[str]:
    """Linear layers whose input peaks above `ratio` times the median token's own peak."""
    batch = causal_lm_collate(tokenizer, max_length, context)(headlines[:CALIBRATION_HEADLINES])
    real_tokens = batch.inputs["attention_mask"].reshape(-1).bool()
    peaks: dict[str, float] = {}

    def record(name: str) -> object:
        def hook(
            _module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: object
        ) -> None:
            x = inputs[0].reshape(-1, inputs[0].shape[-1])[real_tokens].abs()
            peaks[name] = float(x.max() / x.amax(dim=1).median().clamp(min=1e-12))

        return hook

    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        model.eval()
        model(input_ids=batch.inputs["input_ids"], attention_mask=batch.inputs["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(name for name, peak in peaks.items() if peak > ratio)
