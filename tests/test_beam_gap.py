"""The search surrogate's beam width on sub-word ids (docs/BEAM-GAP.md): the committed measurement backs the
chosen width, the fast scorer uses it, and the recovery measure itself is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from paprec_cli.errors import PaprecError
from paprec_cli.model.beam_gap import Recovery, overlap, smallest_width
from paprec_cli.search.surrogate import SURROGATE_BEAMS

RESULT = Path(__file__).resolve().parents[1] / "bench" / "results" / "beam_gap-cpu-2core-synthetic.json"


def test_chosen_width_is_the_smallest_measured_to_recover_90_percent() -> None:
    """On the tiny trained sub-word model of docs/BEAM-GAP.md (synthetic, seed 0, 300 validation users)."""
    doc = json.loads(RESULT.read_text(encoding="utf-8"))
    rows = {int(r["beams"]): r for r in doc["results"]}
    assert doc["settings"]["k"] == 5 and doc["settings"]["prompts"] == 300
    assert SURROGATE_BEAMS == doc["smallest_90"] == 30
    assert rows[SURROGATE_BEAMS]["recovered"] == pytest.approx(0.9967, abs=1e-4)
    assert all(r["recovered"] < 0.9 for w, r in rows.items() if w < SURROGATE_BEAMS)
    assert [round(rows[w]["recovered"], 3) for w in (5, 10, 20)] == [0.6, 0.709, 0.801]
    recoveries = [Recovery(w, r["recovered"], r["top1"], 300) for w, r in rows.items()]
    assert smallest_width(recoveries) == SURROGATE_BEAMS and smallest_width(recoveries, 1.01) is None


def test_overlap_counts_shared_items_and_never_a_missing_one() -> None:
    exact = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    found = torch.tensor([[5, 4, 3, 2, 1], [6, 0, 0, 0, 11]])
    assert overlap(found, exact).tolist() == [1.0, 0.2]


def test_fast_scorer_ranks_with_the_surrogate_beam(monkeypatch: pytest.MonkeyPatch) -> None:
    from paprec_cli.model import predict

    seen: dict[str, object] = {}

    def fake(recommender: object, task: object, examples: list[object], prompts: object, batch_size: int,
             k: int = 10, num_beams: int | None = None) -> object:  # fmt: skip
        seen.update(k=k, num_beams=num_beams)
        return torch.zeros(len(examples), k, dtype=torch.long).numpy()

    monkeypatch.setattr(predict, "predictions", fake)
    from paprec_cli.search.surrogate import FastScorer

    class Task:
        surrogate_depth = 5

        @staticmethod
        def surrogate(preds: object, examples: list[object]) -> list[float]:
            return [0.0] * len(examples)

    class Rec:
        device = "cpu"

    FastScorer(Rec(), Task(), 4)([], [object()])  # type: ignore[arg-type]
    assert seen == {"k": 5, "num_beams": SURROGATE_BEAMS}


def test_beam_recovery_refuses_atomic_ids_and_narrow_widths() -> None:
    from paprec_cli.model.beam_gap import beam_recovery

    class Codec:
        id_scheme = "atomic"

    class Rec:
        codec = Codec()

    with pytest.raises(PaprecError, match="atomic ids rank exactly"):
        beam_recovery(Rec(), [], [5])  # type: ignore[arg-type]
    Codec.id_scheme = "subword"
    with pytest.raises(PaprecError, match="at least k=5"):
        beam_recovery(Rec(), [], [3, 5])  # type: ignore[arg-type]


@pytest.mark.slow
def test_chosen_width_recovers_90_percent_on_a_small_trained_model(tmp_path: Path) -> None:
    """A small sub-word model trained here for one epoch on the sequential task (synthetic, 100 users, 400
    items, template 2-3, seeded): 5 beams miss most of the exact top-5, the chosen width recovers >= 90%."""
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.evaluate import manual_prompts
    from paprec_cli.model import Recommender, build_codec, create_model
    from paprec_cli.model.beam_gap import beam_recovery
    from paprec_cli.paths import Home
    from paprec_cli.plugins import load_registry
    from paprec_cli.specs import ImportOptions

    home = Home.resolve(tmp_path)
    registry = load_registry()
    extra = {"users": "100", "items": "400"}
    import_dataset(registry.dataset("synthetic"), None, home, options=ImportOptions(seed=0, extra=extra))
    dataset = load_dataset(home, "synthetic")
    task = registry.task("sequential")
    codec = build_codec(dataset, "subword", [t.source for t in task.templates], vocab_size=600)
    bundle = create_model("tiny", codec, seed=0)
    data = TaskData(dataset, 0)
    train = task.examples(data, "train")
    prompts = manual_prompts(codec, task, train)
    targets = [codec.target_ids(task.target_words(ex)) for ex in train]
    rec = Recommender(bundle.model, codec, "cpu")
    optimizer = torch.optim.AdamW(bundle.model.parameters(), lr=3e-3)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    for start in range(0, len(order), 32):  # one epoch
        rows = order[start : start + 32]
        optimizer.zero_grad()
        rec.nll(codec.collate([prompts[i] for i in rows]), [targets[i] for i in rows]).mean().backward()
        optimizer.step()
    bundle.model.eval()
    validation = task.examples(data, "validation")[:60]
    found = beam_recovery(rec, manual_prompts(codec, task, validation), [5, SURROGATE_BEAMS])
    assert found[0].recovered <= 0.5  # measured 0.2: the gap the wider beam closes
    assert found[1].recovered >= 0.9 and found[1].prompts == 60  # measured 1.0
