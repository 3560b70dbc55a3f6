"""Personal-token agreement with the synthetic dataset's hidden taste, next to chance."""

from __future__ import annotations

from paprec_cli.data.store import import_dataset, load_dataset
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry
from paprec_cli.specs import ImportOptions
from paprec_cli.taste import taste_agreement


def _synthetic(tmp_path):
    home = Home(tmp_path / "h")
    spec = load_registry().dataset("synthetic")
    import_dataset(spec, None, home, options=ImportOptions(seed=0, extra={"users": "40", "items": "60"}))
    return load_dataset(home, "synthetic")


def test_agreement_counts_taste_hits_and_reports_chance(tmp_path) -> None:
    dataset = _synthetic(tmp_path)
    truth = dataset.extra("truth")
    raw1, taste1 = truth["user"][0], truth["taste"].to_list()[0][0]
    raw2 = truth["user"][1]
    other = next(w for attrs in dataset.item_attributes for w in attrs if w not in set(truth["taste"].to_list()[1]))
    idx1, idx2 = dataset.user_index(raw1), dataset.user_index(raw2)
    vocabulary = {w for attrs in dataset.item_attributes for w in attrs} | {"the", "want", "like"}
    doc = {
        "personal": {str(idx1): [{"id": 1, "text": taste1}], str(idx2): [{"id": 2, "text": other}]},
        "users": {str(idx1): raw1, str(idx2): raw2},
    }
    found = taste_agreement(doc, dataset, vocabulary)
    assert found is not None
    assert found["users"] == 2
    assert found["agreement"] == 0.5
    assert 0 < found["chance"] < 0.5
    assert found["attribute_share"] == 1.0
    assert found["agreement_given_attribute"] == 0.5


def test_no_truth_table_means_no_figure(tmp_path) -> None:
    dataset = _synthetic(tmp_path)
    dataset.manifest["extras"] = []
    assert taste_agreement({"personal": {}}, dataset, ["a"]) is None
