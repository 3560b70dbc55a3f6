"""A fresh review's eight findings (branch issue-rv17; issues #16/#18's bar: silent wrong data is the worst bug),
each reproduced the way a user meets it: the one-line error, the exit code, the files left."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import invoke, last_json, last_line, parsed_train_options

from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home

SEARCH = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--n-personal", "1", "--n-suffix", "1", "--device", "cpu",
          "--protocol", "paper", "-q"]


@pytest.fixture(scope="module")
def finished_run(tiny_home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "done"
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run), "--seed", "3")
    assert code == 0, err
    return run


# -- 1. search --resume with options that contradict the run's ------------------------------------------------
@pytest.mark.parametrize(("args", "line"), [
    (["--seed", "4"], "--seed 4: the run being resumed ({run}) used 3"),
    (["--task", "direct"], "--task direct: the run being resumed ({run}) used sequential"),
    (["--protocol", "guarded"], "--protocol guarded: the run being resumed ({run}) used paper"),
    (["--n-suffix", "2"], "--n-suffix 2: the run being resumed ({run}) used 1"),
    (["--no-shared"], "--no-shared: the run being resumed ({run}) used --shared"),
    (["--val-users", "10"], "--val-users 10: the run being resumed ({run}) used 12"),
    (["--template", "2-1"], "--template 2-1: the run being resumed ({run}) used 2-3"),
    (["--evaluator", "beam"], "--evaluator beam: the run being resumed ({run}) used fast"),
    (["--separator", "->"], "--separator ->: the run being resumed ({run}) used ,"),
    (["--tokenizer", "."], "--tokenizer {cwd}: the run being resumed ({run}) used not set (the default)"),
])
def test_resume_refuses_an_option_that_contradicts_the_run(tiny_home: Home, finished_run: Path, args: list[str],
                                                           line: str) -> None:
    before = {p.name: p.read_bytes() for p in finished_run.iterdir() if p.name != ".lock"}
    code, stdout, err = invoke("search", "--resume", str(finished_run), *args, "--home", str(tiny_home.root),
                               "--device", "cpu", "--json")
    option, said = line.split(" ")[0].rstrip(":"), line.format(run=finished_run, cwd=Path.cwd())
    fix = f"drop {option} to continue it, or start a new run with it"
    assert code == 2 and last_line(err) == f"Error: {said}; {fix}", err
    assert len(err.strip().splitlines()) == 1 and last_json(stdout)["exit_code"] == 2
    assert {p.name: p.read_bytes() for p in finished_run.iterdir() if p.name != ".lock"} == before


def test_resume_accepts_options_equal_to_the_run(tiny_home: Home, finished_run: Path) -> None:
    """Equal values (and the model by name for its recorded folder) are fine, as are options left out."""
    code, _, err = invoke("search", "--resume", str(finished_run), "--seed", "3", "--task", "sequential",
                          "--protocol", "paper", "--n-suffix", "1", "--max-rounds", "1", "--separator", ",", "--model",
                          "synthetic-tiny-atomic", "--template", "2-3", "--home", str(tiny_home.root), "--device",
                          "cpu")
    assert code == 0, err


def test_resume_refuses_new_run_options_and_a_budget_that_cannot_extend_a_finished_run(
        tiny_home: Home, finished_run: Path) -> None:
    before = {p.name: p.read_bytes() for p in finished_run.iterdir() if p.name != ".lock"}
    code, _, err = invoke("search", "--resume", str(finished_run), "--run-dir", str(finished_run.parent / "x"),
                          "--home", str(tiny_home.root), "--device", "cpu")
    assert code == 2 and last_line(err) == (f"Error: --run-dir: applies to a new run only; --resume continues "
                                            f"{finished_run} where it is; drop --run-dir")
    state = json.loads((finished_run / "state.json").read_text())
    assert state["stop_reason"] == "converged"  # the untrained model: no flip improves NDCG@5 + HR@5
    code, _, err = invoke("search", "--resume", str(finished_run), "--max-rounds", "3", "--time-budget", "600",
                          "--home", str(tiny_home.root), "--device", "cpu")
    assert code == 2 and last_line(err) == (
        f"Error: --max-rounds / --time-budget: the run being resumed ({finished_run}) has finished and cannot go on: "
        "it stopped (converged), which a larger budget does not change; or drop --max-rounds / --time-budget (its "
        "prompts stay as they are), or start a new run"), err
    assert {p.name: p.read_bytes() for p in finished_run.iterdir() if p.name != ".lock"} == before


def _comparable(doc: dict[str, object]) -> dict[str, object]:
    doc = json.loads(json.dumps(doc))
    doc["search"].pop("seconds")  # type: ignore[union-attr]
    return doc


def test_resume_extends_a_finished_run_as_if_it_had_run_on(tiny_home: Home, tmp_path: Path) -> None:
    """A run stopped by --max-rounds 1, resumed with --max-rounds 2, ends with the prompts, trajectory and state
    of a run started with --max-rounds 2 (seconds aside); the manifest records the new budget."""
    common = [*SEARCH, "--home", str(tiny_home.root), "--seed", "1", "--selection", "loss"]  # loss: flips happen
    reference, extended = tmp_path / "reference", tmp_path / "extended"
    code, _, err = invoke(*common, "--max-rounds", "2", "--run-dir", str(reference))  # the last --max-rounds wins
    assert code == 0, err
    assert json.loads((reference / "manifest.json").read_text())["config"]["max_rounds"] == 2
    code, _, err = invoke(*common, "--run-dir", str(extended))
    assert code == 0, err
    assert json.loads((extended / "state.json").read_text())["stop_reason"] == "max-rounds"
    code, _, err = invoke("search", "--resume", str(extended), "--max-rounds", "2", "--home", str(tiny_home.root),
                          "--device", "cpu")
    assert code == 0, err
    assert "--max-rounds 2: applied on resume (the run started with 1)" in err
    assert "the finished run goes on from round 2 (shared phase); its prompts.json is replaced when it ends" in err
    got, want = (json.loads((folder / "prompts.json").read_text()) for folder in (extended, reference))
    assert _comparable(got) == _comparable(want)
    steps = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
              for line in (folder / "trajectory.jsonl").read_text().splitlines()] for folder in (extended, reference)]
    assert steps[0] == steps[1]
    states = [json.loads((folder / "state.json").read_text()) for folder in (extended, reference)]
    for state in states:
        state.pop("seconds")
    assert states[0] == states[1]
    assert json.loads((extended / "manifest.json").read_text())["config"]["max_rounds"] == 2


def test_reopen_puts_a_finished_state_back_where_a_larger_budget_goes_on() -> None:
    from paprec_cli.search.layout import Layout, PromptTokens
    from paprec_cli.search.schedule import reopen
    from paprec_cli.search.state import SearchState

    tokens = PromptTokens((1, 2), (3,))

    def done(reason: str, **extra: object) -> SearchState:
        state = SearchState(tokens, tokens, [0.5], 0.5, round=2, phase="done", position_index=1, seconds=30.0,
                            stop_reason=reason)
        for key, value in extra.items():
            setattr(state, key, value)
        return state

    layout = Layout(0, 2, 1)
    state = done("time-budget", stopped_in="personal")
    assert reopen(state, layout, True, 2, 60.0) is None
    assert (state.phase, state.round, state.position_index, state.stop_reason, state.stopped_in) == (
        "personal", 2, 1, None, None)
    state = done("max-rounds")
    assert reopen(state, layout, True, 3, None) is None
    assert (state.phase, state.round, state.position_index, state.stop_reason) == ("shared", 3, 0, None)
    state = done("max-rounds")
    assert reopen(state, layout, False, 3, None) is None and state.phase == "personal"  # --no-shared
    for state, max_rounds, budget, why in [
        (done("max-rounds"), 2, None, "it stopped after round 2 of --max-rounds 2; give --max-rounds above it"),
        (done("time-budget", stopped_in="shared"), 2, 30.0,
         "it has already searched 30.0s; give a --time-budget above that"),
        (done("time-budget"), 2, 60.0, "its state does not record where the time budget stopped it (a run from "
                                       "before paprec recorded it)"),
        (done("converged"), 5, None, "it stopped (converged), which a larger budget does not change"),
    ]:
        before = state.to_json()
        assert reopen(state, layout, True, max_rounds, budget) == why
        assert state.to_json() == before  # left as it was
    stopped = SearchState(tokens, tokens, [0.5], 0.5, phase="personal")  # the schedule records the phase
    from paprec_cli.search.schedule import Schedule

    Schedule._stop(stopped, "time-budget")
    assert (stopped.phase, stopped.stopped_in) == ("done", "personal")
    assert SearchState.from_json(stopped.to_json()).stopped_in == "personal"


def test_resume_applies_and_records_a_new_budget(tiny_home: Home, tmp_path: Path) -> None:
    """An unfinished run (here: its manifest written, no step saved yet) takes a new --max-rounds and
    --time-budget: said on stderr, recorded in the manifest, and the search runs under them."""
    from paprec_cli.distributed import distributed
    from paprec_cli.plugins import load_registry
    from paprec_cli.search import runner

    run = tmp_path / "run"
    request = runner.SearchRequest("sequential", "synthetic", val_users=12, grad_examples=24, batch_size=64,
                                   max_rounds=1, n_suffix=1, protocol="paper", run_dir=run, seed=3)
    with distributed("cpu") as dist:
        runner.start(request, tiny_home, load_registry(), dist)
    code, _, err = invoke("search", "--resume", str(run), "--max-rounds", "2", "--time-budget", "600",
                          "--home", str(tiny_home.root), "--device", "cpu")
    assert code == 0, err
    assert "--max-rounds 2: applied on resume (the run started with 1)" in err
    assert "--time-budget 600.0: applied on resume (the run started with not set (the default))" in err
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert (config["max_rounds"], config["time_budget"]) == (2, 600.0)
    state = json.loads((run / "state.json").read_text())
    assert state["phase"] == "done" and (state["round"] == 2 or state["stop_reason"] == "converged")


# -- 2. --run-dir at a model folder --------------------------------------------------------------------------
def test_run_dir_at_a_model_folder_is_refused_even_with_force(tiny_home: Home, tmp_path: Path) -> None:
    folder = tiny_home.model_dir("synthetic-tiny-atomic")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}
    names = ("model.safetensors", "codec.json", "tokenizer.json")
    files = ", ".join(name for name in names if (folder / name).exists())
    for force in ([], ["--force"]):
        code, stdout, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(folder), *force, "--json")
        assert code == 2 and last_line(err) == (
            f"Error: --run-dir {folder}: not a run folder (it is a model folder: it holds config.json, {files}); "
            "choose a new or empty folder for --run-dir"), err
        assert last_json(stdout)["exit_code"] == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"} == before
    hf = tmp_path / "hf"  # a Hugging Face T5 folder too
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "t5"}')
    (hf / "pytorch_model.bin").write_bytes(b"x")
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(hf), "--force")
    assert code == 2 and "it is a model folder: it holds config.json, pytorch_model.bin" in err
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "pytorch_model.bin"]
    alone = tmp_path / "alone"  # a config.json alone is not a model: --force writes beside it
    alone.mkdir()
    (alone / "config.json").write_text("{}")
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(alone), "--force")
    assert code == 0, err


# -- 3. NaN/Inf weights with a matching checksum -------------------------------------------------------------
def _copy_model(home: Home, name: str) -> Path:
    import shutil

    folder = home.model_dir(name)
    shutil.copytree(home.model_dir("synthetic-tiny-atomic"), folder, ignore=shutil.ignore_patterns(".lock"))
    return folder


def _rewrite_weights(folder: Path, change: str) -> str:
    """Put a NaN or inf into the first floating-point tensor and record the new sha256 in config.json; returns
    that tensor's name."""
    from safetensors.torch import load_file

    from paprec_cli.model.weights import save_safetensors_sorted
    from paprec_cli.paths import sha256_file

    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key][0] = float(change)
    save_safetensors_sorted(state, weights, {"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["weights_sha256"] = sha256_file(weights)
    (folder / "config.json").write_text(json.dumps(config))
    return key


@pytest.mark.parametrize("change", ["nan", "inf"])
def test_weights_that_are_not_finite_are_refused_on_load(tiny_home: Home, change: str) -> None:
    name = f"bad-{change}"
    folder = _copy_model(tiny_home, name)
    key = _rewrite_weights(folder, change)
    for args in (["recommend", "--dataset", "synthetic", "--user", "1", "--model", name],
                 [*SEARCH, "--model", name]):
        code, _, err = invoke(*args, "--home", str(tiny_home.root), "--device", "cpu")
        line = last_line(err)
        assert code == 2 and line.startswith(f"Error: {folder / 'model.safetensors'}: tensor '{key}' holds "), (
            args, err)
        assert "NaN or infinite value(s)" in line and f"--name {name} --force" in line, line
        assert len(err.strip().splitlines()) == 1


def test_check_finite_names_the_tensor_and_the_fix(tmp_path: Path) -> None:
    import torch

    from paprec_cli.errors import PaprecError
    from paprec_cli.model.weights import REEXPORT, check_finite

    state = {"a": torch.zeros(3), "ids": torch.tensor([1, 2]), "b": torch.tensor([0.0, float("-inf"), float("nan")])}
    with pytest.raises(PaprecError) as err:
        check_finite(tmp_path / "w.pth", state, REEXPORT)
    assert str(err.value) == (f"{tmp_path / 'w.pth'}: tensor 'b' holds 2 NaN or infinite value(s) of 3; the model "
                              f"cannot be used: {REEXPORT}")
    check_finite(tmp_path / "w.pth", {"a": torch.zeros(2)}, REEXPORT)  # finite: nothing raised


# -- 4. models list and tokenizer.json ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["missing", "garbled", "other-size", "edited"])
def test_models_list_shows_a_damaged_tokenizer_as_broken(tiny_home: Home, tmp_path: Path, damage: str) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home.root, home, ignore=shutil.ignore_patterns(".lock"))
    good, bad = home / "models" / "synthetic-tiny-atomic", home / "models" / "copy"
    shutil.copytree(good, bad)
    tokenizer = bad / "tokenizer.json"
    if damage == "missing":
        tokenizer.unlink()
    elif damage == "garbled":
        tokenizer.write_text(tokenizer.read_text()[:200])
    elif damage == "other-size":  # a valid tokenizer of another size (another model's)
        doc = json.loads(tokenizer.read_text())
        doc["added_tokens"].append({**doc["added_tokens"][-1], "id": 999999, "content": "<zz>"})
        tokenizer.write_text(json.dumps(doc))
    else:  # the same size, two words' ids swapped: every prompt with them would read other tokens
        doc = json.loads(tokenizer.read_text())
        vocab = doc["model"]["vocab"]
        if isinstance(vocab, list):  # Unigram: [piece, score] by id
            vocab[10], vocab[11] = vocab[11], vocab[10]
        else:  # BPE / WordLevel: piece -> id
            a, b = list(vocab)[10:12]
            vocab[a], vocab[b] = vocab[b], vocab[a]
        tokenizer.write_text(json.dumps(doc))
    code, stdout, err = invoke("models", "list", "--home", str(home), "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in last_json(stdout)["models"]}
    assert rows["synthetic-tiny-atomic"]["broken"] is None
    broken = rows["copy"]["broken"]
    assert broken is not None and broken.startswith(f"{tokenizer}: "), broken
    assert {"missing": ": missing;", "garbled": "not a valid tokenizer.json",
            "other-size": "does not match codec.json's text_vocab_size",
            "edited": "not the tokenizer this model was trained with"}[damage] in broken
    assert "; restore the file, or retrain the model (`paprec train " in broken, broken
    # loading it says the same (search, recommend, eval load through PromptCodec.load)
    code, _, err = invoke("recommend", "--dataset", "synthetic", "--user", "1", "--model", "copy",
                          "--home", str(home), "--device", "cpu")
    assert code == 2 and last_line(err) == f"Error: {broken}"


# -- 5. the retrain command of a broken model runs as printed --------------------------------------------------


def _broken_copy(tiny_home: Home, tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home.root, home, ignore=shutil.ignore_patterns(".lock", "*.lock"))
    bad = home / "models" / "m7"
    shutil.copytree(home / "models" / "synthetic-tiny-atomic", bad)
    (bad / "model.safetensors").unlink()
    return home, bad


def _fix_command(home: Path) -> str:
    code, stdout, err = invoke("models", "list", "--home", str(home), "--json")
    assert code == 0, err
    broken = {row["name"]: row for row in last_json(stdout)["models"]}["m7"]["broken"]
    head, _, command = broken.partition("restore the file, or retrain the model (`")
    assert head and command.endswith("`)"), broken
    return command[:-2]


def test_a_broken_models_fix_is_the_exact_train_command(tiny_home: Home, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """training.json records the run's options: the printed command gives them back (name aside), --force."""
    import shlex
    from dataclasses import replace

    from paprec_cli.training.setup import new_options

    home, bad = _broken_copy(tiny_home, tmp_path)
    options = new_options(dataset="synthetic", tasks=["sequential", "direct"], size="tiny", ids="atomic", name="m7",
                          seed=7, time_budget=None, init=None, overrides={"epochs": 3, "lr": 0.002},
                          settings={"item_head": "untied", "hint": 0.5})
    (bad / "training.json").write_text(json.dumps({"name": "m7", "options": options.to_json()}))
    command = _fix_command(home)
    assert command.startswith("paprec train --dataset synthetic --tasks sequential,direct --size tiny --ids atomic "
                              "--seed 7 ") and command.endswith(f"--name m7 --home {home} --force"), command
    assert "..." not in command
    again = parsed_train_options(shlex.split(command)[1:], monkeypatch)
    assert replace(again, name="m7") == options, command  # type: ignore[type-var]


def test_a_broken_models_fix_from_config_json_alone(tiny_home: Home, tmp_path: Path) -> None:
    """Without training.json: the command from config.json's facts; without a size paprec trains, the shape."""
    home, bad = _broken_copy(tiny_home, tmp_path)
    assert "--size SIZE --name m7 --force` with the dataset, size and options it was trained with" in \
        invoke("models", "list", "--home", str(home), "--json")[1]  # the test model's size is "custom"
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "size": "tiny", "seed": 5, "tasks": ["sequential"],
                                                 "negatives": 49, "item_head": "untied"}))
    assert _fix_command(home) == ("paprec train --dataset synthetic --tasks sequential --size tiny --ids atomic "
                                  "--seed 5 -o negatives=49 -o item_head=untied -o seen_bias=0 --name m7 "
                                  f"--home {home} --force")  # no bias, which synthetic tiny now learns by default


# -- 6. an edited config.json of an untied model ----------------------------------------------------------------
@pytest.fixture(scope="module")
def untied_home(tiny_home: Home) -> Home:
    """The tiny home with an untied copy of its model (`untied`), as `-o item_head=untied` trains one."""
    from paprec_cli.model import load_model, save_model

    bundle = load_model("synthetic-tiny-atomic", tiny_home)
    bundle.model.untie_items(bundle.codec.item_offset, bundle.codec.n_items)
    bundle.config["item_head"] = "untied"
    save_model(bundle, tiny_home.model_dir("untied"))
    return tiny_home


RECOMMEND = ["recommend", "--dataset", "synthetic", "--user", "1", "--device", "cpu"]


def _with_config(home: Home, source: str, name: str, change: dict[str, object], drop: str | None = None) -> Path:
    folder = _copy_model_from(home, source, name)
    config = {**json.loads((folder / "config.json").read_text()), **change}
    if drop:
        config.pop(drop)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _copy_model_from(home: Home, source: str, name: str) -> Path:
    import shutil

    folder = home.model_dir(name)
    shutil.copytree(home.model_dir(source), folder, ignore=shutil.ignore_patterns(".lock"))
    return folder


def test_an_untied_model_loads(untied_home: Home) -> None:
    code, _, err = invoke(*RECOMMEND, "--model", "untied", "--home", str(untied_home.root))
    assert code == 0, err


@pytest.mark.parametrize(("source", "change", "drop", "said"), [
    ("untied", {"item_head": "tied"}, None,
     "records item_head 'tied', but model.safetensors holds an untied item head"),
    ("untied", {}, "item_head", "records no item_head (tied), but model.safetensors holds an untied item head"),
    ("synthetic-tiny-atomic", {"item_head": "untied"}, None,
     "records item_head 'untied', but model.safetensors holds no item head of its own (tied)"),
])
def test_an_edited_item_head_names_config_json(untied_home: Home, source: str, change: dict[str, object],
                                               drop: str | None, said: str) -> None:
    name = f"edited-{len(said)}-{drop}"
    folder = _with_config(untied_home, source, name, change, drop)
    code, _, err = invoke(*RECOMMEND, "--model", name, "--home", str(untied_home.root))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {folder / 'config.json'}: {said} (config.json edited or damaged); "
                                         "restore the file, or retrain the model"), line


def test_edited_dims_of_an_untied_model_name_config_json(untied_home: Home) -> None:
    config = json.loads((untied_home.model_dir("untied") / "config.json").read_text())
    folder = _with_config(untied_home, "untied", "edited-dims", {"dims": {**config["dims"], "d_ff": 48}})
    code, _, err = invoke(*RECOMMEND, "--model", "edited-dims", "--home", str(untied_home.root))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {folder / 'config.json'}: does not describe the weights in "
                                         "model.safetensors (tensor '"), line
    assert "the model expects" in line and "they match config.json's weights_sha256, so config.json was edited or " \
        "damaged); restore the file, or retrain the model" in line, line
    _with_config(untied_home, "untied", "bad-head", {"item_head": "loose"})  # not a value: the schema names it
    code, _, err = invoke(*RECOMMEND, "--model", "bad-head", "--home", str(untied_home.root))
    assert code == 2 and str(untied_home.model_dir("bad-head") / "config.json") in last_line(err), err
    assert "item_head" in last_line(err)


# -- 7. the guarded history start's line comes when it is decided ----------------------------------------------
def test_history_start_note_comes_before_the_rounds(tiny_home: Home, tmp_path: Path) -> None:
    args = [a for a in SEARCH if a not in ("-q",)]
    args[args.index("paper")] = "guarded"
    code, _, err = invoke(*args, "--home", str(tiny_home.root), "--run-dir", str(tmp_path / "run"))
    assert code == 0, err
    lines = err.splitlines()
    note = [i for i, line in enumerate(lines) if line.startswith("--personal-init auto: ")]
    steps = [i for i, line in enumerate(lines) if line.startswith("search: round ")]
    stopped = [i for i, line in enumerate(lines) if line.startswith("Search stopped")]
    assert len(note) == 1 and steps and stopped, err
    assert note[0] < steps[0] < stopped[0], err


def test_observer_gets_the_note_before_the_first_step(tiny_home: Home) -> None:
    """`runner.search` hands the decision to its observer as a note record, before any step record."""
    from paprec_cli.plugins import load_registry
    from paprec_cli.search import runner
    from paprec_cli.search.config import SearchConfig, protocol_options

    model = str(tiny_home.model_dir("synthetic-tiny-atomic"))
    config = SearchConfig(task="sequential", dataset="synthetic", model=model, val_users=12,
                          grad_examples=24, batch_size=64, n_suffix=1,
                          **protocol_options("guarded", init="random", max_rounds=1))
    session = runner.prepare(config, load_registry(), tiny_home, "cpu")
    seen: list[dict[str, object]] = []
    state = runner.search(session, None, None, lambda _state, record: seen.append(record))
    assert state.history_start is not None and seen and set(seen[0]) == {"note"}
    assert seen[0]["note"] == runner.history_start_note(state)
    assert all("note" not in record for record in seen[1:]) and len(seen) > 1


# -- 8. models info shows the item head ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "head"), [("untied", "untied"), ("synthetic-tiny-atomic", "tied")])
def test_models_info_shows_the_item_head(untied_home: Home, name: str, head: str) -> None:
    code, stdout, err = invoke("models", "info", name, "--home", str(untied_home.root))
    assert code == 0, err
    rows = [line for line in stdout.splitlines() if "item_head" in line]
    assert len(rows) == 1 and re.fullmatch(rf"\|\s*item_head\s*\|\s*{head}\s*\|", rows[0]), stdout
    code, stdout, err = invoke("models", "info", name, "--home", str(untied_home.root), "--json")
    assert code == 0, err
    info = last_json(stdout)
    assert set(info) == {"name", "path", "item_head", "seen_bias", "config", "training", "unfinished"}
    assert info["item_head"] == head and info["seen_bias"] is None  # neither model learned a seen bias
    assert info["unfinished"] is None  # a finished run


def test_run_dir_refuses_the_homes_own_folders(tmp_path: Path) -> None:
    from paprec_cli.paths import Home
    from paprec_cli.search.rundir import RunDir

    home = Home(tmp_path / "home")
    for folder in (home.root, home.runs, home.data, home.models, home.models / "new-run", home.data / "x" / "y",
                   home.models / ".train-state" / "m"):
        folder.mkdir(parents=True, exist_ok=True)
        with pytest.raises(PaprecError, match="paprec home"):
            RunDir.check_new(folder, force=True, home=home)
    RunDir.check_new(home.runs / "my-run", home=home)  # a run's own folder under runs/ is fine
    RunDir.check_new(tmp_path / "elsewhere", home=home)


def test_a_folder_with_only_a_state_file_is_not_offered_for_resume(tmp_path: Path) -> None:
    from paprec_cli.search.rundir import RunDir

    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(PaprecError, match="no manifest.json, so it is not a run") as err:
        RunDir.check_new(tmp_path, force=True)
    assert "--resume" not in str(err.value)


def test_the_fix_command_keeps_history_hint() -> None:
    from dataclasses import fields

    from paprec_cli.training.command import MIXTURE_SETTINGS
    from paprec_cli.training.mixture import Mixture
    from paprec_cli.training.setup import TRAIN_SETTINGS

    mixture_settings = {k for k in TRAIN_SETTINGS if k in {f.name for f in fields(Mixture)}}
    assert mixture_settings <= set(MIXTURE_SETTINGS)  # every -o mixture setting is written back
