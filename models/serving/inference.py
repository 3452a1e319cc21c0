"""Serving code shipped inside every model.tar.gz (as code/inference.py).

The Hugging Face inference toolkit hooks (`model_fn`, `input_fn`, `predict_fn`, `output_fn`),
so the same artifact runs in the Hugging Face DLC on SageMaker and in Pressroom's local runtime.
One file serves both kinds of model, told apart by the saved config:

- generators (causal LMs), decoded on ONNX Runtime GenAI (the artifact's `engine/`, see
  `HeadlineEngine`): `{"inputs": str | [str], "parameters": {...}}` ->
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
the project: only the standard library, numpy, torch, transformers, onnxruntime and (for a
generator) onnxruntime_genai.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
ONNX_FILE = "model.onnx"
# A generator's decode engine: ONNX Runtime GenAI's model directory inside the artifact.
ENGINE_DIR = "engine"
ENGINE_CONFIG = "genai_config.json"
# A generator's config.json names the text the model reads before every headline.
HEADLINE_CONTEXT_CONFIG_KEY = "pressroom_headline_context"
# A classifier's config.json may name its calibration: see `Calibration`.
CALIBRATION_CONFIG_KEY = "pressroom_calibration"
MAX_INPUTS = 64
MAX_INPUT_CHARS = 500
MAX_NEW_TOKENS = 64
# A byte-level tokenizer spends at most one token per UTF-8 byte, four per character.
MAX_PROMPT_TOKENS = 4 * MAX_INPUT_CHARS
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
    model: PreTrainedModel | None  # the classifier on PyTorch; None on ONNX Runtime
    tokenizer: PreTrainedTokenizerBase
    labels: dict[int, str] | None = None  # the classifier's id2label
    onnx_session: Any = None  # onnxruntime.InferenceSession
    calibration: Calibration = Calibration()  # the classifier's temperature and threshold
    engine: HeadlineEngine | None = None  # a generator's decode engine
    headline_context: str | None = None  # a generator's text before every headline
    vocabulary: VocabularyMasks | None = None  # a generator's per-token masks (`WordFirst`)

    @property
    def runtime(self) -> str:
        if self.engine is not None:
            return "onnxruntime-genai"
        return "onnxruntime" if self.onnx_session is not None else "pytorch"


# --- request validation -------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# name -> (check, what the value must be)
_PARAMETER_RULES: dict[str, tuple[Any, str]] = {
    "max_new_tokens": (
        lambda v: _is_int(v) and 1 <= v <= MAX_NEW_TOKENS,
        f"an integer from 1 to {MAX_NEW_TOKENS}",
    ),
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
    return [*headline_context_ids(tokenizer, context), *headline_text_ids(tokenizer, text)]


def headline_text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a headline's own text: what follows its context."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def load_generator(model_dir: Path, threads: int | None = None) -> LoadedModel:
    """A generator on its decode engine, with the headline context its config names (see
    `headline_prompt_ids`); the engine runs on `threads` threads (default: torch's budget,
    which follows OMP_NUM_THREADS)."""
    engine_dir = model_dir / ENGINE_DIR
    if not (engine_dir / ENGINE_CONFIG).exists():
        raise ValueError(
            f"{model_dir}: no decode engine in {ENGINE_DIR}/ (every generator artifact has one)"
        )
    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    context = getattr(config, HEADLINE_CONTEXT_CONFIG_KEY, None)
    engine = HeadlineEngine(
        engine_dir,
        headline_context_ids(tokenizer, context),
        threads or torch.get_num_threads(),
    )
    return LoadedModel(
        "generator",
        None,
        tokenizer,
        engine=engine,
        headline_context=context,
        vocabulary=vocabulary_masks(tokenizer, config.vocab_size),
    )


# --- hooks --------------------------------------------------------------------------------


def load_model(model_dir: str | Path, *, prefer_onnx: bool = True) -> LoadedModel:
    """Load an artifact directory; `prefer_onnx=False` forces PyTorch for the classifier."""
    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    architectures = config.architectures or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
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
    return load_generator(model_dir)


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

    words: np.ndarray  # bool [vocab]: the token's text holds a word and no newline
    endings: np.ndarray  # bool [vocab]: the end token, and every token with a newline
    separate: np.ndarray  # bool [vocab]: the text starts with a space or a punctuation mark


def vocabulary_masks(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> VocabularyMasks:
    """Each token's text decoded on its own (special tokens decode to nothing)."""
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)], skip_special_tokens=True)
    newline = np.array(["\n" in text for text in texts])
    words = np.array([has_word(text) for text in texts]) & ~newline
    endings = newline.copy()
    if tokenizer.eos_token_id is not None:
        endings[tokenizer.eos_token_id] = True
    separate = np.array([bool(text) and not text[0].isalnum() for text in texts])
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
        self, new_ids: list[list[int]], tokens_left: list[int], scores: np.ndarray
    ) -> np.ndarray:
        """`scores` [rows, vocab] of one next token per row, given each row's new tokens so far
        and how many it may still take (this one included)."""
        texts = self.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        wordless = np.array([not has_word(text) for text in texts])
        last = np.array([left == 1 for left in tokens_left])
        banned = np.where(last[:, None], ~self.masks.words, self.masks.endings)
        mask = wordless[:, None] & banned
        first = np.array([not ids for ids in new_ids])
        if first.any():
            glue = ~(self.masks.separate | self.masks.endings)
            glue_mass = (softmax(scores) * glue).sum(axis=-1)
            mask |= (first & (glue_mass < 0.5))[:, None] & glue
        return np.where(mask, -np.inf, scores)


def warp(
    scores: np.ndarray, temperature: np.ndarray, top_k: list[int], top_p: np.ndarray
) -> np.ndarray:
    """Temperature, then top-k, then top-p (nucleus), one setting per row, as Hugging Face's
    warpers apply them (top_k 0 keeps every token; the most likely token always stays)."""
    scores = np.asarray(scores, dtype=np.float64) / temperature[:, None]
    for row, k in enumerate(top_k):
        if 0 < k < scores.shape[-1]:
            kth = np.partition(scores[row], -k)[-k]
            scores[row, scores[row] < kth] = -np.inf
    order = np.argsort(scores, axis=-1, kind="stable")
    cumulative = np.cumsum(softmax(np.take_along_axis(scores, order, axis=-1)), axis=-1)
    drop_sorted = cumulative <= (1 - top_p)[:, None]
    drop_sorted[:, -1] = False
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, -np.inf, scores)


class HeadlineEngine:
    """A generator's forward passes on ONNX Runtime GenAI: the model in the artifact's
    `engine/` directory, converted from its weights at packaging time at the precision its
    model card names.

    The engine computes the next token's logits; choosing the token stays with `generate`, so
    every guarantee of the contract holds on the engine. The headline context every prompt
    starts with is computed once, when the engine loads: each prompt rewinds the engine's
    generator to the context's keys and values (prefix caching) and feeds only its own tokens.
    The Python bindings hold the GIL while the engine runs, so threads would not run two
    prompts at once: one generator serves one prompt at a time (`lock` keeps callers in turn),
    and concurrency comes from more worker processes, each with its own engine.
    """

    def __init__(self, engine_dir: Path, context_ids: list[int], threads: int) -> None:
        import onnxruntime_genai as og  # only a generator needs the decode engine

        config = og.Config(str(engine_dir))
        options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        model = og.Model(config)
        params = og.GeneratorParams(model)
        # The key/value buffer holds the context, the longest prompt and the longest headline.
        longest = len(context_ids) + MAX_PROMPT_TOKENS + MAX_NEW_TOKENS
        params.set_search_options(max_length=longest)
        self._model, self._generator = model, og.Generator(model, params)
        self._generator.append_tokens(context_ids)
        self._context_length = len(context_ids)
        self._last_context_id = context_ids[-1]
        self.lock = threading.Lock()

    def start(self, prompt_ids: list[int]) -> np.ndarray:
        """Forget the last prompt; the logits of the token after the context and `prompt_ids`."""
        # Rewinding keeps the keys and values of the positions before it, not the logits after
        # them: the context's last token is fed again, so an empty prompt has logits too.
        self._generator.rewind_to(self._context_length - 1)
        return self._feed([self._last_context_id, *prompt_ids])

    def feed(self, token_id: int) -> np.ndarray:
        """The logits of the token after `token_id`, appended to what the engine has read."""
        return self._feed([token_id])

    def _feed(self, ids: list[int]) -> np.ndarray:
        self._generator.append_tokens(ids)
        return np.asarray(self._generator.get_logits(), dtype=np.float32).reshape(-1)


def generate(model: LoadedModel, prompts: list[str], params: GenerationParameters) -> list[str]:
    """One headline per prompt, in turn on the model's engine: `WordFirst` on every step, then
    the argmax or a sample warped with the request's temperature, top-k and top-p. A request's
    rows draw from one random stream, seeded by its `seed`: the same request writes the same
    text every time, whatever was served before it."""
    engine, vocabulary = model.engine, model.vocabulary
    assert engine is not None and vocabulary is not None
    word_first = WordFirst(model.tokenizer, vocabulary)
    rng = np.random.default_rng(params.seed)
    # Near temperature 0 sampling is greedy decoding in the limit; below the floor, dividing
    # the logits by it would overflow to inf (e.g. 5e-324), so decode greedily instead.
    sampling = params.do_sample and params.temperature >= MIN_SAMPLING_TEMPERATURE
    texts = []
    with engine.lock:
        for prompt in prompts:
            text_ids = headline_text_ids(model.tokenizer, prompt)
            new_ids: list[int] = []
            logits = engine.start(text_ids)
            while True:
                scores = word_first([new_ids], [params.max_new_tokens - len(new_ids)], logits[None])
                new_ids.append(_choose(scores, params, rng) if sampling else int(scores.argmax()))
                if len(new_ids) == params.max_new_tokens or vocabulary.endings[new_ids[-1]]:
                    break
                logits = engine.feed(new_ids[-1])
            text = continuation(model.tokenizer, text_ids, new_ids)
            # As the Hugging Face pipeline does: the full text is the prompt, then the new text.
            texts.append(prompt + text if params.return_full_text else text)
    return texts


def merges_requests(model: LoadedModel) -> bool:
    """Not a SageMaker hook: a server that merges concurrent requests into one `predict_fn`
    call (Pressroom's local worker) asks whether the model gains from it. The classifier's
    forward pass takes a batch; a generator's engine decodes one prompt at a time, so merging
    would only hold the first request until the others are written."""
    return model.kind == "classifier"


def _choose(scores: np.ndarray, params: GenerationParameters, rng: np.random.Generator) -> int:
    """A token drawn from the warped scores (one row) with the request's random stream."""
    warped = warp(scores, np.array([params.temperature]), [params.top_k], np.array([params.top_p]))
    cumulative = np.cumsum(softmax(warped)[0])
    drawn = np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
    return int(min(drawn, len(cumulative) - 1))


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
