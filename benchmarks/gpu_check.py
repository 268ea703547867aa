"""Every GPU check in one command (`make gpu-check`), sized for a short window on one GPU (8 minutes).

Steps, in order, each a subprocess with its own time budget (the run goes on when one fails or runs
out of time), all output under one folder (default `benchmarks/results/gpu-check-<date>/`):

1. `cuda-tests`: the tests that need CUDA (`pytest -m cuda`),
2. `train-fp32`: `bench_train.py --device cuda` (naive loop vs GPU-resident data vs fused N = 1..128,
   as memory allows) in fp32 with profiler evidence,
3. `train-amp-cl`: the same with `--amp --channels-last`,
4. `slice-adam`, `slice-sgd`: Table 1's Adam and SGD L2 rows at the `gpu` profile (BasicNet 64-1x,
   32x32 synthetic), each optimizer one fused group (`sweep --fused on --channels-last`), trained into
   the run store (resumable: a run cut by its budget continues from its checkpoint next time),
5. `prune`: `bench_prune.py` on CUDA (dense vs pruned latency, both BN-folded),
6. `train-compile`: `bench_train.py --amp --channels-last --compile` at one fused N, last, since
   compilation time is the least predictable.

It writes `summary.json` (every step's command, status, seconds, log) and `report.md` and appends the
report to BENCHMARKS.md with the device, date and command. `--dry-run` runs the same steps with the
same code at smoke size on the CPU in a few minutes (CUDA tests are reported as skipped, the slice goes
to a temporary store, BENCHMARKS.md is not touched): `make test` runs it, so a GPU window is never
spent on a typo.

    python benchmarks/gpu_check.py                 # on the GPU machine: make gpu-check
    python benchmarks/gpu_check.py --dry-run       # anywhere: make gpu-check DRY_RUN=1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sparsity_lib import RunStore, config_hash, make_config  # noqa: E402
from sparsity_lib.report.paper import table1  # noqa: E402

TOTAL_S = 480  # the whole check: 8 minutes of one GPU
DRY_BUDGET_S = 200  # each step of a dry run: the GPU budgets mean nothing on a (possibly shared) CPU
SLICE_OPTIMIZERS = ("adam", "sgd")


@dataclass
class Step:
    """One check: a command, its time budget in seconds, the files it should leave in the output folder."""
    name: str
    budget_s: float
    command: list[str]
    outputs: list[str] = field(default_factory=list)
    status: str = "not run"
    returncode: int | None = None
    seconds: float = 0.0
    log: str = ""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps at smoke size on the CPU; BENCHMARKS.md is not modified")
    parser.add_argument("--out", default=None, help="output folder (default: benchmarks/results/gpu-check-<date>"
                                                     "[-dry-run])")
    parser.add_argument("--store", default=None, help="run store for the slice (default: $SPARSITY_STORE or "
                                                       "results; dry run: a temporary store)")
    parser.add_argument("--total-s", type=float, default=TOTAL_S, help="wall-time limit of all steps together "
                        "(default: %(default)s)")
    parser.add_argument("--benchmarks-md", default=str(ROOT / "BENCHMARKS.md"),
                        help="file the report is appended to (not in a dry run)")
    return parser.parse_args(argv)


def slice_configs(optimizer: str, profile: str) -> list:
    """Table 1's rows of `optimizer` with L2 (CIFAR-10 rows; our data: the synthetic shapes) at `profile`."""
    rows = table1()
    rows = rows[(rows.optimizer == optimizer) & (rows.regularizer == "L2") & (rows.dataset == "cifar10")]
    return [make_config(profile, dataset="synthetic", optimizer=optimizer, l2=float(l2), seed=0)
            for l2 in rows.strength]


def plan(args, out: Path, store: Path) -> list[Step]:
    """The steps of the check; a dry run changes only sizes and the device, never the code path."""
    python = sys.executable
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    bench = [python, "benchmarks/bench_train.py", "--device", device]
    size = (["--small", "--steps", "3", "--warmup", "1", "--fused", "1", "2", "--train-images", "200",
             "--profile-steps", "1"] if dry
            else ["--fused", "1", "4", "16", "32", "64", "128", "--steps", "50", "--profile-steps", "20"])
    compile_size = (["--small", "--steps", "2", "--warmup", "1", "--fused", "2", "--train-images", "200"] if dry
                    else ["--fused", "16", "--steps", "50"])
    profile = "smoke" if dry else "gpu"
    steps = [
        Step("cuda-tests", 60, [python, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests",
                                "--junitxml", str(out / "cuda-tests.xml")], ["cuda-tests.xml"]),
        Step("train-fp32", 75, bench + size + ["--output", str(out / "train-fp32.md")], ["train-fp32.md"]),
        Step("train-amp-cl", 60, bench + size + ["--amp", "--channels-last", "--output", str(out / "train-amp-cl.md")],
             ["train-amp-cl.md"]),
    ]
    for optimizer in SLICE_OPTIMIZERS:
        l2_values = ",".join(repr(config.l2) for config in slice_configs(optimizer, profile))
        steps.append(Step(f"slice-{optimizer}", 90, [
            python, "-m", "sparsity_lib", "sweep", "--profile", profile, "--store", str(store), "--device", device,
            "--set", "dataset=synthetic", "--set", f"optimizer={optimizer}", "--grid", f"l2={l2_values}",
            "--seeds", "1", "--fused", "on", "--channels-last", "--max-models", "32", "--workers", "1"]))
    prune_size = (["--devices", "cpu", "--batches", "1", "--warmup", "1", "--min-runs", "3", "--min-runs-large", "1",
                   "--min-run-time", "0.01", "--denormals", "flush"] if dry
                  else ["--devices", "cuda", "--min-run-time", "0.2"])
    steps.append(Step("prune", 45, [python, "benchmarks/bench_prune.py", "--store", str(store), *prune_size,
                                    "--out", str(out / "prune.md")], ["prune.md"]))
    steps.append(Step("train-compile", 120, bench + compile_size + ["--amp", "--channels-last", "--compile",
                                                                     "--output", str(out / "train-compile.md")],
                      ["train-compile.md"]))
    if dry:
        for step in steps:
            step.budget_s = DRY_BUDGET_S
    return steps


def run_step(step: Step, out: Path, seconds_left: float) -> None:
    """Run `step` with a timeout of its budget (or what is left of the total); its output goes to its log.
    On timeout the whole process group is killed (pytest workers, compile workers)."""
    step.log = f"{step.name}.log"
    timeout = min(step.budget_s, seconds_left)
    if timeout < 5:
        step.status = "skipped (no time left)"
        return
    started = time.perf_counter()
    with open(out / step.log, "w") as log:
        log.write("$ " + " ".join(step.command) + "\n")
        log.flush()
        process = subprocess.Popen(step.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            step.returncode = process.wait(timeout=timeout)
            step.status = "ok" if step.returncode == 0 else f"failed (exit {step.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            step.status = f"timed out after {timeout:.0f} s"
    step.seconds = round(time.perf_counter() - started, 1)
    missing = [name for name in step.outputs if not (out / name).exists()]
    if step.status == "ok" and missing:
        step.status = f"failed (no {', '.join(missing)})"
    if step.name == "cuda-tests" and (out / "cuda-tests.xml").exists():
        step.status = test_status(out / "cuda-tests.xml", step.status)


def test_status(junit: Path, status: str) -> str:
    """'ok (N passed)', 'skipped (N tests need CUDA)' or the failure, from pytest's JUnit XML."""
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    if counts["failures"] or counts["errors"]:
        return f"failed ({counts['failures']} failed, {counts['errors']} errors, {passed} passed)"
    if counts["tests"] and counts["skipped"] == counts["tests"]:
        return f"skipped ({counts['tests']} tests need CUDA)"
    return f"ok ({passed} passed, {counts['skipped']} skipped)" if status == "ok" else status


def device_name() -> str:
    import torch
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    return f"no GPU: {platform.processor() or platform.machine()} CPU (torch {torch.__version__})"


def slice_table(store: Path, profile: str) -> list[str]:
    """The slice's records in the store: one row per Table 1 row, paper numbers beside ours."""
    paper = table1()
    lines = ["| optimizer | L2 | paper C10 gamma sparsity % | ours gamma % | ours act % | test err % | "
             "steps | precision | wall s (group) | stored |", "|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for optimizer in SLICE_OPTIMIZERS:
        for config in slice_configs(optimizer, profile):
            row = paper[(paper.optimizer == optimizer) & (paper.regularizer == "L2") & (paper.dataset == "cifar10")
                        & (paper.strength == config.l2)]
            record = RunStore(store).load(config_hash(config))
            want = f"{row.sparsity_gamma.item():g}" if len(row) else ""
            if record is None:
                lines.append(f"| {optimizer} | {config.l2:g} | {want} | | | | | | | no |")
                continue
            final, provenance = record["final"], record["provenance"]
            lines.append(f"| {optimizer} | {config.l2:g} | {want} | {final['sparsity_gamma']:.1f} | "
                         f"{final['sparsity_act']:.1f} | {final['test_err']:.2f} | {provenance['steps']} | "
                         f"{provenance.get('precision', 'float32')} | {provenance['wall_time_s']} | yes |")
    return lines


def report(steps: list[Step], args, out: Path, store: Path, command: str, started: str) -> str:
    profile = "smoke" if args.dry_run else "gpu"
    lines = [f"## GPU check{' (dry run)' if args.dry_run else ''}: {device_name()}", "",
             f"- date: {started}; machine: {platform.node()}",
             f"- command: `{command}` (wall-time limit {args.total_s:.0f} s); output folder: "
             f"`{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}`", "",
             "| step | status | seconds | budget s |", "|---|---|---:|---:|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds} | {s.budget_s:.0f} |" for s in steps]
    for name, title in (("train-fp32.md", "Training throughput, fp32 eager"),
                        ("train-amp-cl.md", "Training throughput, bf16 autocast + channels_last"),
                        ("train-compile.md", "Training throughput, bf16 + channels_last + torch.compile"),
                        ("prune.md", "Pruning latency")):
        if (out / name).exists():
            text = (out / name).read_text().strip().replace("# Pruning latency: dense vs pruned (both BN-folded)", "")
            lines += ["", f"### {title}", "", text]
    lines += ["", f"### Table 1 slice at the `{profile}` profile (store `{store}`)", ""] + slice_table(store, profile)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stamp = started[:16].replace(":", "")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        f"gpu-check-{stamp}" + ("-dry-run" if args.dry_run else ""))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="gpu-check-store-") as scratch:
        store = Path(args.store or (scratch if args.dry_run else os.environ.get("SPARSITY_STORE", ROOT / "results")))
        steps = plan(args, out, store.resolve())
        deadline = time.perf_counter() + args.total_s
        for step in steps:
            print(f"[gpu-check] {step.name} (budget {step.budget_s:.0f} s) ...", flush=True)
            run_step(step, out, deadline - time.perf_counter())
            print(f"[gpu-check] {step.name}: {step.status} in {step.seconds} s; log {out / step.log}", flush=True)
        text = report(steps, args, out, store.resolve(), command, started)
    (out / "report.md").write_text(text)
    failed = [s.name for s in steps if not (s.status.startswith("ok") or s.status.startswith("skipped (")
                                             and s.name == "cuda-tests" and args.dry_run)]
    summary = {"dry_run": args.dry_run, "device": device_name(), "date": started, "command": command,
               "total_s": args.total_s, "ok": not failed, "failed": failed, "steps": [asdict(s) for s in steps]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not args.dry_run:
        with open(args.benchmarks_md, "a") as handle:
            handle.write("\n" + text)
        print(f"[gpu-check] appended the report to {args.benchmarks_md}")
    print(text)
    print(f"[gpu-check] {'all steps ok' if not failed else 'failed: ' + ', '.join(failed)}; output in {out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
