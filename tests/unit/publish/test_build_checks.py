"""The import smoke test of built functions sees only the function and its layers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from local.ops.build_checks import BuiltFunction, check_import, with_key_file

PYTHON = shutil.which("python3.11") or sys.executable


def built(tmp_path: Path, source: str) -> BuiltFunction:
    layer = tmp_path / "Layer" / "python"
    layer.mkdir(parents=True)
    (layer / "shared_code.py").write_text("GREETING = 'hello'\n")
    function_dir = tmp_path / "Function"
    function_dir.mkdir()
    (function_dir / "app.py").write_text(source)
    return BuiltFunction("Function", "app.handler", function_dir, (layer,), {"NAME": "x"})


def test_a_function_that_imports_only_its_layer_passes(tmp_path: Path) -> None:
    function = built(
        tmp_path,
        "import os\nfrom shared_code import GREETING\nassert os.environ['NAME'] == 'x'\n"
        "def handler(event, context):\n    return GREETING\n",
    )

    result = check_import(function, PYTHON)

    assert result.ok, result.detail


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\ndef handler(event, context):\n    pass\n",  # installed here, not in the layer
        "handler = None\n",
    ],
)
def test_a_dependency_outside_the_layer_or_a_missing_handler_fails(
    tmp_path: Path, source: str
) -> None:
    result = check_import(built(tmp_path, source), PYTHON)

    assert not result.ok


def test_a_function_that_reads_the_reader_key_from_secrets_manager_reads_a_file_instead(
    tmp_path: Path,
) -> None:
    key = tmp_path / "reader-key"
    secret = {"READER_KEY_SECRET_ID": "arn:aws:secretsmanager:us-east-1:1:secret:k", "NAME": "x"}
    reads_key = BuiltFunction("Generate", "app.handler", tmp_path, (), secret)
    plain = BuiltFunction("Plain", "app.handler", tmp_path, (), {"NAME": "x"})

    assert with_key_file(reads_key, key).environment == {
        "READER_KEY_SECRET_ID": "",
        "READER_KEY_FILE": str(key),
        "NAME": "x",
    }
    assert with_key_file(plain, key) == plain
