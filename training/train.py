"""The training loop shared by every model: fixed seed, AdamW with warm-up and linear decay,
early stopping on validation loss (the best weights are kept), and a rich progress bar."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

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

from models.serving.inference import headline_prompt_ids
from training.data import LABELS, Headline
from training.definitions import TrainingSpec

IGNORE_INDEX = -100  # label value the loss skips


@dataclass(frozen=True)
class Batch:
    inputs: dict[str, torch.Tensor]  # forward kwargs, `labels` included
    targets: int  # how many predictions the loss averages over (to weight batches)


Collate = Callable[[Sequence[Headline]], Batch]


@dataclass(frozen=True)
class TrainingSummary:
    steps: int
    best_step: int
    best_validation_loss: float
    stopped_early: bool
    seconds: float
    cpu_seconds: float  # all threads; with a shared CPU, wall time alone misleads


def freeze_all_but_top_layers(model: PreTrainedModel, top_layers: int) -> None:
    """Freeze the input embeddings (and a head tied to them) and all but the top blocks."""
    depth = model.config.num_hidden_layers
    blocks = next(
        module
        for module in model.modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth
    )
    model.get_input_embeddings().requires_grad_(False)
    for block in blocks[: max(depth - top_layers, 0)]:
        block.requires_grad_(False)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def causal_lm_collate(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Collate:
    """Headlines as start token + text + end token, right-padded; padding carries no loss."""
    end_id = int(tokenizer.eos_token_id)
    pad_id = int(tokenizer.pad_token_id)

    def collate(headlines: Sequence[Headline]) -> Batch:
        rows = [
            [*headline_prompt_ids(tokenizer, h.text)[: max_length - 1], end_id] for h in headlines
        ]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
        attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        # Mask by attention, not by pad id: the pad token may also be the (trained) end token.
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
        return Batch(
            {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}, targets
        )

    return collate


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
    examples: Sequence[Headline], batch_size: int, seed: int
) -> Iterator[Sequence[Headline]]:
    order = torch.Generator().manual_seed(seed)
    while True:  # epochs until the step budget is spent
        permutation = torch.randperm(len(examples), generator=order).tolist()
        for start in range(0, len(permutation), batch_size):
            yield [examples[i] for i in permutation[start : start + batch_size]]


def batches_in_order(examples: Sequence[Headline], batch_size: int) -> Iterator[Sequence[Headline]]:
    for start in range(0, len(examples), batch_size):
        yield examples[start : start + batch_size]


@torch.no_grad()
def mean_loss(
    model: PreTrainedModel, examples: Sequence[Headline], collate: Collate, batch_size: int
) -> float:
    """Loss averaged over every prediction (not over batches), in nats."""
    model.eval()
    total, count = 0.0, 0
    for chunk in batches_in_order(examples, batch_size):
        batch = collate(chunk)
        total += float(model(**batch.inputs).loss) * batch.targets
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
    train_set: Sequence[Headline],
    validation_set: Sequence[Headline],
    collate: Collate,
    spec: TrainingSpec,
    *,
    label: str,
    console: Console,
) -> TrainingSummary:
    """Train in place; on return the model holds the weights of the best validation loss."""
    seed_everything(spec.seed)
    if not train_set or not validation_set:
        raise ValueError(f"{label}: the training and validation sets must not be empty")
    if spec.train_top_layers is not None:
        freeze_all_but_top_layers(model, spec.train_top_layers)
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
    batches = _shuffled_batches(train_set, spec.batch_size, spec.seed)
    started, cpu_started = time.monotonic(), time.process_time()
    best_loss, best_step, best_state = float("inf"), 0, None
    evaluations_without_gain, step, running = 0, 0, None
    log_every = max(1, spec.max_steps // 20)
    with progress_bar(console) as progress:
        task = progress.add_task(f"train {label}", total=spec.max_steps, status="")
        while step < spec.max_steps:
            model.train()
            loss = model(**collate(next(batches)).inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            status = f"loss {running:.3f}  best val {best_loss:.3f}"
            evaluated = step % spec.eval_every == 0 or step == spec.max_steps
            if evaluated:
                validation_loss = mean_loss(model, validation_set, collate, spec.batch_size * 2)
                if validation_loss < best_loss:
                    best_loss, best_step, evaluations_without_gain = validation_loss, step, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    evaluations_without_gain += 1
                status = f"loss {running:.3f}  val {validation_loss:.3f}  best {best_loss:.3f}"
            if evaluated or (not console.is_terminal and step % log_every == 0):
                eta_s = (time.monotonic() - started) / step * (spec.max_steps - step)
                console.print(f"{label} step {step}/{spec.max_steps}: {status}  eta {eta_s:.0f}s")
            progress.update(task, advance=1, status=status)
            if evaluations_without_gain >= spec.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    summary = TrainingSummary(
        steps=step,
        best_step=best_step,
        best_validation_loss=round(best_loss, 4),
        stopped_early=step < spec.max_steps,
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(time.process_time() - cpu_started, 1),
    )
    console.print(
        f"{label}: {step} steps in {summary.seconds}s ({summary.cpu_seconds} CPU s), "
        f"best validation loss {best_loss:.4f} at step {best_step}"
        + (" (stopped early)" if summary.stopped_early else "")
    )
    return summary
