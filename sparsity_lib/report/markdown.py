"""The chapters' prose blocks computed from data: verdict lines, the intro scorecard, the provenance
note under every table (profile, dataset, seeds, device), and the notes shown when a chapter's
runs or datasets are absent. Each `*_markdown` returns the text; each `show_*` displays it."""
from __future__ import annotations

import math

import pandas as pd

from ..folders import resolve_data_root
from ..runs.config import PROFILES, make_config
from ..runs.labels import (
    format_strength,
)
from ..runs.schedule import iterations
from ..study.claims import BELOW_FLOOR, CLAIMS, FAILS, NOT_TESTED, criterion
from ..study.judge import verdict_changes
from ..study.seeds import Estimate, clearly_greater
from .tables import mechanism_numbers

__all__ = ["absent_markdown", "failing_claims_markdown", "fate_markdown", "horizon_summary_markdown",
           "mechanism_steps_markdown", "missing_markdown", "profile_verdicts_markdown", "profiles_markdown",
           "provenance_markdown", "provenance_note", "scorecard_markdown", "show_absent", "show_markdown",
           "show_missing", "show_summary", "show_verdicts", "summary_markdown", "verdict", "verdict_changes_markdown",
           "verdict_markdown", "VERDICT_MARKS"]


def provenance_markdown(chapter, records: list[dict] | None = None) -> str:
    """Markdown saying what produced this chapter's numbers; a warning when 'auto' fell back to synthetic."""
    text = f"**Ours:** {chapter.describe(records)}. Profile `{chapter.profile}`: {chapter.settings.description}."
    if chapter.fell_back_to_synthetic:
        text += ("\n\n:::{warning}\nCIFAR-10 was not found (`dataset=\"auto\"`), so every number in this chapter "
                 "comes from the **synthetic shapes dataset** generated offline, not from CIFAR. "
                 f"({_without_machine_path(chapter)}.) Compare trends with the paper, not absolute values.\n:::")
    return text


def _without_machine_path(chapter) -> str:
    """The chapter's dataset reason with the data folder's absolute path cut to its name ('data/')."""
    root = resolve_data_root(chapter.data_root)
    return chapter.dataset_reason.replace(str(root), f"{root.name}/")


VERDICT_MARKS = {"holds": "✅ holds", "fails": "❌ fails", "below the floor": "🟡 below the floor",
                 "not tested": "⚪ not tested"}


def scorecard_markdown(card: pd.DataFrame, chapter_files: dict[int, str]) -> str:
    """The scorecard (`judge.scorecard`) as a Markdown table: claim, verdict, the numbers' one-line
    reason, and a link to the chapter (`chapter_files`: chapter number -> notebook file name)."""
    rows = ["| # | claim | verdict at this profile | why | chapter |", "|---|---|---|---|---|"]
    for row in card.itertuples():
        link = f"[{row.chapter}]({chapter_files[row.chapter]})" if row.chapter in chapter_files else str(row.chapter)
        why = str(row.why).replace("|", "/")
        mark = VERDICT_MARKS.get(row.verdict, row.verdict)
        rows.append(f"| {row.claim} | {row.statement} | {mark} | {why} | {link} |")
    rules = [f"{number}. {criterion(number)}" for number in sorted(card["claim"])]
    return "\n".join(rows + ["", ":::{dropdown} The criterion of each verdict", *rules, ":::"])


def failing_claims_markdown(card: pd.DataFrame, chapter_files: dict[int, str]) -> str:
    """One bullet per claim that fails in `card` (`judge.scorecard`), linking the chapter that shows what
    was measured about why; 'No claim fails at this profile.' when none does."""
    rows = [row for row in card.itertuples() if row.verdict in (FAILS, BELOW_FLOOR)]
    if not rows:
        return "No claim fails at this profile."
    return "\n".join(f"- claim {row.claim}, [chapter {row.chapter}]({chapter_files.get(row.chapter, '')}): "
                      f"{row.statement}" + (" (in the paper's direction, but below the criterion's floor)"
                                           if row.verdict == BELOW_FLOOR else "") for row in rows)


def profile_verdicts_markdown(frame: pd.DataFrame, chapter_files: dict[int, str], profiles) -> str:
    """`judge.scorecard_by_profile` as a Markdown table: claim, one verdict mark per profile in
    `profiles` (column headed with the profile's name and its iterations at batch 40), chapter link."""
    heads = [f"`{name}` ({_iterations(name)})" for name in profiles]
    rows = ["| # | claim | " + " | ".join(heads) + " | chapter |", "|---|---|" + "---|" * len(profiles) + "---|"]
    for row in frame.to_dict("records"):
        link = f"[{row['chapter']}]({chapter_files[row['chapter']]})" if row["chapter"] in chapter_files else ""
        marks = " | ".join(VERDICT_MARKS.get(row[name], row[name]) for name in profiles)
        rows.append(f"| {row['claim']} | {row['statement']} | {marks} | {link} |")
    return "\n".join(rows)


def _iterations(profile: str) -> str:
    """A profile's training length in optimizer steps at batch 40, e.g. '56,000 iterations'."""
    settings = PROFILES[profile]
    if settings.epochs is None or settings.train_subset is None:
        return "the paper's schedule"
    steps, _ = iterations(make_config(profile, dataset="synthetic"), settings.train_subset)
    return f"{steps:,} iterations"


def show_markdown(text: str) -> None:
    """Display Markdown in the notebook (rendered as Markdown in the book); IPython is a [book] extra."""
    from IPython.display import Markdown, display
    display(Markdown(text))


def verdict_markdown(verdict, where: str = "") -> str:
    """One claim's verdict (`claims.Verdict`) as Markdown: the mark, the paper's claim, the measured
    reason, then each number it used as a bullet. `where`: e.g. "profile cpu, synthetic, 3 seeds"."""
    mark = VERDICT_MARKS.get(verdict.status, verdict.status)
    head = f"**Claim {verdict.claim}: {mark}**" + (f" ({where})" if where else "")
    lines = [head, "", f"*Paper:* {CLAIMS[verdict.claim]}", "", f"*Ours:* {verdict.reason}", "",
             f"*Criterion:* {criterion(verdict.claim)}"]
    if verdict.numbers:
        lines.append("")
        lines += [f"- {name}: {value:.3g}" if isinstance(value, float) else f"- {name}: {value}"
                  for name, value in verdict.numbers.items()]
    return "\n".join(lines)


def show_verdicts(verdicts, where: str = "") -> None:
    """Display each verdict (a Verdict, a list of them, or a dict claim -> Verdict) with `verdict_markdown`."""
    found = verdicts.values() if isinstance(verdicts, dict) else [verdicts] if hasattr(verdicts, "claim") else verdicts
    for verdict in found:
        show_markdown(verdict_markdown(verdict, where))


def show_summary(verdicts: dict) -> None:
    """Display `summary_markdown(verdicts)` (the chapter summary's verdict list)."""
    show_markdown(summary_markdown(verdicts))


def summary_markdown(verdicts: dict) -> str:
    """The chapter summary's verdict list: one bullet per claim with its mark and the paper's wording."""
    return "\n".join(f"- Claim {number} ({VERDICT_MARKS.get(v.status, v.status)}): {CLAIMS[number]}"
                     for number, v in sorted(verdicts.items()))


def profiles_markdown() -> str:
    """The profiles (`config.PROFILES`) as a Markdown table: name, what a run is, seeds, Sec. 5 L2."""
    rows = ["| profile | what it runs | seeds | Sec. 5 L2 |", "|---|---|---|---|"]
    for name, profile in PROFILES.items():
        rows.append(f"| `{name}` | {profile.description} | {profile.seeds} | {format_strength(profile.section5_l2)} |")
    return "\n".join(rows)


def provenance_note(chapter, records: list[dict] | None = None) -> None:
    """Display `provenance_markdown` in the notebook (rendered as Markdown in the book)."""
    show_markdown(provenance_markdown(chapter, records))


def verdict(holds: bool) -> str:
    """The words printed after a claim check computed from the numbers."""
    return "reproduced" if holds else "NOT reproduced at this scale"


def absent_markdown(reasons: dict[str, str], chapter: int) -> str:
    """A MyST note listing the datasets not compared (name -> why) and how to re-run the chapter."""
    if not reasons:
        return "All of the datasets above are present and compared."
    items = "\n".join(f"- **{name}**: {why}" for name, why in reasons.items())
    return (f":::{{note}}\nNot compared in this execution:\n\n{items}\n\nPut the datasets in the data folder "
            f"(see *Reproduce it*) and re-run: `python -m sparsity_lib book --chapter {chapter}`.\n:::")


def show_absent(reasons: dict[str, str], chapter: int) -> None:
    """Display `absent_markdown(reasons, chapter)`."""
    show_markdown(absent_markdown(reasons, chapter))


# ------------------------------------------------------------ chapters 8-10
def missing_markdown(label: str, reasons: list[str], chapter: int = 8) -> str:
    """A note saying plainly that nothing of `label` (e.g. 'TinyImageNet') ran in this execution, what
    is missing (`reasons`), and the command that trains it once it is there (chapter 8)."""
    items = "\n".join(f"- {reason}" for reason in reasons)
    name = label.lower()
    return (f":::{{note}}\n**Nothing ran on {label} in this execution**, and no matching {label} run is "
            f"stored: every '{label}' number on this page is the paper's. Missing:\n\n{items}\n\n"
            f"With a CUDA GPU and the data, this trains the runs and shows them:\n\n"
            f"`python -m sparsity_lib book --chapter {chapter} --profile paper -p device cuda "
            f"-p {name}_root /path/to/{name}`\n\n(`--profile cpu` instead of `paper` for runs of minutes.)\n:::")


def show_missing(label: str, reasons: list[str], chapter: int = 8) -> None:
    """Display `missing_markdown`."""
    show_markdown(missing_markdown(label, reasons, chapter))


def _first_deaths(steps) -> str:
    """'the first feature died at step 11,500' (steps 9,500-12,000 over several seeds; and how many seeds
    lost none), or 'no feature died'."""
    steps = list(steps)
    died = sorted(int(step) for step in steps if step is not None and step == step)
    if not died:
        return "no feature died"
    where = f"step {died[0]:,}" if died[0] == died[-1] else f"steps {died[0]:,}-{died[-1]:,}"
    spared = len(steps) - len(died)
    return f"the first feature died at {where}" + (f" ({spared} of {len(steps)} seeds lost none)" if spared else "")


def horizon_summary_markdown(milestones: pd.DataFrame) -> str:
    """One bullet per setting of `horizon.milestones_by_length`: at each profile, the mean ± std of the
    final dead share over the stored seeds and when the first feature died; generated, so it states only
    what the table holds."""
    lines = []
    for setting, rows in milestones.groupby("setting", sort=False):
        parts = []
        for profile, at in rows.groupby("profile", sort=False):
            dead = Estimate.of(at["final dead %"])
            steps = int(at["steps"].max())
            parts.append(f"`{profile}` ({steps:,} steps, {dead.n} seed{'s' if dead.n != 1 else ''}): "
                         f"{dead.text()}% dead at the end; {_first_deaths(at['first death step'])}")
        lines.append(f"- **{setting}**: " + "; ".join(parts) + ".")
    return "\n".join(lines) if lines else "No run of these settings is stored at these profiles."


def verdict_changes_markdown(frame: pd.DataFrame, first: str, second: str) -> str:
    """Which claims change verdict between profile columns `first` and `second` of
    `judge.scorecard_by_profile` (computed, never typed), and which are not judged at both."""
    untested = frame.loc[(frame[first] == NOT_TESTED) | (frame[second] == NOT_TESTED), "claim"].tolist()
    changed = frame.set_index("claim").loc[verdict_changes(frame, first, second)]
    text = (f"Judged at both `{first}` and `{second}`: {len(frame) - len(untested)} of {len(frame)} claims. "
            + ("Verdicts that change with the length: " + ", ".join(
                f"claim {claim} ({row[first]} → {row[second]})" for claim, row in changed.iterrows()) + "."
               if len(changed) else "None of them changes verdict with the length."))
    if untested:
        text += (f" Not yet judged at both (runs missing from the store): claim{'s' if len(untested) > 1 else ''} "
                 + ", ".join(map(str, untested)) + ".")
    return text


def fate_markdown(fates: pd.DataFrame) -> str:
    """One bullet per setting of `tables.universality_fates` (its pooled row, e.g. C5-C7): how many of the
    layers' features die later, the mean early universality of those and of the ones that live, and
    which group was the more selective (fired on fewer training images) before any died. Generated."""
    lines = []
    for (setting, layers), row in fates.iterrows():
        if "-" not in layers:
            continue  # the pooled row only
        dies, total = int(row["die later"]), int(row["features"])
        if dies == 0:
            lines.append(f"- **{setting}, {layers}:** none of the {total} features dies later.")
            continue
        die, live = row["early: die later"], row["early: live"]
        if math.isnan(live):
            lines.append(f"- **{setting}, {layers}:** all {total} features die later; they fired on {die:.1f}% of "
                         "the training images on average.")
            continue
        reading = ("the dying ones were the more selective (they fired on fewer images)" if die < live else
                   "the dying ones were not the more selective")
        lines.append(f"- **{setting}, {layers}:** the {dies} of {total} features that die later fired on {die:.1f}% "
                     f"of the training images on average, the {total - dies} that live on {live:.1f}%: {reading}.")
    return "\n".join(lines)


def _change(before: Estimate, after: Estimate) -> str:
    """'rises', 'falls' or 'does not change beyond seed noise', by the claims' noise rule (`seeds.clearly_greater`)."""
    if clearly_greater(after, before):
        return "rises"
    if clearly_greater(before, after):
        return "falls"
    return "does not change beyond seed noise"


def mechanism_steps_markdown(groups, layers=("C6", "C7")) -> str:
    """For each step between consecutive (label, records) of `groups` (easiest task first): the test error,
    the mean universality of each of `layers`' living features and the % dead features (|γ| < 1e-3), each
    as mean±std over seeds with whether it rises or falls by the claims' noise rule, and whether the step
    fits the paper's mechanism (Sec. 4.2: late features that become more universal keep their gradient
    and die less). Generated from the runs, so it holds at any profile and parameters."""
    def estimates(records):
        numbers = [mechanism_numbers(record, layers) for record in records]
        found = {"error": Estimate.of([n["test error"] for n in numbers]),
                 "dead": Estimate.of([r["final"]["sparsity_gamma"] for r in records])}
        for layer in layers:
            values = [n[f"universality {layer}"] for n in numbers if not math.isnan(n[f"universality {layer}"])]
            found[layer] = Estimate.of(values) if values else None
        return found

    lines = []
    steps = [(label, estimates(records)) for label, records in groups if records]
    for (first, a), (second, b) in zip(steps, steps[1:]):
        universality = [(layer, a[layer], b[layer]) for layer in layers if a[layer] and b[layer]]
        risen = [layer for layer, x, y in universality if _change(x, y) == "rises"]
        dead = _change(a["dead"], b["dead"])
        parts = [f"test error {a['error'].text()} → {b['error'].text()}% ({_change(a['error'], b['error'])})"]
        parts += [f"universality of the living {layer} features {x.text()} → {y.text()}% ({_change(x, y)})"
                  for layer, x, y in universality]
        parts.append(f"% dead features {a['dead'].text()} → {b['dead'].text()} ({dead})")
        if risen and dead == "falls":
            reading = "as the paper's mechanism predicts"
        elif not risen and dead != "falls":
            reading = "the late features do not become more universal, and nothing spares them"
        elif risen:
            reading = "universality rises but sparsity does not fall: against the mechanism"
        else:
            reading = "sparsity falls without a rise in universality: the mechanism does not explain it"
        lines.append(f"- **{first} → {second}:** " + "; ".join(parts) + f". Reading: {reading}.")
    return "\n".join(lines) if lines else "Fewer than two tasks have stored runs."
