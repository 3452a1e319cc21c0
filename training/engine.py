"""A generator's decode engine: ONNX Runtime GenAI's model, converted at packaging time.

The engine's model builder reads the `save_pretrained` directory and writes an ONNX decoder
with its key/value cache and `MatMulNBits` weight-only quantized projections (int8 or int4,
per block of 32 weights: the builder's default), plus the engine's `genai_config.json`. It
runs in its own virtualenv (`make converter`, requirements/converter.txt): it wants
transformers 5, which the serving side cannot use. The artifact keeps the tokenizer and the
`save_pretrained` weights next to the engine's files (`engine/`): the tokenizer serves, and
the weights say what the engine was converted from (and are what a retrained model starts from).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.serving import inference as serving

Precision = Literal["int8", "int4", "fp32"]

CONVERTER_PYTHON = Path(__file__).resolve().parents[1] / ".venv-convert" / "bin" / "python"
"""The converter's interpreter; PRESSROOM_CONVERTER_PYTHON overrides it."""
ENGINE_FILES = (serving.ENGINE_CONFIG, "model.onnx", "model.onnx.data")
"""What the engine loads; the builder's copies of the tokenizer files stay out (the artifact
has them once, next to the weights)."""


def converter_python() -> Path:
    python = Path(os.environ.get("PRESSROOM_CONVERTER_PYTHON", CONVERTER_PYTHON))
    if not python.exists():
        raise FileNotFoundError(
            f"no model converter at {python}: run `make converter` (ONNX Runtime GenAI's model "
            "builder in its own virtualenv) or set PRESSROOM_CONVERTER_PYTHON"
        )
    return python


def convert(model_dir: Path, precision: Precision, console: Console) -> Path:
    """Write `model_dir/engine/` from the weights in `model_dir`; return that directory."""
    engine_dir = model_dir / serving.ENGINE_DIR
    console.print(f"converting the weights for ONNX Runtime GenAI ({precision}) ...")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        built, log = Path(scratch) / "engine", Path(scratch) / "builder.log"
        command = [
            str(converter_python()),
            "-m",
            "onnxruntime_genai.models.builder",
            *("-i", str(model_dir), "-o", str(built), "-p", precision, "-e", "cpu"),
            *("-c", str(Path(scratch) / "cache")),
        ]
        with log.open("w") as output:
            # The builder's own progress bars redraw thousands of times; its log is kept and
            # shown only if it fails.
            result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                command, stdout=output, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"the ONNX Runtime GenAI model builder failed ({result.returncode}):\n"
                + log.read_text()[-4000:]
            )
        engine_dir.mkdir()
        for name in ENGINE_FILES:
            shutil.move(built / name, engine_dir / name)
    console.print(f"converted in {time.perf_counter() - started:.1f} s")
    return engine_dir


@contextmanager
def served(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    precision: Precision,
    console: Console,
    *,
    threads: int = 1,
) -> Iterator[serving.LoadedModel]:
    """`model` as an endpoint would serve it: saved, converted and loaded on its engine (on
    `threads` threads), for figures of what readers would get before it is packaged."""
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "model"
        model.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
        convert(model_dir, precision, console)
        yield serving.load_generator(model_dir, threads)
