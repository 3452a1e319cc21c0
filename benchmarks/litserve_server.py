"""LitServe serving one SageMaker model artifact: the framework `benchmarks.frameworks`
measures Pressroom's emulator against, in one of two modes.

- hooks (the default): through the artifact's own code/inference.py hooks, so the model runs
  exactly as Pressroom's worker runs it (a generator on its ONNX Runtime GenAI engine);
- `--plain-transformers`: the server a user would write in an afternoon: the artifact's fp32
  `save_pretrained` weights on `transformers` (AutoModelForCausalLM + AutoTokenizer), each
  LitServe batch left-padded after the same headline context and decoded greedily by one
  `generate` call; the tokenizer's EOS ends a headline.

Both modes use LitServe's dynamic batching (default: max batch 16, 25 ms window) and
`--threads` torch threads. Runs in its own virtualenv (`.venv-litserve`, from
requirements/litserve.txt), never the project's: LitServe is not a Pressroom dependency.
Imports nothing from Pressroom; binds 127.0.0.1 only.

    .venv-litserve/bin/python benchmarks/litserve_server.py --model-dir DIR --port N
        [--threads N] [--plain-transformers]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import litserve as ls
import torch

# The config entry naming the text every headline starts after (the plain-transformers server
# reads it as the hooks do; without it, a headline starts after the start token alone).
HEADLINE_CONTEXT_CONFIG_KEY = "pressroom_headline_context"
DEFAULT_NEW_TOKENS = 16
MAX_NEW_TOKENS = 64


def load_hooks(model_dir: Path) -> ModuleType:
    """`<model_dir>/code/inference.py`, imported by path as the inference toolkit does."""
    sys.path.insert(0, str(model_dir / "code"))
    spec = importlib.util.spec_from_file_location("inference", model_dir / "code" / "inference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    return module


class _ArtifactAPI(ls.LitAPI):  # type: ignore[misc]
    """`POST /predict` with a SageMaker body, served from one artifact directory on `threads`
    torch threads; the answer goes out as the model gave it."""

    def __init__(self, model_dir: Path, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.threads = threads

    # Unannotated on purpose: LitServe reads the annotation as the request's type (none: JSON).
    def decode_request(self, request, **kwargs):  # type: ignore[no-untyped-def]
        return request

    def encode_response(self, output: Any, **kwargs: Any) -> Any:
        return output


class HooksAPI(_ArtifactAPI):
    """A LitServe batch's requests that share parameters run as one `predict_fn` call (a
    generator's hooks then decode its prompts one after another on the engine)."""

    def setup(self, device: str) -> None:
        torch.set_num_threads(self.threads)
        self.hooks = load_hooks(self.model_dir)
        self.model = self.hooks.model_fn(str(self.model_dir))

    def predict(self, batch: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
        outputs: list[Any] = [None] * len(batch)
        for indices in group_by_parameters(batch, lambda p: json.dumps(p, sort_keys=True)):
            inputs = [batch[i]["inputs"] for i in indices]
            merged = {"inputs": inputs, "parameters": batch[indices[0]].get("parameters") or {}}
            for index, prediction in zip(
                indices, self.hooks.predict_fn(merged, self.model), strict=True
            ):
                outputs[index] = [prediction]
        return outputs


class PlainTransformersAPI(_ArtifactAPI):
    """Answered by `transformers` `generate` in fp32 on the artifact's weights: a batch's
    requests that share `max_new_tokens` are left-padded and decoded as one greedy `generate`
    call (other parameters are ignored: always greedy). Each input is answered
    `{"generated_text": prompt + new text}`."""

    def setup(self, device: str) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(self.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)  # type: ignore[no-untyped-call]
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        self.model = model.eval()  # type: ignore[no-untyped-call]
        context = getattr(
            AutoConfig.from_pretrained(self.model_dir), HEADLINE_CONTEXT_CONFIG_KEY, None
        )
        tokenizer = self.tokenizer
        if context:
            self.context_ids = list(tokenizer(context, add_special_tokens=False)["input_ids"])
        else:
            start = tokenizer.bos_token_id
            self.context_ids = [tokenizer.eos_token_id if start is None else start]
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def predict(self, batch: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
        outputs: list[Any] = [None] * len(batch)
        groups = group_by_parameters(batch, lambda p: p.get("max_new_tokens", DEFAULT_NEW_TOKENS))
        for indices in groups:
            per_request = [as_list(batch[i]["inputs"]) for i in indices]
            prompts = [prompt for inputs in per_request for prompt in inputs]
            parameters = batch[indices[0]].get("parameters") or {}
            new_tokens = int(parameters.get("max_new_tokens", DEFAULT_NEW_TOKENS))
            texts = iter(self.generate(prompts, max(1, min(new_tokens, MAX_NEW_TOKENS))))
            for index, inputs in zip(indices, per_request, strict=True):
                outputs[index] = [{"generated_text": prompt + next(texts)} for prompt in inputs]
        return outputs

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Each prompt's new text: the context and the prompt, left-padded, greedy."""
        rows = [
            self.context_ids + list(self.tokenizer(p, add_special_tokens=False)["input_ids"])
            for p in prompts
        ]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([[self.pad_id] * (width - len(row)) + row for row in rows])
        attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=self.eos_id,
                pad_token_id=self.pad_id,
            )
        return list(self.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True))


def group_by_parameters(
    batch: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> list[list[int]]:
    """The batch's indices, grouped by `key` of each request's parameters, in arrival order."""
    groups: dict[Any, list[int]] = {}
    for index, body in enumerate(batch):
        groups.setdefault(key(body.get("parameters") or {}), []).append(index)
    return list(groups.values())


def as_list(inputs: str | list[str]) -> list[str]:
    """A SageMaker body's `inputs`: one text is a batch of one."""
    return [inputs] if isinstance(inputs, str) else list(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-ms", type=float, default=25.0)
    parser.add_argument(
        "--plain-transformers",
        action="store_true",
        help="serve transformers `generate` (fp32) on the weights instead of the hooks",
    )
    args = parser.parse_args()
    api = (PlainTransformersAPI if args.plain_transformers else HooksAPI)(
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
