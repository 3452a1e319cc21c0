"""Serving code shipped inside every model.tar.gz (as code/inference.py).

The Hugging Face inference toolkit hooks (`model_fn`, `input_fn`, `predict_fn`, `output_fn`),
so the same artifact runs in the Hugging Face DLC on SageMaker and in Pressroom's local runtime.
One file serves both kinds of model, told apart by the saved config:

- generators (causal LMs): `{"inputs": str | [str], "parameters": {...}}` ->
  `[{"generated_text": str}]` per input: one line holding at least one new word, the prompt
  then the continuation, or (`return_full_text: false`) the continuation alone, as the Hugging
  Face text-generation pipeline answers it (see `continuation`);
- the classifier: `{"inputs": str | [str]}` -> `[{"label": str | null, "score": float}]`,
  through ONNX Runtime when `model.onnx` is in the artifact, else PyTorch (same predictions).
  `score` is the calibrated probability of the most likely category (the logits divided by
  the temperature the config names); `label` is that category when `score` reaches the
  config's threshold, else null: the classifier abstains (see `Calibration`).

`predict_fn` takes a batch (a list of inputs sharing one parameter set) so that a dynamic
batcher can merge concurrent requests. Bad input raises `InvalidRequestError` whose message
names the field; the serving layer answers it with a 4xx. This file must import nothing from
the project: only the standard library, numpy, torch, transformers (and onnxruntime if used).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
ONNX_FILE = "model.onnx"
# A generator's config.json may name a quantization that `model_fn` applies when it loads,
# and the text the model reads before every headline.
QUANTIZATION_CONFIG_KEY = "pressroom_quantization"
HEADLINE_CONTEXT_CONFIG_KEY = "pressroom_headline_context"
# A classifier's config.json may name its calibration: see `Calibration`.
CALIBRATION_CONFIG_KEY = "pressroom_calibration"
DYNAMIC_INT8 = "dynamic-int8"
MAX_INPUTS = 64
MAX_INPUT_CHARS = 500
CLASSIFIER_MAX_TOKENS = 128
_MAX_SEED = 2**32 - 1


class InvalidRequestError(ValueError):
    """The request cannot be served as sent; the message names the field and the reason."""


class UnsupportedContentTypeError(InvalidRequestError):
    """The request or the accepted response uses a media type other than JSON (HTTP 415)."""


@dataclass(frozen=True)
class GenerationParameters:
    """The allow-listed generation parameters, with their defaults."""

    max_new_tokens: int = 32
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    do_sample: bool = True
    seed: int | None = None
    return_full_text: bool = True


@dataclass(frozen=True)
class Calibration:
    """How a classifier's logits become the probabilities it answers, and when it labels.

    `temperature` divides the logits before the softmax (temperature scaling, fitted on
    validation headlines at packaging time), so that a score of 0.8 is right about 80% of the
    time; `threshold` is the least calibrated probability at which a label is answered, chosen
    on validation headlines for `precision_target` (the share of answered labels that are
    right). Below it the classifier abstains. A config without calibration labels everything
    with the plain softmax.
    """

    temperature: float = 1.0
    threshold: float = 0.0
    precision_target: float | None = None

    @classmethod
    def from_config(cls, raw: Any) -> Calibration:
        """The config's `pressroom_calibration` entry, checked (None: no calibration)."""
        field = CALIBRATION_CONFIG_KEY
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or not set(raw) <= {
            "temperature",
            "threshold",
            "precision_target",
        }:
            raise ValueError(
                f"{field}: must be an object of temperature, threshold, precision_target; "
                f"got {raw!r}"
            )
        temperature = raw.get("temperature", 1.0)
        threshold = raw.get("threshold", 0.0)
        target = raw.get("precision_target")
        if not (_is_number(temperature) and temperature > 0):
            raise ValueError(f"{field}.temperature: must be a positive number, got {temperature!r}")
        if not (_is_number(threshold) and 0 <= threshold <= 1):
            raise ValueError(f"{field}.threshold: must be a number in [0, 1], got {threshold!r}")
        if target is not None and not (_is_number(target) and 0 < target <= 1):
            raise ValueError(f"{field}.precision_target: must be in (0, 1], got {target!r}")
        return cls(float(temperature), float(threshold), None if target is None else float(target))


@dataclass(frozen=True)
class LoadedModel:
    kind: str  # "generator" or "classifier"
    model: PreTrainedModel | None  # None when the classifier runs on ONNX Runtime
    tokenizer: PreTrainedTokenizerBase
    labels: dict[int, str] | None = None  # the classifier's id2label
    onnx_session: Any = None  # onnxruntime.InferenceSession
    headline_context: str | None = None  # a generator's text before every headline
    calibration: Calibration = Calibration()  # the classifier's temperature and threshold

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.onnx_session is not None else "pytorch"

    @cached_property
    def vocabulary(self) -> VocabularyMasks:
        """A generator's per-token masks: built at its first generation, then reused."""
        assert self.model is not None
        return vocabulary_masks(self.tokenizer, self.model.config.vocab_size)

    @cached_property
    def context_cache(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values for the headline context every prompt starts with
        (prefix caching): computed at the first generation, so that a prompt then runs only
        its own tokens through the model."""
        assert self.model is not None
        ids = torch.tensor([headline_context_ids(self.tokenizer, self.headline_context)])
        with torch.inference_mode():
            output = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return _cache_tensors(output.past_key_values)


# --- request validation -------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# name -> (check, what the value must be)
_PARAMETER_RULES: dict[str, tuple[Any, str]] = {
    "max_new_tokens": (lambda v: _is_int(v) and 1 <= v <= 64, "an integer from 1 to 64"),
    "temperature": (lambda v: _is_number(v) and 0 < v <= 2, "a number in (0, 2]"),
    "top_k": (lambda v: _is_int(v) and 0 <= v <= 200, "an integer from 0 to 200"),
    "top_p": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "do_sample": (lambda v: isinstance(v, bool), "true or false"),
    "seed": (
        lambda v: v is None or (_is_int(v) and 0 <= v <= _MAX_SEED),
        "an integer from 0 to 2^32-1",
    ),
    "return_full_text": (lambda v: isinstance(v, bool), "true or false"),
}


def parse_parameters(raw: Any) -> GenerationParameters:
    """Validate generation parameters against the allow-list and their bounds."""
    if raw is None:
        return GenerationParameters()
    if not isinstance(raw, dict):
        raise InvalidRequestError("parameters: must be a JSON object")
    for name, value in raw.items():
        if name not in _PARAMETER_RULES:
            allowed = ", ".join(_PARAMETER_RULES)
            raise InvalidRequestError(f"parameters.{name}: unknown parameter (allowed: {allowed})")
        check, expected = _PARAMETER_RULES[name]
        if not check(value):
            raise InvalidRequestError(f"parameters.{name}: must be {expected}, got {value!r}")
    params = replace(GenerationParameters(), **raw)
    return replace(params, temperature=float(params.temperature), top_p=float(params.top_p))


def parse_inputs(raw: Any) -> list[str]:
    """`inputs` as a non-empty list of one-line texts (a single string is a batch of one)."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("inputs: must be a string or a non-empty list of strings")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(
            f"inputs: at most {MAX_INPUTS} texts per request, got {len(items)}"
        )
    texts = []
    for index, item in enumerate(items):
        field = "inputs" if isinstance(raw, str) else f"inputs[{index}]"
        if not isinstance(item, str):
            raise InvalidRequestError(f"{field}: must be a string")
        text = " ".join(item.split())  # a headline is one line
        if not 1 <= len(text) <= MAX_INPUT_CHARS:
            raise InvalidRequestError(f"{field}: must hold 1 to {MAX_INPUT_CHARS} characters")
        texts.append(text)
    return texts


def parse_request(data: Any, kind: str) -> tuple[list[str], GenerationParameters | None]:
    if not isinstance(data, dict):
        raise InvalidRequestError("body: must be a JSON object with an `inputs` field")
    unknown = sorted(set(data) - {"inputs", "parameters"})
    if unknown:
        raise InvalidRequestError(f"{unknown[0]}: unknown field (allowed: inputs, parameters)")
    if "inputs" not in data:
        raise InvalidRequestError("inputs: missing")
    texts = parse_inputs(data["inputs"])
    if kind == "classifier":
        if data.get("parameters"):
            raise InvalidRequestError("parameters: the classifier takes no parameters")
        return texts, None
    return texts, parse_parameters(data.get("parameters"))


# --- the headline convention shared with training ----------------------------------------


def has_word(text: str) -> bool:
    """Whether a reader finds a word in the text: at least one letter or digit, any script."""
    return any(character.isalnum() for character in text)


def headline_start_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token a headline starts after (models without a BOS token start after EOS)."""
    token_id = (
        tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    )
    if token_id is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token")
    return int(token_id)


def headline_context_ids(tokenizer: PreTrainedTokenizerBase, context: str | None) -> list[int]:
    """What the model reads before every headline, in training and in serving alike: an
    instruction in the model's chat format for an instruction-tuned base (its prior then
    already points at headlines), else the start token alone."""
    if context:
        return list(tokenizer(context, add_special_tokens=False)["input_ids"])
    return [headline_start_id(tokenizer)]


def headline_prompt_ids(
    tokenizer: PreTrainedTokenizerBase, text: str, context: str | None = None
) -> list[int]:
    """Token ids of the start of a headline: its context, then the text."""
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*headline_context_ids(tokenizer, context), *text_ids]


def loaded_generator(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> LoadedModel:
    """A generator with the headline context its config names (see `headline_prompt_ids`)."""
    context = getattr(model.config, HEADLINE_CONTEXT_CONFIG_KEY, None)
    return LoadedModel("generator", model, tokenizer, headline_context=context)


# --- hooks --------------------------------------------------------------------------------


def load_model(model_dir: str | Path, *, prefer_onnx: bool = True) -> LoadedModel:
    """Load an artifact directory; `prefer_onnx=False` forces PyTorch for the classifier."""
    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    architectures = config.architectures or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        labels = {int(k): v for k, v in config.id2label.items()}
        calibration = Calibration.from_config(getattr(config, CALIBRATION_CONFIG_KEY, None))
        onnx_path = model_dir / ONNX_FILE
        if prefer_onnx and onnx_path.exists():
            session = _onnx_session(onnx_path)
            if session is not None:
                return LoadedModel(
                    "classifier", None, tokenizer, labels, session, calibration=calibration
                )
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        return LoadedModel("classifier", model, tokenizer, labels, calibration=calibration)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    quantization = getattr(config, QUANTIZATION_CONFIG_KEY, None)
    if quantization is not None:
        model = quantize(model, quantization)
    return loaded_generator(model, tokenizer)


def quantize(model: PreTrainedModel, spec: Any) -> PreTrainedModel:
    """Quantize at load time, so one artifact format serves here and in the Hugging Face DLC.

    `{"method": "dynamic-int8", "keep_fp32": [names]}`: every Linear layer (the tied output
    head included) but the named ones holds int8 weights, one scale per output channel, and
    quantizes its input on the fly: a quarter of the bytes read per token, which bounds a small
    model's decoding on a CPU. The named layers are those whose inputs carry outliers that one
    int8 scale cannot hold (found at packaging time, from real headlines).
    """
    field = QUANTIZATION_CONFIG_KEY
    if not isinstance(spec, dict) or spec.get("method") != DYNAMIC_INT8:
        raise ValueError(f"{field}: unknown method {spec!r}; expected method {DYNAMIC_INT8!r}")
    keep = spec.get("keep_fp32", [])
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    if not isinstance(keep, list) or not set(keep) <= linears:
        raise ValueError(f"{field}.keep_fp32: must list Linear layers of the model, got {keep!r}")
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao's eager-mode quantization warns that it moves to torchao; the DLC's torch
        # and this one both still ship it, and torchao would be one more package to install.
        warnings.simplefilter("ignore")
        quantized: PreTrainedModel = torch.ao.quantization.quantize_dynamic(
            model, {name: qconfig for name in sorted(linears - set(keep))}, dtype=torch.qint8
        )
    return quantized


def _onnx_session(path: Path) -> Any:
    try:
        import onnxruntime  # only the classifier's ONNX path needs it
    except ImportError:
        logger.warning("onnxruntime is not installed; serving %s with PyTorch", path.parent)
        return None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime would otherwise start a thread per core in every worker process; follow the
    # thread budget the host gave torch (OMP_NUM_THREADS, which local workers set).
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def model_fn(model_dir: str) -> LoadedModel:
    return load_model(model_dir)


def input_fn(input_data: str | bytes, content_type: str) -> Any:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise UnsupportedContentTypeError(
            f"content_type: {content_type!r} is not supported; send {JSON_CONTENT_TYPE}"
        )
    try:
        text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequestError(f"body: not valid UTF-8 JSON ({error})") from error


def predict_fn(data: Any, model: LoadedModel) -> list[dict[str, Any]]:
    texts, parameters = parse_request(data, model.kind)
    if model.kind == "classifier":
        return classify(model, texts)
    assert parameters is not None
    return [{"generated_text": text} for text in generate(model, texts, parameters)]


def output_fn(prediction: list[dict[str, Any]], accept: str | None) -> str:
    media_type = (accept or JSON_CONTENT_TYPE).split(";")[0].strip().lower()
    if media_type not in (JSON_CONTENT_TYPE, "*/*"):
        raise UnsupportedContentTypeError(
            f"accept: {accept!r} is not supported; accept {JSON_CONTENT_TYPE}"
        )
    return json.dumps(prediction)


# --- models -------------------------------------------------------------------------------


MIN_SAMPLING_TEMPERATURE = 1e-3


@dataclass(frozen=True)
class VocabularyMasks:
    """Per token id, what `WordFirst` needs: which tokens hold a word, which end a headline."""

    words: torch.Tensor  # bool [vocab]: the token's text holds a word and no newline
    endings: torch.Tensor  # bool [vocab]: the end token, and every token with a newline
    separate: torch.Tensor  # bool [vocab]: the text starts with a space or a punctuation mark


def vocabulary_masks(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> VocabularyMasks:
    """Each token's text decoded on its own (special tokens decode to nothing)."""
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)], skip_special_tokens=True)
    newline = torch.tensor(["\n" in text for text in texts])
    words = torch.tensor([has_word(text) for text in texts]) & ~newline
    endings = newline.clone()
    if tokenizer.eos_token_id is not None:
        endings[tokenizer.eos_token_id] = True
    separate = torch.tensor([bool(text) and not text[0].isalnum() for text in texts])
    return VocabularyMasks(words=words, endings=endings, separate=separate)


class WordFirst:
    """A headline's continuation holds a word, whatever the prompt and the sampling.

    A prompt that already reads as a whole headline makes the model end at once (the end token,
    or a newline, which ends a headline too): until a row's new text has a word, both are masked,
    and its last allowed token must hold a word. Where the model holds the prompt's last word
    to be whole (less than half its first-token probability goes to letters that would extend
    it), the first token must start a new word (a space or a punctuation mark first): sampling a
    rare suffix, or the chat template's "user" once the end was masked, wrote "ratesional" and
    "Chelseauser". A prompt that stops mid-word ("Stock" + "s") keeps its suffixes.
    Runs before temperature, top-k and top-p, so those choose among the tokens left.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, masks: VocabularyMasks) -> None:
        self.tokenizer = tokenizer
        self.masks = masks

    def __call__(
        self, new_ids: list[list[int]], tokens_left: list[int], scores: torch.Tensor
    ) -> torch.Tensor:
        """`scores` of one next token per row, given each row's new tokens so far and how many
        it may still take (this one included)."""
        texts = self.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        wordless = torch.tensor([not has_word(text) for text in texts])
        last = torch.tensor([left == 1 for left in tokens_left])
        banned = torch.where(last[:, None], ~self.masks.words, self.masks.endings)
        mask = wordless[:, None] & banned
        first = torch.tensor([not ids for ids in new_ids])
        if first.any():
            glue = ~(self.masks.separate | self.masks.endings)
            glue_mass = (scores.softmax(dim=-1) * glue).sum(dim=-1)
            mask |= (first & (glue_mass < 0.5))[:, None] & glue
        return scores.masked_fill(mask, -math.inf)


def warp(
    scores: torch.Tensor, temperature: torch.Tensor, top_k: list[int], top_p: torch.Tensor
) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus), one setting per row, as Hugging Face's
    warpers apply them (top_k 0 keeps every token; the most likely token always stays)."""
    scores = scores / temperature[:, None]
    widest = max(top_k)
    if widest > 0:
        kth = torch.topk(scores, min(widest, scores.shape[-1]), dim=-1).values
        ks = torch.tensor(top_k)
        threshold = kth.gather(-1, (ks.clamp(min=1) - 1)[:, None])
        threshold = threshold.masked_fill((ks == 0)[:, None], -math.inf)
        scores = scores.masked_fill(scores < threshold, -math.inf)
    ascending, order = torch.sort(scores, dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= (1 - top_p)[:, None]
    drop[:, -1] = False
    return scores.masked_fill(drop.scatter(-1, order, drop), -math.inf)


@dataclass
class _Row:
    """One prompt being decoded: what it asked for and the tokens chosen so far."""

    request: int
    slot: int
    """Marks the row's own positions in the packed cache."""
    prompt: str
    text_ids: list[int]
    """The prompt's own tokens, after the headline context every row shares."""
    params: GenerationParameters
    rng: torch.Generator | None
    new_ids: list[int] = field(default_factory=list)

    @property
    def tokens_left(self) -> int:
        return self.params.max_new_tokens - len(self.new_ids)

    @property
    def samples(self) -> bool:
        # Near temperature 0 sampling is greedy decoding in the limit; below the floor, dividing
        # the logits by it would overflow to inf (e.g. 5e-324), so decode greedily instead.
        return self.params.do_sample and self.params.temperature >= MIN_SAMPLING_TEMPERATURE


_SHARED = -1  # the owner of the context's cache positions: every row reads them


class DecodeBatch:
    """Iteration-level (continuous) batching of headline generation over one packed KV cache.

    Every row's tokens live in one sequence: the headline context once (every row reads it:
    prefix caching), then each row's own tokens, kept apart by the attention mask (a token sees
    the context and its own row's earlier tokens) and numbered by their positions in their own
    row. So one forward pass takes every running row's next token and every new prompt whole,
    with no padding: a request that joins costs its own tokens in the step that was running
    anyway, not a pass of its own. A row leaves (and its cache positions with it) as soon as it
    ends a headline or reaches its `max_new_tokens`; every row keeps its own sampling parameters
    and, when seeded, its own random stream. `generate` runs one batch to completion; a model
    server calls `add` between `step`s.
    """

    def __init__(self, model: LoadedModel) -> None:
        assert model.model is not None and model.kind == "generator"
        self._model = model
        self._lm = model.model
        self._word_first = WordFirst(model.tokenizer, model.vocabulary)
        self._context_length = len(headline_context_ids(model.tokenizer, model.headline_context))
        self._requests: dict[int, list[_Row]] = {}
        self._waiting: list[_Row] = []
        self._running: list[_Row] = []
        self._cache = DynamicCache(model.context_cache)
        self._owners = torch.full((self._context_length,), _SHARED)
        self._positions = torch.arange(self._context_length)
        self._next_request = 0
        self._next_slot = 0

    @property
    def rows(self) -> int:
        """Prompts running or waiting to start."""
        return len(self._running) + len(self._waiting)

    def add_request(self, data: Any) -> int:
        """Queue a request body, validated as `predict_fn` does; returns its handle."""
        prompts, params = parse_request(data, "generator")
        assert params is not None
        return self.add(prompts, params)

    def add(self, prompts: list[str], params: GenerationParameters) -> int:
        """Queue one headline per prompt, to start at the next step; returns the handle."""
        handle = self._next_request
        self._next_request += 1
        rng = None if params.seed is None else torch.Generator().manual_seed(params.seed)
        tokenizer, context = self._model.tokenizer, self._model.headline_context
        rows = []
        for prompt in prompts:
            rows.append(
                _Row(
                    handle,
                    self._next_slot,
                    prompt,
                    headline_prompt_ids(tokenizer, prompt, context)[self._context_length :],
                    params,
                    rng,
                )
            )
            self._next_slot += 1
        self._requests[handle] = rows
        self._waiting.extend(rows)
        return handle

    @torch.inference_mode()
    def step(self) -> dict[int, list[dict[str, Any]]]:
        """One forward pass: the running rows' last tokens and the waiting rows' prompts; then
        a new token for each. Returns what `predict_fn` would answer for each request whose
        rows have all finished."""
        rows = [*self._running, *self._waiting]
        if rows:
            logits = self._forward(rows)
            self._choose(rows, logits)
            self._running, self._waiting = rows, []
            self._leave_ended()
        return self._finished()

    def _forward(self, rows: list[_Row]) -> torch.Tensor:
        """Feed each row what the cache lacks of it; the logits after each row's last token."""
        tokens: list[int] = []
        owners: list[int] = []
        positions: list[int] = []
        last: list[int] = []
        for row in rows:
            # A waiting row feeds its whole prompt; a running row, the token chosen last step.
            new = row.new_ids[-1:] if row.new_ids else row.text_ids
            start = self._context_length + len(row.text_ids) + len(row.new_ids) - len(new)
            tokens += new
            owners += [row.slot] * len(new)
            positions += range(start, start + len(new))
            last.append(len(tokens) - 1)
        query_owners, query_positions = torch.tensor(owners), torch.tensor(positions)
        key_owners = torch.cat([self._owners, query_owners])
        key_positions = torch.cat([self._positions, query_positions])
        visible = (key_owners == _SHARED)[None, :] | (
            (key_owners[None, :] == query_owners[:, None])
            & (key_positions[None, :] <= query_positions[:, None])
        )
        output = self._lm(
            input_ids=torch.tensor([tokens]),
            attention_mask=visible[None, None],
            position_ids=query_positions[None],
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=torch.tensor(last),
        )
        self._cache = output.past_key_values
        self._owners, self._positions = key_owners, key_positions
        return cast(torch.Tensor, output.logits[0])

    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Each row's next token: the word guarantee, then argmax or a warped sample."""
        scores = self._word_first(
            [row.new_ids for row in rows], [row.tokens_left for row in rows], logits.float()
        )
        chosen = scores.argmax(dim=-1)
        sampled = [index for index, row in enumerate(rows) if row.samples]
        if sampled:
            params = [rows[index].params for index in sampled]
            probabilities = warp(
                scores[sampled],
                torch.tensor([p.temperature for p in params]),
                [p.top_k for p in params],
                torch.tensor([p.top_p for p in params]),
            ).softmax(dim=-1)
            for position, index in enumerate(sampled):
                chosen[index] = torch.multinomial(
                    probabilities[position], 1, generator=rows[index].rng
                )[0]
        for row, token in zip(rows, chosen.tolist(), strict=True):
            row.new_ids.append(token)

    def _ended(self, row: _Row) -> bool:
        return row.tokens_left == 0 or bool(self._model.vocabulary.endings[row.new_ids[-1]])

    def _leave_ended(self) -> None:
        """Ended rows leave the batch, and their positions leave the cache."""
        ended = {row.slot for row in self._running if self._ended(row)}
        if not ended:
            return
        self._running = [row for row in self._running if row.slot not in ended]
        keep = ~torch.isin(self._owners, torch.tensor(sorted(ended)))
        self._cache = DynamicCache(
            [(keys[:, :, keep], values[:, :, keep]) for keys, values in _cache_tensors(self._cache)]
        )
        self._owners, self._positions = self._owners[keep], self._positions[keep]

    def _finished(self) -> dict[int, list[dict[str, Any]]]:
        done = {}
        unfinished = {row.request for row in [*self._running, *self._waiting]}
        for handle in [h for h in self._requests if h not in unfinished]:
            done[handle] = [
                {"generated_text": self._text(row)} for row in self._requests.pop(handle)
            ]
        return done

    def _text(self, row: _Row) -> str:
        text = continuation(self._model.tokenizer, row.text_ids, row.new_ids)
        # As the Hugging Face pipeline does: the full text is the prompt, then the continuation.
        return row.prompt + text if row.params.return_full_text else text


def _cache_tensors(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's keys and values, [rows, heads, positions, head size]."""
    tensors = []
    for layer in cache.layers:
        assert layer.keys is not None and layer.values is not None
        tensors.append((layer.keys, layer.values))
    return tensors


def generate(model: LoadedModel, prompts: list[str], params: GenerationParameters) -> list[str]:
    """One headline per prompt: one `DecodeBatch` run to completion."""
    batch = DecodeBatch(model)
    handle = batch.add(prompts, params)
    while True:
        done = batch.step()
        if handle in done:
            return [prediction["generated_text"] for prediction in done[handle]]


def decode_batch_fn(model: LoadedModel) -> DecodeBatch | None:
    """Not a SageMaker hook: a server that batches continuously (Pressroom's local worker) asks
    for a generator's `DecodeBatch` here; the Hugging Face toolkit never calls it."""
    return DecodeBatch(model) if model.kind == "generator" else None


def continuation(
    tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int], new_ids: list[int]
) -> str:
    """The new text as the Hugging Face text-generation pipeline answers it: decoded with the
    prompt, then cut after it, so it starts with a space when the model began a new word
    (" new season") and with none when it went on with the prompt's last word ("Stock" ->
    "s climb"); callers join with plain concatenation. One line, no trailing space."""
    full = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    text = full[len(tokenizer.decode(prompt_ids, skip_special_tokens=True)) :]
    # Byte-level tokens can end inside a multi-byte character: drop the U+FFFD that decodes to.
    return text.replace("\ufffd", "").split("\n", 1)[0].rstrip()


def classifier_logits(model: LoadedModel, texts: list[str]) -> np.ndarray:
    encoded = model.tokenizer(
        texts, padding=True, truncation=True, max_length=CLASSIFIER_MAX_TOKENS, return_tensors="np"
    )
    if model.onnx_session is not None:
        wanted = {i.name for i in model.onnx_session.get_inputs()}
        feeds = {k: v.astype(np.int64) for k, v in encoded.items() if k in wanted}
        return np.asarray(model.onnx_session.run(["logits"], feeds)[0])
    assert model.model is not None
    with torch.inference_mode():
        tensors = {k: torch.from_numpy(v) for k, v in encoded.items()}
        return np.asarray(model.model(**tensors).logits.numpy())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits divided by `temperature`, one row per text, in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def class_probabilities(model: LoadedModel, texts: list[str]) -> np.ndarray:
    """Each text's calibrated probability of every category (columns in id2label order)."""
    return softmax(classifier_logits(model, texts), model.calibration.temperature)


def classify(model: LoadedModel, texts: list[str]) -> list[dict[str, Any]]:
    """The most likely category and its calibrated probability, per text; the label is None
    (the classifier abstains) where that probability is below the calibration's threshold."""
    assert model.labels is not None
    threshold = model.calibration.threshold
    answers = []
    for row in class_probabilities(model, texts):
        score = float(row.max())
        label = model.labels[int(row.argmax())] if score >= threshold else None
        answers.append({"label": label, "score": score})
    return answers
