"""Import smoke test of `sam build` output: each built function imports against its layers only.

For every function of the built root template (and its nested apps) this starts a fresh
`python3.11 -I -S` — no site-packages, no PYTHONPATH — with just the built function directory
and the built `python/` directory of each of its layers on `sys.path`, and the environment its
template gives it, then imports the handler module (its cold start: settings, clients, store
engine) and checks the handler is callable. One thing is swapped: a function that reads the
reader key from Secrets Manager reads a throwaway key file instead, as no AWS is reachable here.
A dependency missing from `layers/common/requirements.txt` fails here instead of on AWS. It
prints the cold import time and the layer size as figures.

Run: `python -m local.ops.build_checks build/templates/sam` (after `sam build --build-dir ...`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from local.cfn import Stack
from local.devstack.reader_key import ensure_reader_key
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.paths import DEFAULT_MODELS_ROOT

# What the child runs: import the handler's module, check the handler, print the import time.
_IMPORT_PROBE = """
import importlib, sys, time
sys.path[:0] = sys.argv[1].split("\\n")
module_name, _, function_name = sys.argv[2].rpartition(".")
started = time.perf_counter()
module = importlib.import_module(module_name)
elapsed_ms = (time.perf_counter() - started) * 1000
assert callable(getattr(module, function_name)), f"{sys.argv[2]} is not callable"
print(f"{elapsed_ms:.0f}")
"""
LAMBDA_LIKE_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "build-check",
    "AWS_SECRET_ACCESS_KEY": "build-check",
}


@dataclass(frozen=True)
class BuiltFunction:
    name: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]


@dataclass(frozen=True)
class ImportResult:
    function: BuiltFunction
    ok: bool
    detail: str


def built_functions(root: Stack) -> list[BuiltFunction]:
    """Every function of the built stack tree, with the `python/` dirs of its layers."""
    layers = {
        layer.ref: (layer.stack.path.parent / str(layer.properties["ContentUri"]) / "python")
        for layer in root.walk_resources("AWS::Serverless::LayerVersion")
    }
    functions = []
    for resource in root.walk_resources("AWS::Serverless::Function"):
        properties = resource.properties
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        functions.append(
            BuiltFunction(
                name=f"{resource.stack.name}/{resource.logical_id}",
                handler=str(properties["Handler"]),
                code_dir=resource.stack.path.parent / str(properties["CodeUri"]),
                layer_dirs=tuple(layers[str(arn)] for arn in properties.get("Layers") or []),
                environment={key: str(value) for key, value in variables.items()},
            )
        )
    return functions


def with_key_file(function: BuiltFunction, key: Path) -> BuiltFunction:
    """The function reading the reader key from `key` where it would call Secrets Manager."""
    if "READER_KEY_SECRET_ID" not in function.environment:
        return function
    variables = {**function.environment, "READER_KEY_SECRET_ID": "", "READER_KEY_FILE": str(key)}
    return replace(function, environment=variables)


def check_import(function: BuiltFunction, python: str) -> ImportResult:
    paths = "\n".join(str(p) for p in (function.code_dir, *function.layer_dirs))
    completed = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [python, "-I", "-S", "-c", _IMPORT_PROBE, paths, function.handler],
        env={**function.environment, **LAMBDA_LIKE_ENVIRONMENT},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return ImportResult(function, False, last_line)
    return ImportResult(function, True, f"{completed.stdout.strip()} ms cold import")


def directory_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main(
    build_dir: Annotated[Path, typer.Argument(help="The --build-dir of `sam build`.")],
) -> None:
    console = Console()
    python = shutil.which("python3.11")
    if python is None:
        console.print("[red]python3.11 is not on PATH[/] (the Lambda runtime to test against)")
        raise typer.Exit(2)
    [root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, [build_dir / "template.yaml"])
    functions = built_functions(root)
    table = Table(title="Built functions, imported against their layers only")
    for column in ("function", "handler", "result"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as scratch:
        key = ensure_reader_key(Path(scratch) / "reader-key")
        results = [check_import(with_key_file(function, key), python) for function in functions]
    for result in results:
        colour = "green" if result.ok else "red"
        table.add_row(
            result.function.name, result.function.handler, f"[{colour}]{result.detail}[/]"
        )
    console.print(table)
    for layer_dir in sorted({d for f in functions for d in f.layer_dirs}):
        console.print(
            f"layer {layer_dir.parent.name}: {directory_size_mb(layer_dir):.1f} MB unzipped"
        )
    if not functions or not all(result.ok for result in results):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
