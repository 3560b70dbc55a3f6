"""The protocol's splits and indexing: no held-out target leaks into training; ties and ids are explicit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from paprec_datasets import csv_dataset, synthetic

from paprec_cli.data.splits import N_NEGATIVES, TaskData
from paprec_cli.data.store import Dataset, import_dataset, load_dataset
from paprec_cli.paths import Home
from paprec_cli.specs import ImportOptions


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    home = Home(tmp_path_factory.mktemp("splits-home"))
    import_dataset(synthetic.SPEC, None, home, options=ImportOptions(seed=5, extra={"users": "150", "items": "120"}))
    return load_dataset(home, "synthetic")


def test_leave_one_out_train_never_contains_held_out_positions(synth: Dataset) -> None:
    data = TaskData(synth, seed=0)
    loo = data.loo
    table = synth.interactions
    lengths = dict(table.group_by("user_idx").len().iter_rows())
    for user in range(1, synth.n_users + 1):
        seq = synth.sequences[user]
        n = len(seq)
        assert n == lengths[user]
        assert np.array_equal(loo.train[user], seq[:-2])
        assert loo.validation[user] == seq[-2] and loo.test[user] == seq[-1]
        assert np.array_equal(loo.history(user, "validation"), seq[:-2])  # validation target unseen
        assert np.array_equal(loo.history(user, "test"), seq[:-1])  # test target unseen
    # Training interactions are exactly those before each user's last two positions.
    held_out = table.filter(pl.col("pos") >= pl.len().over("user_idx") - 2)
    train_counts = np.bincount(
        table.filter(pl.col("pos") < pl.len().over("user_idx") - 2)["item_idx"].to_numpy(), minlength=synth.n_items + 1
    )
    assert np.array_equal(data.train_popularity, train_counts)
    assert held_out.height == 2 * synth.n_users
    assert data.train_popularity.sum() == table.height - held_out.height


def test_held_out_items_absent_from_training_when_sequences_have_no_repeats(tmp_path: Path) -> None:
    rows = [f"u{u},i{(u + k) % 17},{k}" for u in range(10) for k in range(6)]  # distinct items per user
    path = tmp_path / "d.csv"
    path.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    home = Home(tmp_path / "home")
    import_dataset(csv_dataset.SPEC, path, home)
    loo = TaskData(load_dataset(home, "csv")).loo
    for user in range(1, 11):
        assert loo.validation[user] not in loo.train[user]
        assert loo.test[user] not in loo.train[user] and loo.test[user] != loo.validation[user]


def test_rating_split_partitions_interactions_and_is_seeded(synth: Dataset) -> None:
    split = TaskData(synth, seed=3).ratings
    parts = [split.train, split.validation, split.test]
    assert sum(p.height for p in parts) == synth.interactions.height
    keyed = [set(p.select("user_idx", "item_idx").iter_rows()) for p in parts]
    repeats = synth.interactions.height - synth.interactions.select("user_idx", "item_idx").unique().height
    # No (user, item) pair of validation/test is in training, except for genuine repeat interactions.
    assert len(keyed[0] & keyed[1]) + len(keyed[0] & keyed[2]) <= repeats
    fractions = np.array([p.height for p in parts]) / synth.interactions.height
    assert np.allclose(fractions, [0.8, 0.1, 0.1], atol=0.03)
    again = TaskData(synth, seed=3).ratings
    assert again.test.equals(split.test)
    assert not TaskData(synth, seed=4).ratings.test.equals(split.test)


def test_direct_candidates_positive_plus_unseen_negatives(synth: Dataset) -> None:
    data = TaskData(synth, seed=1)
    for user in (1, 7, 42):
        for part, target in (("validation", data.loo.validation[user]), ("test", data.loo.test[user])):
            cands = data.candidates(user, part)
            assert len(cands) == N_NEGATIVES + 1 and len(set(cands.tolist())) == N_NEGATIVES + 1
            negatives = [c for c in cands.tolist() if c != target]
            assert len(negatives) == N_NEGATIVES
            assert not set(negatives) & set(synth.sequences[user].tolist())
            assert np.array_equal(cands, TaskData(synth, seed=1).candidates(user, part))


def _ties_csv(tmp_path: Path) -> Path:
    # One user, all four interactions at the same time, written in the order 10, 9, 100, 2.
    path = tmp_path / "ties.csv"
    path.write_text("user,item,timestamp\nu,10,5\nu,9,5\nu,100,5\nu,2,5\nv,3,1\nv,1,2\n")
    return path


@pytest.mark.parametrize(
    ("tie_break", "expected"), [("source", ["10", "9", "100", "2"]), ("item", ["2", "9", "10", "100"])]
)
def test_tie_break_is_deterministic_and_recorded(tmp_path: Path, tie_break: str, expected: list[str]) -> None:
    home = Home(tmp_path / "home")
    path = _ties_csv(tmp_path)
    manifests = [
        import_dataset(csv_dataset.SPEC, path, home, name=f"t{i}", tie_break=tie_break)  # type: ignore[arg-type]
        for i in range(2)
    ]
    assert manifests[0]["tie_break"] == tie_break and manifests[0]["fingerprint"] == manifests[1]["fingerprint"]
    table = load_dataset(home, "t0").interactions.filter(pl.col("user") == "u").sort("pos")
    assert table["item"].to_list() == expected
    assert load_dataset(home, "t1").interactions.equals(load_dataset(home, "t0").interactions)


def test_default_tie_break_comes_from_the_spec(tmp_path: Path) -> None:
    manifest = import_dataset(csv_dataset.SPEC, _ties_csv(tmp_path), Home(tmp_path / "h"))
    assert manifest["tie_break"] == csv_dataset.SPEC.default_tie_break == "source"


def test_sequential_and_random_indexing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    opts = ImportOptions(seed=9, extra={"users": "40", "items": "60"})
    for name, indexing in (("s", "sequential"), ("r", "random"), ("r2", "random")):
        import_dataset(synthetic.SPEC, None, home, name=name, indexing=indexing, options=opts)  # type: ignore[arg-type]
    seq, rnd, rnd2 = (load_dataset(home, name) for name in ("s", "r", "r2"))
    assert (seq.manifest["indexing"], rnd.manifest["indexing"]) == ("sequential", "random")
    # sequential: ids are the order of first appearance reading users' time-ordered sequences
    first_seen = pl.Series(np.concatenate(seq.sequences[1:])).unique(maintain_order=True).to_list()
    assert first_seen == list(range(1, seq.n_items + 1))
    # random: a bijection onto 1..n, seeded (same seed same ids), not the sequential order
    assert sorted(rnd.items["item_idx"].to_list()) == list(range(1, rnd.n_items + 1))
    assert rnd.items.equals(rnd2.items)
    first_random = pl.Series(np.concatenate(rnd.sequences[1:])).unique(maintain_order=True).to_list()
    assert first_random != list(range(1, rnd.n_items + 1))
    # both describe the same raw sequences
    def raw_sequences(d: Dataset) -> list[list[str]]:
        names = dict(zip(d.items["item_idx"], d.items["item"], strict=True))
        return [[names[i] for i in s] for s in d.sequences[1:]]

    assert raw_sequences(seq) == raw_sequences(rnd)


def test_random_indexing_depends_on_the_seed_only(tmp_path: Path) -> None:
    home, path = Home(tmp_path / "home"), _ties_csv(tmp_path)
    ids = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        import_dataset(csv_dataset.SPEC, path, home, name=name, options=ImportOptions(seed=seed))
        ids[name] = dict(load_dataset(home, name).items.select("item", "item_idx").iter_rows())
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]
