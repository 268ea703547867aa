"""Train the runs the ten verdicts need at a profile, the claims named first (issue 20's `long` store).

    python scripts/train_verdict_runs.py --profile long --workers 2 --claims 10 5 6
    python scripts/train_verdict_runs.py --profile long --list        # what each claim still lacks

The same runs as `python -m sparsity_lib scorecard --profile long --train` (`plans.all_variants`,
every seed of the profile), in an order that completes the named claims first, so a session that ends
early leaves whole claims judged rather than a scatter of seeds. Each run is stored in the run store
the moment it finishes (an interrupted run resumes from its checkpoint in the same store).
"""
from __future__ import annotations

import argparse

from sparsity_lib.environment import open_chapter
from sparsity_lib.runs.config import config_hash
from sparsity_lib.runs.dispatch import run_or_load_all
from sparsity_lib.study import plans


def claim_variants(chapter) -> dict[int, list[dict]]:
    """The settings (RunConfig fields) each claim's verdict rests on (`judge` asks for the same ones)."""
    table1 = plans.table1_variants()
    difficulty = [f for _, f in [*plans.difficulty_variants(chapter), *plans.class_count_variants(chapter)]]
    controls = [f for _, f in plans.batch_variants(chapter)] + [f for _, f in plans.width_variants(chapter)]
    return {1: table1, 2: table1, 3: table1, 4: difficulty, 5: plans.layer_pair_variants(),
            6: plans.layer_pair_variants(), 7: [], 8: controls, 9: list(plans.variant_fields(chapter).values()),
            10: [plans.vgg_fields(chapter)]}


def ordered_configs(chapter, first: list[int]) -> list:
    """Every verdict run's config, those of the claims in `first` first, each once."""
    by_claim = claim_variants(chapter)
    fields = [f for claim in first for f in by_claim[claim]] + plans.all_variants(chapter)
    configs = {}
    for variant in fields:
        for seed in chapter.seed_list:
            config = chapter.config(seed=seed, **variant)
            configs.setdefault(config_hash(config), config)
    return list(configs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="long")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--claims", type=int, nargs="*", default=[], help="claims whose runs train first")
    parser.add_argument("--list", action="store_true", help="print what each claim lacks; train nothing")
    args = parser.parse_args()
    chapter = open_chapter(profile=args.profile, dataset="synthetic", device="cpu")
    store = chapter.run_store
    if args.list:
        for claim, variants in claim_variants(chapter).items():
            configs = [chapter.config(seed=s, **f) for f in variants for s in chapter.seed_list]
            stored = sum(store.record_path(config_hash(c)).exists() for c in configs)
            print(f"claim {claim:>2}: {stored} of {len(configs)} runs stored")
        return
    configs = ordered_configs(chapter, args.claims)
    missing = [c for c in configs if not store.record_path(config_hash(c)).exists()]
    print(f"{len(configs) - len(missing)} of {len(configs)} verdict runs stored at {args.profile}; "
          f"training {len(missing)} on {args.workers} worker(s), claims {args.claims or 'in book order'} first")
    execution = chapter.execution.replace(workers=args.workers, fused="off")
    for start in range(0, len(missing), args.workers):  # a pool per batch keeps the claims' order
        run_or_load_all(missing[start:start + args.workers], execution)


if __name__ == "__main__":
    main()
