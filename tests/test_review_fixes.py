"""Tracebacks and silences a review found (issue #16 follow-up): @10 metrics on fewer than 10 items, numpy
warnings when every rating output is not a number, `--decoding p5` counts, HTML entities in McAuley titles."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, last_json, tiny_model

from paprec_cli.paths import Home


def _one_error_free(code: int, err: str) -> None:
    assert code == 0 and "Traceback" not in err and "Warning" not in err, err


# -- fewer than 10 items -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV dataset of 30 users and 8 items (6 interactions each) and an untrained tiny model on it."""
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import build_codec, create_model, save_model
    from paprec_cli.plugins import load_registry

    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    rows = [f"u{u},i{i},{int(rng.integers(1, 6))},{t}" for u in range(30)
            for t, i in enumerate(rng.choice(8, size=6, replace=False))]
    source = root / "small.csv"
    source.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    code, _, err = invoke("data", "import", "csv", "--from", str(source), "--home", str(root / "home"), "-q")
    assert code == 0, err
    home = Home.resolve(root / "home")
    dataset = load_dataset(home, "csv")
    texts = [t.source for entry in load_registry().tasks.values() for t in entry.spec.templates]
    codec = build_codec(dataset, "atomic", texts, vocab_size=300)
    bundle = create_model({"d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64}, codec, seed=0)
    save_model(bundle, home.model_dir("csv-tiny-atomic"))
    return root / "home"


def test_eval_on_a_dataset_with_fewer_than_10_items(small_home: Path) -> None:
    """`paprec eval` (and the baselines it reports) tracebacked on 8 items: "ranked lists have 8 items; @10
    metrics need at least 10". HR@10 with 10 >= the 8 items is "the target is in the list": 1.0 for every
    ranker that lists every item."""
    run = small_home / "runs" / "r"
    code, _, err = invoke("search", "--task", "sequential", "--dataset", "csv", "--val-users", "10",
                          "--max-rounds", "1", "--n-suffix", "1", "--n-personal", "0", "--device", "cpu",
                          "--home", str(small_home), "--run-dir", str(run), "-q")
    _one_error_free(code, err)
    code, out, err = invoke("eval", str(run), "--device", "cpu", "--home", str(small_home), "--json")
    _one_error_free(code, err)
    results = last_json(out)["results"]
    for variant in ("manual", "shared"):
        test = results[variant]["test"]
        assert test["HR@10"] == 1.0 and 0.0 <= test["HR@5"] <= 1.0 and test["NDCG@10"] >= test["NDCG@5"]


@pytest.mark.slow
def test_train_on_a_dataset_with_fewer_than_10_items(small_home: Path) -> None:
    code, out, err = invoke("train", "--dataset", "csv", "--size", "tiny", "--tasks", "sequential", "--epochs", "1",
                            "--val-users", "10", "--device", "cpu", "--name", "t8", "--home", str(small_home),
                            "--json")
    _one_error_free(code, err)
    result = last_json(out)
    assert result["test"]["sequential"]["HR@10"] == 1.0
    for baseline in ("popularity", "item_knn"):
        assert result["baselines"][baseline]["sequential"]["HR@10"] == 1.0


# -- every rating output not a number ----------------------------------------------------------------------
def test_overall_and_paired_z_with_non_numbers_emit_no_warning() -> None:
    from paprec_cli.search.schedule import overall, paired_z

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        # a user of weight 0 whose output is not a number (-inf) does not count (it made the value NaN)
        assert overall([-1.0, -math.inf], np.array([2.0, 0.0])) == -1.0
        assert overall([-math.inf, -math.inf], np.array([1.0, 1.0])) == -math.inf
        assert math.isnan(overall([-1.0], np.array([0.0])))
        assert math.isnan(paired_z(np.array([-math.inf, -1.0]), np.array([-math.inf, -2.0])))  # never confirmed
        assert paired_z(np.array([2.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(1.5 / (0.5 ** 0.5 / 2 ** 0.5))


@pytest.mark.slow
def test_rating_search_with_every_output_not_a_number_prints_no_numpy_warning(tmp_path: Path) -> None:
    """An untrained model read as decoded numbers gives no number for any user: the search and eval still end
    normally (RMSE shown as `-`), and no numpy RuntimeWarning reaches the terminal."""
    from paprec_cli.model import save_model

    home, _, bundle, _ = tiny_model(tmp_path / "home", {"users": "40", "items": "30", "categories": "4",
                                                        "length": "8"}, "atomic", 300)
    bundle.codec.rating_readout = "decoded"
    save_model(bundle, home.model_dir("synthetic-tiny-atomic"))
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for protocol in ("paper", "guarded"):
            code, _, err = invoke("search", "--task", "rating", "--dataset", "synthetic", "--val-users", "12",
                                  "--grad-examples", "24", "--max-rounds", "1", "--n-suffix", "1", "--n-personal",
                                  "1", "--device", "cpu", "--home", str(home.root), "--run-dir",
                                  str(run / protocol), "-q", "--protocol", protocol)
            _one_error_free(code, err)
        code, out, err = invoke("eval", str(run / "paper"), "--device", "cpu", "--home", str(home.root), "--json")
    _one_error_free(code, err)
    assert last_json(out)["results"]["manual"]["test"]["RMSE"] is None  # NaN -> null in --json
