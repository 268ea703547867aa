"""Save the BatchNorm scales of a training checkpoint with their optimizer state, for analysis.

    python scripts/optimizer_state.py results/checkpoints/<hash>.pt <name> [--store results]

A run's checkpoint (git-ignored, deleted when the run finishes) holds the optimizer state the
stored record does not. This writes, per conv layer C1..Cn, the BN gammas and the optimizer's
per-gamma state (Adagrad: 'sum', the accumulated squared gradients; Adam-like: 'exp_avg_sq'), with
the step, learning rate in effect and L2 strength. Chapter 2 reads the one kept for Adagrad
(`tables.adagrad_horizon`). To redo it: train the run (`python -m sparsity_lib scorecard --train`),
copy its checkpoint from `results/checkpoints/` after the last epoch's save, and run this script.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sparsity_lib.runs.store import RunStore

STATE_KEYS = ("sum", "exp_avg_sq")


def optimizer_state(checkpoint: dict) -> dict:
    """{'config_hash', 'step', 'lr', 'l2', 'state_key', 'layers': {C1: {'gamma': [...], 'state': [...]}}}."""
    model, optimizer = checkpoint["model"], checkpoint["optimizer"]
    group = next(g for g in optimizer["param_groups"] if g.get("name") == "gamma")
    gammas = [name for name in model if name.endswith("bn.weight")]
    layers, key = {}, None
    for index, (param, name) in enumerate(zip(group["params"], gammas), start=1):
        state = optimizer["state"][param]
        key = next(k for k in STATE_KEYS if k in state)
        layers[f"C{index}"] = {"gamma": model[name].tolist(), "state": state[key].tolist()}
    return {"config_hash": checkpoint["config_hash"], "step": checkpoint["state"]["step"], "lr": group["lr"],
            "l2": group["weight_decay"], "state_key": key, "layers": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name", help="written as STORE/analysis/NAME.json, with its record_sha256")
    parser.add_argument("--store", default=None, help="run store (default: as every command resolves it)")
    args = parser.parse_args()
    # weights_only: torch's restricted unpickler (tensors, plain containers) cannot run a planted pickle's code
    found = optimizer_state(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
    out = RunStore(args.store).save_analysis(args.name, found)
    print(f"{out}: {len(found['layers'])} layers at step {found['step']} (lr {found['lr']:g}, L2 {found['l2']:g})")


if __name__ == "__main__":
    main()
