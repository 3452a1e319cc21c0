"""The training loop shared by every model: fixed seed, AdamW with warm-up and linear decay,
early stopping on validation loss (the best weights are kept), and a rich progress bar."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from models.serving.inference import headline_context_ids, headline_prompt_ids
from training.data import LABELS, Headline
from training.definitions import TrainingSpec

IGNORE_INDEX = -100  # label value the loss skips
Example = TypeVar("Example")  # what a collate turns into a batch: headlines, voted generations


@dataclass(frozen=True)
class Batch:
    inputs: dict[str, torch.Tensor]  # forward kwargs, `labels` included
    targets: int  # how many predictions the loss averages over (to weight batches)
    shared_context: int = 0  # leading tokens every row shares (a generator's headline context)


Collate = Callable[[Sequence[Headline]], Batch]
Loss = Callable[[PreTrainedModel, Batch], torch.Tensor]


@dataclass(frozen=True)
class TrainingSummary:
    steps: int
    best_step: int
    best_validation_loss: float
    stopped_early: bool
    seconds: float
    cpu_seconds: float  # all threads; with a shared CPU, wall time alone misleads


def freeze_all_but_top_layers(
    model: PreTrainedModel, top_layers: int, *, train_embeddings: bool = False
) -> None:
    """Freeze all but the top blocks and, unless asked to train them, the input embeddings
    (and a head tied to them)."""
    depth = model.config.num_hidden_layers
    blocks = next(
        module
        for module in model.modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth
    )
    model.get_input_embeddings().requires_grad_(train_embeddings)
    for block in blocks[: max(depth - top_layers, 0)]:
        block.requires_grad_(False)


def autocast_context(precision: str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast where the CPU has native bf16 arithmetic; elsewhere it would be emulated
    (slower than fp32), so those machines train in fp32."""
    if precision == "bf16-mixed" and native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def native_bf16() -> bool:
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def causal_lm_collate(
    tokenizer: PreTrainedTokenizerBase, max_length: int, context: str | None = None
) -> Collate:
    """Headlines as context + text + end token, right-padded; only the text and its end carry
    loss (padding and the context do not). `max_length` bounds the start token + text + end,
    so a context longer than one start token does not cut headlines shorter."""
    end_id = int(tokenizer.eos_token_id)
    pad_id = int(tokenizer.pad_token_id)
    context_length = len(headline_context_ids(tokenizer, context))

    def collate(headlines: Sequence[Headline]) -> Batch:
        rows = [
            [
                *headline_prompt_ids(tokenizer, h.text, context)[: context_length + max_length - 2],
                end_id,
            ]
            for h in headlines
        ]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
        attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        # Mask by attention, not by pad id: the pad token may also be the (trained) end token.
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        labels[:, :context_length] = IGNORE_INDEX
        targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
        return Batch(
            {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels},
            targets,
            shared_context=context_length,
        )

    return collate


def training_loss(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """The batch's mean loss (the labels' cross-entropy)."""
    return shared_context_forward(model, batch, with_labels=True).loss


def shared_context_forward(model: PreTrainedModel, batch: Batch, *, with_labels: bool) -> Any:
    """The model's output on a batch (its loss when `with_labels`; logits either way, over the
    positions after the shared context when there is one).

    A context that every row shares runs once per batch instead of once per row: its keys and
    values are computed without gradient (it is fixed text that carries no loss) and reused by
    every row, which skips most of a long context's cost."""
    labels = batch.inputs["labels"] if with_labels else None
    if batch.shared_context <= 1:
        return model(**{**batch.inputs, "labels": labels})
    cached = batch.shared_context - 1  # the last context token predicts the headline's first
    input_ids = batch.inputs["input_ids"]
    with torch.no_grad():
        cache = model(input_ids=input_ids[:1, :cached], use_cache=True).past_key_values
    cache.batch_repeat_interleave(input_ids.shape[0])
    return model(
        input_ids=input_ids[:, cached:],
        attention_mask=batch.inputs["attention_mask"],
        past_key_values=cache,
        labels=labels[:, cached:] if labels is not None else None,
        use_cache=False,
    )


def classification_collate(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Collate:
    label_ids = {label: i for i, label in enumerate(LABELS)}

    def collate(headlines: Sequence[Headline]) -> Batch:
        encoded = tokenizer(
            [h.text for h in headlines],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        labels = torch.tensor([label_ids[h.category] for h in headlines if h.category is not None])
        if len(labels) != len(headlines):
            raise ValueError("classifier batches need labelled headlines")
        return Batch({**encoded, "labels": labels}, len(headlines))

    return collate


def _shuffled_batches(
    examples: Sequence[Example], batch_size: int, seed: int
) -> Iterator[Sequence[Example]]:
    order = torch.Generator().manual_seed(seed)
    while True:  # epochs until the step budget is spent
        permutation = torch.randperm(len(examples), generator=order).tolist()
        for start in range(0, len(permutation), batch_size):
            yield [examples[i] for i in permutation[start : start + batch_size]]


def batches_in_order(examples: Sequence[Example], batch_size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(examples), batch_size):
        yield examples[start : start + batch_size]


@torch.no_grad()
def mean_loss(
    model: PreTrainedModel,
    examples: Sequence[Example],
    collate: Callable[[Sequence[Example]], Batch],
    batch_size: int,
    loss: Loss = training_loss,
) -> float:
    """Loss averaged over every prediction (not over batches), in nats."""
    model.eval()
    total, count = 0.0, 0
    for chunk in batches_in_order(examples, batch_size):
        batch = collate(chunk)
        total += float(loss(model, batch)) * batch.targets
        count += batch.targets
    return total / max(count, 1)


def progress_bar(console: Console) -> Progress:
    # A live bar holds printed lines back until it stops when output is not a terminal (CI
    # logs, `make models > log`); there the bar is off and the step lines below stand in.
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def train(
    model: PreTrainedModel,
    train_set: Sequence[Example],
    validation_set: Sequence[Example],
    collate: Callable[[Sequence[Example]], Batch],
    spec: TrainingSpec,
    *,
    label: str,
    console: Console,
    loss: Loss = training_loss,
) -> TrainingSummary:
    """Train in place; on return the model holds the weights of the best validation loss.

    `loss` is the objective, in training and validation alike (the labels' cross-entropy
    unless given)."""
    _prepare(model, train_set, validation_set, spec, label)
    trainable, optimizer, schedule = _optimizer_and_schedule(model, spec)
    batches = _shuffled_batches(train_set, spec.batch_size, spec.seed)
    run = _Run(started=time.monotonic(), cpu_started=time.process_time())
    log_every = max(1, spec.max_steps // 20)
    with progress_bar(console) as progress:
        task = progress.add_task(f"train {label}", total=spec.max_steps, status="")
        while run.step < spec.max_steps:
            model.train()
            with autocast_context(spec.precision):
                step_loss = loss(model, collate(next(batches)))
            _optimizer_step(step_loss, trainable, optimizer, schedule)
            run.took_step(step_loss.item())
            evaluated = run.step % spec.eval_every == 0 or run.step == spec.max_steps
            if evaluated:
                validation_loss = mean_loss(
                    model, validation_set, collate, spec.batch_size * 2, loss
                )
                status = run.validated(model, validation_loss)
            else:
                status = run.training_status()
            if evaluated or (not console.is_terminal and run.step % log_every == 0):
                _print_step(console, label, spec, run, status)
            progress.update(task, advance=1, status=status)
            if run.evaluations_without_gain >= spec.patience:
                break
    return _finish(model, run, spec, label, console)


@dataclass
class _Run:
    """Where a training run stands: its step, running loss and best validation so far."""

    started: float
    cpu_started: float
    step: int = 0
    running: float | None = None
    best_loss: float = float("inf")
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    evaluations_without_gain: int = 0

    def took_step(self, step_loss: float) -> None:
        """Count a step and fold its loss into the running (exponentially smoothed) loss."""
        self.step += 1
        self.running = step_loss if self.running is None else 0.9 * self.running + 0.1 * step_loss

    def training_status(self) -> str:
        """The bar's status after a step without validation."""
        return f"loss {self.running:.3f}  best val {self.best_loss:.3f}"

    def validated(self, model: PreTrainedModel, validation_loss: float) -> str:
        """Keep the weights if `validation_loss` is the best yet; return the bar's status."""
        if validation_loss < self.best_loss:
            self.best_loss, self.best_step = validation_loss, self.step
            self.evaluations_without_gain = 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.evaluations_without_gain += 1
        return f"loss {self.running:.3f}  val {validation_loss:.3f}  best {self.best_loss:.3f}"


def _prepare(
    model: PreTrainedModel,
    train_set: Sequence[Example],
    validation_set: Sequence[Example],
    spec: TrainingSpec,
    label: str,
) -> None:
    """Seed every RNG, refuse empty sets and freeze what the spec keeps as pretrained."""
    seed_everything(spec.seed)
    if not train_set or not validation_set:
        raise ValueError(f"{label}: the training and validation sets must not be empty")
    if spec.train_top_layers is not None:
        freeze_all_but_top_layers(
            model, spec.train_top_layers, train_embeddings=spec.train_embeddings
        )


def _optimizer_and_schedule(
    model: PreTrainedModel, spec: TrainingSpec
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable weights (no decay on biases, norms) with linear warm-up, decay."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": spec.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=spec.learning_rate,
    )
    schedule = get_linear_schedule_with_warmup(optimizer, spec.warmup_steps, spec.max_steps)
    return trainable, optimizer, schedule


def _optimizer_step(
    step_loss: torch.Tensor,
    trainable: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
) -> None:
    """Backpropagate the step's loss, clip the gradients and step the optimizer and schedule."""
    step_loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)


def _print_step(console: Console, label: str, spec: TrainingSpec, run: _Run, status: str) -> None:
    """A step line with its status and the time left at this pace."""
    eta_s = (time.monotonic() - run.started) / run.step * (spec.max_steps - run.step)
    console.print(f"{label} step {run.step}/{spec.max_steps}: {status}  eta {eta_s:.0f}s")


def _finish(
    model: PreTrainedModel, run: _Run, spec: TrainingSpec, label: str, console: Console
) -> TrainingSummary:
    """Restore the best weights, print the run's summary line and return the summary."""
    assert run.best_state is not None
    model.load_state_dict(run.best_state)
    model.eval()
    summary = TrainingSummary(
        steps=run.step,
        best_step=run.best_step,
        best_validation_loss=round(run.best_loss, 4),
        stopped_early=run.step < spec.max_steps,
        seconds=round(time.monotonic() - run.started, 1),
        cpu_seconds=round(time.process_time() - run.cpu_started, 1),
    )
    console.print(
        f"{label}: {run.step} steps in {summary.seconds}s ({summary.cpu_seconds} CPU s), "
        f"best validation loss {run.best_loss:.4f} at step {run.best_step}"
        + (" (stopped early)" if summary.stopped_early else "")
    )
    return summary
