"""Universality of every feature early in a stored run, before features die (paper Sec. 3 and 4.1, claim 6).

    python scripts/early_universality.py --profile cpu --epochs 4

Retrains seed 0 of chapter 3's SGD and Adam settings (`plans.layer_pair_variants`) for their first
`--epochs` epochs only: the same data stream, seed and learning rate as the stored run (whose learning-rate
drop comes later). It checks that the training loss of each of those epochs equals the stored run's, so the
network is the stored run's own at that step, then writes per conv layer the universality (% of training
images a feature fires on) and |gamma| of every feature to `<store>/analysis/early_universality_<optimizer>.json`.
Chapter 3 splits them by each feature's fate in the finished run (`tables.universality_by_fate`).
"""
from __future__ import annotations

import argparse
import math

import torch

from sparsity_lib import Chapter, open_chapter
from sparsity_lib.runs.config import config_hash
from sparsity_lib.runs.training import train
from sparsity_lib.study import plans


def early_state(chapter: Chapter, fields: dict, epochs: int) -> dict:
    """The early network of `fields`' seed-0 run: universality and |gamma| per layer, checked against the store."""
    config = chapter.config(seed=0, **fields)
    stored = chapter.stored_runs([fields])[0]
    record = train(config.replace(epochs=float(epochs), lr_drops=()), progress=True)  # its drop comes later
    ours = [entry["train_loss"] for entry in record["history"]]
    theirs = [entry["train_loss"] for entry in stored["history"][:epochs]]
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(ours, theirs)):
        raise SystemExit(f"{fields}: the early run's training losses {ours} differ from the stored run's {theirs}")
    return {"config_hash": config_hash(config), "epochs": epochs, "step": record["history"][-1]["step"],
            "train_losses": ours, "dead_at_step": record["history"][-1]["inactive_gamma"],
            "layers": {layer: {"universality": record["universality"][layer],
                               "gamma": [abs(g) for g in record["bn"][layer]["gamma"]]}
                       for layer in record["universality"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    chapter = open_chapter(profile=args.profile, dataset="synthetic", seeds=1)
    for fields in plans.layer_pair_variants():
        found = early_state(chapter, fields, args.epochs)
        out = chapter.run_store.save_analysis(f"early_universality_{fields['optimizer']}", found)
        print(f"{out}: step {found['step']}, dead then {found['dead_at_step']}")


if __name__ == "__main__":
    main()
