"""Every number in the chapters' prose is accounted for (issue 22): no measured result of ours is typed
into a Markdown cell, and every paper number quoted there is the paper's, at the quoted setting.

The rule, applied to each Markdown cell of `notebooks/` (what `prose_numbers` implements):

1. Not prose, removed before scanning: code spans and blocks, math, link targets, arXiv ids, years,
   cross-references ("Table 3", "Sec. 4.2", "chapter 9", "claim 7", "exercise 2"), numbered headings
   and list enumerators, strengths in scientific notation (1e-4: a setting of the run grid), layer names
   (C1..C7, L1/L2) and names with digits (VGG-16, CIFAR-100, 64-0.5x, batch-40, 5×5, 16x16).
2. Counts and bounds pass as they are: integers 0-12 (layers, panels, seeds, steps of a list), 0% and
   100%.
3. Protocol settings pass: a number printed in the Protocol section of `paper_tables.md` (features per
   layer, epochs, batch sizes, learning-rate drops, the parameter count).
4. A paper quote passes only if `PAPER_QUOTES` registers it for that cell with the table, the setting
   (the row) and the column it comes from; `test_every_paper_quote_is_the_papers_number_at_its_setting`
   looks each up in `paper_tables.md`.
5. A setting of ours passes only if `SETTINGS` registers it for that cell with the code it must equal
   (a Profile, a plan constant, a claim criterion); `test_every_setting_in_prose_is_the_codes` checks it.

Everything else is a measured number typed into prose and fails the test: such a sentence belongs in a
code cell that renders it from the records (`sparsity_lib.report.markdown`).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from sparsity_lib.report import paper
from sparsity_lib.runs.config import PROFILES
from sparsity_lib.study import plans

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

_REFERENCE = re.compile(
    r"\b(?:Tables?|Fig\.|Figures?|Sec\.|Sections?|chapters?|claims?|Eq\.|exercises?|parts?|steps?)\s+\d+(?:\.\d+)*"
    r"(?:\s*(?:,|and|-|–|to|or)\s*\d+(?:\.\d+)*)*", re.I)
_NAMED = re.compile(r"\b(?:VGG|CIFAR|ResNet|BasicNet|batch|Adam|Table)-\d+|\b\d+-\d+(?:\.\d+)?x\b"
                    r"|\b\d+\s*[x×]\s*\d+\b|\b[CL]\d\b")
_NOT_PROSE = [
    (re.compile(r"```.*?```", re.S), " "), (re.compile(r"`[^`]*`"), " "), (re.compile(r"\$\$.*?\$\$", re.S), " "),
    (re.compile(r"\$[^$]*\$"), " "), (re.compile(r"\]\([^)]*\)"), "]"), (re.compile(r"arXiv:? ?\d+\.\d+"), " "),
    (re.compile(r"\b\d+(?:\.\d+)?e-?\d+\b"), " "), (_REFERENCE, " "), (re.compile(r"^#+ \d+(?:\.\d+)*\.?", re.M), "#"),
    (re.compile(r"^\s*\d+\.\s", re.M), " "), (re.compile(r"(?<=\s)\d+\.(?=\s+[A-Z*])"), " "),
    (re.compile(r"\b(?:19|20)\d\d\b"), " "), (_NAMED, " "),
]
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*%?(?![\w])")


def _value(token: str) -> float:
    return float(token.rstrip("%").replace(",", ""))


def protocol_numbers() -> set[float]:
    """Every number printed in the Protocol section of paper_tables.md (rule 3)."""
    text = paper.SOURCE.read_text()
    section = text.split("## Protocol", 1)[1].split("\n## ", 1)[0]
    return {_value(n) for n in re.findall(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?", section)}


def prose_numbers(source: str) -> list[str]:
    """The numbers of one Markdown cell that rules 1-3 do not account for, as written ('70%', '10.5')."""
    for pattern, replacement in _NOT_PROSE:
        source = pattern.sub(replacement, source)
    allowed = protocol_numbers()
    found = []
    for token in _NUMBER.findall(source):
        value = _value(token)
        if token in ("0%", "100%") or (value == int(value) and value <= 12 and "%" not in token):
            continue
        if "%" not in token and value in allowed:
            continue
        found.append(token)
    return found


def markdown_cells():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                yield path.name[:2], cell.get("id"), cell.source


def test_the_rule_catches_a_typed_result_and_passes_what_it_allows():
    assert prose_numbers("At `cpu` Adam keeps 38.2% of its features, 3 seeds.") == ["38.2%"]
    assert prose_numbers("In Table 3, batch 40 for 250 epochs; see chapter 9 and `lr = 0.1`.") == []
    assert prose_numbers("VGG-16 and 64-0.5x on CIFAR-100 at 1e-4 (arXiv 2001.11216, 2019); 14,000 steps.") \
        == ["14,000"]
    assert prose_numbers("1. First\n2. Second: 0% to 100%") == []


def _t1(optimizer, regularizer, strength, dataset, column="sparsity_gamma"):
    return ("table1", {"optimizer": optimizer, "regularizer": regularizer, "strength": strength,
                       "dataset": dataset}, column)


def _t2(dataset, optimizer, regularizer, strength, column):
    return ("table2", {"dataset": dataset, "optimizer": optimizer, "regularizer": regularizer,
                       "strength": strength}, column)


def _row(table, column, **where):
    return (table, where, column)


def _text(fragment):
    """A number from the prose of paper_tables.md: `fragment` must occur there as written."""
    return ("text", fragment, None)


ADAM_C10_1e4 = _t1("adam", "L2", 1e-4, "cifar10")
# (chapter, cell id) -> {token as written: where in paper_tables.md it comes from}.
PAPER_QUOTES = {
    ("00", "4538fa14"): {"83%": _row("table7", "C10 B160", layer="all")},
    ("02", "02-06"): {"3%": _t1("adam", "L2", 0.0, "cifar10", "sparsity_act"),
                      "24%": _t1("adam", "L2", 1e-6, "cifar10"), "48%": _t1("adam", "L2", 1e-5, "cifar10"),
                      "70%": ADAM_C10_1e4},
    ("02", "02-08"): {"70%": ADAM_C10_1e4, "10.5%": _t1("adam", "L2", 1e-4, "cifar10", "test_err")},
    ("02", "02-14"): {"24%": _t1("adam", "L2", 1e-6, "cifar10")},
    ("03", "03-04"): {"44%": _t2("cifar10", "adam", "L2", 1e-4, "C1"), "6%": _t2("cifar10", "adam", "L2", 1e-4, "C3"),
                      "96%": _t2("cifar10", "adam", "L2", 1e-4, "C6"), "95%": _t2("cifar10", "adam", "L2", 1e-4, "C7"),
                      "86%": _t2("cifar10", "sgd", "L2", 1e-3, "C1"), "4%": _t2("cifar10", "sgd", "L2", 1e-3, "C6"),
                      "41%": _t2("cifar100", "adam", "L2", 1e-4, "C1"), "9%": _t2("cifar100", "adam", "L2", 1e-4, "C3"),
                      "67%": _t2("cifar100", "adam", "L2", 1e-4, "C6"),
                      "82%": _t2("cifar100", "sgd", "L2", 1e-3, "C1")},
    ("03", "03-11"): {"64%": _text("64% of Adam's C6 features")},
    ("03", "03-16"): {"68%": _t2("cifar10", "sgd", "L2", 5e-4, "C1"), "24%": _t2("cifar10", "sgd", "L2", 5e-4, "C5")},
    ("04", "04-17"): {"24%": _t1("adam", "L2", 1e-6, "cifar10")},
    ("05", "05-06"): {"70%": _text("70% of the features die with the clean"), "57%": _text("57% with clutter"),
                      "47%": _t1("adam", "L2", 1e-4, "cifar100"),
                      "48%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=40),
                      "0.2%": _row("table5", "sparsity_gamma", batch_size=64)},
    ("05", "05-15"): {"70%": ADAM_C10_1e4, "47%": _t1("adam", "L2", 1e-4, "cifar100"),
                      "48%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=40),
                      "83%": _t1("adam", "L2", 1e-3, "cifar10"), "76%": _t1("adam", "L2", 1e-3, "cifar100")},
    ("05", "05-17"): {"70%": _text("70% of the features die with the clean"), "57%": _text("57% with clutter")},
    ("06", "06-04"): {"70%": _row("table3", "C10 sparsity", L2=1e-4, batch=20),
                      "61%": _row("table3", "C10 sparsity", L2=1e-4, batch=160),
                      "57%": _row("table3", "C100 sparsity", L2=1e-4, batch=20),
                      "29%": _row("table3", "C100 sparsity", L2=1e-4, batch=160),
                      "79%": _row("table3", "C100 sparsity", L2=1e-3, batch=20),
                      "67%": _row("table3", "C100 sparsity", L2=1e-3, batch=80),
                      "80": _row("table3", "batch", L2=1e-3, batch=80),
                      "82": _row("table3", "C10 sparsity", L2=1e-3, batch=20),
                      "83": _row("table3", "C10 sparsity", L2=1e-3, batch=40),
                      "80%": _row("table3", "C10 sparsity", L2=1e-3, batch=80)},
    ("06", "06-11"): {"70%": _row("table6", "C10 sp", net="64-1x"), "51%": _row("table6", "C10 sp", net="64-0.5x"),
                      "23%": _row("table6", "C10 sp", net="32-0.25x"), "46%": _row("table6", "C100 sp", net="64-1x"),
                      "10%": _row("table6", "C100 sp", net="64-0.5x")},
    ("07", "07-04"): {"70%": ADAM_C10_1e4, "72%": _row("supp4", "C10 gamma", opt="RMSProp", L2=1e-4),
                      "50%": _row("supp4", "C10 gamma", opt="Adamax", L2=1e-4),
                      "47%": _row("supp4", "C10 gamma", opt="AMSGrad", L2=1e-4),
                      "13%": _row("supp4", "C100 gamma", opt="AMSGrad", L2=1e-4)},
    ("07", "07-07"): {"47%": _t2("cifar100", "adam", "L2", 1e-4, "total"),
                      "41%": _row("supp2", "total", setting="LeakyReLU 0.01, L2 1e-4"),
                      "0.01": _text("LeakyReLU 0.01, L2 1e-4"),
                      "43%": _row("supp2", "total", setting="LeakyReLU 0.1, L2 1e-4"),
                      "76%": _t2("cifar100", "adam", "L2", 1e-3, "total"),
                      "70%": _row("supp2", "total", setting="LeakyReLU 0.01, L2 1e-3"),
                      "46%": _row("supp3", "total", setting="gamma=1, beta=0 (baseline)"),
                      "33%": _row("supp3", "total", setting="LR x0.1 for gamma"),
                      "53%": _row("supp3", "total", setting="gamma=1, beta=1.0"),
                      "51%": _row("supp3", "total", setting="LR x0.1 for beta")},
    ("07", "07-10"): {"25%": _row("supp2", "C6", setting="AMSGrad L2 1e-4"),
                      "23%": _row("supp2", "C7", setting="AMSGrad L2 1e-4")},
    ("08", "08-06"): {"63%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=20),
                      "48%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=40),
                      "26%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=120),
                      "45": _row("table4", "top1_err", optimizer="sgd", batch_size=40),
                      "49%": _row("table4", "top1_err", optimizer="adam", batch_size=120, round=True),
                      "47%": _t1("adam", "L2", 1e-4, "cifar100"), "70%": ADAM_C10_1e4},
    ("08", "08-08"): {"0.2%": _row("table5", "sparsity_gamma", batch_size=64),
                      "38.0%": _row("table5", "top1_err", batch_size=64),
                      "32.9%": _row("table5", "top1_err", batch_size=256),
                      "140": _row("table9", "features_pruned", batch_size=60),
                      "71": _row("table9", "features_pruned", batch_size=90),
                      "90": _row("table9", "batch_size", batch_size=90)},
    ("08", "08-15"): {"63%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=20),
                      "26%": _row("table4", "sparsity_gamma", optimizer="adam", batch_size=120),
                      "120": _row("table4", "batch_size", optimizer="adam", batch_size=120)},
    ("09", "09-04"): {"83%": _t2("cifar10", "adam", "L2", 1e-3, "total"),
                      "97%": _t2("cifar10", "adam", "L2", 1e-3, "params"),
                      "13.1%": _t2("cifar10", "adam", "L2", 1e-3, "err"),
                      "13.5%": _t2("cifar10", "adam", "L2", 1e-3, "pruned err"),
                      "70%": _t2("cifar10", "adam", "L2", 1e-4, "total"),
                      "90%": _t2("cifar10", "adam", "L2", 1e-4, "params"),
                      "10.5%": _t2("cifar10", "adam", "L2", 1e-4, "pruned err")},
    ("09", "09-09"): {"86%": _row("table7", "C10 B40", layer="all"), "84%": _row("table7", "C10 B80", layer="all"),
                      "83%": _row("table7", "C10 B160", layer="all"),
                      "80": _text("C10 B80"), "160": _text("C10 B160"),
                      "7.2%": _row("table7", "C10 B40", layer="test err"),
                      "7.0%": _row("table7", "C10 B80", layer="test err"),
                      "6.5%": _row("table7", "C10 B160", layer="test err")},
    ("09", "09-11"): {"50%": _row("table7", "Li et al.", layer="C8"), "37%": _row("table7", "Li et al.", layer="all"),
                      "6.6%": _row("table7", "Li et al.", layer="test err"),
                      "83": _row("table7", "C10 B160", layer="all"), "86%": _row("table7", "C10 B40", layer="all"),
                      "6.5": _row("table7", "C10 B160", layer="test err"),
                      "7.2%": _row("table7", "C10 B40", layer="test err")},
    ("09", "09-21"): {"83": _row("table7", "C10 B160", layer="all"), "86%": _row("table7", "C10 B40", layer="all"),
                      "37%": _row("table7", "Li et al.", layer="all")},
    ("09", "09-23"): {"70%": _text("70% of VGGNet's channels")},
}


def _cpu_iterations() -> int:
    from sparsity_lib.runs.config import make_config
    from sparsity_lib.runs.schedule import iterations
    profile = PROFILES["cpu"]
    return iterations(make_config("cpu"), profile.train_subset)[0]


# (chapter, cell id) -> {token: what in the code it states}: the value the token must equal.
SETTINGS = {
    ("02", "02-00"): {"33": lambda: len(plans.table1_variants()) * PROFILES["cpu"].seeds},
    ("02", "02-10"): {"406,000": lambda: round(325 * 50_000 / 40, -3)},  # the paper's epochs, CIFAR size, batch
    ("04", "04-06"): {"10%": lambda: 100 * _default(claims_module().steps_to_fraction, "fraction"),
                      "1.5": lambda: _bound_of_claim7(1)},
    ("04", "04-08"): {"10%": lambda: 100 * _default(claims_module().steps_to_fraction, "fraction")},
    ("05", "05-00"): {"36": lambda: plans.CLASS_COUNTS[-1]},
    ("05", "05-13"): {"0.1%": lambda: 100 * sparsity_module().UNIVERSALITY_THRESHOLD},
    ("05", "9b60f322"): {"36": lambda: plans.CLASS_COUNTS[-1]},
    ("06", "06-00"): {"160": lambda: max(plans.BATCHES)},
    ("07", "07-14"): {"25%": lambda: 100 * claims_module().VARIANT_TOLERANCE},
    ("08", "08-17"): {"20,000": lambda: PROFILES["cpu"].train_subset},
    ("09", "09-00"): {"80": lambda: plans.VGG_BATCHES[1], "160": lambda: plans.VGG_BATCHES[2]},
    ("09", "09-16"): {"0.01": lambda: PROFILES["cpu"].slimming_lr, "14,000": _cpu_iterations},
}


def claims_module():
    from sparsity_lib.study import claims
    return claims


def sparsity_module():
    from sparsity_lib.nets import sparsity
    return sparsity


def _default(function, name):
    import inspect
    return inspect.signature(function).parameters[name].default


def _bound_of_claim7(index):
    return claims_module().CLAIM7_RATE_BOUNDS[index]


def _command_values(source: str) -> set[float]:
    """Numbers inside the `python -m sparsity_lib ...` commands of a cell: an exercise's parameters."""
    spans = re.findall(r"`(python -m sparsity_lib[^`]*)`", source)
    return {_value(n) for span in spans for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", span)}


def unaccounted() -> list[tuple[str, str, str]]:
    """(chapter, cell id, token) for every number rules 1-5 do not account for."""
    left = []
    for chapter, cell, source in markdown_cells():
        registered = {**PAPER_QUOTES.get((chapter, cell), {}), **SETTINGS.get((chapter, cell), {})}
        commands = _command_values(source)
        left += [(chapter, cell, token) for token in prose_numbers(source)
                 if token not in registered and _value(token) not in commands]
    return left


def test_no_measured_number_is_typed_into_a_markdown_cell():
    assert unaccounted() == []


def _cell_source(chapter, cell):
    return next((source for c, i, source in markdown_cells() if (c, i) == (chapter, cell)), None)


def paper_value(table, where, column):
    frame = paper.supplement_table(int(table[4:])) if table.startswith("supp") else getattr(paper, table)()
    where = dict(where)
    rounded = where.pop("round", False)
    rows = frame
    for field, wanted in where.items():
        rows = rows[rows[field].map(lambda v, w=wanted: v == w or (isinstance(v, float) and isinstance(w, float)
                                                                     and abs(v - w) <= 1e-12 * abs(w)))]
    assert len(rows) == 1, f"{table} {where}: {len(rows)} rows"
    value = float(rows[column].iloc[0])
    return round(value) if rounded else value


@pytest.mark.parametrize("chapter,cell,token,source", [
    (chapter, cell, token, source) for (chapter, cell), quotes in PAPER_QUOTES.items()
    for token, source in quotes.items()])
def test_every_paper_quote_is_the_papers_number_at_its_setting(chapter, cell, token, source):
    text = _cell_source(chapter, cell)
    assert text is not None, f"chapter {chapter} has no Markdown cell {cell}"
    assert token in prose_numbers(text), f"{token} is no longer quoted in {chapter}/{cell}: drop the entry"
    table, where, column = source
    if table == "text":
        assert where in paper.SOURCE.read_text(), where
        assert token.rstrip("%") in where
    else:
        assert paper_value(table, where, column) == pytest.approx(_value(token)), (table, where, column)


@pytest.mark.parametrize("chapter,cell,token,value", [
    (chapter, cell, token, value) for (chapter, cell), settings in SETTINGS.items()
    for token, value in settings.items()])
def test_every_setting_in_prose_is_the_codes(chapter, cell, token, value):
    text = _cell_source(chapter, cell)
    assert text is not None and token in prose_numbers(text), f"{token} is no longer in {chapter}/{cell}"
    assert value() == pytest.approx(_value(token))


def test_a_wrong_quote_or_setting_would_fail():
    assert paper_value(*_t1("adam", "L2", 1e-5, "cifar10")) == 48  # the paper's Table 1 (chapter 2 once said 43%)
    assert paper_value(*_t1("adam", "L2", 1e-5, "cifar10")) != 43
    assert "999% of Adam's" not in paper.SOURCE.read_text()


def test_the_per_run_times_in_needs_lines_are_the_profiles():
    """'about N minutes each' in a chapter's Needs line is the `cpu` profile's '~N minutes per run'."""
    stated = re.match(r"~(\d+) minutes per run", PROFILES["cpu"].description).group(1)
    for chapter, cell, source in markdown_cells():
        for minutes in re.findall(r"about (\d+) minutes each", source):
            assert minutes == stated, (chapter, cell)
