"""T5 checkpoints in every tied key layout transformers loads (issue 15); untied heads refused as untied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_model_checkpoint import _tiny_t5, _tokenizer_size
from test_model_helpers import FakeDataset, one_thread, prompts, t5_style_tokenizer  # noqa: F401
from transformers import T5ForConditionalGeneration

from paprec_cli.errors import PaprecError
from paprec_cli.model import collate, load_model

EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")


def _folder(
    tmp_path: Path, keep: tuple[str, ...], change: str | None = None
) -> tuple[Path, T5ForConditionalGeneration]:
    """A tiny tied T5 saved with only the embedding keys in `keep` (`change`: perturb that one)."""
    folder = t5_style_tokenizer(tmp_path / "hf")
    t5 = _tiny_t5(_tokenizer_size(folder))
    t5.save_pretrained(str(folder))
    state = {k: v.clone().contiguous() for k, v in t5.state_dict().items() if k not in EMBEDDING_KEYS or k in keep}
    if change is not None:
        state[change] = state[change] + 0.5
    save_file(state, str(folder / "model.safetensors"))
    return folder, t5


@pytest.mark.parametrize(
    "keep",
    [
        ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"),  # the layout
        ("shared.weight",),
        ("lm_head.weight",),
        ("decoder.embed_tokens.weight",),
        ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"),
    ],
    ids=["embed-tokens-and-head", "shared-only", "head-only", "decoder-only", "all"],
)
def test_tied_layouts_load_and_match_transformers(tmp_path: Path, keep: tuple[str, ...]) -> None:
    folder, t5 = _folder(tmp_path, keep)
    reference = T5ForConditionalGeneration.from_pretrained(str(folder)).eval()  # transformers accepts it
    bundle = load_model(folder, dataset=FakeDataset())
    assert torch.equal(bundle.model.t5.shared.weight, t5.shared.weight)
    batch = collate(bundle.codec.encode_batch(prompts(2)))
    start = torch.zeros(2, 1, dtype=torch.long)
    with torch.no_grad():
        ours = bundle.model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start)
        theirs = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask, decoder_input_ids=start)
    torch.testing.assert_close(ours.logits, theirs.logits)


@pytest.mark.parametrize(
    ("keep", "change", "message"),
    [
        (("shared.weight", "lm_head.weight"), "lm_head.weight",
         "lm_head.weight differs from shared.weight (untied head"),
        (("encoder.embed_tokens.weight", "lm_head.weight"), "lm_head.weight", "untied head"),
        (("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"), "decoder.embed_tokens.weight",
         "untied embedding"),
    ],
)
def test_untied_is_refused_as_untied(tmp_path: Path, keep: tuple[str, ...], change: str, message: str) -> None:
    folder, _ = _folder(tmp_path, keep, change)
    with pytest.raises(PaprecError, match=message.replace("(", r"\(")):
        load_model(folder, dataset=FakeDataset())


def test_untied_config_and_no_embedding(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, ("shared.weight",))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(PaprecError, match="tie_word_embeddings is false"):
        load_model(folder, dataset=FakeDataset())
    bare, _ = _folder(tmp_path / "bare", ())
    with pytest.raises(PaprecError, match="missing keys shared.weight .* not a T5 checkpoint"):
        load_model(bare, dataset=FakeDataset())
