"""The steps from definition to artifact: select data, train, evaluate, package.

`pressroom train|evaluate|package` run one step each and hand over through the checkpoint
directory `build/training/<profile>/<name>/`; `build-all` (training.artifacts) runs them in one
process without reloading the model between steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

import models.serving.inference as serving
import training
from training import data as corpus_data
from training.data import Corpus, Headline
from training.definitions import ModelDefinition
from training.evaluate import classifier_metrics, generator_metrics
from training.modeling import load_classifier, load_generator
from training.package import package
from training.train import causal_lm_collate, classification_collate, seed_everything, train

CHECKPOINT = "checkpoint"
TRAINING_RECORD = "training.json"
METRICS_RECORD = "metrics.json"


@dataclass(frozen=True)
class DataSplits:
    train: list[Headline]
    validation: list[Headline]
    test: list[Headline]

    @property
    def fingerprint(self) -> str:
        return corpus_data.fingerprint(self.train + self.validation + self.test)


@dataclass
class TrainedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    record: dict[str, Any]  # training summary, data fingerprint and build key


def select_data(definition: ModelDefinition, corpus: Corpus) -> DataSplits:
    """The model's sources; the classifier learns from labelled headlines only."""
    labelled = definition.kind == "classifier"
    sources = set(definition.data.sources)

    def pick(split: corpus_data.Split, limit: int | None) -> list[Headline]:
        chosen = [h for h in corpus.select(split, labelled=labelled) if h.source in sources]
        return chosen[:limit] if limit is not None else chosen

    return DataSplits(
        train=pick("train", definition.data.train_limit),
        validation=pick("validation", definition.data.validation_limit),
        test=pick("test", definition.data.test_limit),
    )


def build_key(definition: ModelDefinition, splits: DataSplits) -> str:
    """What decides whether an artifact is stale: definition, training + serving code, data.

    The definition counts as parsed (its fingerprint), so editing a comment in its YAML file
    does not force a rebuild.
    """
    digest = hashlib.sha256(definition.fingerprint().encode())
    code = [*sorted(Path(training.__file__).parent.glob("*.py")), Path(serving.__file__)]
    for path in code:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(splits.fingerprint.encode())
    return digest.hexdigest()


def work_dir(root: Path, definition: ModelDefinition) -> Path:
    """Where training hands over to evaluation and packaging (next to the artifacts root)."""
    return root.parent / "training" / definition.profile / definition.name


def train_model(definition: ModelDefinition, splits: DataSplits, console: Console) -> TrainedModel:
    spec = definition.training
    seed_everything(spec.seed)  # before building the model: a fresh head or GPT-2 is random
    if definition.kind == "classifier":
        model, tokenizer = load_classifier(definition.base)
        collate = classification_collate(tokenizer, spec.max_length)
    else:
        model, tokenizer = load_generator(definition.base, [h.text for h in splits.train])
        collate = causal_lm_collate(tokenizer, spec.max_length)
    summary = train(
        model,
        splits.train,
        splits.validation,
        collate,
        spec,
        label=definition.name,
        console=console,
    )
    record = {
        **asdict(summary),
        "train_headlines": len(splits.train),
        "validation_headlines": len(splits.validation),
        "data_fingerprint": splits.fingerprint,
        "build_key": build_key(definition, splits),
    }
    return TrainedModel(model, tokenizer, record)


def save_checkpoint(trained: TrainedModel, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    trained.model.save_pretrained(directory / CHECKPOINT, safe_serialization=True)
    trained.tokenizer.save_pretrained(directory / CHECKPOINT)
    (directory / TRAINING_RECORD).write_text(json.dumps(trained.record, indent=2) + "\n")


def load_checkpoint(definition: ModelDefinition, directory: Path) -> TrainedModel:
    checkpoint = directory / CHECKPOINT
    if not (directory / TRAINING_RECORD).exists():
        raise FileNotFoundError(
            f"no trained {definition.name} for profile {definition.profile} in {directory}; "
            f"run `pressroom train {definition.name} --profile {definition.profile}` first"
        )
    loader = (
        AutoModelForSequenceClassification
        if definition.kind == "classifier"
        else AutoModelForCausalLM
    )
    model = loader.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    record = json.loads((directory / TRAINING_RECORD).read_text())
    return TrainedModel(model, tokenizer, record)


def evaluate_model(
    definition: ModelDefinition, trained: TrainedModel, splits: DataSplits
) -> dict[str, Any]:
    if definition.kind == "classifier":
        return classifier_metrics(trained.model, trained.tokenizer, splits.test)
    return generator_metrics(
        trained.model, trained.tokenizer, splits.test, definition.training.max_length
    )


def package_model(
    definition: ModelDefinition, trained: TrainedModel, metrics: dict[str, Any], destination: Path
) -> dict[str, Any]:
    record = trained.record
    training_summary = {
        k: v for k, v in record.items() if k not in ("data_fingerprint", "build_key")
    }
    return package(
        definition,
        trained.model,
        trained.tokenizer,
        metrics=metrics,
        training=training_summary,
        data_fingerprint=record["data_fingerprint"],
        build_key=record["build_key"],
        destination=destination,
    )
