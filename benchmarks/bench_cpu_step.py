"""The `cpu` profile's training step on this CPU: which layout, compiler and thread settings are fastest.

Times, in one process, the inner loop of `training.train` at the `cpu` profile (BasicNet 32-0.25x, 16x16
synthetic images, batch 40, Adam + L2 1e-3: one batch from the in-memory loader, then
`training.train_step`) in milliseconds per step for each variant:

- eager fp32 NCHW (the baseline), channels_last (NHWC activations and weights), torch.compile
  (inductor) of the model, and compile + channels_last,
- each at 1 and 2 torch threads (`--threads`),

and the share of the measured single-thread fp32 matmul peak (`bench_train.matmul_peak_tflops`,
1024^3, BENCHMARKS.md section 4) that each reaches, counting the useful FLOPs of the step
(`bench_train.train_step_flops`). Every variant also trains `--check-steps` steps from the baseline's
initial weights on the same batches; the table gives the largest relative change of the loss and the
relative norm of the parameter difference against the baseline at the same thread count (float32
rounding differs between kernels, so these are small, not zero). The row "train.train" is the step as
`training.train` runs it now (`build.step_setup`); it is the "after" of the before/after comparison.
The repeats go round-robin over the variants. `--clock cpu` times this thread's CPU time instead of
wall time, for a machine shared with other jobs (one thread only).

    python benchmarks/bench_cpu_step.py --steps 200 --output benchmarks/results/cpu_step.md     # idle machine
    python benchmarks/bench_cpu_step.py --clock cpu --threads 1 --output benchmarks/results/cpu_step.md  # shared
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import endless, matmul_peak_tflops, train_step_flops  # noqa: E402

from sparsity_lib import load_dataset, make_config, make_loader  # noqa: E402
from sparsity_lib.runs.build import build_model, build_optimizer, step_setup
from sparsity_lib.runs.training import train_step  # noqa: E402

VARIANTS = {  # name: (channels_last, compile)
    "eager fp32 NCHW": (False, False),
    "channels_last": (True, False),
    "torch.compile": (False, True),
    "torch.compile + channels_last": (True, True),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per variant; the median is "
                        "reported (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default: 1 2)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS) + ["train.train"],
                        choices=list(VARIANTS) + ["train.train"], help="variants to time (default: all)")
    parser.add_argument("--check-steps", type=int, default=5, help="steps compared with the baseline")
    parser.add_argument("--train-images", type=int, default=2000,
                        help="images held in memory (the step does not depend on it; default %(default)s)")
    parser.add_argument("--clock", default="wall", choices=list(CLOCKS),
                        help="wall: elapsed time (an idle machine); cpu: this thread's CPU time (a shared "
                             "machine; needs --threads 1)")
    parser.add_argument("--output", default=None, help="also write the report (Markdown) to this file")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != [1]:
        parser.error("--clock cpu measures one thread's CPU time; it needs --threads 1")
    return args


def bench_config(args):
    """The `cpu` profile's headline run (Adam + L2 1e-3), with fewer images held in memory."""
    return make_config("cpu", dataset="synthetic", optimizer="adam", l2=1e-3).replace(train_subset=args.train_images)


class Step:
    """One variant's model, optimizer and step on the batches of its own loader (same seed: same batches)."""

    def __init__(self, config, data, channels_last: bool, compile: bool, library: bool = False):
        self.config = config
        self.model = build_model(config, data.num_classes, data.image_size)
        if library:  # exactly what train.train does
            self.forward, self.prepare = step_setup(self.model, torch.device("cpu"))
        else:
            if channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            self.forward = torch.compile(self.model) if compile else self.model
            self.prepare = (lambda x: x.contiguous(memory_format=torch.channels_last)) if channels_last else None
        self.optimizer = build_optimizer(config, self.model)
        self.model.train()
        self.batches = endless(make_loader(data, config.batch_size, train=True, seed=config.seed))

    def __call__(self) -> torch.Tensor:
        x, y = next(self.batches)
        if self.prepare is not None:
            x = self.prepare(x)
        loss, _ = train_step(self.model, self.optimizer, x, y, self.config, forward=self.forward)
        return loss

    def parameters(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in self.model.parameters()])


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def time_variants(steps: dict[str, Step], args) -> dict[str, tuple[float, float]]:
    """{name: (median ms/step over the repeats, wall seconds of the warm-up, which includes any
    compilation)}. The repeats go round-robin over the variants, so a change in the machine's load
    touches all of them alike. clock 'cpu' counts this thread's CPU time (time.thread_time): on a
    machine shared with other jobs it leaves out the time the scheduler gave to them (one thread only)."""
    clock = CLOCKS[args.clock]
    warmup = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for _ in range(args.warmup):
            step()
        warmup[name] = time.perf_counter() - start
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = clock()
            for _ in range(args.steps):
                step()
            times[name].append((clock() - start) / args.steps)
    return {name: (1e3 * statistics.median(times[name]), warmup[name]) for name in steps}


def agreement(step: Step, reference: Step, steps: int) -> tuple[float, float]:
    """Train both from the same initial weights on the same batches for `steps` steps: (largest relative
    loss difference, |theta - theta_ref| / |theta_ref| at the end)."""
    worst = 0.0
    for _ in range(steps):
        loss, ref = step(), reference()
        worst = max(worst, float((loss - ref).abs() / ref.abs()))
    theta, theta_ref = step.parameters(), reference.parameters()
    return worst, float((theta - theta_ref).norm() / theta_ref.norm())


def main(argv=None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    torch.set_flush_denormal(True)  # as train.train on the CPU
    config = bench_config(args)
    data = load_dataset("synthetic", None, "train", image_size=config.image_size, subset=config.train_subset)
    flops_per_step = train_step_flops(config, data)
    torch.set_num_threads(1)
    peak, peak_how = matmul_peak_tflops(torch.device("cpu"), CLOCKS[args.clock])
    rows = []
    def make(name):
        if name == "train.train":
            return Step(config, data, False, False, library=True)
        return Step(config, data, *VARIANTS[name])

    for threads in args.threads:
        torch.set_num_threads(threads)
        torch._dynamo.reset()  # inductor's C++ kernels are specialised to the thread count: compile afresh
        timed = time_variants({name: make(name) for name in args.variants}, args)
        for name, (ms, warmup_s) in timed.items():
            loss_diff, param_diff = agreement(make(name), Step(config, data, False, False), args.check_steps)
            tflops = flops_per_step / (ms / 1e3) / 1e12
            rows.append({"variant": name, "threads": threads, "ms": ms, "warmup_s": warmup_s, "tflops": tflops,
                         "loss_diff": loss_diff, "param_diff": param_diff})
            print(f"{name}, {threads} thread(s): {ms:.2f} ms/step (warm-up {warmup_s:.1f} s), "
                  f"loss diff {loss_diff:.1e}, parameter diff {param_diff:.1e}", flush=True)

    base = {r["threads"]: r["ms"] for r in rows if r["variant"] == "eager fp32 NCHW"}
    first = min(base, key=lambda t: (t != 1, t)) if base else None
    command = f"python benchmarks/bench_cpu_step.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    report = [f"`cpu` profile step: BasicNet {config.first_width}-{config.width:g}x, "
              f"{data.image_size}x{data.image_size} {data.name}, batch {config.batch_size}, "
              f"{config.optimizer} L2 {config.l2:g}; median of {args.repeats} x "
              f"{args.steps} timed steps after {args.warmup} warm-up steps, repeats round-robin over the variants; "
              f"clock: {'wall time' if args.clock == 'wall' else 'CPU time of the timing thread (time.thread_time)'}",
              f"load average before the run: {load_before:.2f} (1 min)",
              f"machine: {platform.node()} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
              f"python {platform.python_version()}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
              f"command: {command}",
              f"training FLOPs per step: {flops_per_step / 1e9:.3f} GFLOP; peak: {peak:.3g} TFLOP/s ({peak_how}, "
              f"measured on 1 thread, {args.clock} clock)",
              f"train.train now runs: {describe_setup()}", "",
              "| variant | threads | ms/step | vs eager 1 thread | TFLOP/s | % of 1-thread peak | warm-up s "
              f"| max rel loss diff ({args.check_steps} steps) | rel param diff |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        speedup = f"{base[first] / r['ms']:.2f}x" if first is not None else ""
        report.append(f"| {r['variant']} | {r['threads']} | {r['ms']:.2f} | {speedup} | {r['tflops']:.3f} | "
                      f"{100 * r['tflops'] / peak:.1f} | {r['warmup_s']:.1f} | {r['loss_diff']:.1e} | "
                      f"{r['param_diff']:.1e} |")
    text = "\n".join(report)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


def describe_setup() -> str:
    model = torch.nn.Conv2d(3, 3, 3)
    forward, prepare = step_setup(model, torch.device("cpu"))
    layout = "channels_last" if prepare is not None else "NCHW"
    return f"{layout}, {'torch.compile' if forward is not model else 'eager'}"


if __name__ == "__main__":
    raise SystemExit(main())
