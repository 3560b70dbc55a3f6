"""Temporary: recipe sweep for tiny synthetic, configs in parallel processes (deleted after use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

CONFIGS = {
    "A_default": {},
    "B_next": {"mixture": {"item_next": 0.5}},
    "C_next_bs32_d0": {"mixture": {"item_next": 0.5}, "recipe": {"batch_size": 32, "dropout": 0.0}},
    "D_next_lr1e-3_bs32": {"mixture": {"item_next": 0.5}, "recipe": {"batch_size": 32, "lr": 1e-3}},
    "E_next_lr1e-2_d0": {"mixture": {"item_next": 0.5}, "recipe": {"lr": 1e-2, "dropout": 0.0}},
    "F_noaux": {"mixture": {"hint": 0.0, "word_item": 0.0, "item_words": 0.0, "item_next": 0.0}},
    "G_seqonly_next_bs32": {"tasks": ["sequential"], "mixture": {"item_next": 0.5}, "recipe": {"batch_size": 32}},
    "H_next_bs128_lr5e-3": {"mixture": {"item_next": 0.5}, "recipe": {"batch_size": 128, "lr": 5e-3}},
}


def one(name: str, home: str, budget: float, out: str) -> None:
    from paprec_cli.output import Output
    from paprec_cli.paths import Home
    from paprec_cli.plugins import load_registry
    from paprec_cli.training.mixture import Mixture
    from paprec_cli.training.recipe import Recipe
    from paprec_cli.training.run import train
    from paprec_cli.training.setup import new_options

    cfg = CONFIGS[name]
    options = new_options(dataset="synthetic", tasks=cfg.get("tasks", []), size="tiny", ids="atomic", name=name,
                          seed=0, time_budget=budget, init=None, overrides={"epochs": 40, "patience": 5})
    recipe: Recipe = replace(options.recipe, **cfg.get("recipe", {}))
    mixture = replace(Mixture(), **cfg.get("mixture", {}))
    options = replace(options, recipe=recipe, mixture=mixture)
    start = time.time()
    result = train(options, Home.resolve(home), Output(json=True, quiet=True), load_registry(), "cpu")
    result["wall"] = time.time() - start
    record = json.loads((Path(home) / "models" / name / "training.json").read_text())
    result["history"] = [{k: h[k] for k in ("epoch", "loss", "examples_per_s", "validation")} for h in record["history"]]
    Path(out, f"{name}.json").write_text(json.dumps(result, indent=1))


def main() -> None:
    budget = float(sys.argv[1])
    out = os.environ.get("OUT", "/tmp/sweep-out")
    Path(out).mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:] or list(CONFIGS)
    if len(names) == 1 and names[0] in CONFIGS and os.environ.get("SWEEP_CHILD"):
        one(names[0], os.environ["SWEEP_HOME"], budget, out)
        return
    procs = []
    for name in names:
        home = f"/tmp/sweep-home-{name}"
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("SWEEP_THREADS", "1"), "SWEEP_CHILD": "1", "SWEEP_HOME": home}
        log = open(Path(out) / f"{name}.log", "w")
        procs.append(subprocess.Popen([sys.executable, __file__, str(budget), name], env=env, stdout=log, stderr=log))
    for p in procs:
        p.wait()
    for name in names:
        path = Path(out) / f"{name}.json"
        if not path.exists():
            print(name, "FAILED")
            continue
        r = json.loads(path.read_text())
        t, b = r["test"].get("sequential", {}), r["baselines"]["popularity"].get("sequential", {})
        taste = r["sensitivity"].get("sequential", {}).get("taste", {})
        print(f"{name}: epochs {r['epochs']} best {r['best_epoch']} wall {r['wall']:.0f}s "
              f"HR@10 {t.get('HR@10', 0):.4f} pop {b.get('HR@10', 0):.4f} "
              f"taste {taste.get('taste_word', {}).get('HR@10', 0):.4f} "
              f"unrel {taste.get('unrelated_word', {}).get('HR@10', 0):.4f} "
              f"share {taste.get('taste_ranks_higher_share', 0):.2f} "
              f"val {[round(h['validation']['sequential']['HR@10'], 3) for h in r['history']]}")


if __name__ == "__main__":
    main()
