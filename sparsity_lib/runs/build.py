"""Everything a run is built from: the device ("auto", "cpu", "cuda", "cuda:N"), the train/test
splits its config names, the model and optimizer, the CPU speed options (channels_last), and
`load_model`, which rebuilds a stored run's network from its record and weights
(`weights_only=True`)."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..data.datasets import load_dataset
from ..folders import resolve_data_root
from ..nets.models import make_model
from ..nets.optim import make_optimizer
from .checkpoint import error_line
from .config import RunConfig
from .files import file_sha256

__all__ = ["build_model", "build_optimizer", "CPU_CHANNELS_LAST", "CPU_COMPILE", "DEVICES", "load_model", "load_splits",
           "pick_device", "speed_options", "step_setup", "training_device"]
DEVICES = "auto, cpu, cuda, cuda:N"


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device, which must exist here.

    Raises ValueError naming the device and the allowed values for a misspelt or unavailable one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"device={device!r} is invalid; allowed: {DEVICES}")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device[5:] or 0)
        if index >= count:
            raise ValueError(f"device={device!r} is not available here ({count} CUDA device(s) found); "
                             f"allowed: auto, cpu" + (f", cuda:0..cuda:{count - 1}" if count else ""))
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available here; allowed: auto, cpu")
    return torch.device(device)


def load_splits(config: RunConfig, data_root=None):
    """(train, test) datasets for a config; the data itself is always generated/read with seed 0."""
    root = resolve_data_root(data_root)
    common = dict(image_size=config.image_size, clutter=config.clutter, num_classes=config.num_classes or 10)
    train_data = load_dataset(config.dataset, root, "train", subset=config.train_subset,
                              stream=config.train_stream, **common)
    test_data = load_dataset(config.dataset, root, "test", subset=config.test_subset, **common)
    return train_data, test_data


def build_model(config: RunConfig, num_classes: int, image_size: int) -> nn.Module:
    """The model of a config, initialized from `config.seed`."""
    torch.manual_seed(config.seed)
    return make_model(config.model, num_classes, image_size=image_size, head=config.head, width=config.width,
                      first_width=config.first_width, activation=config.activation,
                      negative_slope=config.negative_slope, bn_weight_init=config.bn_weight_init,
                      bn_bias_init=config.bn_bias_init)


def build_optimizer(config: RunConfig, model: nn.Module):
    return make_optimizer(model, config.optimizer, lr=config.lr, l2=config.l2, wd=config.wd,
                          gamma_lr_scale=config.gamma_lr_scale, beta_lr_scale=config.beta_lr_scale)


def training_device(device: str = "auto") -> tuple[torch.device, bool]:
    """(`pick_device(device)`, whether subnormal floats are now flushed to zero): every trainer's start.

    L2 drives dead filters' weights into subnormal floats, which slow CPU arithmetic ~5x; on the CPU
    they are flushed to zero (process-wide), which changes nothing measurable (|values| < 1e-38).
    """
    dev = pick_device(device)
    return dev, (torch.set_flush_denormal(True) if dev.type == "cpu" else False)


# The CPU step's speed options, chosen by measurement (`benchmarks/bench_cpu_step.py`, BENCHMARKS.md
# section 5): a layout or compiler is adopted only where it is faster and changes no number beyond
# float32 rounding. Every record names the options it was trained with (provenance).
CPU_CHANNELS_LAST = True  # measured faster on the 2-core development VM, 1 and 2 threads
CPU_COMPILE = False  # measured no faster than channels_last alone, and each run would pay the compile


def step_setup(model: nn.Module, dev: torch.device) -> tuple:
    """(forward, prepare) for `train_step` on `dev`: `forward` runs the model (the model itself, or its
    `torch.compile`d wrapper), `prepare(x)` converts a batch (None: as it comes). With channels_last
    the model's weights are converted in place."""
    channels_last, compile = speed_options(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    prepare = (lambda x: x.contiguous(memory_format=torch.channels_last)) if channels_last else None
    return forward, prepare


def speed_options(dev: torch.device) -> tuple[bool, bool]:
    """(channels_last, compile) of the plain trainer on `dev`: the measured CPU choice; none on GPUs
    (unmeasured there; the fused trainer has its own options)."""
    return (CPU_CHANNELS_LAST, CPU_COMPILE) if dev.type == "cpu" else (False, False)


def load_model(record: dict, weights_path, device: str = "cpu") -> nn.Module:
    """Rebuild the trained model of a stored record from its saved weights (`RunStore.weights_file`).

    Raises ValueError naming the file when the record has no `weights_sha256`, or the weights are
    missing, do not match it, cannot be read (read with `weights_only=True`: a planted pickle cannot
    run code), or do not fit the record's model.
    """
    path = Path(weights_path)
    if not isinstance(record.get("weights_sha256"), str):
        raise ValueError(f"record of run {record.get('config_hash')} has no weights_sha256, so weights file {path} "
                         "cannot be checked; allowed: a record stored with its weights")
    config = RunConfig.from_dict(record["config"])
    classes = config.num_classes or {"cifar100": 100, "tinyimagenet": 200, "imagenet": 1000}.get(config.dataset, 10)
    model = build_model(config, classes, record["provenance"]["image_size"])
    try:
        if file_sha256(path) != record["weights_sha256"]:
            raise ValueError(f"its sha256 differs from the record's weights_sha256 {record['weights_sha256'][:12]}...")
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except Exception as error:  # noqa: BLE001 -- one message naming the file, whatever torch raised
        raise ValueError(f"weights file {path} of run {record.get('config_hash')} is unusable "
                         f"({error_line(error)})") from None
    return model.to(device).eval()
