"""Command line: `python -m sparsity_lib {train,sweep,book,ls} --help`.

Every expected failure ends as one line `error: ...` on stderr naming the parameter or file, the
bad value and what is allowed: exit status 2 for a usage error (a bad value or a missing input),
1 for a failure (a diverged run, a damaged dataset, a chapter that raised, an I/O error such as a full
disk, running out of memory), 130 for Ctrl-C. A `--profile` other than `paper` fixes the epochs, so
`--epochs` is an error there.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import sys
import warnings

from tqdm import tqdm

from .book import ChapterFailed, build_book, parse_parameter
from .data.images import DatasetError
from .environment import execution_from_environment, store_from_environment
from .folders import resolve_store
from .report.frames import runs_frame
from .runs.build import pick_device
from .runs.cluster import SweepFailed
from .runs.config import PROFILES, RunConfig, config_hash, get_profile, make_config
from .runs.dispatch import run_or_load_all
from .runs.execution import BACKENDS, SPEED_OPTIONS, Execution
from .runs.loop import TrainingDiverged
from .runs.runner import run_or_load
from .runs.store import RunStore
from .study.chapter import Chapter
from .study.judge import claim_verdicts, scorecard

__all__ = ["build_parser", "main"]

USAGE_ERRORS = (ValueError, FileNotFoundError)  # exit 2: a bad value, a missing input
FAILURES = (TrainingDiverged, DatasetError, ChapterFailed, OSError)  # exit 1


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (raised as ValueError) and negative numbers in scientific
    notation read as values: `--l2 -1e-3` (plain argparse takes '-1e-3' for an option)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$")

    def error(self, message):
        raise ValueError(f"{message} (see {self.prog} --help)")


def _count(minimum: int):
    """An argparse type: an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: an integer >= {minimum}")
        return value
    return parse


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
STORE_HELP = "run store folder (default: $SPARSITY_STORE, else the checkout's results/, else the per-user cache folder)"


def parse_value(name: str, text: str):
    if name not in FIELDS:
        raise ValueError(f"unknown config field {name!r}; allowed: {', '.join(FIELDS)}")
    try:
        return _field_parser(FIELDS[name])(text)
    except ValueError:
        kind = str(FIELDS[name].type)
        allowed = {"bool": "true, false", "int": "an integer", "int | None": "an integer or none",
                   "float": "a number", "float | None": "a number or none"}.get(kind, kind)
        raise ValueError(f"{name}={text!r} is not a valid {kind}; allowed: {allowed}") from None


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="paper", choices=list(PROFILES), help="size profile (default: paper)")
    parser.add_argument("--store", default=None, help=STORE_HELP)
    parser.add_argument("--data-root", default=None, help="folder holding datasets (default: $SPARSITY_DATA, else the "
                                                          "checkout's data/, else the per-user cache folder)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--fresh", action="store_true", help="retrain even when the store has the run")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's missing configurations train (sparsity_lib.runs.cluster); 'local' is this machine."""
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
    """The keyword arguments of `cluster.run_sweep` for a ray or slurm backend, from the CLI flags."""
    if args.backend == "local":
        return {}
    per_task = {"gpus_per_task": args.gpus, "cpus_per_task": args.cpus}
    options = {"address": args.address} if args.backend == "ray" else {
        "folder": args.job_folder, "partition": args.partition, "time_min": args.time}
    return {**options, **{name: value for name, value in per_task.items() if value is not None}}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m sparsity_lib", description=__doc__)
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
    sweep.add_argument("--seeds", type=_count(1), default=None, help="seeds per configuration (default: the profile's)")
    sweep.add_argument("--dry-run", action="store_true", help="list the configurations and whether they are stored")
    sweep.add_argument("--fused", default="auto", choices=("auto", "on", "off"),
                       help="train configs that differ only in optimizer hyperparameters/seed as one wide network: "
                            "auto = on CUDA only (default), on = any device, off = never")
    sweep.add_argument("--max-models", type=_count(1), default=32, help="models per fused group (default: %(default)s)")
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
    book.add_argument("--output", default=None, metavar="DIR",
                      help="folder of the executed chapters (default: book/; a --profile other than the one "
                           "book/ was executed at writes to _build/book-PROFILE/ instead)")
    book.add_argument("--replace", action="store_true",
                      help="replace chapters executed at another profile (e.g. the committed cpu chapters)")
    book.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                      help="a chapter parameter, e.g. -p l2_values \"{'adam': [1e-4, 1e-3]}\"")

    card = commands.add_parser("scorecard", help="the paper's ten claims judged on the stored runs",
                               description="Print each claim's verdict (sparsity_lib.study.judge); with --train, "
                                           "first train every run of the book that the store lacks "
                                           "(the verdicts' runs, then the chapters' one-seed illustrations).")
    card.add_argument("--profile", default="cpu", choices=list(PROFILES))
    card.add_argument("--dataset", default="auto", help="auto | cifar10 | synthetic | ...")
    card.add_argument("--store", default=None, help=STORE_HELP)
    card.add_argument("--data-root", default=None, help="folder holding datasets (default: $SPARSITY_DATA or data/)")
    card.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    card.add_argument("--train", action="store_true",
                      help="train the book's missing runs first (in --workers processes)")
    card.add_argument("--workers", default="auto", type=parse_workers, metavar="N",
                      help="local worker processes for --train (default: auto, one per core on the CPU)")

    ls = commands.add_parser("ls", help="list the runs in the store")
    ls.add_argument("--store", default=None, help=STORE_HELP)
    ls.add_argument("--json", action="store_true", help="print records as JSON lines")
    return parser


def _split_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"expected FIELD=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def check_profile_fields(profile_name: str, names) -> None:
    """A profile that fixes the epochs (smoke, cpu) would silently replace an explicit `epochs`: refuse."""
    profile = get_profile(profile_name)
    if "epochs" in names and profile.epochs is not None:
        raise ValueError(f"epochs: --profile {profile_name} fixes epochs at {profile.epochs:g} (LR drops keep their "
                         "relative position); allowed: epochs with --profile paper only")


def sweep_fields(args) -> tuple[dict, dict]:
    """({field: value} of --set, {field: [values]} of --grid); a field given twice, in either or both, or a
    value repeated in one --grid, is an error (the last one would silently win, or a run be listed twice)."""
    base, grid, given = {}, {}, {}
    for option, texts in (("--set", args.set), ("--grid", args.grid)):
        for text in texts:
            name, values = _split_assignment(text)
            if name in given:
                raise ValueError(f"{option} {text}: {name} is already given by {given[name]}; allowed: each field "
                                 "once, in one --set or one --grid")
            given[name] = f"{option} {text}"
            if option == "--set":
                base[name] = parse_value(name, values)
            elif "tuple" in str(FIELDS.get(name, dataclasses.field()).type):
                grid[name] = [parse_value(name, values)]
            else:
                grid[name] = [parse_value(name, value) for value in values.split(",")]
                if len(set(map(repr, grid[name]))) < len(grid[name]):
                    raise ValueError(f"--grid {text}: a value of {name} is repeated; allowed: distinct values")
    return base, grid


def sweep_seeds(args, base: dict, grid: dict) -> list[int]:
    """The seeds swept: those of --grid seed=0,1 or --set seed=3 (taken out of `grid`/`base`), else
    0 .. --seeds-1 (default: the profile's number); giving both is an error."""
    given = grid.pop("seed") if "seed" in grid else [base.pop("seed")] if "seed" in base else None
    if given is None:
        return get_profile(args.profile).seed_list(args.seeds)
    if args.seeds is not None:
        raise ValueError(f"--seeds {args.seeds}: the seeds are already given as seed={','.join(map(str, given))}; "
                         "allowed: --seeds N or a seed field, not both")
    return given


def sweep_configs(args) -> list[RunConfig]:
    base, grid = sweep_fields(args)
    check_profile_fields(args.profile, [*base, *grid])
    seeds = sweep_seeds(args, base, grid)
    configs = []
    for combo in itertools.product(*grid.values()):
        for seed in seeds:
            values = {**base, **dict(zip(grid, combo)), "seed": seed}
            configs.append(make_config(args.profile, **values))
    return configs


def execution_of(args) -> Execution:
    """Where and how the command's runs execute: its flags; the store and data root fall back to the
    environment (`environment.execution_from_environment`). `train` trains in this process."""
    sweep = args.command == "sweep"
    return execution_from_environment(
        store=args.store, data_root=args.data_root, device=args.device, profile=args.profile, fresh=args.fresh,
        backend=args.backend if sweep else "local", workers=args.workers if sweep else 1,
        fused=args.fused if sweep else "off", max_models=args.max_models if sweep else 32, speed=speed_options(args))


def run_configs(configs, execution: Execution) -> list[dict]:
    records = []
    for index, config in enumerate(configs, start=1):
        print(f"[{index}/{len(configs)}] {config.label()} seed {config.seed} ({config_hash(config)})", flush=True)
        records.append(run_or_load(config, execution))
    return records


def speed_options(args) -> tuple[str, ...]:
    """The fused trainer's speed options asked for on the command line (--amp, --channels-last, --compile)."""
    return tuple(name for name in SPEED_OPTIONS if getattr(args, name, False))


def sweep(configs, args) -> int:
    """Train the missing configs where the flags say (`dispatch.run_or_load_all`: --backend, --workers,
    --fused), print every record; the exit code."""
    try:
        records = run_or_load_all(configs, execution_of(args), retries=args.retries, **backend_options(args))
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
    """Run one command; the one error boundary of the CLI and `book` (see the module docstring)."""
    command = None
    warnings.formatwarning = one_line_warning
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return run_command(args)
    except KeyboardInterrupt:
        return report(f"interrupted (Ctrl-C); {INTERRUPTED.get(command, 'nothing was changed')}", 130)
    except USAGE_ERRORS as error:
        return report(error, 2)
    except FAILURES as error:
        return report(error, 1)
    except (MemoryError, RuntimeError) as error:
        if not out_of_memory(error):
            raise
        return report(f"out of memory ({allocation_failure(error)}); allowed: a smaller width or batch size, or a "
                      "device with more memory", 1)


def report(message, code: int) -> int:
    """Print `error: message` on a line of its own (closing the progress bars a failure left open, which
    would otherwise share it) and return the exit status `code`."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    print(f"error: {message}", file=sys.stderr)
    return code


def out_of_memory(error: BaseException) -> bool:
    """Python's MemoryError, torch's OutOfMemoryError (CUDA) or a CPU allocation torch could not make."""
    text = str(error)
    return isinstance(error, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text


def allocation_failure(error: BaseException) -> str:
    """The useful part of an out-of-memory message, on one line ('DefaultCPUAllocator: ... 1125899906842624 bytes')."""
    text = (str(error) or type(error).__name__).strip().splitlines()[0]
    return text[text.find("DefaultCPUAllocator"):] if "DefaultCPUAllocator" in text else text


def one_line_warning(message, category, *_args, **_kwargs) -> str:
    """Warnings on the command line read like the errors: one line, no source excerpt."""
    return f"warning: {message}\n"


INTERRUPTED = {"train": "finished runs are stored; an unfinished one resumes from its last checkpoint",
               "sweep": "finished runs are stored; an unfinished one resumes from its last checkpoint",
               "book": "chapters not finished were not written; the folder keeps its previous ones"}


def print_scorecard(args) -> int:
    """The ten verdicts at args.profile; exit 0 whatever they are (a verdict is a finding, not an error)."""
    if not args.train:  # with --train the runs it trains make the folder
        check_store_folder(args.store)
    execution = execution_from_environment(store=args.store, data_root=args.data_root, device=args.device,
                                           profile=args.profile, workers=args.workers)
    chapter = Chapter(profile=args.profile, dataset=args.dataset, execution=execution)
    card = scorecard(chapter, claim_verdicts(chapter, train_missing=args.train))
    print(f"{chapter.describe()} · store {chapter.run_store.root}")
    for row in card.itertuples():
        print(f"claim {row.claim:>2} (chapter {row.chapter:>2}) {row.verdict:<10} {row.why}")
    return 0


def check_store_folder(store: str) -> None:
    """`ls` and `scorecard` read an existing folder only."""
    path = resolve_store(store_from_environment(store))
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise ValueError(f"store={str(path)!r} {state}; allowed: a run store folder (default: {resolve_store()})")


def run_command(args) -> int:
    if args.command == "ls":
        check_store_folder(args.store)
        # a bad entry is skipped with a warning, not moved
        records = RunStore(store_from_environment(args.store)).records(read_only=True)
        if args.json:
            for record in records:
                print(json.dumps(record))
        else:
            print_table(records)
        return 0
    if args.command == "scorecard":
        return print_scorecard(args)
    if args.command == "book":
        extra = {name: parse_parameter(value) for name, value in args.parameter}
        build_book(args.profile, args.dataset, args.chapter, args.fresh, extra, html=not args.no_html,
                   output_dir=args.output, replace=args.replace)
        return 0
    if args.command == "train":
        values = {name: parse_value(name, getattr(args, name)) for name in FIELDS
                  if getattr(args, name) is not None}
        check_profile_fields(args.profile, values)
        configs = [make_config(args.profile, **values)]
    else:
        configs = sweep_configs(args)
        if args.dry_run:
            store = RunStore(store_from_environment(args.store))
            for config in configs:
                stored = store.record_path(config_hash(config)).exists()
                print(f"{config_hash(config)} {'stored ' if stored else 'missing'} {config.label()} seed {config.seed}")
            return 0
        if speed_options(args) and args.fused == "off":
            raise ValueError(f"--{', --'.join(n.replace('_', '-') for n in speed_options(args))}: options of "
                             "the fused trainer; use --fused on (or auto on CUDA)")
    pick_device(args.device)  # a bad or unavailable device fails here; run_or_load checks the store
    if args.command == "sweep":
        return sweep(configs, args)
    print_table(run_configs(configs, execution_of(args)))
    return 0
