"""Inference: exact atomic ranking, trie-constrained beams, candidate scores, rating, NLL gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from test_model_helpers import (
    TINY_DIMS,
    FakeDataset,
    codec_for,
    one_thread,  # noqa: F401  (autouse fixture)
    prompts,
)

from paprec_cli.model import Recommender, collate, create_model
from paprec_cli.model import predict as predict_mod
from paprec_cli.specs import Example, TaskSpec, Template, Word


@pytest.fixture(scope="module", params=["atomic", "subword"])
def rec(request: pytest.FixtureRequest) -> Recommender:
    codec = codec_for(request.param)
    bundle = create_model(TINY_DIMS, codec, seed=3)
    return Recommender(bundle.model, codec, "cpu")


def _batch(rec: Recommender, n: int = 6) -> Any:
    return collate(rec.codec.encode_batch(prompts(n)))


def _all_scores(rec: Recommender, batch: Any) -> torch.Tensor:
    every = torch.arange(1, rec.codec.n_items + 1).repeat(len(batch), 1)
    return rec.score_candidates(batch, every)


def test_rank_all_returns_valid_distinct_items(rec: Recommender) -> None:
    top = rec.rank_all(_batch(rec), 10)
    assert top.shape == (6, 10) and top.dtype == torch.long
    assert int(top.min()) >= 1 and int(top.max()) <= rec.codec.n_items
    assert all(len(set(row)) == 10 for row in top.tolist())


def test_atomic_rank_all_is_exact_argmax_over_items() -> None:
    codec = codec_for("atomic")
    rec = Recommender(create_model(TINY_DIMS, codec, seed=5).model, codec, "cpu")
    batch = _batch(rec)
    with torch.no_grad():
        start = torch.zeros(len(batch), 1, dtype=torch.long)
        logits = rec.model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start).logits
    brute = logits[:, 0, codec.item_offset :].argsort(dim=1, descending=True)[:, :10] + 1
    assert torch.equal(rec.rank_all(batch, 10), brute)
    assert torch.equal(_all_scores(rec, batch).topk(10).indices + 1, brute)


def test_subword_beam_search_with_enough_beams_is_exact() -> None:
    codec = codec_for("subword")
    rec = Recommender(create_model(TINY_DIMS, codec, seed=5).model, codec, "cpu")
    batch = _batch(rec, 4)
    brute = _all_scores(rec, batch).topk(5).indices + 1
    assert torch.equal(rec.rank_all(batch, 5, num_beams=codec.n_items), brute)
    narrow = rec.rank_all(batch, 5, num_beams=5)
    assert int(narrow.min()) >= 1 and int(narrow.max()) <= codec.n_items


def test_padding_does_not_change_results(rec: Recommender) -> None:
    encoded = rec.codec.encode_batch(prompts(6))
    together = rec.rank_all(collate(encoded), 5)
    alone = torch.cat([rec.rank_all(collate([e]), 5) for e in encoded])
    assert torch.equal(together, alone)


def test_score_candidates_is_teacher_forced_log_prob(rec: Recommender) -> None:
    codec = rec.codec
    batch = _batch(rec, 3)
    cands = torch.tensor([[5, 17, 129], [1, 2, 3], [100, 64, 9]])
    scores = rec.score_candidates(batch, cands)
    for col in range(3):
        items = cands[:, col].tolist()
        if codec.id_scheme == "atomic":
            targets = [[codec.item_offset + i - 1] for i in items]  # the item token alone
        else:
            targets = [codec.target_ids([Word.item(i)]) for i in items]  # pieces + EOS
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.float32)
        expected = -rec.nll(batch, targets).detach() * lengths
        torch.testing.assert_close(scores[:, col], expected, rtol=1e-4, atol=1e-4)


def test_nll_gradient_reaches_input_embeddings_not_weights(rec: Recommender) -> None:
    for p in rec.model.parameters():
        p.requires_grad_(False)
    seen: list[torch.Tensor] = []

    def hook(_: torch.nn.Module, __: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.detach().requires_grad_(True)
        seen.append(out)
        return out

    handle = rec.model.t5.shared.register_forward_hook(hook)
    try:
        batch = _batch(rec, 4)
        targets = [rec.codec.target_ids([Word.item(i)]) for i in (3, 4, 5, 6)]
        loss = rec.nll(batch, targets)
        assert loss.shape == (4,) and bool((loss > 0).all())
        loss.sum().backward()
    finally:
        handle.remove()
        for p in rec.model.parameters():
            p.requires_grad_(True)
    assert len(seen) == 1  # the hook fires once per forward: the encoder's token embeddings
    grad = seen[0].grad
    assert grad is not None and grad.shape == (*batch.input_ids.shape, rec.model.config.d_model)
    assert float(grad.abs().sum()) > 0
    assert float(grad[batch.attention_mask == 0].abs().sum()) == 0.0  # padding gets no gradient
    assert all(p.grad is None for p in rec.model.parameters())


def test_predict_rating_is_expectation_over_rating_tokens(rec: Recommender) -> None:
    batch = _batch(rec, 4)
    ratings = rec.predict_rating(batch)
    assert ratings.shape == (4,) and bool(((ratings >= 1) & (ratings <= 5)).all())
    _, ids = rec.codec.rating_tokens()
    with torch.no_grad():
        start = torch.zeros(4, 1, dtype=torch.long)
        logits = rec.model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start).logits
    probs = logits[:, 0, ids].softmax(-1)
    torch.testing.assert_close(ratings, probs @ torch.arange(1.0, 6.0), rtol=1e-5, atol=1e-5)


def test_predict_rating_stays_float32_under_bf16_autocast(rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA inference runs under bf16 autocast; the ratings must still come back as float32 (numpy has no
    bf16: a bf16 result broke `paprec train` with the rating task on an H200)."""
    monkeypatch.setattr(rec, "autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    ratings = rec.predict_rating(_batch(rec, 4))
    assert ratings.dtype == torch.float32
    assert ratings.cpu().numpy().shape == (4,)


def test_rank_beam_baseline_yields_valid_items(rec: Recommender) -> None:
    top = rec.rank_beam(_batch(rec, 3), 5, num_beams=8)
    assert top.shape == (3, 5)
    assert int(top.min()) >= 1 and int(top.max()) <= rec.codec.n_items
    assert all(len(set(row)) == 5 for row in top.tolist())


def test_inference_restores_training_mode(rec: Recommender) -> None:
    rec.model.train()
    rec.rank_all(_batch(rec, 2), 3)
    assert rec.model.training
    rec.model.eval()


class _FakeTask(TaskSpec):
    name = "fake"
    description = "records what it is given"
    default_template = "1"

    def __init__(self, kind: str) -> None:
        self.kind = kind  # type: ignore[assignment]
        self.seen: Any = None

    @property
    def templates(self) -> list[Template]:
        return [Template("1", "{user}", held_out=True)]

    def examples(self, data: Any, part: Any) -> list[Example]:
        return []

    def target_words(self, example: Example) -> list[Word]:
        return [Word.item(int(example.target))]

    def metrics(self, predictions: Any, examples: Sequence[Example]) -> dict[str, float]:
        self.seen = predictions
        return {"n": float(len(examples))}

    def per_example(self, predictions: Any, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        return {"n": np.ones(len(examples))}

    def surrogate(self, predictions: Any, examples: Sequence[Example]) -> Any:
        return np.ones(len(examples))


def test_predict_ranking_rating_and_candidates(rec: Recommender) -> None:
    words = prompts(5)
    encoded = rec.codec.encode_batch(words)
    plain = [Example(user=1, argument=tuple(w), values={}, target=3) for w in words]
    metrics, surrogate = predict_mod.metrics_and_surrogate(rec, _FakeTask("ranking"), plain, encoded, batch_size=2)
    assert metrics == {"n": 5.0} and surrogate.shape == (5,)
    ranked = predict_mod.predictions(rec, _FakeTask("ranking"), plain, encoded, batch_size=2)
    assert ranked.shape == (5, 10)
    assert np.array_equal(ranked, rec.rank_all(collate(encoded), 10).numpy())
    cands = [tuple(range(10 + i, 30 + i)) for i in range(4)] + [(7, 8, 9)]
    direct = [Example(1, tuple(w), {}, c[0], candidates=c) for w, c in zip(words, cands, strict=True)]
    ranked = predict_mod.predictions(rec, _FakeTask("ranking"), direct, encoded, batch_size=3)
    for row, c in zip(ranked.tolist(), cands, strict=True):
        kept = [i for i in row if i]
        assert set(kept) <= set(c) and len(kept) == min(10, len(c))
    scores = rec.score_candidates(collate(encoded[:1]), torch.tensor([cands[0]]))[0]
    assert ranked[0].tolist() == [cands[0][i] for i in scores.argsort(descending=True)[:10].tolist()]
    ratings = predict_mod.predictions(rec, _FakeTask("rating"), plain, encoded, batch_size=2)
    assert ratings.shape == (5,) and np.allclose(ratings, rec.predict_rating(collate(encoded)).numpy(), atol=1e-5)


def test_beam_wider_than_the_catalogue_returns_every_item_once() -> None:
    codec = codec_for("subword", FakeDataset(n_users=3, n_items=7))
    rec = Recommender(create_model(TINY_DIMS, codec, seed=2).model, codec, "cpu")
    batch = collate(codec.encode_batch([[Word.user(1), Word.item(3)], [Word.user(2)]]))
    top = rec.rank_all(batch, 10, num_beams=20)
    assert top.shape == (2, 7) and all(sorted(row) == list(range(1, 8)) for row in top.tolist())
    brute = _all_scores(rec, batch).argsort(dim=1, descending=True) + 1
    assert torch.equal(top, brute)


def test_create_model_is_seeded_and_leaves_global_rng_alone() -> None:
    codec = codec_for("atomic")
    state = torch.random.get_rng_state()
    a = create_model(TINY_DIMS, codec, seed=7).model.state_dict()
    b = create_model(TINY_DIMS, codec, seed=7).model.state_dict()
    c = create_model(TINY_DIMS, codec, seed=8).model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["t5.shared.weight"], c["t5.shared.weight"])
    small = create_model("small", codec, seed=0)
    cfg = small.model.config
    assert (cfg.num_layers, cfg.num_decoder_layers, cfg.d_model, cfg.num_heads, cfg.d_ff) == (6, 6, 512, 8, 2048)
    assert small.config["size"] == "small" and cfg.vocab_size == codec.vocab_size
    assert create_model({"d_model": 48, "num_heads": 3}, codec, dropout=0.2).model.config.d_kv == 16


def test_forward_with_labels_teacher_forces_without_an_internal_loss() -> None:
    """Training computes its own loss from the logits; T5's would be a second cross-entropy per step."""
    codec = codec_for("atomic")
    model = create_model(TINY_DIMS, codec, seed=2).model.eval()
    batch = collate(codec.encode_batch(prompts(3)))
    labels = torch.tensor([[7, 1, -100], [8, 9, 1], [5, 1, -100]])
    with torch.no_grad():
        out = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, labels=labels)
        ref = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids,
                    decoder_input_ids=model.t5.prepare_decoder_input_ids_from_labels(labels=labels))  # fmt: skip
    assert out.loss is None
    assert torch.equal(out.logits, ref.logits)
    start = model.t5.prepare_decoder_input_ids_from_labels(labels=labels)[:, 0]
    assert (start == model.config.decoder_start_token_id).all()
