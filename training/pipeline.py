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
from training.definitions import ModelDefinition, TrainingSpec, load_definition
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
    """The model's sources; the classifier learns from labelled headlines only, and with
    `data.publisher_sections` from other publishers' too (`other_publishers`): their train
    split, repeated as the definition says, joins train and their validation split joins
    validation. The test split stays the sources' own (BBC's for the classifier)."""
    labelled = definition.kind == "classifier"
    sources = set(definition.data.sources)
    spec = definition.data

    def pick(split: corpus_data.Split, limit: int | None) -> list[Headline]:
        chosen = [h for h in corpus.select(split, labelled=labelled) if h.source in sources]
        return chosen[:limit] if limit is not None else chosen

    train, validation = pick("train", spec.train_limit), pick("validation", spec.validation_limit)
    if spec.publisher_sections:
        publishers = other_publishers(definition)
        train += (
            corpus_data.training_publishers(publishers, "train") * spec.publisher_sections_repeat
        )
        validation += corpus_data.training_publishers(publishers, "validation")
    return DataSplits(train=train, validation=validation, test=pick("test", spec.test_limit))


def build_key(
    definition: ModelDefinition, splits: DataSplits, source_key: str | None = None
) -> str:
    """What decides whether an artifact is stale: definition, training + serving code, data,
    and for a derived model the build key of the model it derives from (`source_key`).

    The definition counts as parsed (its fingerprint), so editing a comment in its YAML file
    does not force a rebuild.
    """
    digest = hashlib.sha256(definition.fingerprint().encode())
    code = [*sorted(Path(training.__file__).parent.glob("*.py")), Path(serving.__file__)]
    for path in code:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(splits.fingerprint.encode())
    if source_key is not None:
        digest.update(b"derived from " + source_key.encode())
    return digest.hexdigest()


def work_dir(root: Path, definition: ModelDefinition) -> Path:
    """Where training hands over to evaluation and packaging (next to the artifacts root)."""
    return root.parent / "training" / definition.profile / definition.name


def source_manifest(definition: ModelDefinition, root: Path) -> dict[str, Any] | None:
    """The manifest of the packaged model a derived model starts from (None if not derived)."""
    source = definition.base.derived_from
    if source is None:
        return None
    path = root / definition.profile / source / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{definition.name} derives from {source}, which is not packaged for profile "
            f"{definition.profile}; run `pressroom build-all --profile {definition.profile}`"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def training_spec(definition: ModelDefinition) -> TrainingSpec:
    """The model's own training spec, or for a derived model its source's (whose headline
    length limit its evaluation must share, so that bits/char compare directly)."""
    if definition.training is not None:
        return definition.training
    assert definition.base.derived_from is not None
    return training_spec(load_definition(definition.base.derived_from, definition.profile))


def train_model(
    definition: ModelDefinition, splits: DataSplits, console: Console, root: Path
) -> TrainedModel:
    source = source_manifest(definition, root)
    if source is not None:
        return _derive(definition, splits, source, root, console)
    spec = definition.training
    assert spec is not None
    seed_everything(spec.seed)  # before building the model: a fresh head or GPT-2 is random
    if definition.kind == "classifier":
        model, tokenizer = load_classifier(definition.base)
        collate = classification_collate(tokenizer, spec.max_length)
    else:
        model, tokenizer = load_generator(definition.base, [h.text for h in splits.train])
        collate = causal_lm_collate(tokenizer, spec.max_length, definition.base.headline_context)
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
        "train_by_source": corpus_data.counts_by_source(splits.train),
        "validation_by_source": corpus_data.counts_by_source(splits.validation),
        "data_fingerprint": splits.fingerprint,
        "build_key": build_key(definition, splits),
    }
    return TrainedModel(model, tokenizer, record)


def _derive(
    definition: ModelDefinition,
    splits: DataSplits,
    source: dict[str, Any],
    root: Path,
    console: Console,
) -> TrainedModel:
    """No training: the source's packaged weights (served at this model's own precision)."""
    source_dir = root / definition.profile / source["name"] / "model"
    model = AutoModelForCausalLM.from_pretrained(source_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    console.print(f"{definition.name}: {source['name']} version {source['version']}'s weights")
    record = {
        "steps": 0,
        "seconds": 0.0,
        "derived_from": {"name": source["name"], "version": source["version"]},
        "data_fingerprint": splits.fingerprint,
        "build_key": build_key(definition, splits, source["build_key"]),
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


def other_publishers(definition: ModelDefinition) -> list[Headline]:
    """The classifier's second labelled set: headlines of other publishers, labelled by their
    URL section (`section_labelled_headlines`); each split of it, and the held-out publishers'
    headlines, cut as the profile cuts the splits of the same name (held-out ones as test)."""
    if definition.kind != "classifier":
        return []
    labelled = corpus_data.section_labelled_headlines()
    spec = definition.data
    limits = {"train": spec.train_limit, "validation": spec.validation_limit}
    chosen = [
        *(
            corpus_data.training_publishers(labelled, split)[: limits.get(split, spec.test_limit)]
            for split in corpus_data.SPLITS
        ),
        corpus_data.held_out_publishers(labelled)[: spec.test_limit],
    ]
    return [h for subset in chosen for h in subset]


def evaluate_model(
    definition: ModelDefinition, trained: TrainedModel, splits: DataSplits, console: Console
) -> dict[str, Any]:
    if definition.kind == "classifier":
        return classifier_metrics(
            trained.model, trained.tokenizer, splits.test, other_publishers(definition)
        )
    assert definition.engine is not None
    return generator_metrics(
        trained.model,
        trained.tokenizer,
        splits.test,
        training_spec(definition).max_length,
        definition.engine.precision,
        console,
    )


def package_model(
    definition: ModelDefinition,
    trained: TrainedModel,
    metrics: dict[str, Any],
    destination: Path,
    splits: DataSplits,
    source: dict[str, Any] | None = None,
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
        source=source,
        held_out=(splits.validation, splits.test),
        other_publishers=other_publishers(definition),
    )
