"""Command line: `python -m sparsity_lib {train,sweep,ls} --help`."""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import typing

from .experiments import (DEFAULT_STORE, PROFILES, RunConfig, RunStore, config_hash, get_profile, make_config,
                          run_or_load, runs_frame)


def _field_parser(field: dataclasses.Field):
    """A function turning a command-line string into the field's type."""
    hint = str(field.type)
    if hint == "bool":
        return _parse_bool
    if "tuple" in hint:
        inner = str if "str" in hint else float
        return lambda text: tuple(inner(part) for part in text.split(",") if part)
    if "int" in hint and "float" not in hint:
        return lambda text: None if text.lower() == "none" else int(text)
    if "float" in hint:
        return lambda text: None if text.lower() == "none" else float(text)
    return str


def _parse_bool(text: str) -> bool:
    words = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
    if text.lower() not in words:
        raise ValueError(f"{text!r} is not a boolean; allowed: true, false")
    return words[text.lower()]


FIELDS = {field.name: field for field in dataclasses.fields(RunConfig)}


def parse_value(name: str, text: str):
    if name not in FIELDS:
        raise SystemExit(f"error: unknown config field {name!r}; allowed: {', '.join(FIELDS)}")
    try:
        return _field_parser(FIELDS[name])(text)
    except ValueError:
        allowed = "; allowed: true, false" if FIELDS[name].type == "bool" else ""
        raise ValueError(f"{name}={text!r} is not a valid {FIELDS[name].type}{allowed}") from None


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="paper", choices=list(PROFILES), help="size profile (default: paper)")
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="run store folder (default: %(default)s)")
    parser.add_argument("--data-root", default=None, help="folder holding datasets (default: $SPARSITY_DATA or data/)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--fresh", action="store_true", help="retrain even when the store has the run")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's missing configurations train (sparsity_lib.cluster); 'local' is this machine."""
    from .cluster import BACKENDS
    group = parser.add_argument_group("cluster", "train the missing configurations as tasks on this machine's "
                                                 "cores, on Ray or on SLURM (ray/slurm need: pip install -r "
                                                 "requirements-cluster.txt)")
    group.add_argument("--backend", default="local", choices=BACKENDS,
                       help="local: this machine (default); ray: Ray tasks; slurm: a submitit job array")
    group.add_argument("--workers", default="auto", type=parse_workers, metavar="N",
                       help="local: worker processes of one torch thread each; 1 trains one after another in "
                            "this process (default: auto = one per core on the CPU, 1 on a GPU)")
    group.add_argument("--address", default=None,
                       help="ray: cluster address ('auto', 'ray://head:10001'); default: $RAY_ADDRESS, "
                            "else start a local Ray")
    group.add_argument("--retries", type=int, default=2, help="extra attempts of a failed task (default: 2)")
    group.add_argument("--gpus", type=int, default=None,
                       help="GPUs per task (default: ray 1 if the cluster has GPUs else 0; slurm 1)")
    group.add_argument("--cpus", type=int, default=None, help="CPUs per task (default: ray 1, slurm 4)")
    group.add_argument("--partition", default=None, help="slurm: partition (default: the cluster's default)")
    group.add_argument("--time", type=int, default=24 * 60, metavar="MINUTES",
                       help="slurm: job time limit in minutes; a job that hits it is requeued and resumes "
                            "(default: %(default)s)")
    group.add_argument("--job-folder", default=None, help="slurm: submitit scripts and logs (default: STORE/slurm)")


def parse_workers(text: str) -> int | str:
    """--workers: 'auto' or an integer >= 1."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--workers {text!r} is invalid; allowed: auto or an integer >= 1")
    return int(text)


def backend_options(args) -> dict:
    """The keyword arguments of `cluster.run_sweep` for the chosen backend, from the CLI flags."""
    if args.backend == "local":
        from .cluster import local_workers
        return {"workers": local_workers(args.workers, args.device)}
    per_task = {"gpus_per_task": args.gpus, "cpus_per_task": args.cpus}
    options = {"address": args.address} if args.backend == "ray" else {
        "folder": args.job_folder, "partition": args.partition, "time_min": args.time}
    return {**options, **{name: value for name, value in per_task.items() if value is not None}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparsity_lib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train (or load) one configuration",
                                description="Train one RunConfig; fields not given keep the paper defaults.")
    add_common(train)
    for name, field in FIELDS.items():
        train.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, metavar=name.upper(),
                           help=f"default: {field.default}")

    sweep = commands.add_parser("sweep", help="train (or load) a grid of configurations",
                                description="Example: sweep --profile cpu --set dataset=synthetic "
                                            "--grid optimizer=adam,sgd --grid l2=1e-4,1e-3 --seeds 1")
    add_common(sweep)
    sweep.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="fixed field")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2", help="swept field")
    sweep.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default: the profile's)")
    sweep.add_argument("--dry-run", action="store_true", help="list the configurations and whether they are stored")
    sweep.add_argument("--fused", default="auto", choices=("auto", "on", "off"),
                       help="train configs that differ only in optimizer hyperparameters/seed as one wide network: "
                            "auto = on CUDA only (default), on = any device, off = never")
    sweep.add_argument("--max-models", type=int, default=32, help="models per fused group (default: %(default)s)")
    sweep.add_argument("--amp", action="store_true", help="fused groups: bf16 autocast forward (recorded per run)")
    sweep.add_argument("--channels-last", action="store_true", help="fused groups: NHWC activations")
    sweep.add_argument("--compile", action="store_true", help="fused groups: torch.compile the fused forward")
    add_cluster_options(sweep)

    book = commands.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    book.add_argument("--profile", default="cpu", choices=list(PROFILES))
    book.add_argument("--dataset", default="auto", help="auto | cifar10 | cifar100 | synthetic | ...")
    book.add_argument("--chapter", default="all", help="all, a chapter number, or a comma list (2,5)")
    book.add_argument("--fresh", action="store_true", help="retrain every run instead of loading stored ones")
    book.add_argument("--no-html", action="store_true", help="execute notebooks only")
    book.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                      help="a chapter parameter, e.g. -p l2_values '[1e-4, 1e-3]'")

    ls = commands.add_parser("ls", help="list the runs in the store")
    ls.add_argument("--store", default=str(DEFAULT_STORE))
    ls.add_argument("--json", action="store_true", help="print records as JSON lines")
    return parser


def _split_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise SystemExit(f"error: expected FIELD=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def sweep_configs(args) -> list[RunConfig]:
    profile = get_profile(args.profile)
    base = {name: parse_value(name, value) for name, value in map(_split_assignment, args.set)}
    grid = {}
    for text in args.grid:
        name, values = _split_assignment(text)
        grid[name] = [parse_value(name, value) for value in values.split(",")] if "tuple" not in str(
            FIELDS.get(name, dataclasses.field()).type) else [parse_value(name, values)]
    configs = []
    for combo in itertools.product(*grid.values()):
        for seed in profile.seed_list(args.seeds):
            values = {**base, **dict(zip(grid, combo)), "seed": seed}
            configs.append(profile.apply(RunConfig(**values)))
    return configs


def run_configs(configs, args) -> list[dict]:
    store = RunStore(args.store)
    records = []
    for index, config in enumerate(configs, start=1):
        print(f"[{index}/{len(configs)}] {config.label()} seed {config.seed} ({config_hash(config)})", flush=True)
        records.append(run_or_load(config, store=store, data_root=args.data_root, device=args.device,
                                   profile=args.profile, fresh=args.fresh))
    return records


def speed_options(args) -> tuple[str, ...]:
    """The fused trainer's speed options asked for on the command line (--amp, --channels-last, --compile)."""
    from .fused import SPEED_OPTIONS
    return tuple(name for name in SPEED_OPTIONS if getattr(args, name, False))


def sweep_on_backend(configs, args) -> int:
    """Train the missing configs on args.backend (sparsity_lib.cluster), print every record; exit code."""
    from .cluster import SweepFailed, sweep_records
    try:
        # one task per fusable group only when fusion is asked for explicitly (--fused on)
        fused = "on" if args.fused == "on" else "off"
        records = sweep_records(configs, backend=args.backend, store=args.store, data_root=args.data_root,
                                device=args.device, profile=args.profile, fresh=args.fresh, retries=args.retries,
                                fused=fused, max_models=args.max_models, speed=speed_options(args),
                                **backend_options(args))
    except SweepFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        if error.name not in ("ray", "submitit"):
            raise
        print(f"error: --backend {args.backend} needs {error.name}, which is not installed; allowed without it: "
              f"--backend local (or pip install -r requirements-cluster.txt)", file=sys.stderr)
        return 2
    print_table(records)
    return 0


def print_table(records) -> None:
    if not records:
        print("no runs")
        return
    columns = ["config_hash", "dataset", "model", "optimizer", "l2", "wd", "batch_size", "seed",
               "test_err", "sparsity_gamma", "sparsity_act"]
    frame = runs_frame(records)
    print(frame[[c for c in columns if c in frame]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "ls":
            records = RunStore(args.store).records()
            if args.json:
                for record in records:
                    print(json.dumps(record))
            else:
                print_table(records)
            return 0
        if args.command == "book":
            from .book import ChapterFailed, build_book, parse_parameter
            extra = {name: parse_parameter(value) for name, value in args.parameter}
            try:
                build_book(args.profile, args.dataset, args.chapter, args.fresh, extra, html=not args.no_html)
            except ChapterFailed as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            return 0
        if args.command == "train":
            values = {name: parse_value(name, getattr(args, name)) for name in FIELDS
                      if getattr(args, name) is not None}
            configs = [make_config(args.profile, **values)]
        else:
            configs = sweep_configs(args)
            if args.dry_run:
                store = RunStore(args.store)
                for config in configs:
                    stored = store.record_path(config_hash(config)).exists()
                    print(f"{config_hash(config)} {'stored ' if stored else 'missing'} {config.label()} seed {config.seed}")
                return 0
            if speed_options(args) and args.fused == "off":
                raise ValueError(f"--{', --'.join(n.replace('_', '-') for n in speed_options(args))}: options of "
                                 "the fused trainer; use --fused on (or auto on CUDA)")
            if args.backend != "local" or backend_options(args)["workers"] > 1:
                return sweep_on_backend(configs, args)
            if args.fused != "off":
                from .fused import run_or_load_group
                print_table(run_or_load_group(configs, store=args.store, data_root=args.data_root,
                                              device=args.device, profile=args.profile, fresh=args.fresh,
                                              fused=args.fused, max_models=args.max_models,
                                              **{name: True for name in speed_options(args)}))
                return 0
        print_table(run_configs(configs, args))
        return 0
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
