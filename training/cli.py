"""CLI commands for data, training, evaluation and packaging.

Heavy imports (torch, transformers) happen inside the commands so that `pressroom --help`
and the other areas' commands stay fast.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from training.paths import CORPUS_FILE, DEFAULT_MODELS_ROOT

if TYPE_CHECKING:
    from training.artifacts import Artifact

commands = typer.Typer()
console = Console()

ProfileOption = Annotated[
    str, typer.Option("--profile", "-p", help="full (the demo) or smoke (tiny, for tests)")
]
ModelArgument = Annotated[
    str, typer.Argument(help="headline-base, headline-lite or news-classifier")
]
RootOption = Annotated[Path, typer.Option("--root", help="artifacts root")]


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()  # "newly initialised head" and similar notices are expected


def _definition(name: str, profile: str) -> Any:
    from training.definitions import load_definition

    try:
        return load_definition(name, profile)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


@commands.command()
def data() -> None:
    """Build the headline corpus (under build/data) and print its summary."""
    from training.data import LABELS, SOURCES, SPLITS, build_corpus, write_corpus

    corpus = build_corpus()
    write_corpus(corpus, CORPUS_FILE)
    by_source = Counter((h.source, h.split) for h in corpus.headlines)
    by_label = Counter((h.category, h.split) for h in corpus.headlines if h.category)
    for title, rows, counts in (
        ("Headlines per source", SOURCES, by_source),
        ("BBC headlines per category", LABELS, by_label),
    ):
        table = Table(title=title)
        table.add_column("")
        for split in SPLITS:
            table.add_column(split, justify="right")
        table.add_column("total", justify="right")
        for row in rows:
            cells = [counts[(row, split)] for split in SPLITS]
            table.add_row(row, *map(str, cells), str(sum(cells)))
        totals = [sum(counts[(row, split)] for row in rows) for split in SPLITS]
        table.add_row("[bold]total", *map(str, totals), str(sum(totals)))
        console.print(table)
    dropped = ", ".join(f"{count} {reason}" for reason, count in corpus.dropped.items())
    console.print(f"Dropped: {dropped}. Written to {CORPUS_FILE}.")


@commands.command("train")
def train_command(
    model: ModelArgument, profile: ProfileOption = "full", root: RootOption = DEFAULT_MODELS_ROOT
) -> None:
    """Train one model and save its checkpoint under build/training/<profile>/<model>."""
    _quiet_transformers()
    from training.data import build_corpus
    from training.pipeline import save_checkpoint, select_data, train_model, work_dir

    definition = _definition(model, profile)
    trained = train_model(definition, select_data(definition, build_corpus()), console, root)
    save_checkpoint(trained, work_dir(root, definition))
    console.print(f"Saved to {work_dir(root, definition)}")


@commands.command("evaluate")
def evaluate_command(
    model: Annotated[
        str | None,
        typer.Argument(help="one model's checkpoint; none: both packaged generators side by side"),
    ] = None,
    profile: ProfileOption = "full",
    root: RootOption = DEFAULT_MODELS_ROOT,
) -> None:
    """Evaluate a trained model on the test split, or compare the packaged generators."""
    _quiet_transformers()
    if model is None:
        from training.compare import compare_generators
        from training.evaluate import markdown_table

        console.print(Markdown(markdown_table(compare_generators(root, profile))))
        return
    from training.data import build_corpus
    from training.pipeline import (
        METRICS_RECORD,
        evaluate_model,
        load_checkpoint,
        select_data,
        work_dir,
    )

    definition = _definition(model, profile)
    directory = work_dir(root, definition)
    metrics = evaluate_model(
        definition,
        load_checkpoint(definition, directory),
        select_data(definition, build_corpus()),
        console,
    )
    (directory / METRICS_RECORD).write_text(json.dumps(metrics, indent=2) + "\n")
    console.print_json(data=metrics)


@commands.command("package")
def package_command(
    model: ModelArgument, profile: ProfileOption = "full", root: RootOption = DEFAULT_MODELS_ROOT
) -> None:
    """Package a trained, evaluated model into build/models/<profile>/<model>."""
    _quiet_transformers()
    from training.data import build_corpus
    from training.pipeline import (
        METRICS_RECORD,
        load_checkpoint,
        package_model,
        select_data,
        source_manifest,
        work_dir,
    )

    definition = _definition(model, profile)
    directory = work_dir(root, definition)
    metrics_path = directory / METRICS_RECORD
    if not metrics_path.exists():
        raise typer.BadParameter(
            f"{model} is not evaluated yet; run `pressroom evaluate {model} --profile {profile}`"
        )
    manifest = package_model(
        definition,
        load_checkpoint(definition, directory),
        json.loads(metrics_path.read_text()),
        root / profile / model,
        select_data(definition, build_corpus()),
        source_manifest(definition, root),
    )
    console.print(f"Packaged {model} version {manifest['version']} into {root / profile / model}")


@commands.command("build-all")
def build_all(profile: ProfileOption = "full", root: RootOption = DEFAULT_MODELS_ROOT) -> None:
    """Train, evaluate and package all three models, skipping those built and unchanged."""
    _quiet_transformers()
    from training.artifacts import ensure_artifacts

    started = time.monotonic()
    artifacts = ensure_artifacts(profile, root=root, console=console)
    console.print(metrics_table(artifacts))
    console.print(f"build-all --profile {profile}: {time.monotonic() - started:.1f}s")


def metrics_table(artifacts: dict[str, Artifact]) -> Table:
    table = Table(title="Pressroom models")
    for column in ("model", "version", "train s", "steps", "test metrics", "tarball MB"):
        table.add_column(column)
    for name, artifact in artifacts.items():
        manifest, metrics = artifact.manifest, artifact.manifest["metrics"]
        if "test_bits_per_char" in metrics:
            summary = f"bits/char {metrics['test_bits_per_char']}  ppl {metrics['test_perplexity']}"
        else:
            summary = f"accuracy {metrics['test_accuracy']}  macro-F1 {metrics['test_macro_f1']}"
        table.add_row(
            name,
            manifest["version"],
            str(manifest["training"]["seconds"]),
            str(manifest["training"]["steps"]),
            summary,
            f"{artifact.tarball.stat().st_size / 1e6:.1f}",
        )
    return table
