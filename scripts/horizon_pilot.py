"""The horizon pilot of issue 20: one seed each of the settings that size the `long` profile.

    python scripts/horizon_pilot.py --list            # the pilot runs, their hashes, stored or not
    python scripts/horizon_pilot.py --slot a          # train slot a's runs one after another (one thread)

Two slots run side by side on the two cores; each run is stored in the run store like any other
(`run_or_load`), so a pilot run at the `long` length is also seed 0 of that profile. Adagrad is run
at 8x the `cpu` length as well (a calibration record outside every profile). docs/calibration.md
(horizon pilot) records what each gave.
"""
from __future__ import annotations

import argparse

import torch

from sparsity_lib.runs.config import config_hash, make_config
from sparsity_lib.runs.execution import Execution
from sparsity_lib.runs.runner import run_or_load
from sparsity_lib.runs.store import RunStore
from sparsity_lib.study.horizon import stretched

BASIC = {"dataset": "synthetic"}
VGG16 = {"dataset": "synthetic", "model": "vgg16", "width": 0.5, "image_size": 32}


def eight_times(config):
    """`config` (a `long` run, 4x `cpu`) at 8x the `cpu` length, its LR drop at the same relative place."""
    return stretched(config, 2)


def pilot_runs() -> dict[str, list]:
    """Slot name -> the configs it trains, longest first so the two slots end about together."""
    long = lambda **fields: make_config("long", **fields)  # noqa: E731
    return {"a": [eight_times(long(**BASIC, optimizer="adagrad", l2=1e-2)),
                  long(**VGG16, optimizer="adam", l2=1e-4)],
            "b": [long(**BASIC, optimizer="adam", l2=1e-4), long(**BASIC, optimizer="sgd", l2=1e-3),
                  long(**BASIC, optimizer="adagrad", l2=1e-2)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slot", choices=sorted(pilot_runs()))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    store = RunStore(args.store)
    if args.list or args.slot is None:
        for slot, configs in pilot_runs().items():
            for c in configs:
                key = config_hash(c)
                print(slot, key, c.model, c.optimizer, c.l2, c.epochs, "stored" if store.load(key) else "missing")
        return
    torch.set_num_threads(1)
    for config in pilot_runs()[args.slot]:
        record = run_or_load(config, Execution(store=store, profile="long" if config.epochs == 112 else "calibration"))
        print(config_hash(config), config.model, config.optimizer, config.l2, config.epochs,
              f"err {record['final']['test_err']:.1f}", flush=True)


if __name__ == "__main__":
    main()
