"""What a network costs: features, parameters and MACs per layer, and measured latency (paper Sec. 5.2,
Tables 7, 9, 10), plus the structure checks every pruning function relies on.

`layer_costs` counts with torch.utils.flop_counter; `fold_bn` folds BatchNorm into the convs so
dense and pruned networks are timed alike by `latency`.
"""
from __future__ import annotations

import copy
import logging

import pandas as pd
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval
from torch.utils.flop_counter import FlopCounterMode

from ..nets.models import ConvBlock, conv_bn_layers

# Importing torch.utils.benchmark logs a CUDA_HOME notice on CPU-only machines; it is not ours to show.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402  (after the logger is quietened)

__all__ = ["check_prunable", "compare_costs", "conv_blocks", "fold_bn", "latency", "latency_table", "layer_costs",
           "SUPPORTED"]


SUPPORTED = ("a BasicNet or VGG: `features` holding ConvBlocks and MaxPool2d, `pool` an average pool, "
             "`classifier` starting with Flatten, Linear")


def check_prunable(model: nn.Module) -> None:
    ok = (isinstance(getattr(model, "features", None), nn.Sequential)
          and all(isinstance(m, (ConvBlock, nn.MaxPool2d)) for m in model.features)
          and isinstance(getattr(model, "pool", None), (nn.AdaptiveAvgPool2d, nn.AvgPool2d))
          and isinstance(getattr(model, "classifier", None), nn.Sequential)
          and isinstance(model.classifier[0], nn.Flatten) and isinstance(model.classifier[1], nn.Linear))
    if not ok:
        raise ValueError(f"model of type {type(model).__name__} cannot be pruned; supported: {SUPPORTED}")
    if isinstance(model.pool, nn.AvgPool2d) and model.pool.padding not in (0, (0, 0)):
        raise ValueError("model.pool pads its input, so a constant feature would not stay constant; "
                         "supported: average pools without padding")


def conv_blocks(model: nn.Module) -> list[ConvBlock]:
    return [m for m in model.features if isinstance(m, ConvBlock)]


def layer_costs(model: nn.Module, input_shape=(1, 3, 32, 32)) -> pd.DataFrame:
    """Per conv layer (C1..Cn) and for the fc head: features, parameters and MACs of one forward
    pass on `input_shape`. MACs come from torch.utils.flop_counter (FLOPs / 2; convolutions and
    matrix products only: BN, activations and pooling are not counted)."""
    check_prunable(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False, depth=None) as counter:
        model(torch.zeros(input_shape, device=device))
    model.train(was_training)
    counts = counter.get_flop_counts()
    prefix = type(model).__name__
    module_names = {module: name for name, module in model.named_modules()}
    rows = []
    for (name, conv, bn), block in zip(conv_bn_layers(model), conv_blocks(model)):
        flops = sum(counts.get(f"{prefix}.{module_names[block]}", {}).values())
        rows.append({"layer": name, "features": conv.out_channels,
                     "params": sum(p.numel() for p in block.parameters()), "macs": flops // 2})
    head_flops = sum(counts.get(f"{prefix}.classifier", {}).values())
    rows.append({"layer": "head", "features": 0, "params": sum(p.numel() for p in model.classifier.parameters()),
                 "macs": head_flops // 2})
    return pd.DataFrame(rows)


def compare_costs(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Side-by-side costs (features, params, MACs before/after per layer) with a 'total' row."""
    frame = before.merge(after, on="layer", suffixes=("_before", "_after"))
    total = frame.drop(columns="layer").sum().to_dict()
    frame = pd.concat([frame, pd.DataFrame([{"layer": "total", **total}])], ignore_index=True)
    columns = ["layer"] + [f"{what}_{when}" for what in ("features", "params", "macs") for when in ("before", "after")]
    return frame[columns]


@torch.no_grad()
def fold_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every conv BN folded into its conv (which gains a bias) and every
    Linear -> BatchNorm1d pair folded into the Linear, so dense and pruned models are timed alike.
    Uses torch.nn.utils.fusion; the result computes the eval-mode function of `model`."""
    folded = copy.deepcopy(model).eval()
    for block in conv_blocks(folded) if hasattr(folded, "features") else []:
        if isinstance(block.bn, nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = nn.Identity()
    for sequential in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequential) - 1):
            if isinstance(sequential[i], nn.Linear) and isinstance(sequential[i + 1], nn.BatchNorm1d):
                sequential[i] = fuse_linear_bn_eval(sequential[i], sequential[i + 1])
                sequential[i + 1] = nn.Identity()
    return folded


@torch.no_grad()
def latency(model: nn.Module, input_shape, *, device: str = "cpu", warmup: int = 5, min_runs: int = 20,
            min_run_time: float = 1.0) -> dict:
    """Median seconds per forward pass of `model` (eval mode, no autograd) on a random batch of
    `input_shape`: `warmup` untimed passes, then single passes timed with torch.utils.benchmark.Timer
    (which synchronizes CUDA) until both `min_runs` runs and `min_run_time` seconds are done.
    Returns median_s, iqr_s (interquartile range), runs and images_per_s (batch / median)."""
    model = model.eval().to(device)
    x = torch.randn(input_shape, device=device)
    for _ in range(warmup):
        model(x)
    timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    times: list[float] = []
    while len(times) < min_runs or sum(times) < min_run_time:
        times.append(timer.timeit(1).median)
    series = torch.tensor(times, dtype=torch.float64)
    median = float(series.median())
    iqr = float(series.quantile(0.75) - series.quantile(0.25))
    return {"median_s": median, "iqr_s": iqr, "runs": len(times), "images_per_s": input_shape[0] / median}


def latency_table(pairs: dict, batches=(1, 256), *, device: str = "cpu", flush_denormals: bool = True,
                  min_runs: int = 20, min_run_time: float = 1.0) -> pd.DataFrame:
    """Measured speed-up of pruning (paper Sec. 5.2): `pairs` maps a label to (dense model, pruned model,
    image side in pixels); both are BN-folded (`fold_bn`) and timed by `latency` on `device` only, at
    each batch of `batches`. One row per (model, batch): dense ms, pruned ms (median per forward pass),
    speed-up (dense time / pruned time) and MAC cut (dense MACs / pruned MACs, `layer_costs`).

    `flush_denormals=True` times the CPU with flush-to-zero on (back to PyTorch's default, off,
    afterwards): Adam+L2 leaves the weights of dead filters subnormal, and x86 CPUs compute on
    subnormal floats many times slower, which would credit pruning with more than its structure
    removes. It does not apply to a GPU.
    """
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available here; allowed: cpu (or cuda on a machine with a GPU)")
    rows = []
    torch.set_flush_denormal(flush_denormals)
    try:
        for label, (dense, pruned, side) in pairs.items():
            macs = [int(layer_costs(model, (1, 3, side, side))["macs"].sum()) for model in (dense, pruned)]
            folded = [fold_bn(model) for model in (dense, pruned)]
            for batch in batches:
                times = [latency(model, (batch, 3, side, side), device=device, min_runs=min_runs,
                                 min_run_time=min_run_time)["median_s"] for model in folded]
                rows.append({"model": label, "batch": batch, "dense ms": 1e3 * times[0], "pruned ms": 1e3 * times[1],
                             "speed-up": times[0] / times[1], "MAC cut": macs[0] / max(1, macs[1])})
    finally:
        torch.set_flush_denormal(False)  # PyTorch's default (it has no getter to restore from)
    return pd.DataFrame(rows, columns=["model", "batch", "dense ms", "pruned ms", "speed-up", "MAC cut"])
