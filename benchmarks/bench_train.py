"""Training throughput of BasicNet at mini-batch 40: naive loop vs GPU-resident data vs fused sweeps.

Measures, in one process, for
  (a) the single-model loop fed by a standard torch DataLoader with per-image transforms,
  (b) the single-model loop fed by the library's GPU-resident `GpuLoader` (what `training.train` does),
  (c) `sparsity_lib.runs.fused` with N = 1, 4, 16, 32, 64 models (as memory allows),
milliseconds per optimizer step, images/s per model and in total, the ratio of total images/s to (a),
and the achieved TFLOP/s (FLOPs of a plain model's training step, counted by
`torch.utils.flop_counter`) against a dense matmul peak measured on the same device (bf16 on CUDA,
fp32 on CPU). Prints a Markdown table, then (full mode) the GPU-hours projected for the paper's
Table 1 protocol from the measured step times, and always the compute floor: the hours Table 1 needs
at 100% of the measured peak. `--profile-steps K` adds torch.profiler evidence for row (a) and the
largest fused N: the busiest operators and, on CUDA, kernels launched per step and the fraction of
the wall time the GPU spent in kernels (what bounds a launch-bound loop).

    python benchmarks/bench_train.py --device cuda            # BasicNet 64-1x, 32x32 (paper size)
    python benchmarks/bench_train.py --small                  # a small CPU version (testable anywhere)
    python benchmarks/bench_train.py --device cuda --profile-steps 20   # plus profiler evidence
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from sparsity_lib import RunConfig, load_dataset, make_loader  # noqa: E402
from sparsity_lib.runs.build import build_model, build_optimizer, pick_device  # noqa: E402
from sparsity_lib.runs.fused.net import FusedLoader, FusedNet  # noqa: E402
from sparsity_lib.runs.fused.optim import FusedOptimizer  # noqa: E402
from sparsity_lib.runs.fused.trainer import train_step  # noqa: E402
from sparsity_lib.runs.training import train_step as train_single_step  # noqa: E402

# Paper protocol (Sec. 2.1, docs/paper_tables.md): CIFAR 50,000 training images, batch 40, 325 epochs.
PAPER_STEPS = math.ceil(50_000 / 40) * 325  # 406,250 optimizer steps per run
# Table 1 (docs/paper_tables.md): 35 (optimizer, regularizer) rows x 2 datasets x 3 seeds = 210 runs. A fused group
# shares dataset and optimizer family, so per dataset the runs fall into sets of (rows x 3 seeds):
TABLE1_SETS = {"SGD": 12 * 3, "Adam": 12 * 3, "Adadelta": 6 * 3, "Adagrad": 5 * 3}
TABLE1_DATASETS = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--small", action="store_true",
                        help="BasicNet 32-0.25x on 16x16 images, 2,000 images, N = 1 2 4 (minutes on a CPU)")
    parser.add_argument("--fused", type=int, nargs="+", default=None,
                        help="model counts N for the fused rows (default: 1 4 16 32 64; --small: 1 2 4)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 100; --small 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10; --small 3)")
    parser.add_argument("--batch", type=int, default=40, help="mini-batch per model (the paper's 40)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers for row (a) "
                        "(default 4 on CUDA, 0 on CPU)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="training images held on the device (default 10000; --small 2000)")
    parser.add_argument("--dataset", default="synthetic", help="synthetic (offline) or cifar10 (needs --data-root)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--amp", action="store_true", help="fused rows: bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="fused rows: NHWC activations")
    parser.add_argument("--compile", action="store_true", help="fused rows: torch.compile the fused forward")
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="profile this many steps of row (a) and of the largest fused N (default 0: off)")
    parser.add_argument("--output", default=None, help="also write the report (Markdown) to this file")
    args = parser.parse_args(argv)
    args.fused = args.fused or ([1, 2, 4] if args.small else [1, 4, 16, 32, 64])
    args.steps = args.steps or (20 if args.small else 100)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.small else 10)
    return args


def bench_config(args) -> RunConfig:
    """The benchmarked model: BasicNet 64-1x at 32x32 (paper), or 32-0.25x at 16x16 (--small)."""
    if args.small:
        return RunConfig(dataset=args.dataset, image_size=16, train_subset=args.train_images or 2000, width=0.25,
                         first_width=32, batch_size=args.batch)
    return RunConfig(dataset=args.dataset, image_size=32, train_subset=args.train_images or 10_000,
                     batch_size=args.batch)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_tflops(device: torch.device, clock=time.perf_counter) -> tuple[float, str]:
    """Measured dense matmul rate in TFLOP/s: bf16 8192^3 on CUDA, fp32 1024^3 on CPU. `clock`: wall time,
    or on a shared CPU `time.thread_time` (one thread's CPU time)."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    repeats = 50 if device.type == "cuda" else 10
    start = clock()
    for _ in range(repeats):
        a @ b
    sync(device)
    seconds = clock() - start
    return 2 * n ** 3 * repeats / seconds / 1e12, f"{str(dtype).replace('torch.', '')} {n}x{n} matmul"


def train_step_flops(config: RunConfig, data) -> float:
    """FLOPs of one training step (forward + backward) of one plain model at `config.batch_size`."""
    from torch.utils.flop_counter import FlopCounterMode
    model = build_model(config, data.num_classes, data.image_size)
    x = torch.randn(config.batch_size, 3, data.image_size, data.image_size)
    y = torch.randint(0, data.num_classes, (config.batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


class PerImageDataset(torch.utils.data.Dataset):
    """uint8 images with per-image torchvision transforms: the usual CPU input pipeline."""

    def __init__(self, data):
        from torchvision.transforms import v2
        self.images, self.labels = data.images, data.labels
        self.transform = v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(list(data.mean), list(data.std))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(self.images[index]), self.labels[index]


def endless(loader):
    """Batches of `loader`, epoch after epoch."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def time_steps(step, batches, device, warmup: int, steps: int) -> float:
    """Seconds per step of `step(batch)` over `steps` batches after `warmup` untimed ones."""
    for _ in range(warmup):
        step(next(batches))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    sync(device)
    return (time.perf_counter() - start) / steps


def single_loop(config, data, device, loader):
    """(step, batches) of the single-model loop of `training.train` fed by `loader`."""
    model = build_model(config, data.num_classes, data.image_size).to(device)
    optimizer = build_optimizer(config, model)
    model.train()

    def step(batch):
        x, y = batch
        train_single_step(model, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True))

    return step, endless(loader)


def fused_loop(config, data, device, models: int, args):
    """(step, batches) of `models` fused models (each on its own batch of `config.batch_size`)."""
    configs = [config.replace(seed=i, l2=config.l2 * (1 + i)) for i in range(models)]
    net = FusedNet([build_model(c, data.num_classes, data.image_size) for c in configs],
                   channels_last=args.channels_last).to(device)
    optimizer = FusedOptimizer(net, configs)
    forward = torch.compile(net) if args.compile else None
    loader = FusedLoader(data, config.batch_size, [c.seed for c in configs], device=device)

    def step(batch):
        train_step(net, optimizer, *batch, forward=forward, amp=args.amp)

    return step, endless(loader)


def profile_loop(label, loop, device, warmup: int, steps: int, step_ms: float, top: int = 12) -> list[str]:
    """torch.profiler over `steps` steps of `loop` = (step, batches): the busiest operators, and on
    CUDA the kernels launched per step and the GPU's busy time per step against `step_ms`, the step
    time measured without the profiler (whose per-op overhead would inflate the wall time)."""
    from torch.profiler import ProfilerActivity, profile
    step, batches = loop
    for _ in range(warmup):
        step(next(batches))
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(next(batches))
        sync(device)
    events = prof.key_averages()
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    lines = [f"#### Profile: {label}, {steps} steps", ""]
    if device.type == "cuda":
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        # kernels, memcpy and memset on the GPU; overlapping streams would count twice (an upper bound)
        busy_us = sum(e.time_range.elapsed_us() for e in kernels)
        busy_ms = busy_us / steps / 1e3
        lines.append(f"{len(kernels) / steps:.0f} GPU kernels and copies per step; GPU busy {busy_ms:.2f} ms "
                     f"of the {step_ms:.2f} ms step measured without the profiler ({100 * busy_ms / step_ms:.0f}%)")
        lines.append("")
    lines += ["```", events.table(sort_by=sort_by, row_limit=top, max_name_column_width=48), "```"]
    return lines


def measure(label, models, run, device, batch):
    """One table row: (label, N, ms/step, img/s per model, img/s total, peak memory GiB) or an OOM row."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = run()
    except torch.cuda.OutOfMemoryError:
        print(f"measured {label}: out of memory", flush=True)
        return {"label": label, "models": models, "oom": True}
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    print(f"measured {label}: {1e3 * seconds:.2f} ms/step", flush=True)  # kept in a log if the run is cut short
    return {"label": label, "models": models, "ms": 1e3 * seconds, "per_model": batch / seconds,
            "total": models * batch / seconds, "memory": memory, "oom": False}


def table(rows, flops_per_image: float, peak: float) -> list[str]:
    """Markdown rows: ratio = total img/s over row (a); TFLOP/s = useful FLOPs of the N plain models."""
    lines = ["| loop | N | ms/step | img/s per model | img/s total | vs (a) | TFLOP/s | % of peak | GPU mem GiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = rows[0]["total"]
    for row in rows:
        if row["oom"]:
            lines.append(f"| {row['label']} | {row['models']} | out of memory | | | | | | |")
            continue
        tflops = row["total"] * flops_per_image / 1e12
        memory = "" if math.isnan(row["memory"]) else f"{row['memory']:.1f}"
        lines.append(f"| {row['label']} | {row['models']} | {row['ms']:.1f} | {row['per_model']:.0f} | "
                     f"{row['total']:.0f} | {row['total'] / base:.2f}x | {tflops:.3f} | {100 * tflops / peak:.1f} | "
                     f"{memory} |")
    return lines


def compute_floor(paper_flops_per_image: float, peak: float, unit: str) -> str:
    """Hours Table 1 needs at 100% of `peak` (TFLOP/s): a floor no loop can beat on this device."""
    runs = TABLE1_DATASETS * sum(TABLE1_SETS.values())
    flops = runs * PAPER_STEPS * 40 * paper_flops_per_image
    return (f"Compute floor for Table 1 ({runs} runs x {PAPER_STEPS:,} steps x 40 images x "
            f"{paper_flops_per_image / 1e9:.2f} GFLOP per image of BasicNet 64-1x at 32x32 = {flops:.4g} FLOP): "
            f"{flops / (peak * 1e12) / 3600:,.1f} {unit}-hours at 100% of the measured peak {peak:.4g} TFLOP/s")


def projection(rows, unit: str = "GPU") -> list[str]:
    """Device-hours (`unit`: GPU or CPU) for Table 1 at the paper profile (406,250 steps a run).

    From the measured ms/step.

    Each set of S runs (one optimizer family on one dataset) trains in ceil(S / N) fused groups of
    at most N; for each set the measured N with the fewest hours is used. A group smaller than N is
    charged the time of N (an upper bound). The fused rows are measured with Adam; the other
    families' steps differ only in the optimizer arithmetic.
    """
    ms = {row["label"]: row["ms"] for row in rows if not row["oom"]}
    fused = {row["models"]: row["ms"] for row in rows if row["label"].startswith("fused") and not row["oom"]}
    runs = TABLE1_DATASETS * sum(TABLE1_SETS.values())
    hours = lambda steps_ms: PAPER_STEPS * steps_ms / 3.6e6  # noqa: E731  (one run of 406,250 steps)
    lines = [f"Table 1 at the paper profile: {runs} runs x {PAPER_STEPS:,} steps (evaluation time not included).",
             f"- naive DataLoader loop: {runs * hours(ms['naive DataLoader']):,.0f} {unit}-hours",
             f"- GPU-resident single-model loop: {runs * hours(ms['GPU-resident data']):,.0f} {unit}-hours"]
    total, plan = 0.0, []
    for family, size in TABLE1_SETS.items():
        best = min(fused, key=lambda n: math.ceil(size / n) * fused[n])
        groups = math.ceil(size / best)
        total += TABLE1_DATASETS * groups * hours(fused[best])
        plan.append(f"{family} {TABLE1_DATASETS}x{groups} groups of <= {best}")
    naive = runs * hours(ms["naive DataLoader"])
    lines.append(f"- fused ({'; '.join(plan)}): {total:,.0f} {unit}-hours ({naive / total:.1f}x fewer than naive)")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    config = bench_config(args)
    data = load_dataset(config.dataset, args.data_root, "train", image_size=config.image_size,
                        subset=config.train_subset)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    flops_per_image = train_step_flops(config, data) / config.batch_size
    peak, peak_how = matmul_peak_tflops(device)

    rows = []
    naive_loader = torch.utils.data.DataLoader(PerImageDataset(data), config.batch_size, shuffle=True,
                                               num_workers=workers, pin_memory=device.type == "cuda",
                                               persistent_workers=workers > 0, drop_last=True)
    timed = lambda loop: time_steps(*loop, device, args.warmup, args.steps)  # noqa: E731
    rows.append(measure("naive DataLoader", 1, lambda: timed(single_loop(config, data, device, naive_loader)),
                        device, config.batch_size))
    resident = make_loader(data, config.batch_size, train=True, device=device)
    rows.append(measure("GPU-resident data", 1, lambda: timed(single_loop(config, data, device, resident)),
                        device, config.batch_size))
    for models in args.fused:
        rows.append(measure(f"fused N={models}", models,
                            lambda m=models: timed(fused_loop(config, data, device, m, args)), device,
                            config.batch_size))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    options = [flag for flag, on in (("amp bf16", args.amp), ("channels_last", args.channels_last),
                                     ("torch.compile", args.compile)) if on] or ["fp32, eager"]
    report = [f"BasicNet {config.first_width}-{config.width:g}x, {data.image_size}x{data.image_size} {data.name}, "
              f"batch {config.batch_size} per model, Adam; {args.steps} timed steps after {args.warmup} warm-up",
              f"device: {name} ({device.type}, {torch.get_num_threads()} CPU threads), torch {torch.__version__}, "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}",
              f"command: python benchmarks/bench_train.py {' '.join(sys.argv[1:] if argv is None else argv)}",
              f"fused rows: {', '.join(options)}; row (a): DataLoader with {workers} workers",
              f"training FLOPs per image: {flops_per_image / 1e9:.3f} GFLOP; peak: {peak:.3g} TFLOP/s "
              f"({peak_how}, measured)", ""]
    report += table(rows, flops_per_image, peak)
    unit = "GPU" if device.type == "cuda" else "CPU"
    if not args.small and any(r["label"].startswith("fused") and not r["oom"] for r in rows):
        report += [""] + projection(rows, unit)
    paper_config = RunConfig(dataset="cifar10", image_size=32, batch_size=40)
    paper_flops = train_step_flops(paper_config, SimpleNamespace(num_classes=10, image_size=32)) / 40
    report += ["", compute_floor(paper_flops, peak, unit)]
    if args.profile_steps:
        largest = max(r["models"] for r in rows if r["label"].startswith("fused") and not r["oom"])
        step_ms = {r["label"]: r["ms"] for r in rows if not r["oom"]}
        report += [""] + profile_loop("naive DataLoader", single_loop(config, data, device, naive_loader), device,
                                      args.warmup, args.profile_steps, step_ms["naive DataLoader"])
        report += [""] + profile_loop(f"fused N={largest}", fused_loop(config, data, device, largest, args), device,
                                      args.warmup, args.profile_steps, step_ms[f"fused N={largest}"])
    text = "\n".join(report)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
