"""`paprec train` and `paprec models` end to end on a very small synthetic dataset (tiny model, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paprec_cli.cli import app

pytestmark = pytest.mark.slow
FAST = ["--size", "tiny", "--tasks", "sequential", "--val-users", "20", "--device", "cpu", "--batch-size", "32"]


def _run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-home")
    code, _, err = _run(CliRunner(), "data", "import", "synthetic", "--home", str(root), "-q",
                        "-o", "users=40", "-o", "items=120", "-o", "categories=4", "-o", "length=7")  # fmt: skip
    assert code == 0, err
    return root


@pytest.fixture(scope="module")
def trained(home: Path) -> dict:
    code, out, err = _run(CliRunner(), "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--name", "m1",
                          "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    return _last_json(out)


def test_train_json_shape(trained: dict) -> None:
    assert set(trained) >= {"model", "test", "validation", "baselines", "sensitivity", "epochs", "seconds"}
    assert trained["epochs"] == 1 and trained["stopped"] == "epochs"
    assert set(trained["test"]["sequential"]) == {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"}
    assert set(trained["baselines"]) == {"popularity", "item_knn"}
    assert "HR@10" in trained["baselines"]["item_knn"]["sequential"]
    seq = trained["sensitivity"]["sequential"]
    assert "2-13 (held out)" in seq["templates"] and "argument_only" in seq
    assert {"taste_word", "unrelated_word", "taste_ranks_higher_share"} <= set(seq["taste"])


def test_model_folder_loads_and_ranks(trained: dict, home: Path) -> None:
    from paprec_cli.model import Recommender, load_model
    from paprec_cli.paths import Home
    from paprec_cli.specs import Word

    folder = Path(trained["model"])
    record = json.loads((folder / "training.json").read_text())
    assert record["dataset"]["name"] == "synthetic" and record["protocol"]["dataset_fingerprint"]
    assert len(record["history"]) == 1 and record["ids"] == "atomic"
    bundle = load_model("m1", Home.resolve(home))
    recommender = Recommender(bundle.model, bundle.codec, "cpu")
    batch = bundle.codec.collate([bundle.codec.encode([Word.user(1), Word(":"), Word.item(3)])])
    ranked = recommender.rank_all(batch, 10)
    assert ranked.shape == (1, 10) and int(ranked.min()) >= 1


def test_models_list_and_info(trained: dict, home: Path) -> None:
    runner = CliRunner()
    code, out, err = _run(runner, "models", "list", "--home", str(home), "--json")
    assert code == 0, err
    names = [m["name"] for m in _last_json(out)["models"]]
    assert "m1" in names
    code, out, err = _run(runner, "models", "info", "m1", "--home", str(home), "--json")
    assert code == 0, err
    info = _last_json(out)
    assert info["training"]["tasks"] == ["sequential"] and info["config"]["id_scheme"] == "atomic"
    code, _, err = _run(runner, "models", "info", "nope", "--home", str(home))
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


def test_resume_continues_from_the_last_epoch(trained: dict, home: Path) -> None:
    code, out, err = _run(CliRunner(), "train", "--resume", "m1", "--epochs", "2", "--home", str(home), "--json")
    assert code == 0, err
    result = _last_json(out)
    assert result["epochs"] == 2
    record = json.loads((home / "models" / "m1" / "training.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2]


def test_time_budget_stops_cleanly(home: Path) -> None:
    code, out, err = _run(CliRunner(), "train", "--dataset", "synthetic", *FAST, "--epochs", "50", "--time-budget",
                          "0.5", "--name", "budget", "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    result = _last_json(out)
    assert result["stopped"] == "time_budget" and result["epochs"] == 1
    assert (Path(result["model"]) / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "synthetic", "--size", "huge"], "--size"),
        (["--dataset", "synthetic", "--ids", "letters"], "--ids"),
        (["--dataset", "synthetic", "--tasks", "nope"], "nope"),
        (["--dataset", "synthetic", "--lr", "-1"], "--lr"),
        (["--dataset", "synthetic", "--time-budget", "0"], "--time-budget"),
        (["--dataset", "beauty"], "paprec data import"),
        (["--resume", "never-trained"], "--resume"),
        (["--resume", "m1", "--size", "small"], "--size"),
        (["--dataset", "synthetic", "--item-init", "svd"], "--item-init"),
        (["--dataset", "synthetic", "--ids", "subword", "--item-init", "cooccurrence"], "--item-init"),
        (["--resume", "m1", "--item-init", "random"], "--item-init"),
        (["--dataset", "synthetic", "-o", "history=0"], "-o history"),
        (["--resume", "m1", "-o", "recent=5"], "-o recent"),
        (["--dataset", "synthetic", "-o", "item_head=loose"], "-o item_head"),
        (["--dataset", "synthetic", "--ids", "subword", "-o", "item_head=untied"], "item_head=untied needs atomic ids"),
        (["--resume", "m1", "-o", "item_head=untied"], "-o item_head"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], needle: str, home: Path, trained: dict) -> None:
    code, _, err = _run(CliRunner(), "train", *args, "--home", str(home))
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_item_init_is_recorded_and_subword_falls_back_to_random(home: Path) -> None:
    """tiny's default (co-occurrence rows) is recorded; subword ids, which have no row per item, record
    "random" rather than claiming an init that did not happen."""
    records = {}
    for ids in ("atomic", "subword"):
        code, out, err = _run(CliRunner(), "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--ids", ids,
                              "--name", f"init-{ids}", "--home", str(home), "--json")  # fmt: skip
        assert code == 0, err
        folder = Path(_last_json(out)["model"])
        records[ids] = json.loads((folder / "training.json").read_text())["options"]["recipe"]["item_init"]
    assert records == {"atomic": "cooccurrence", "subword": "random"}


def test_a_shorter_history_is_recorded_and_used_by_eval_and_recommend(home: Path) -> None:
    """`-o history=3`: the model's config records it, its test prompts show 3 items, and serving reads it."""
    code, out, err = _run(CliRunner(), "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "-o", "history=3",
                          "-o", "recent=2", "-o", "seen_penalty=1", "--name", "short", "--home", str(home),
                          "--json")  # fmt: skip
    assert code == 0, err
    folder = Path(_last_json(out)["model"])
    config = json.loads((folder / "config.json").read_text())
    record = json.loads((folder / "training.json").read_text())
    assert config["input_history"] == 3 and record["protocol"]["inputs"]["history"] == 3
    assert record["options"]["mixture"]["recent"] == 2 and record["options"]["recipe"]["seen_penalty"] == 1.0
    code, out, err = _run(CliRunner(), "recommend", "--dataset", "synthetic", "--model", "short", "--user", "1",
                          "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    text = _last_json(out)["prompt"]["text"]
    assert text.count(" , ") == 2, text  # 3 items, 2 separators (users of this dataset have 7 items)


def test_untied_item_head_trains_resumes_and_ranks(home: Path) -> None:
    """`-o item_head=untied` end to end: the saved model records it, loads with its own item rows (which
    training moved away from the input rows), resumes, and `recommend` ranks with it."""
    import torch

    from paprec_cli.model import load_model

    runner = CliRunner()
    code, out, err = _run(runner, "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--name", "untied",
                          "-o", "item_head=untied", "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    folder = Path(_last_json(out)["model"])
    assert json.loads((folder / "config.json").read_text())["item_head"] == "untied"
    bundle = load_model(folder)
    head, codec = bundle.model.item_head, bundle.codec
    assert head is not None
    rows = bundle.model.t5.shared.weight[codec.item_offset : codec.item_offset + codec.n_items]
    assert not torch.allclose(head, rows)  # started as a copy, trained apart
    code, out, err = _run(runner, "train", "--resume", "untied", "--epochs", "2", "--home", str(home), "--json")
    assert code == 0, err
    assert _last_json(out)["epochs"] == 2
    code, out, err = _run(runner, "recommend", "--dataset", "synthetic", "--model", "untied", "--user", "3",
                          "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    # a model started from it (--init) keeps its head, and resumes with it
    code, out, err = _run(runner, "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--init", "untied",
                          "--name", "from-untied", "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    code, out, err = _run(runner, "train", "--resume", "from-untied", "--epochs", "2", "--home", str(home), "--json")
    assert code == 0, err
    assert load_model(Path(_last_json(out)["model"])).model.item_head is not None


def test_an_interrupted_runs_model_says_so_where_it_is_read(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh-user review found an interrupted run's model folder (its best epoch so far, no test report) shown
    as "an imported or initialised model" and searched without a word. `models list` / `models info` name the
    interruption and the resume command; `search` and `eval` warn; a finished resume clears it."""
    from paprec_cli.training import run

    original = run._end_epoch

    def stop_after_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_end_epoch", stop_after_first)
    runner = CliRunner()
    code, _, err = _run(runner, "train", "--dataset", "synthetic", *FAST, "--epochs", "2", "--name", "cut",
                        "--home", str(home))  # fmt: skip
    assert code == 130, err
    monkeypatch.setattr(run, "_end_epoch", original)
    code, out, err = _run(runner, "models", "list", "--home", str(home), "--json")
    assert code == 0, err
    row = next(m for m in _last_json(out)["models"] if m["name"] == "cut")
    assert "interrupted after epoch 1 of 2" in row["unfinished"] and "paprec train --resume cut" in row["unfinished"]
    assert all(m["unfinished"] is None for m in _last_json(out)["models"] if m["name"] == "m1")
    code, out, err = _run(runner, "models", "info", "cut", "--home", str(home))
    assert code == 0 and "interrupted after epoch 1 of 2" in out.replace("\n", " ") and "imported" not in out
    code, out, err = _run(runner, "search", "--task", "sequential", "--dataset", "synthetic", "--model", "cut",
                          "--val-users", "12", "--grad-examples", "24", "--batch-size", "64", "--max-rounds", "1",
                          "--n-personal", "1", "--n-suffix", "1", "--device", "cpu", "--protocol", "paper",
                          "--home", str(home), "--json")  # fmt: skip
    assert code == 0, err
    assert "warning: model 'cut': training interrupted after epoch 1 of 2" in err
    run_path = _last_json(out)["run"]
    code, _, err = _run(runner, "eval", run_path, "--home", str(home), "--references", "none", "--json")
    assert code == 0 and "warning: model 'cut'" in err
    code, _, err = _run(runner, "train", "--resume", "cut", "--home", str(home), "--json")
    assert code == 0, err
    code, out, err = _run(runner, "models", "list", "--home", str(home), "--json")
    assert next(m for m in _last_json(out)["models"] if m["name"] == "cut")["unfinished"] is None


def test_a_resumed_run_trains_the_same_model_as_an_uninterrupted_one(home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's promise: a run interrupted after epoch 1 and resumed records the same losses, learning rates
    and validation metrics, epoch by epoch, as the same run left alone, even when the resume starts on a machine
    where `cpu_threads` would pick another thread count (a fresh-user review saw epoch 2's loss differ)."""
    import torch

    from paprec_cli.training import run

    args = ["--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential,rating", "--val-users", "20",
            "--device", "cpu", "--batch-size", "32", "--epochs", "3", "-o", "hint=0.5", "--home", str(home)]
    runner = CliRunner()
    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def one_thread(device: str) -> int:  # `cpu_threads` picks by timing: say a busy machine chose one thread
        torch.set_num_threads(1)
        return 1

    monkeypatch.setattr(run, "cpu_threads", one_thread)
    code, _, err = _run(runner, "train", *args, "--name", "whole", "--json")
    assert code == 0, err
    original = run._end_epoch

    def stop_after_first(session, trainer, epoch, *rest, **kwargs):  # type: ignore[no-untyped-def]
        improved = original(session, trainer, epoch, *rest, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt
        return improved

    monkeypatch.setattr(run, "_end_epoch", stop_after_first)
    code, _, err = _run(runner, "train", *args, "--name", "cut2")
    assert code == 130, err
    monkeypatch.setattr(run, "_end_epoch", original)

    def two_threads(device: str) -> int:  # ... and the resume, on a quieter machine, two
        torch.set_num_threads(2)
        return 2

    monkeypatch.setattr(run, "cpu_threads", two_threads)
    try:
        code, _, err = _run(runner, "train", "--resume", "cut2", "--home", str(home), "--json")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    assert "CPU threads: 1, as the run's earlier epochs used" in err
    whole, cut = ([(h["loss"], h["lr"], h["validation"], h["threads"]) for h in
                   json.loads((home / "models" / name / "training.json").read_text())["history"]]
                  for name in ("whole", "cut2"))
    assert len(whole) == 3 and whole == cut and {h[3] for h in cut} == {1}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--lr", "0.01"], "--lr 0.01: the run being resumed trains with 0.0005"),
        (["--dropout", "0.3"], "--dropout 0.3: the run being resumed trains with 0.1"),
        (["--val-users", "10"], "--val-users 10: the run being resumed trains with 20"),
        (["-o", "warmup=0.2"], "-o warmup=0.2: the run being resumed trains with 0.05"),
        (["--seed", "5"], "--seed 5: the run being resumed used 0"),
        (["--name", "other"], "--name other: the run being resumed used m1"),
    ],
)
def test_resume_refuses_what_would_train_another_model(trained: dict, home: Path, extra: list[str],
                                                         needle: str) -> None:
    """A second fresh review resumed with --lr 0.01 --batch-size 64 and got no word while the model changed and
    training.json recorded the new values for every epoch: only the stopping rules may change on a resume."""
    before = (home / "models" / "m1" / "training.json").read_bytes()
    code, _, err = _run(CliRunner(), "train", "--resume", "m1", "--epochs", "3", *extra, "--home", str(home))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert (home / "models" / "m1" / "training.json").read_bytes() == before


def test_a_missing_best_checkpoint_is_found_before_any_epoch(home: Path) -> None:
    """The best epoch's weights are read only for the closing test report; a resume found them missing after
    training every remaining epoch. Now it stops before the first."""
    runner = CliRunner()
    code, _, err = _run(runner, "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--name", "nobest",
                        "--home", str(home))  # fmt: skip
    assert code == 0, err
    (home / "models" / ".train-state" / "nobest" / "best.safetensors").unlink()
    code, _, err = _run(runner, "train", "--resume", "nobest", "--epochs", "2", "--home", str(home))
    assert code == 2 and "best.safetensors: not readable, truncated or damaged" in err and "epoch 2" not in err, err


def test_a_checkpoint_changed_in_place_is_refused(home: Path) -> None:
    """The second review overwrote 4 bytes inside `last.safetensors` (same size, valid header) and the resume
    trained on with a loss of 2e12. `save_state` records each weight file's SHA-256; a changed file is refused."""
    runner = CliRunner()
    code, _, err = _run(runner, "train", "--dataset", "synthetic", *FAST, "--epochs", "1", "--name", "flipped",
                        "--home", str(home))  # fmt: skip
    assert code == 0, err
    state = home / "models" / ".train-state" / "flipped"
    assert set(json.loads((state / "checksums.json").read_text())) == {"last.safetensors", "best.safetensors"}
    last = state / "last.safetensors"
    data = bytearray(last.read_bytes())
    data[len(data) - 64 : len(data) - 60] = b"\xff\xff\xff\x7f"  # inside the tensor data, not the header
    last.write_bytes(bytes(data))
    code, _, err = _run(runner, "train", "--resume", "flipped", "--epochs", "2", "--home", str(home))
    assert code == 2 and "last.safetensors: not readable, truncated or damaged" in err, err
    assert "differs from the SHA-256 recorded when it was saved" in err and "epoch 2" not in err
