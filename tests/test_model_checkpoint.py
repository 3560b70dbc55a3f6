"""Checkpoints: paprec folders round-trip; HF T5 folders and P5 `.pth` files load and rank; bad files
are refused with one clear line."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from test_model_helpers import (
    TEMPLATES,
    TINY_DIMS,
    FakeDataset,
    codec_for,
    history_prompt,
    imported_dataset,
    one_thread,  # noqa: F401  (autouse fixture)
    prompts,
    t5_style_tokenizer,
)
from transformers import T5Config, T5ForConditionalGeneration

from paprec_cli.errors import PaprecError
from paprec_cli.model import Recommender, build_codec, collate, create_model, load_model, save_model
from paprec_cli.paths import Home


def _outputs(bundle: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rec = Recommender(bundle.model, bundle.codec, "cpu")  # type: ignore[attr-defined]
    batch = collate(bundle.codec.encode_batch(prompts(4)))  # type: ignore[attr-defined]
    cands = torch.tensor([[3, 4, 5]] * 4)
    return rec.rank_all(batch, 5), rec.score_candidates(batch, cands), rec.predict_rating(batch)


@pytest.mark.parametrize("scheme", ["atomic", "subword"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path, scheme: str) -> None:
    bundle = create_model(TINY_DIMS, codec_for(scheme), seed=11)
    folder = save_model(bundle, tmp_path / "models" / "m1", extra_json={"training.json": {"epochs": 1}})
    assert sorted(p.name for p in folder.iterdir()) == [
        "codec.json", "config.json", "model.safetensors", "tokenizer.json", "training.json",
    ]  # fmt: skip
    assert [p.name for p in folder.parent.iterdir()] == ["m1"]  # no temporary leftovers
    config = json.loads((folder / "config.json").read_text())
    assert config["id_scheme"] == scheme and config["dataset"]["fingerprint"] == "f00d"
    assert config["dims"]["d_model"] == 32 and config["paprec_version"]
    again = load_model("m1", Home(tmp_path), dataset=FakeDataset())
    assert again.folder == folder and again.codec.describe() == bundle.codec.describe()
    for a, b in zip(_outputs(bundle), _outputs(again), strict=True):
        assert torch.equal(a, b)
    assert again.model.t5.lm_head.weight is again.model.t5.shared.weight  # tied weights stay tied


def test_paprec_folder_refusals(tmp_path: Path) -> None:
    folder = save_model(create_model(TINY_DIMS, codec_for("atomic"), seed=1), tmp_path / "m")
    with pytest.raises(PaprecError, match="made for 12 users and 130 items"):
        load_model(folder, dataset=FakeDataset(n_items=131))
    with pytest.raises(PaprecError, match="fingerprint f00d"):
        load_model(folder, dataset=FakeDataset(name="other", fingerprint="beef"))
    with pytest.raises(PaprecError, match="no such file, folder or model name"):
        load_model("nope", Home(tmp_path))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 1}))
    with pytest.raises(PaprecError, match="config.json: vocabulary size"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps(config))
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PaprecError, match="model.safetensors: checksum differs"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "weights_sha256": None}))
    weights.write_bytes(bytes(data[:100]))  # truncated
    with pytest.raises(PaprecError, match="model.safetensors: not a readable safetensors file"):
        load_model(folder)


def test_real_dataset_fingerprint_is_checked(tmp_path: Path) -> None:
    ds = imported_dataset(tmp_path / "a")
    other = imported_dataset(tmp_path / "b", name="small2", seed=1)  # same sizes, other item order
    assert other.fingerprint != ds.fingerprint and other.n_items == ds.n_items
    folder = save_model(create_model(TINY_DIMS, build_codec(ds, "atomic", TEMPLATES), seed=0), tmp_path / "m")
    assert load_model(folder, dataset=ds).codec.dataset_name == "small"
    with pytest.raises(PaprecError, match=r"trained on dataset 'small' .* not on 'small2'"):
        load_model(folder, dataset=other)


def _tiny_t5(vocab: int, seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return T5ForConditionalGeneration(config).eval()


def _tokenizer_size(folder: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
def test_hf_t5_folder_loads_as_initialisation_and_ranks(tmp_path: Path, layout: str) -> None:
    folder = t5_style_tokenizer(tmp_path / "hf")
    t5 = _tiny_t5(_tokenizer_size(folder))
    t5.save_pretrained(str(folder))
    if layout == "bin":
        os.remove(folder / "model.safetensors")
        torch.save(t5.state_dict(), folder / "pytorch_model.bin")
    bundle = load_model(folder, dataset=FakeDataset())
    assert bundle.codec.id_scheme == "subword" and bundle.codec.tokenizer_kind == "t5"
    assert float(bundle.model.whole_word.weight.detach().abs().sum()) == 0.0
    assert bundle.model.config.num_decoder_layers == 1
    batch = collate(bundle.codec.encode_batch(prompts(3)))
    start = torch.zeros(3, 1, dtype=torch.long)
    with torch.no_grad():
        ours = bundle.model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start)
        plain = t5(input_ids=batch.input_ids, attention_mask=batch.attention_mask, decoder_input_ids=start)
    torch.testing.assert_close(ours.logits, plain.logits)  # zero whole-word embedding = the plain T5
    top = Recommender(bundle.model, bundle.codec, "cpu").rank_all(batch, 5)
    assert int(top.min()) >= 1 and int(top.max()) <= 130
    atomic = load_model(folder, dataset=FakeDataset(), id_scheme="atomic")
    assert atomic.model.config.vocab_size == atomic.codec.vocab_size == _tokenizer_size(folder) + 12 + 130
    assert int(Recommender(atomic.model, atomic.codec, "cpu").rank_all(batch, 5).max()) <= 130
    saved = save_model(atomic, tmp_path / "from_hf")  # an HF-initialised model saves as a paprec folder
    assert load_model(saved, dataset=FakeDataset()).codec.vocab_size == atomic.codec.vocab_size


def test_hf_folder_refusals(tmp_path: Path) -> None:
    folder = t5_style_tokenizer(tmp_path / "hf")
    _tiny_t5(_tokenizer_size(folder) + 300).save_pretrained(str(folder))
    with pytest.raises(PaprecError, match="embedding has .* rows but the tokenizer has"):
        load_model(folder, dataset=FakeDataset())
    with pytest.raises(PaprecError, match="needs the dataset"):
        load_model(folder)
    bare = tmp_path / "bare"
    _tiny_t5(300).save_pretrained(str(bare))
    with pytest.raises(PaprecError, match="no tokenizer.json or spiece.model in .*--tokenizer"):
        load_model(bare, dataset=FakeDataset())


def _p5_state_dict(vocab: int) -> dict[str, torch.Tensor]:
    """What P5 saved: T5 names + `encoder.whole_word_embeddings.weight`, DataParallel's `module.` prefix."""
    state = {k: v.clone() for k, v in _tiny_t5(vocab, seed=4).state_dict().items()}
    state["encoder.whole_word_embeddings.weight"] = torch.randn(512, 32)
    return {f"module.{k}": v for k, v in state.items()}


def test_p5_pth_loads_infers_dims_and_ranks(tmp_path: Path) -> None:
    tok = t5_style_tokenizer(tmp_path / "t5-small")
    state = _p5_state_dict(_tokenizer_size(tok))
    torch.save(state, tmp_path / "beauty.pth")
    bundle = load_model(tmp_path / "beauty.pth", dataset=FakeDataset(), tokenizer=tok)
    cfg = bundle.model.config
    assert (cfg.d_model, cfg.num_layers, cfg.num_decoder_layers, cfg.num_heads, cfg.d_kv, cfg.d_ff) == (
        32, 2, 1, 2, 16, 64,
    )  # fmt: skip
    assert torch.equal(bundle.model.whole_word.weight, state["module.encoder.whole_word_embeddings.weight"])
    assert torch.equal(bundle.model.t5.shared.weight, state["module.shared.weight"])
    rec = Recommender(bundle.model, bundle.codec, "cpu")
    batch = collate(bundle.codec.encode_batch(prompts(3)))
    top = rec.rank_all(batch, 5, num_beams=10)
    assert int(top.min()) >= 1 and int(top.max()) <= 130
    assert int(rec.rank_beam(batch, 3, num_beams=6).min()) >= 1


class Payload:
    """A custom class: unpickling it would run arbitrary code, so loading must refuse."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_p5_refusals(tmp_path: Path) -> None:
    tok = t5_style_tokenizer(tmp_path / "tok")
    good = _p5_state_dict(_tokenizer_size(tok))
    evil = tmp_path / "evil.pth"
    torch.save({**good, "extra": Payload()}, evil)
    with pytest.raises(PaprecError, match="evil.pth: refused: the file holds pickled Python objects"):
        load_model(evil, dataset=FakeDataset(), tokenizer=tok)
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps({"shared.weight": [1, 2]}))
    with pytest.raises(PaprecError, match="raw.pth"):
        load_model(raw, dataset=FakeDataset(), tokenizer=tok)
    missing = dict(good)
    del missing["module.decoder.block.0.layer.2.DenseReluDense.wo.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(PaprecError, match="missing.pth: missing keys t5.decoder.block.0.layer.2.DenseReluDense.wo"):
        load_model(tmp_path / "missing.pth", dataset=FakeDataset(), tokenizer=tok)
    torch.save({**good, "module.encoder.adapter.weight": torch.zeros(2)}, tmp_path / "extra.pth")
    with pytest.raises(PaprecError, match="extra.pth: unexpected keys t5.encoder.adapter.weight"):
        load_model(tmp_path / "extra.pth", dataset=FakeDataset(), tokenizer=tok)
    torch.save(_p5_state_dict(_tokenizer_size(tok) + 500), tmp_path / "vocab.pth")
    with pytest.raises(PaprecError, match="vocab.pth: embedding has"):
        load_model(tmp_path / "vocab.pth", dataset=FakeDataset(), tokenizer=tok)
    torch.save(good, tmp_path / "ok.pth")
    with pytest.raises(PaprecError, match="needs its|no tokenizer.json or spiece.model in"):
        load_model(tmp_path / "ok.pth", dataset=FakeDataset())


def test_untied_item_head_scores_with_its_own_rows_and_round_trips(tmp_path: Path) -> None:
    """`-o item_head=untied` (issue #18): item tokens get output rows of their own; training's logits
    (forward), ranking (`project` over the item rows) and a saved-and-loaded model all use them."""
    codec = build_codec(FakeDataset(), "atomic", TEMPLATES)
    bundle = create_model(TINY_DIMS, codec, seed=0)
    model = bundle.model.eval()
    model.untie_items(codec.item_offset, codec.n_items)
    assert model.item_head is not None
    with torch.no_grad():
        model.item_head.add_(torch.randn_like(model.item_head))  # now differs from the tied input rows
    bundle.config["item_head"] = "untied"
    batch = collate([codec.encode(history_prompt(3, [5, 9, 17]))])
    items = slice(codec.item_offset, codec.item_offset + codec.n_items)
    with torch.no_grad():
        enc = model.encode(batch.input_ids, batch.attention_mask, batch.whole_word_ids)
        start = torch.zeros(1, 1, dtype=torch.long)
        out = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start)
        logits = out.logits[:, 0]
        hidden = model.t5.decoder(input_ids=start, encoder_hidden_states=enc,
                                  encoder_attention_mask=batch.attention_mask).last_hidden_state[:, 0]
        ranked = model.project(hidden, items)
        tied = torch.nn.functional.linear(hidden * model.config.d_model**-0.5, model.t5.lm_head.weight[items])
    assert torch.allclose(logits[:, items], ranked, atol=1e-5)
    assert not torch.allclose(ranked, tied, atol=1e-3)  # the head's own rows, not the input rows
    assert torch.allclose(logits[:, : codec.item_offset], model.project(hidden)[:, : codec.item_offset], atol=1e-5)
    folder = save_model(bundle, tmp_path / "m")
    loaded = load_model(folder).model.eval()
    assert loaded.item_head is not None and torch.equal(loaded.item_head, model.item_head)
    with torch.no_grad():
        assert torch.allclose(loaded.project(hidden, items), ranked, atol=1e-6)
