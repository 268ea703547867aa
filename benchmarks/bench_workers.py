"""Serial vs a pool of local workers: the same sweep, one invocation, two temporary stores.

Runs `python -m sparsity_lib sweep` twice on the same grid of short runs sized like the `cpu` profile
(BasicNet 32-0.25x, 16x16 synthetic, 20,000 training and 5,000 test images, batch 40; `--steps`
optimizer steps each instead of 8,000): once with `--workers 1` (one after another in one process,
torch's default thread count: today's serial sweep) and once with `--workers N`, each into its own
fresh store, and prints the wall times (process start to exit, data generation and evaluation
included) and their ratio. Both stores must end with the same runs.

    python benchmarks/bench_workers.py --workers 2 --steps 500 --output benchmarks/results/workers.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_RUN = {"dataset": "synthetic", "image_size": 16, "width": 0.25, "first_width": 32, "train_subset": 20000,
           "test_subset": 5000, "batch_size": 40}  # the cpu profile's run, schedule aside


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep (default: 2)")
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps per run (default: %(default)s)")
    parser.add_argument("--grid", nargs="+", default=["optimizer=adam,sgd", "l2=1e-4,1e-3"],
                        help="swept fields (default: 2 optimizers x 2 L2 = 4 runs)")
    parser.add_argument("--set", nargs="*", default=[], help="extra fixed fields FIELD=VALUE (e.g. train_subset=400)")
    parser.add_argument("--output", default=None, help="also write the report (Markdown) to this file")
    return parser.parse_args(argv)


def sweep_command(args, store: Path, workers: int) -> list[str]:
    fields = dict(CPU_RUN, **dict(text.split("=", 1) for text in args.set))
    steps_per_epoch = -(-int(fields["train_subset"]) // int(fields["batch_size"]))
    epochs = args.steps / steps_per_epoch  # reference batch 40: the same steps at any batch size
    fields.update(epochs=f"{epochs:g}", lr_drops=f"{0.75 * epochs:g}")
    command = [sys.executable, "-m", "sparsity_lib", "sweep", "--profile", "paper", "--store", str(store),
               "--seeds", "1", "--device", "cpu", "--fused", "off", "--workers", str(workers)]
    for name, value in fields.items():
        command += ["--set", f"{name}={value}"]
    for text in args.grid:
        command += ["--grid", text]
    return command


def timed_sweep(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the sweep and its workers) of the sweep command; raises when it fails."""
    start, used = time.perf_counter(), cpu_seconds()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - used
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, cpu


def cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stored(store: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in store.glob("*.json")}


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        stores = {1: Path(folder) / "serial", args.workers: Path(folder) / f"workers-{args.workers}"}
        commands = {workers: sweep_command(args, store, workers) for workers, store in stores.items()}
        load_before = os.getloadavg()[0]
        timings = {workers: timed_sweep(command) for workers, command in commands.items()}
        seconds = {workers: wall for workers, (wall, _) in timings.items()}
        cpu = {workers: used for workers, (_, used) in timings.items()}
        records = {workers: stored(store) for workers, store in stores.items()}
    serial, parallel = records[1], records[args.workers]
    if sorted(serial) != sorted(parallel) or not serial:
        raise RuntimeError(f"the two sweeps stored different runs: {sorted(serial)} vs {sorted(parallel)}")
    threads = {workers: sorted({r["provenance"]["cpu_threads"] for r in runs.values()})
               for workers, runs in records.items()}
    steps = next(iter(serial.values()))["provenance"]["steps"]
    shown = " ".join(commands[args.workers][1:]).replace(str(stores[args.workers]), "STORE")
    report = [f"Serial vs {args.workers} local workers: {len(serial)} runs of {steps} steps "
              f"(BasicNet 32-0.25x, 16x16 synthetic, batch 40), same grid, fresh stores",
              f"machine: {platform.node()} ({platform.processor() or platform.machine()}, "
              f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores), "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, load average before: {load_before:.2f}",
              f"command: python benchmarks/bench_workers.py {' '.join(sys.argv[1:] if argv is None else argv)}",
              f"each sweep: python {shown}", "",
              "| sweep | torch threads per run | wall s | wall s per run | speed-up | CPU s (all processes) |",
              "|---|---|---:|---:|---:|---:|"]
    for workers in stores:
        report.append(f"| --workers {workers} | {', '.join(map(str, threads[workers]))} | {seconds[workers]:.1f} | "
                      f"{seconds[workers] / len(serial):.1f} | {seconds[1] / seconds[workers]:.2f}x | "
                      f"{cpu[workers]:.1f} |")
    report += ["", f"ratio serial / {args.workers} workers: {seconds[1] / seconds[args.workers]:.2f}"]
    text = "\n".join(report)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
