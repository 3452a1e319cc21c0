"""The training loop: padding carries no loss, early stopping keeps the best weights, freezing;
the objective of retraining on votes."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import torch
from pressroom_common.feedback.store import Vote, VotedGeneration
from rich.console import Console

from models.serving.inference import headline_prompt_ids
from training import train as training_loop
from training.data import Headline
from training.definitions import ScratchSpec, TrainingSpec
from training.feedback.retrain import vote_objective, voted_collate
from training.modeling import build_scratch_gpt2, train_tokenizer
from training.train import IGNORE_INDEX, causal_lm_collate, freeze_all_but_top_layers, train

HEADLINES = [
    Headline("Stocks fall as oil prices rise sharply again", "bbc", "business", "train"),
    Headline("Film wins award", "bbc", "entertainment", "train"),
    Headline("Minister resigns over leaked budget plans for next year", "bbc", "politics", "train"),
]


def _tiny_model_and_tokenizer(layers: int = 1) -> tuple[torch.nn.Module, object]:
    tokenizer = train_tokenizer([h.text for h in HEADLINES] * 5, vocab_size=300)
    torch.manual_seed(0)
    spec = ScratchSpec(
        tokenizer_vocab_size=300, n_layer=layers, n_embd=16, n_head=2, n_positions=64
    )
    return build_scratch_gpt2(spec, tokenizer).eval(), tokenizer


def test_labels_are_ignored_exactly_on_padding() -> None:
    _, tokenizer = _tiny_model_and_tokenizer()
    batch = causal_lm_collate(tokenizer, max_length=40)(HEADLINES)
    mask, labels = batch.inputs["attention_mask"], batch.inputs["labels"]
    assert (mask == 0).any(), "the batch should need padding"
    # The start token (the whole context) is never a target: nothing predicts it.
    assert (labels[:, 0] == IGNORE_INDEX).all()
    assert ((labels[:, 1:] == IGNORE_INDEX) == (mask[:, 1:] == 0)).all()
    # The pad token is also the end token: the end of each headline is still learnt.
    lengths = mask.sum(dim=1)
    ends = labels[torch.arange(len(HEADLINES)), lengths - 1]
    assert (ends == tokenizer.eos_token_id).all()
    assert batch.targets == int(lengths.sum()) - len(HEADLINES)


def test_padded_batch_loss_equals_token_weighted_loss_of_single_rows() -> None:
    model, tokenizer = _tiny_model_and_tokenizer()
    collate = causal_lm_collate(tokenizer, max_length=40)
    with torch.no_grad():
        batch = collate(HEADLINES)
        batched = float(model(**batch.inputs).loss)
        singles = [collate([h]) for h in HEADLINES]
        weighted = sum(float(model(**s.inputs).loss) * s.targets for s in singles) / batch.targets
    assert abs(batched - weighted) < 1e-5


CONTEXT = "Write a news headline:"


def test_a_headline_context_carries_no_loss_and_does_not_shorten_headlines() -> None:
    _, tokenizer = _tiny_model_and_tokenizer()
    plain = causal_lm_collate(tokenizer, max_length=6)(HEADLINES)
    batch = causal_lm_collate(tokenizer, max_length=6, context=CONTEXT)(HEADLINES)
    context_ids = tokenizer(CONTEXT, add_special_tokens=False)["input_ids"]
    assert batch.shared_context == len(context_ids) > 1
    assert (batch.inputs["input_ids"][:, : len(context_ids)] == torch.tensor(context_ids)).all()
    assert (batch.inputs["labels"][:, : len(context_ids)] == IGNORE_INDEX).all()
    # The same headline tokens and ends are learnt with or without the context.
    assert batch.targets == plain.targets


def test_shared_context_runs_once_yet_gives_the_full_forward_loss_and_gradients() -> None:
    model, tokenizer = _tiny_model_and_tokenizer(layers=2)
    batch = causal_lm_collate(tokenizer, max_length=40, context=CONTEXT)(HEADLINES)
    with torch.no_grad():
        full = float(model(**batch.inputs).loss)
    loss = training_loop.training_loss(model, batch)  # in eval mode: no dropout to differ
    loss.backward()
    assert abs(float(loss.detach()) - full) < 1e-5
    assert all(p.grad is not None for p in model.transformer.h[-1].parameters())


def _spec(**overrides: object) -> TrainingSpec:
    values = {
        "seed": 1,
        "batch_size": 2,
        "learning_rate": 1e-2,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "max_steps": 10,
        "eval_every": 1,
        "patience": 2,
        "max_length": 32,
    }
    return TrainingSpec.model_validate({**values, **overrides})


def test_early_stopping_restores_the_weights_of_the_best_validation_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, tokenizer = _tiny_model_and_tokenizer()
    scripted: Iterator[float] = iter([3.0, 2.0, 2.5, 2.6, 1.0])
    snapshots: list[dict[str, torch.Tensor]] = []

    def scripted_validation_loss(model: torch.nn.Module, *_: object) -> float:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(training_loop, "mean_loss", scripted_validation_loss)
    collate = causal_lm_collate(tokenizer, 32)
    summary = train(
        model, HEADLINES, HEADLINES, collate, _spec(), label="t", console=Console(quiet=True)
    )
    assert (summary.steps, summary.best_step, summary.stopped_early) == (4, 2, True)
    assert summary.best_validation_loss == 2.0
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name]), name


def test_only_the_top_layers_train_when_asked() -> None:
    model, tokenizer = _tiny_model_and_tokenizer(layers=3)
    freeze_all_but_top_layers(model, 1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    # Top block, final norm and (GPT-2 only) position embeddings; not the token embeddings.
    allowed = ("transformer.h.2.", "transformer.ln_f.", "transformer.wpe.")
    assert trainable and all(name.startswith(allowed) for name in trainable)
    assert not model.get_output_embeddings().weight.requires_grad  # tied to the input embeddings
    before = {k: v.clone() for k, v in model.state_dict().items()}
    collate = causal_lm_collate(tokenizer, 32)
    spec = _spec(max_steps=2, train_top_layers=1)
    train(model, HEADLINES, HEADLINES, collate, spec, label="t", console=Console(quiet=True))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(name.startswith(allowed) for name in changed)


def _voted(prompt: str, text: str, vote: str, generation_id: str = "g") -> VotedGeneration:
    return VotedGeneration(
        generation_id=generation_id,
        prompt=prompt,
        text=text,
        variant="A",
        model_name="headline-base",
        model_version="v1",
        vote=Vote(vote),
        voted_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_only_the_generated_text_and_its_end_carry_an_up_votes_loss() -> None:
    _, tokenizer = _tiny_model_and_tokenizer()
    collate = voted_collate(tokenizer, 40, CONTEXT, down_vote_weight=0.5)
    batch = collate([_voted("Stocks fall", " as oil prices rise", "up")])
    prompt_length = len(headline_prompt_ids(tokenizer, "Stocks fall", CONTEXT))
    labels = batch.inputs["labels"][0]
    assert (labels[:prompt_length] == IGNORE_INDEX).all()
    assert (labels[prompt_length:] != IGNORE_INDEX).all()
    assert int(labels[-1]) == tokenizer.eos_token_id


def test_a_down_votes_loss_is_on_its_words_not_on_where_it_ends() -> None:
    _, tokenizer = _tiny_model_and_tokenizer()
    collate = voted_collate(tokenizer, 40, CONTEXT, down_vote_weight=0.5)
    # The up-vote is longer, so the down-voted row ends in padding after its end token.
    up, down = _voted("Stocks", " fall as oil prices rise", "up"), _voted("Stocks", " fall", "down")
    batch = collate([up, down])
    prompt_length = len(headline_prompt_ids(tokenizer, "Stocks", CONTEXT))
    text_length = len(tokenizer(" fall", add_special_tokens=False)["input_ids"])
    end = prompt_length + text_length
    labels = batch.inputs["labels"][1]
    assert int(batch.inputs["input_ids"][1, end]) == tokenizer.eos_token_id
    assert (labels[prompt_length:end] != IGNORE_INDEX).all()
    assert (labels[end:] == IGNORE_INDEX).all()
    assert int(batch.inputs["labels"][0, -1]) == tokenizer.eos_token_id


def test_the_loss_of_up_votes_is_their_texts_cross_entropy() -> None:
    model, tokenizer = _tiny_model_and_tokenizer(layers=2)
    collate = voted_collate(tokenizer, 40, CONTEXT, down_vote_weight=0.5)
    batch = collate([_voted("Stocks", " fall", "up"), _voted("Film", " wins award", "up")])
    with torch.no_grad():
        assert abs(float(vote_objective()(model, batch)) - float(model(**batch.inputs).loss)) < 1e-5


@pytest.mark.parametrize(("vote", "moves"), [("up", "down"), ("down", "up")])
def test_one_step_on_a_vote_moves_that_texts_cross_entropy_the_votes_way(
    vote: str, moves: str
) -> None:
    model, tokenizer = _tiny_model_and_tokenizer(layers=2)
    collate = voted_collate(tokenizer, 40, CONTEXT, down_vote_weight=1.0)
    voted = collate([_voted("Minister resigns", " over leaked budget plans", vote)])
    as_liked = collate([_voted("Minister resigns", " over leaked budget plans", "up")])
    with torch.no_grad():
        before = float(model(**as_liked.inputs).loss)
    vote_objective()(model, voted).backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 0.05 * parameter.grad
        after = float(model(**as_liked.inputs).loss)
    assert (after < before) if moves == "down" else (after > before)


def test_the_anchor_adds_nothing_at_the_champion_and_grows_as_the_model_leaves_it() -> None:
    model, tokenizer = _tiny_model_and_tokenizer(layers=2)
    anchor, _ = _tiny_model_and_tokenizer(layers=2)
    anchor.load_state_dict(model.state_dict())
    collate = voted_collate(tokenizer, 40, CONTEXT, down_vote_weight=0.5)
    batch = collate([_voted("Stocks", " fall", "up"), _voted("Film", " wins award", "down")])
    plain, anchored = vote_objective(), vote_objective(anchor, anchor_weight=2.0)
    with torch.no_grad():
        assert abs(float(anchored(model, batch)) - float(plain(model, batch))) < 1e-5
        for parameter in model.parameters():
            parameter += 0.05 * torch.randn_like(parameter)
        assert float(anchored(model, batch)) > float(plain(model, batch)) + 1e-4
