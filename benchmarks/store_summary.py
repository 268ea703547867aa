"""Summarize a run store for BENCHMARKS.md: one row per run with its wall time and headline numbers.

    python benchmarks/store_summary.py --store results
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from sparsity_lib import RunConfig, RunStore, runs_frame  # noqa: E402

# Fields shown together in one "other" column when they differ from the paper default.
OTHER_FIELDS = ("activation", "bn_bias_init", "gamma_lr_scale", "beta_lr_scale", "slimming_l1", "l1l2", "image_size",
                "num_classes", "train_stream", "lr")


def other_settings(config: dict) -> str:
    """'slimming_l1=1e-05, image_size=32' for the OTHER_FIELDS that differ from RunConfig's defaults."""
    default = RunConfig()
    return ", ".join(f"{name}={config[name]:g}" if isinstance(config[name], float) else f"{name}={config[name]}"
                     for name in OTHER_FIELDS if config.get(name, getattr(default, name)) != getattr(default, name))


def dead_by_layer(record: dict) -> str:
    """'C6 4/128, C7 20/128': the layers that lost features (|gamma| below the threshold)."""
    return ", ".join(f"{row['layer']} {row['inactive_gamma']}/{row['features']}"
                     for row in record["final"]["layers"] if row["inactive_gamma"]) or "-"


def store_table(store: str) -> tuple[str, float]:
    """Markdown table of every record in `store` and the total wall time in hours."""
    records = RunStore(store).records()
    frame = runs_frame(records)
    frame["wall_s"] = [r["provenance"]["wall_time_s"] for r in records]
    frame["device"] = [r["provenance"]["device"] for r in records]
    frame["steps"] = [r["provenance"]["steps"] for r in records]
    frame["other"] = [other_settings(r["config"]) for r in records]
    frame["dead"] = [dead_by_layer(r) for r in records]
    columns = ["config_hash", "model", "optimizer", "l2", "wd", "batch_size", "clutter", "width", "first_width",
               "other", "steps", "train_err", "test_err", "sparsity_gamma", "sparsity_act", "dead", "device", "wall_s"]
    table = frame[columns].sort_values(["model", "optimizer", "l2", "wd", "batch_size"])
    return table.to_markdown(index=False, floatfmt=".4g"), frame["wall_s"].sum() / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="results")
    args = parser.parse_args()
    table, hours = store_table(args.store)
    print(table)
    print(f"\n{len(table.splitlines()) - 2} runs, {hours:.2f} h of wall time in all")


if __name__ == "__main__":
    main()
