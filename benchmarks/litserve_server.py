"""LitServe serving one SageMaker model artifact through the artifact's own code/inference.py
hooks: the framework `benchmarks.frameworks` measures Pressroom's emulator against.

Runs in its own virtualenv (`.venv-litserve`, from requirements/litserve.txt), never the
project's: LitServe is not a Pressroom dependency. Imports nothing from Pressroom.

    .venv-litserve/bin/python benchmarks/litserve_server.py --model-dir DIR --port N
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import litserve as ls
import torch


def load_hooks(model_dir: Path) -> ModuleType:
    """`<model_dir>/code/inference.py`, imported by path as the inference toolkit does."""
    sys.path.insert(0, str(model_dir / "code"))
    spec = importlib.util.spec_from_file_location("inference", model_dir / "code" / "inference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    return module


class HooksAPI(ls.LitAPI):  # type: ignore[misc]
    """`POST /predict` with a SageMaker body; a batch's requests that share parameters run as
    one `predict_fn` call, as Pressroom's dynamic batcher merges them."""

    def __init__(self, model_dir: Path, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.threads = threads

    def setup(self, device: str) -> None:
        torch.set_num_threads(self.threads)
        self.hooks = load_hooks(self.model_dir)
        self.model = self.hooks.model_fn(str(self.model_dir))

    # Unannotated on purpose: LitServe reads the annotation as the request's type (none: JSON).
    def decode_request(self, request, **kwargs):  # type: ignore[no-untyped-def]
        return request

    def predict(self, batch: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
        groups: dict[str, list[int]] = {}
        for index, body in enumerate(batch):
            key = json.dumps(body.get("parameters") or {}, sort_keys=True)
            groups.setdefault(key, []).append(index)
        outputs: list[Any] = [None] * len(batch)
        for indices in groups.values():
            inputs = [batch[i]["inputs"] for i in indices]
            merged = {"inputs": inputs, "parameters": batch[indices[0]].get("parameters") or {}}
            for index, prediction in zip(
                indices, self.hooks.predict_fn(merged, self.model), strict=True
            ):
                outputs[index] = [prediction]
        return outputs

    def encode_response(self, output: Any, **kwargs: Any) -> Any:
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-ms", type=float, default=25.0)
    args = parser.parse_args()
    api = HooksAPI(
        args.model_dir,
        args.threads,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout_ms / 1000,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=600)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
