"""`paprec recommend -k K` on a sub-word id model searches at least 20 beams, so a small K still gets the
exact top K: on a model trained here to put item 7 first (p 0.34) while items 101-103 share the more likely
first piece "▁10" (0.22 each, 0.66 together), one beam returns 101-103 and recommend returns 7."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import invoke, tiny_model

from paprec_cli.paths import Home
from paprec_cli.specs import Word

#: The target distribution the model is trained to: item -> probability.
TARGETS = {7: 0.34, 101: 0.22, 102: 0.22, 103: 0.22}
USER = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, str]:
    """A 120-item synthetic home and a tiny subword model trained on user 3's served prompt."""
    from paprec_cli.model import Recommender, save_model
    from paprec_cli.serving import prepare_prompts, serving_example

    extra = {"users": "20", "items": "120", "categories": "4", "length": "6"}
    home, data, bundle, registry = tiny_model(tmp_path_factory.mktemp("beam-home"), extra, "subword", 400)
    codec = bundle.codec
    assert codec.encode([Word.item(101)]).token_ids[0] == codec.encode([Word.item(102)]).token_ids[0]
    task = registry.task("sequential")
    prompt = prepare_prompts(codec, task, [serving_example(task, data, USER, 0)], None)[0].prompt
    items = list(TARGETS)
    targets = [codec.target_ids([Word.item(i)]) for i in items]
    weights = torch.tensor([TARGETS[i] * len(t) for i, t in zip(items, targets, strict=True)])
    rec = Recommender(bundle.model, codec, "cpu")
    batch = codec.collate([prompt] * len(items))
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(300):  # the summed NLL weighted by TARGETS: its optimum is exactly that distribution
        optimizer.zero_grad()
        (rec.nll(batch, targets) * weights).sum().backward()
        optimizer.step()
    bundle.model.eval()
    save_model(bundle, home.model_dir("beam-tiny"))
    return home, "beam-tiny"


def test_k1_returns_the_exact_top1(trained: tuple[Home, str]) -> None:
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import Recommender, load_model
    from paprec_cli.plugins import load_registry
    from paprec_cli.serving import SERVING_MIN_BEAMS, prepare_prompts, serving_example

    home, name = trained
    data = load_dataset(home, "synthetic")
    bundle = load_model(name, home, dataset=data)
    task = load_registry().task("sequential")
    prompt = prepare_prompts(bundle.codec, task, [serving_example(task, data, USER, 0)], None)[0].prompt
    rec = Recommender(bundle.model, bundle.codec, "cpu")
    batch = bundle.codec.collate([prompt])
    every = rec.score_candidates(batch, torch.arange(1, data.n_items + 1).unsqueeze(0))[0]
    exact = int(every.argmax()) + 1
    narrow = int(rec.rank_all(batch, 1, num_beams=1)[0, 0])
    assert exact == 7 and narrow != exact  # the difference shows: one beam follows "▁10" and misses item 7
    assert SERVING_MIN_BEAMS == 20
    code, out, err = invoke("recommend", "--dataset", "synthetic", "--model", name, "--user", str(USER), "-k", "1",
                            "--device", "cpu", "--json", "--home", str(home.root))  # fmt: skip
    assert code == 0, err
    items = json.loads(out.strip().splitlines()[-1])["items"]
    assert [row["item_idx"] for row in items] == [exact]
    assert items[0]["score"] == pytest.approx(float(every[exact - 1]), abs=1e-4)
    code, out, _ = invoke("recommend", "--dataset", "synthetic", "--model", name, "--user", str(USER), "-k", "3",
                          "--device", "cpu", "--json", "--home", str(home.root))  # fmt: skip
    top3 = [row["item_idx"] for row in json.loads(out.strip().splitlines()[-1])["items"]]
    assert top3 == (every.topk(3).indices + 1).tolist()

