"""The learned seen bias (`-o seen_bias=1`, `RecLM.add_seen_bias`, issue #18): one logit shift for the items a
prompt lists, applied wherever paprec scores items, trained, saved, loaded and refused where it cannot apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_model_helpers import TEMPLATES, TINY_DIMS, FakeDataset, history_prompt
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.errors import PaprecError
from paprec_cli.model import Recommender, build_codec, collate, create_model, load_model, save_model
from paprec_cli.model.generate import generate_items
from paprec_cli.training.setup import new_options, parse_train_options


def _bundle(bias: float):
    codec = build_codec(FakeDataset(), "atomic", TEMPLATES)
    bundle = create_model(TINY_DIMS, codec, seed=0)
    bundle.model.eval()
    bundle.model.add_seen_bias(codec.item_offset, codec.n_items)
    assert bundle.model.seen_bias is not None
    with torch.no_grad():
        bundle.model.seen_bias.fill_(bias)
    bundle.config["seen_bias"] = True
    return bundle


def _first_step(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward's first-step logits [B, V], the decoder's first hidden state [B, d])."""
    start = torch.zeros(batch.input_ids.shape[0], 1, dtype=torch.long)
    enc = model.encode(batch.input_ids, batch.attention_mask, batch.whole_word_ids)
    hidden = model.t5.decoder(input_ids=start, encoder_hidden_states=enc,
                              encoder_attention_mask=batch.attention_mask).last_hidden_state[:, 0]
    logits = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=start).logits[:, 0]
    return logits, hidden


def test_the_bias_lands_on_the_prompts_own_items_only() -> None:
    bundle = _bundle(-5.0)
    model, codec = bundle.model, bundle.codec
    history = [5, 9, 17]
    batch = collate([codec.encode(history_prompt(3, history)), codec.encode(history_prompt(4, [2]))])
    with torch.no_grad():
        logits, hidden = _first_step(model, batch)
        plain = model.project(hidden)  # no prompt ids: no bias
        biased = model.project(hidden, prompt_ids=batch.input_ids)
    diff = biased - plain
    seen0 = {codec.item_offset + i - 1 for i in history}
    for column in range(diff.shape[1]):
        assert diff[0, column].item() == pytest.approx(-5.0 if column in seen0 else 0.0, abs=1e-5)
    assert diff[1, codec.item_offset + 1].item() == pytest.approx(-5.0, abs=1e-5)
    assert int((diff[1] != 0).sum()) == 1
    assert torch.allclose(logits, biased, atol=1e-5)  # training's forward applies it at the first step
    items = slice(codec.item_offset, codec.item_offset + codec.n_items)
    with torch.no_grad():
        assert torch.allclose(model.project(hidden, items, batch.input_ids), biased[:, items], atol=1e-5)
        ids = torch.tensor([codec.item_offset + 4, codec.item_offset + 5])  # items 5 (seen by row 0) and 6
        assert torch.allclose(model.project(hidden, ids, batch.input_ids), biased[:, ids], atol=1e-5)
        # `seen_ids` (training: rows that list candidates) replaces the prompt ids the bias reads
        none_seen = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids,
                          decoder_input_ids=torch.zeros(2, 1, dtype=torch.long),
                          seen_ids=torch.zeros_like(batch.input_ids)).logits[:, 0]
    assert torch.allclose(none_seen, plain, atol=1e-5)


def test_only_the_first_decoding_step_gets_it() -> None:
    """Later steps (an item's EOS, a sub-word's continuation) are scored as the model without a bias would."""
    bundle = _bundle(-5.0)
    model, codec = bundle.model, bundle.codec
    batch = collate([codec.encode(history_prompt(3, [5, 9, 17]))])
    steps = torch.tensor([[codec.decoder_start_id, codec.item_offset + 4]])  # start, then item 5 (a listed one)
    with torch.no_grad():
        biased = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=steps).logits
        model.seen_bias.fill_(0.0)
        plain = model(batch.input_ids, batch.attention_mask, batch.whole_word_ids, decoder_input_ids=steps).logits
    assert not torch.allclose(biased[:, 0], plain[:, 0])
    assert torch.allclose(biased[:, 1], plain[:, 1], atol=1e-5)


def _bias_grad(bundle, batch, labels, candidates=None) -> float:
    from paprec_cli.training.batches import TrainBatch
    from paprec_cli.training.loop import Trainer
    from paprec_cli.training.recipe import Recipe

    model = bundle.model
    model.zero_grad()
    trainer = Trainer(model, Recipe(lr=1e-3, batch_size=8, epochs=1), "cpu", planned_steps=10)
    trainer.loss(TrainBatch(batch, labels, int((labels >= 0).sum()), candidates=candidates)).backward()
    assert model.seen_bias is not None
    return 0.0 if model.seen_bias.grad is None else float(model.seen_bias.grad)


def test_training_rows_that_say_nothing_about_repeats_leave_it_alone() -> None:
    """Only rows that list items and answer with an item train the bias: not rows that list candidates (direct:
    the answer is one of them by construction), not rows whose answer is not an item (rating digits, words),
    which could only ever push it down. The same rule holds when scoring (`nll`, `rank_beam`)."""
    bundle = _bundle(0.0)
    codec = bundle.codec
    batch = collate([codec.encode(history_prompt(3, [5, 9, 17]))])
    item_21 = torch.tensor([[codec.item_offset + 20, codec.eos_id]])
    word = torch.tensor([[codec.item_offset - 1, codec.eos_id]])  # a token below the items: not an item answer
    assert _bias_grad(bundle, batch, item_21) != 0.0
    assert _bias_grad(bundle, batch, item_21, candidates=torch.tensor([True])) == 0.0
    assert _bias_grad(bundle, batch, word) == 0.0
    # scoring: nll of a row that lists candidates is the nll without a bias; rank_beam likewise
    with torch.no_grad():
        bundle.model.seen_bias.fill_(-50.0)
    rec = Recommender(bundle.model, codec, "cpu")
    target = [[codec.item_offset + 4, codec.eos_id]]  # item 5, listed in the prompt
    with torch.no_grad():
        listed = float(rec.nll(batch, target, [True])[0])
        biased = float(rec.nll(batch, target, [False])[0])
    beam_listed = rec.rank_beam(batch, 10, 10, lists_candidates=[True])[0].tolist()
    beam_biased = rec.rank_beam(batch, 10, 10, lists_candidates=[False])[0].tolist()
    with torch.no_grad():
        bundle.model.seen_bias.fill_(0.0)
    with torch.no_grad():
        plain = float(rec.nll(batch, target)[0])
    assert listed == pytest.approx(plain, abs=1e-4) and biased > listed + 10
    assert beam_listed == rec.rank_beam(batch, 10, 10)[0].tolist() and not {5, 9, 17} & set(beam_biased)
    # candidate scores (the direct task's ranking, `predict._rank_candidates`): a row that lists its candidates
    # gets the log-probabilities of the model without a bias, a free-ranking row gets the bias
    every = torch.arange(1, codec.n_items + 1).unsqueeze(0)
    plain_scores = rec.score_candidates(batch, every)[0]
    with torch.no_grad():
        bundle.model.seen_bias.fill_(-50.0)
    assert torch.allclose(rec.score_candidates(batch, every, lists_candidates=[True])[0], plain_scores, atol=1e-5)
    assert rec.score_candidates(batch, every, lists_candidates=[False])[0][4] < plain_scores[4] - 10  # item 5


def test_every_ranking_path_uses_it_and_a_saved_model_keeps_it(tmp_path: Path) -> None:
    bundle = _bundle(-50.0)  # strong enough that no prompt item can stay in the top 10
    codec = bundle.codec
    history = [5, 9, 17, 21, 30]
    batch = collate([codec.encode(history_prompt(3, history))])
    rec = Recommender(bundle.model, codec, "cpu")
    top = rec.rank_all(batch, 10)[0].tolist()
    assert not set(top) & set(history)
    every = torch.arange(1, codec.n_items + 1).unsqueeze(0)
    scores = rec.score_candidates(batch, every)[0]
    assert scores[torch.tensor(history) - 1].max() < scores.topk(10).values.min()
    assert torch.equal(scores.topk(10).indices + 1, torch.tensor(top))
    with torch.no_grad():
        enc = bundle.model.encode(batch.input_ids, batch.attention_mask, batch.whole_word_ids)
        beamed = generate_items(bundle.model, codec, enc, batch.attention_mask, 10, 10, prompt_ids=batch.input_ids)
        with pytest.raises(ValueError, match="prompt_ids"):
            generate_items(bundle.model, codec, enc, batch.attention_mask, 10, 10)
    assert not set(beamed[0].tolist()) & set(history)  # the beam baseline (its own EOS scores) sees it too
    folder = save_model(bundle, tmp_path / "m")
    assert json.loads((folder / "config.json").read_text())["seen_bias"] is True
    loaded = load_model(folder)
    assert loaded.model.seen_bias is not None and float(loaded.model.seen_bias.detach()) == -50.0
    assert Recommender(loaded.model.eval(), loaded.codec, "cpu").rank_all(batch, 10)[0].tolist() == top


def test_config_and_weights_must_agree(tmp_path: Path) -> None:
    folder = save_model(_bundle(-1.0), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    del config["seen_bias"], config["config_sha256"]  # a hand edit that also dropped the digest
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PaprecError, match=r"records no seen_bias, but model.safetensors holds a seen bias \(one of"):
        load_model(folder)


def test_a_damaged_bias_is_refused_and_never_shown_as_a_value(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from paprec_cli import registry
    from paprec_cli.paths import Home

    folder = save_model(_bundle(-1.0), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert registry.seen_bias(folder, config) == pytest.approx(-1.0)
    state = load_file(str(folder / "model.safetensors"))
    state["seen_bias"] = torch.zeros(3)  # three values where one belongs; checksums dropped with the edit
    save_file(state, str(folder / "model.safetensors"))
    config = {k: v for k, v in config.items() if k not in ("config_sha256", "weights_sha256")}
    (folder / "config.json").write_text(json.dumps(config))
    assert registry.seen_bias(folder, config) is None  # `models info`: "learned (unreadable)", not +0.000
    with pytest.raises(PaprecError, match=r"model.safetensors: seen_bias is not one finite number \(shape \(3,\), "
                                          r"float32; damaged\); .*paprec train"):
        load_model(folder)
    # `paprec models list` reads the bias too: the model is listed as broken, with the same one line
    assert "seen_bias is not one finite number (shape (3,)" in (registry.model_summary(folder)["broken"] or "")
    state["seen_bias"] = torch.tensor([float("nan")])
    save_file(state, str(folder / "model.safetensors"))
    assert "seen_bias is not one finite number (shape (1,)" in (registry.model_summary(folder)["broken"] or "")
    state["seen_bias"] = torch.tensor([1], dtype=torch.int64)  # a whole number is not a learned logit shift
    save_file(state, str(folder / "model.safetensors"))
    assert "seen_bias is not one finite number (shape (1,), int64" in (registry.model_summary(folder)["broken"] or "")
    with pytest.raises(PaprecError, match=r"seen_bias is not one finite number \(shape \(1,\), int64"):
        registry.model_record(Home(tmp_path), str(folder))  # `models info`: the same verdict as `models list`
    del state["seen_bias"]  # config.json still says it has one
    save_file(state, str(folder / "model.safetensors"))
    assert "records seen_bias true, but model.safetensors holds no seen bias" in \
        (registry.model_summary(folder)["broken"] or "")
    state["seen_bias"] = torch.tensor([-1.0])
    save_file(state, str(folder / "model.safetensors"))
    assert registry.model_summary(folder)["broken"] is None  # whole again


def test_options_are_checked() -> None:
    assert parse_train_options(["seen_bias=1"]) == {"seen_bias": 1}
    for bad in ("seen_bias=2", "seen_bias=0.5", "seen_bias=-1"):
        with pytest.raises(PaprecError, match="-o seen_bias"):
            parse_train_options([bad])
    common = {"dataset": "synthetic", "tasks": ["sequential"], "size": "tiny", "name": None, "seed": 0,
              "time_budget": None, "overrides": {}}
    with pytest.raises(PaprecError, match="seen_bias=1 needs atomic ids: --ids subword"):
        new_options(ids="subword", init=None, settings={"seen_bias": 1}, **common)
    for value in (0, 1):  # either value: an --init model keeps its checkpoint's own (no silent ignoring of =0)
        with pytest.raises(PaprecError, match=f"seen_bias={value}: --init keeps the checkpoint's own head"):
            new_options(ids="atomic", init="some-model", settings={"seen_bias": value}, **common)
    # a bias needs a task that ranks over all items: rating or direct alone would train and use none
    for tasks in (["rating"], ["direct"], ["direct", "rating"]):
        with pytest.raises(PaprecError, match=r"seen_bias=1: none of --tasks .* ranks over all items"):
            new_options(ids="atomic", init=None, settings={"seen_bias": 1}, **{**common, "tasks": tasks})
    assert new_options(ids="atomic", init=None, settings={"seen_bias": 1},
                       **{**common, "tasks": ["direct", "sequential"]}).recipe.seen_bias == 1
    assert new_options(ids="atomic", init=None, **{**common, "dataset": "ml-100k", "tasks": ["rating"]}
                       ).recipe.seen_bias == 0  # the dataset's default gives way
    # ML-100K's tiny recipe learns one; subword ids and --init quietly do without the default
    ml = {**common, "dataset": "ml-100k"}
    assert new_options(ids="atomic", init=None, **ml).recipe.seen_bias == 1
    assert new_options(ids="subword", init=None, **ml).recipe.seen_bias == 0
    assert new_options(ids="atomic", init="some-model", **ml).recipe.seen_bias == 0
    # the synthetic quick start learns one too (docs/RECIPE-18.md, "Session 20"), with the same give-way rules
    syn = {**common, "tasks": []}  # no --tasks: every task the dataset supports, sequential among them
    assert new_options(ids="atomic", init=None, **syn).recipe.seen_bias == 1
    assert new_options(ids="subword", init=None, **syn).recipe.seen_bias == 0
    assert new_options(ids="atomic", init="some-model", **syn).recipe.seen_bias == 0
    assert new_options(ids="atomic", init=None, **{**syn, "tasks": ["direct"]}).recipe.seen_bias == 0
    assert new_options(ids="atomic", init=None, settings={"seen_bias": 0}, **syn).recipe.seen_bias == 0
    assert new_options(ids="atomic", init=None, **{**syn, "size": "small"}).recipe.seen_bias == 0  # tiny only


@pytest.mark.slow
def test_training_learns_it_and_direct_rows_do_not_train_it(tmp_path: Path) -> None:
    """End to end on a tiny synthetic dataset: the run records it, the bias moves, resume keeps it,
    `models info` shows it, and the retrain command asks for it."""
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    result = runner.invoke(app, ["data", "import", "synthetic", *home, "-q", "-o", "users=40", "-o", "items=200",
                                 "-o", "categories=4", "-o", "length=7"])
    assert result.exit_code == 0, result.stderr
    fast = ["--size", "tiny", "--val-users", "20", "--device", "cpu", "--batch-size", "32", *home, "--json"]
    result = runner.invoke(app, ["train", "--dataset", "synthetic", "--tasks", "sequential,direct", *fast,
                                 "--epochs", "1", "--name", "sb", "-o", "seen_bias=1"])
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "models" / "sb"
    bundle = load_model(folder)
    assert bundle.model.seen_bias is not None and float(bundle.model.seen_bias.detach()) != 0.0
    state_file = tmp_path / "models" / ".train-state" / "sb" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "options": {**state["options"], "ids": "subword"}}))
    result = runner.invoke(app, ["train", "--resume", "sb", "--epochs", "2", *home])
    assert result.exit_code == 2 and "records --ids subword, but the run's codec has atomic ids" in result.stderr
    state["options"]["recipe"]["seen_bias"] = 0  # an edit the checkpoint contradicts: the checkpoint wins
    state_file.write_text(json.dumps(state))
    result = runner.invoke(app, ["train", "--resume", "sb", "--epochs", "2", *home, "--json"])
    assert result.exit_code == 0, result.stderr
    assert load_model(folder).model.seen_bias is not None
    assert json.loads((folder / "training.json").read_text())["options"]["recipe"]["seen_bias"] == 1
    # a model started from it (--init) keeps it, and resumes with it
    result = runner.invoke(app, ["train", "--dataset", "synthetic", "--tasks", "sequential", *fast, "--epochs", "1",
                                 "--init", "sb", "--name", "from-sb", "--dropout", "0"])
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "models" / "from-sb" / "config.json").read_text())
    assert config["seen_bias"] is True and config["dims"]["dropout_rate"] == 0.0  # the run's, not sb's 0.1
    recorded = json.loads((tmp_path / "models" / "from-sb" / "training.json").read_text())["options"]["recipe"]
    assert recorded["seen_bias"] == 1  # what the checkpoint brought, not the default 0
    assert config["init"] == "model:sb"  # this run's start, not sb's own ("scratch")
    result = runner.invoke(app, ["train", "--resume", "from-sb", "--epochs", "2", *home, "--json"])
    assert result.exit_code == 0, result.stderr  # its recipe says 0: the bias comes from the checkpoint
    assert load_model(tmp_path / "models" / "from-sb").model.seen_bias is not None
    config = json.loads((tmp_path / "models" / "from-sb" / "config.json").read_text())
    assert config["dims"]["dropout_rate"] == 0.0  # the resumed run kept the dropout it recorded
    result = runner.invoke(app, ["models", "info", "sb", *home])
    assert result.exit_code == 0 and "learned (" in result.stdout
    from paprec_cli.training import recipe as recipes
    from paprec_cli.training.retrain import retrain_command

    assert "seen_bias" not in (retrain_command(folder) or "-")  # synthetic tiny's recipe learns one already
    with pytest.MonkeyPatch.context() as patch:  # a recipe without it: the command must ask for it
        patch.delitem(recipes.DATASET_RECIPES, ("synthetic", "tiny"))
        assert "-o seen_bias=1" in (retrain_command(folder) or "")
    (folder / "training.json").unlink()  # the command then comes from config.json alone
    assert "-o seen_bias=1" in (retrain_command(folder) or "")


def test_pairs_that_list_candidates_are_marked_down_to_the_batch(tmp_path: Path) -> None:
    """Direct prompts list the target among their candidates, so training keeps the seen bias off their rows
    (`Pair.candidates` -> `TrainBatch.candidates` -> `seen_ids` in the loss); so are their hinted copies."""
    import numpy as np
    from helpers import synthetic_task_data

    from paprec_cli.plugins import load_registry
    from paprec_cli.training.batches import encode_pairs, make_batch
    from paprec_cli.training.mixture import Mixture, TrainingData

    data = synthetic_task_data(tmp_path, users=30, items=100)
    registry = load_registry()
    training = TrainingData(data, [registry.task("sequential"), registry.task("direct")],
                            Mixture(hint=0.5, word_item=0, item_words=0, item_next=0, history_hint=0.5), seed=1)
    pairs = training.epoch(1)
    families = {(p.family, p.candidates) for p in pairs}
    assert ("direct", True) in families and ("sequential", False) in families
    assert ("hint", True) in families and ("hint", False) in families  # hinted copies of both tasks
    assert not any(p.candidates for p in pairs if p.family == "sequential")
    assert all(p.candidates for p in pairs if p.family == "direct")
    codec = build_codec(data.dataset, "atomic", [" ".join(str(w) for w in p.source) for p in pairs[:50]])
    encoded = encode_pairs(codec, pairs)
    assert encoded.candidates == [p.candidates for p in pairs]
    index = np.arange(len(pairs))[:64]
    batch = make_batch(codec, encoded, index)
    assert batch.candidates is not None and batch.candidates.tolist() == [pairs[i].candidates for i in index]
    sequential_only = [p for p in pairs if p.family == "sequential"]
    assert make_batch(codec, encode_pairs(codec, sequential_only), np.arange(8)).candidates is None


def test_a_retrain_command_from_config_keeps_an_older_recipe(tmp_path: Path) -> None:
    """A model trained before ML-100K's recipe changed (10 history items, dropout 0.1, no seen bias) whose
    training.json is lost: its retrain command must not silently train today's recipe."""
    from paprec_cli.training.retrain import retrain_command

    folder = tmp_path / "models" / "old"
    folder.mkdir(parents=True)
    config = {"dataset": {"name": "ml-100k"}, "size": "tiny", "id_scheme": "atomic", "seed": 1,
              "tasks": ["sequential"], "input_history": 10, "dims": {"dropout_rate": 0.1}}
    (folder / "config.json").write_text(json.dumps(config))
    command = retrain_command(folder) or ""
    assert "-o seen_bias=0 -o history=10 --dropout 0.1 --name old" in command, command
    del config["input_history"]  # not recorded: paprec's default, 20 items (not today's 30)
    (folder / "config.json").write_text(json.dumps(config))
    assert "-o history=20" in (retrain_command(folder) or "")
    config.update(input_history=30, seen_bias=True, dims={"dropout_rate": 0.0})  # today's recipe: nothing added
    (folder / "config.json").write_text(json.dumps(config))
    command = retrain_command(folder) or ""
    assert "-o seen_bias=1 --name old" in command and "history=" not in command and "--dropout" not in command


def test_set_dropout_matches_a_model_built_with_that_rate() -> None:
    """`--init` trains with the run's dropout (recorded in training.json, used again by --resume): every dropout
    of the loaded model, modules and T5's float attention dropout alike, as a fresh model with that rate."""
    codec = build_codec(FakeDataset(), "atomic", TEMPLATES)

    def rates(model) -> list[tuple[str, float]]:
        out = []
        for name, module in model.named_modules():
            p = module.p if isinstance(module, torch.nn.Dropout) else getattr(module, "dropout", None)
            if isinstance(p, float):
                out.append((name, p))
        return out

    loaded = create_model(TINY_DIMS, codec, seed=0, dropout=0.1).model
    loaded.set_dropout(0.0)
    fresh = create_model(TINY_DIMS, codec, seed=0, dropout=0.0).model
    assert rates(loaded) == rates(fresh) and {p for _, p in rates(fresh)} == {0.0} and len(rates(fresh)) > 5
    assert loaded.t5.config.dropout_rate == 0.0


def test_init_takes_the_checkpoints_id_scheme(tmp_path: Path) -> None:
    """`--init` of a paprec model or a P5 weight file trains (and records) the checkpoint's own id scheme; a
    different `--ids` is refused, where it used to be recorded in training.json while the other was trained."""
    from paprec_cli.paths import Home
    from paprec_cli.training.setup import cli_options

    home = Home(tmp_path / "home")
    common = {"dataset": "synthetic", "tasks": "sequential", "size": None, "name": None, "seed": 0,
              "time_budget": None, "resume": None, "overrides": {}}
    for scheme, other in (("atomic", "subword"), ("subword", "atomic")):
        folder = tmp_path / f"m-{scheme}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"format": "paprec-model", "id_scheme": scheme}))
        options = cli_options(home, ids=None, init=str(folder), **common)
        assert options.ids == scheme and options.name == f"synthetic-tiny-{scheme}"
        assert cli_options(home, ids=scheme, init=str(folder), **common).ids == scheme
        with pytest.raises(PaprecError, match=f"--ids {other}: --init .* has {scheme} ids"):
            cli_options(home, ids=other, init=str(folder), **common)
    pth = tmp_path / "p5.pth"
    pth.write_bytes(b"")
    assert cli_options(home, ids=None, init=str(pth), **common).ids == "subword"  # P5's ids are text
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "t5"}))
    assert cli_options(home, ids="subword", init=str(hf), **common).ids == "subword"  # --ids decides there
    assert cli_options(home, ids=None, init=str(hf), **common).ids == "atomic"


def test_config_and_codec_must_agree_on_the_id_scheme(tmp_path: Path) -> None:
    """config.json's `id_scheme` edited (digest dropped with it): `models list`, `models info` and loading all
    refuse it in one line, instead of listing one scheme and ranking with the other."""
    from paprec_cli import registry
    from paprec_cli.paths import Home

    folder = save_model(_bundle(-1.0), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config = {k: v for k, v in config.items() if k != "config_sha256"}
    (folder / "config.json").write_text(json.dumps({**config, "id_scheme": "subword"}))
    message = r"config.json: records id_scheme 'subword', but codec.json has atomic ids \(edited or damaged\)"
    assert registry.model_summary(folder)["broken"] and "records id_scheme 'subword'" in \
        registry.model_summary(folder)["broken"]
    with pytest.raises(PaprecError, match=message):
        registry.model_record(Home(tmp_path), str(folder))
    with pytest.raises(PaprecError, match=message):
        load_model(folder)
