"""Latency of dense vs pruned networks, both BN-folded (paper Sec. 5.2: pruning for a real speed-up).

For each model: prune the dead features with `sparsity_lib.pruning.surgery`, fold BN into the convs of both
the dense and the pruned network (`fold_bn`), then time one forward pass at batch 1 and batch 256
(median of many timed runs after warm-up, `sparsity_lib.pruning.costs.latency`), on the CPU always and on
the GPU when one is present. The speed-up is compared with the MAC reduction counted by
torch.utils.flop_counter: ratio = (latency speed-up) / (MAC reduction); 1 means the time fell as
much as the arithmetic.

Models:
- `stored`: runs of a run store matching --optimizer/--l2/--batch-size/--model (default: the cpu
  profile's Adam + L2 1e-3, batch 40 BasicNet), pruned by the implicit method (|gamma| < 1e-3).
- `paper-rates`: full-width BasicNet 64-1x and VGG-16 at 32x32 with *untrained* weights whose dead
  features are drawn at random at the paper's per-layer rates (Table 2 CIFAR-10 Adam L2 1e-4;
  Table 7 CIFAR-10 batch 40). Latency depends on shapes only, so this measures the speed-up the
  paper's sparsity would give at full size; its accuracy means nothing.

    python benchmarks/bench_prune.py --store results --out benchmarks/results/prune.md
"""
from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sparsity_lib import BasicNet, RunStore, conv_bn_layers, load_model, vgg  # noqa: E402
from sparsity_lib.pruning.costs import fold_bn, latency, layer_costs  # noqa: E402
from sparsity_lib.pruning.surgery import prune_features, prune_inactive  # noqa: E402

# Per-layer % of features dead in the paper (docs/paper_tables.md): Table 2 / supplement Table 1, CIFAR-10,
# Adam L2 1e-4 (BasicNet 64-1x), and Table 7, CIFAR-10, batch 40 (VGG-16).
PAPER_RATES = {
    "BasicNet 64-1x": (lambda: BasicNet(), [44, 22, 6, 45, 54, 96, 95]),
    "VGG-16": (lambda: vgg(16), [64, 18, 50, 12, 46, 71, 82, 95, 97, 97, 98, 99, 99]),
}


def random_masks(model, percents, seed=0):
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for (name, conv, _), percent in zip(conv_bn_layers(model), percents):
        count = round(percent / 100 * conv.out_channels)
        mask = torch.zeros(conv.out_channels, dtype=torch.bool)
        mask[torch.randperm(conv.out_channels, generator=generator)[:count]] = True
        masks[name] = mask
    return masks


def stored_models(store, optimizer, l2, batch_size, model_name):
    """(label, dense, pruned, input side) for each matching stored run, pruned by |gamma| < 1e-3."""
    store = RunStore(store)
    for record in store.records():
        config = record["config"]
        if (config["optimizer"], config["l2"], config["batch_size"], config["model"]) != \
                (optimizer, l2, batch_size, model_name) or config.get("slimming_l1") or config.get("l1l2"):
            continue
        side = record["provenance"]["image_size"]
        dense = load_model(record, store.weights_file(record))
        pruned, report = prune_inactive(dense, input_shape=(1, 3, side, side))
        label = (f"{model_name} w{config['width']:g}/{config['first_width']} {config['dataset']} {side}px, "
                 f"{optimizer} L2 {l2:g} b{batch_size}, {record['provenance'].get('profile') or '?'} profile "
                 f"[{record['config_hash']}], test err {record['final']['test_err']:.2f}%")
        yield label, dense, pruned, side


def paper_rate_models():
    for name, (build, percents) in PAPER_RATES.items():
        torch.manual_seed(0)
        dense = build().eval()
        pruned, _ = prune_features(dense, random_masks(dense, percents))
        yield f"{name} 32px, paper per-layer dead rates, untrained weights", dense, pruned, 32


def total_macs(model, side):
    return int(layer_costs(model, (1, 3, side, side))["macs"].sum())


def measure(label, dense, pruned, side, devices, batches, args):
    rows = []
    macs_dense, macs_pruned = total_macs(dense, side), total_macs(pruned, side)
    features = (sum(c.out_channels for _, c, _ in conv_bn_layers(dense)),
                sum(c.out_channels for _, c, _ in conv_bn_layers(pruned)))
    folded = {"dense": fold_bn(dense), "pruned": fold_bn(pruned)}
    # Adam+L2 leaves dead filters with subnormal weights; x86 CPUs compute on them very slowly unless
    # flush-to-zero is on, which inflates the dense time: report both regimes on the CPU. The setting
    # does not reach GPU kernels, so a GPU is timed once ('n/a').
    regimes = [(d, m) for d in devices for m in (args.denormals if d == "cpu" else ["n/a"])]
    for device, denormals in regimes:
        torch.set_flush_denormal(denormals == "flush")
        for batch in batches:
            shape = (batch, 3, side, side)
            min_runs = args.min_runs if batch == 1 else args.min_runs_large
            times = {kind: latency(model, shape, device=device, warmup=args.warmup, min_runs=min_runs,
                                   min_run_time=args.min_run_time) for kind, model in folded.items()}
            speedup = times["dense"]["median_s"] / times["pruned"]["median_s"]
            reduction = macs_dense / macs_pruned
            rows.append({"model": label, "device": device, "denormals": denormals, "batch": batch, "features": features,
                         "macs": (macs_dense, macs_pruned), "dense_ms": 1e3 * times["dense"]["median_s"],
                         "pruned_ms": 1e3 * times["pruned"]["median_s"],
                         "dense_ips": times["dense"]["images_per_s"], "pruned_ips": times["pruned"]["images_per_s"],
                         "runs": (times["dense"]["runs"], times["pruned"]["runs"]),
                         "speedup": speedup, "mac_reduction": reduction, "ratio": speedup / reduction})
            print(f"{label} | {device} {denormals} b{batch}: {rows[-1]['dense_ms']:.2f} -> "
                  f"{rows[-1]['pruned_ms']:.2f} ms (x{speedup:.2f}; MACs x{reduction:.2f})", flush=True)
    return rows


def markdown(rows, args, command) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none available on this machine"
    lines = [
        "# Pruning latency: dense vs pruned (both BN-folded)", "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {platform.node()} ({cpu}, {torch.get_num_threads()} torch thread(s)), GPU: {gpu}",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        f"- command: `{command}`",
        f"- timing: torch.utils.benchmark.Timer, {args.warmup} warm-up passes, median of >= {args.min_runs} runs "
        f"(batch 1) / >= {args.min_runs_large} runs (batch 256) and >= {args.min_run_time} s per model; eval mode, "
        "no autograd, random inputs",
        "- MACs: torch.utils.flop_counter (conv + fc only) at batch 1; ratio = speed-up / MAC reduction", "",
        "- denormals: 'flush' = torch.set_flush_denormal(True) (structural speed-up); 'keep' = the default, where "
        "subnormal weights left by Adam+L2 in dead filters slow the dense CPU run",
        "",
        "| model | device | denormals | batch | features dense -> pruned | MMACs/img dense -> pruned "
        "| dense ms | pruned ms | dense img/s | pruned img/s | speed-up | MAC reduction | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['device']} | {r['denormals']} | {r['batch']} | "
                     f"{r['features'][0]} -> {r['features'][1]} | "
                     f"{r['macs'][0] / 1e6:.2f} -> {r['macs'][1] / 1e6:.2f} | {r['dense_ms']:.3f} | "
                     f"{r['pruned_ms']:.3f} | {r['dense_ips']:.0f} | {r['pruned_ips']:.0f} | x{r['speedup']:.2f} | "
                     f"x{r['mac_reduction']:.2f} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="results", help="run store holding the implicit-method runs")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=40, help="training batch size of the stored run")
    parser.add_argument("--model", default="basicnet", help="model of the stored run (basicnet, vgg16, ...)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256], help="inference batch sizes")
    parser.add_argument("--no-paper-rates", action="store_true", help="skip the full-width paper-rate models")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-runs", type=int, default=50, help="timed runs at batch 1")
    parser.add_argument("--min-runs-large", type=int, default=7, help="timed runs at batch > 1")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed runs per model at least")
    parser.add_argument("--denormals", nargs="+", default=["flush", "keep"], choices=["flush", "keep"],
                        help="time with subnormal floats flushed to zero, kept (torch default), or both")
    parser.add_argument("--devices", nargs="+", default=None, choices=["cpu", "cuda"],
                        help="devices to time on (default: cpu, and cuda when present)")
    parser.add_argument("--out", default=None, help="write a markdown table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA device is available here; allowed: cpu")
    models = list(stored_models(args.store, args.optimizer, args.l2, args.batch_size, args.model))
    if not models:
        print(f"no stored run in {args.store} matches {args.model} {args.optimizer} L2 {args.l2} b{args.batch_size}")
    if not args.no_paper_rates:
        models += list(paper_rate_models())
    rows = [row for label, dense, pruned, side in models for row in measure(label, dense, pruned, side, devices,
                                                                          args.batches, args)]
    if args.out:
        command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(markdown(rows, args, command))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
