"""Do the fused trainer's speed options change the science? fp32 vs channels_last vs bf16 autocast.

Trains one fused group (default: the `cpu` profile's Adam + L2 1e-3, seeds 0 1 2) once per mode and
compares, per seed, the final gamma sparsity and test error of each mode with the fp32 NCHW run of
the same seed, against the spread across seeds (the run-to-run noise the issue allows). Each mode's
records are written to OUT/<mode>.json as soon as the mode finishes, and a mode in progress
checkpoints every epoch, so an interrupted invocation resumes where it stopped.

    python benchmarks/bench_precision.py --mode fp32 &            # one process per mode, in parallel
    python benchmarks/bench_precision.py --mode channels_last &
    python benchmarks/bench_precision.py --mode bf16 &
    python benchmarks/bench_precision.py --report                 # the table, once all modes are there
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from sparsity_lib import RunStore, config_hash, make_config  # noqa: E402
from sparsity_lib.runs.fused.trainer import train_group  # noqa: E402
from sparsity_lib.runs.runner import resolve_config  # noqa: E402

MODES = {  # name: train_group speed options
    "fp32": {},
    "channels_last": {"channels_last": True},
    "bf16": {"amp": True, "channels_last": True},
    "compile": {"compile": True},
}
DEFAULT_OUT = Path("benchmarks/results/precision")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", action="append", default=[], choices=list(MODES), help="train this mode")
    parser.add_argument("--report", action="store_true", help="print the comparison of the modes in OUT")
    parser.add_argument("--profile", default="cpu", help="size profile (default: cpu)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the records (default: %(default)s)")
    parser.add_argument("--store", default="results", help="run store holding single-run references (seed 0)")
    return parser.parse_args(argv)


def group_configs(args):
    return [resolve_config(make_config(args.profile, dataset="auto", optimizer=args.optimizer, l2=args.l2,
                                       seed=seed))[0]
            for seed in range(args.seeds)]


def train_mode(mode: str, args) -> Path:
    """Train the group in `mode` (resuming from OUT/<mode>.ckpt) and write OUT/<mode>.json."""
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{mode}.json"
    if target.exists():
        print(f"{mode}: already in {target}")
        return target
    records = train_group(group_configs(args), device=args.device, checkpoint_path=args.out / f"{mode}.ckpt",
                          **MODES[mode])
    summary = [{"seed": r["config"]["seed"], "config_hash": r["config_hash"], "final": r["final"],
                "provenance": r["provenance"]} for r in records]
    target.write_text(json.dumps(summary, indent=1))
    (args.out / f"{mode}.ckpt").unlink(missing_ok=True)
    return target


def spread(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def report(args) -> str:
    """Markdown: per mode and seed, gamma sparsity and test error; differences from fp32 vs seed spread."""
    runs = {mode: {r["seed"]: r for r in json.loads((args.out / f"{mode}.json").read_text())}
            for mode in MODES if (args.out / f"{mode}.json").exists()}
    if "fp32" not in runs:
        raise SystemExit(f"no fp32 records in {args.out}: run --mode fp32 first")
    seeds = sorted(runs["fp32"])
    first = runs["fp32"][seeds[0]]["provenance"]
    lines = [f"{args.optimizer} L2 {args.l2:g}, profile {args.profile}, seeds {seeds}, "
             f"{first['steps']:,} steps, {first['dataset_used']} {first['image_size']}x{first['image_size']}, "
             f"fused N={len(seeds)} on {first['device_name']} ({first['device']})", "",
             "| mode | " + " | ".join(f"seed {s} sparsity % / test err %" for s in seeds)
             + " | mean sparsity | max abs diff vs fp32 (sparsity, err) | wall s |",
             "|---|" + "---:|" * (len(seeds) + 3)]
    for mode, by_seed in runs.items():
        cells = [f"{by_seed[s]['final']['sparsity_gamma']:.1f} / {by_seed[s]['final']['test_err']:.2f}"
                 if s in by_seed else "" for s in seeds]
        common = [s for s in seeds if s in by_seed]
        diff_sparsity = max(abs(by_seed[s]["final"]["sparsity_gamma"] - runs["fp32"][s]["final"]["sparsity_gamma"])
                            for s in common)
        diff_err = max(abs(by_seed[s]["final"]["test_err"] - runs["fp32"][s]["final"]["test_err"]) for s in common)
        mean = statistics.mean(by_seed[s]["final"]["sparsity_gamma"] for s in common)
        wall = by_seed[common[0]]["provenance"]["wall_time_s"]
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {mean:.1f} | {diff_sparsity:.1f}, {diff_err:.2f} | "
                     f"{wall:.0f} |")
    fp32 = runs["fp32"]
    sparsity_spread = spread([fp32[s]['final']['sparsity_gamma'] for s in seeds])
    lines += ["", f"seed-to-seed spread (stdev over seeds, fp32): sparsity {sparsity_spread:.1f} "
              f"points, test error {spread([fp32[s]['final']['test_err'] for s in seeds]):.2f} points"]
    reference = RunStore(args.store).load(config_hash(group_configs(args)[0]))
    if reference is not None:
        final = reference["final"]
        lines.append(f"single-run `training.train` record of seed {seeds[0]} in {args.store}/: sparsity "
                     f"{final['sparsity_gamma']:.1f} %, test error {final['test_err']:.2f} % "
                     f"(fused fp32 seed {seeds[0]}: {fp32[seeds[0]]['final']['sparsity_gamma']:.1f} %, "
                     f"{fp32[seeds[0]]['final']['test_err']:.2f} %)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.mode and not args.report:
        raise SystemExit("nothing to do: give --mode MODE (one of " + ", ".join(MODES) + ") and/or --report")
    for mode in args.mode:
        train_mode(mode, args)
    if args.report:
        text = report(args)
        print(text)
        (args.out / "report.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
