"""What a benchmark run writes: the markdown tables, the JSON record, the time-to-accuracy figure, docs/benchmarks.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Row:
    """One method in the results table, with what measuring it gave; a figure it could not measure is None."""

    key: str
    method: str
    test_accuracy: float | None = None
    train_seconds: float | None = None
    whole_seconds: float | None = None
    peak_mb: float | None = None
    runs: int = 0                       # how many whole-process runs the figures are the fastest of
    ratio: float | None = None          # whole-process seconds over those of `softmax train` (defaults)
    curve: list[list[float]] = field(default_factory=list)  # [training seconds, test accuracy], by effort
    problem: str | None = None          # why there are no figures: the failure, or that it was skipped
    notes: list[str] = field(default_factory=list)
    output: dict = field(default_factory=dict)  # the JSON line the method printed


@dataclass
class Target:
    """A goal of the Speed issue, what was measured for it, and whether it was met (None: not measured)."""

    goal: str
    wanted: str
    measured: str
    passed: bool | None


def markdown(rows: list[Row], targets: list[Target], context: str) -> str:
    """Return the results as markdown: the methods table, its footnotes, and the targets table."""
    lines = [
        context,
        "",
        "| method | test accuracy | training seconds | whole-process seconds | peak memory (MB) "
        "| whole process vs `softmax train` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for row in rows:
        marks = ""
        for note in row.notes:
            notes.append(note)
            marks += f" [{len(notes)}]"
        if row.problem:
            lines.append(f"| {row.method}{marks} | {escape(row.problem)} | | | | |")
        else:
            lines.append(
                f"| {row.method}{marks} | {row.test_accuracy:.2%} | {seconds(row.train_seconds)} "
                f"| {seconds(row.whole_seconds)} | {row.peak_mb:.0f} | {row.ratio:.1f}× |"
            )
    lines += [
        "",
        "Training seconds are what each method reports for its training loop or `fit` alone; whole-process "
        "seconds are the wall clock of the command from start to exit (Python start-up, imports, loading the data, "
        "training, testing, saving); peak memory is the process's maximum resident set. "
        "`softmax train` (defaults) is the fastest of "
        f"{rows[0].runs} runs, every other method one run. All read the same copy of the data through the same loader. "
        "Keras and the full-batch recipe also score the test set during training for the time-to-accuracy curve: "
        "off their training clock, inside their whole process (milliseconds each time).",
    ]
    if notes:
        lines += [""] + [f"[{number}] {escape(note)}" for number, note in enumerate(notes, 1)]
    lines += ["", "| goal | target | measured | result |", "|---|---|---|---|"]
    for target in targets:
        result = {True: "PASS", False: "**FAIL**", None: "not measured"}[target.passed]
        lines.append(f"| {target.goal} | {target.wanted} | {escape(target.measured)} | {result} |")
    return "\n".join(lines) + "\n"


BENCHMARKS_PAGE_INTRO = """# Benchmarks

Written by `make bench` (`bench/run.py`, through `bench/report.py`); do not edit by hand. Each row is one command,
all reading the same local copy of MNIST. Shared machines differ in speed from one day to the next and are noisy
within a day: compare the ratios within one run, never seconds across runs. The figures of a single loop, phase by
phase, come from `python bench/floor.py`; the drawing page's from `python bench/serve.py --model model.npz`.
"""


def benchmarks_page(results: str) -> str:
    """Return docs/benchmarks.md: what the page is and how it is made, then a run's results (from `markdown`)."""
    return BENCHMARKS_PAGE_INTRO + "\n" + results + "\n![test accuracy against training seconds](../bench/figures/time_to_accuracy.png)\n"


def write_json(path: Path, rows: list[Row], targets: list[Target], about: dict) -> None:
    """Write every figure of the run, the methods' own output and the curves to path as JSON."""
    record = {**about, "rows": [asdict(row) for row in rows], "targets": [asdict(target) for target in targets]}
    path.write_text(json.dumps(record, indent=2) + "\n")


def plot_time_to_accuracy(path: Path, rows: list[Row]) -> None:
    """Draw test accuracy against training seconds, one line per method, into the PNG file at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6), layout="constrained")
    for row in rows:
        if not row.curve:
            continue
        times, accuracies = zip(*row.curve)
        label = row.method.replace("`", "")
        if len(times) == 1:
            label += " (end point only)"
        axes.plot(times, [100 * a for a in accuracies], marker="o", markersize=4, label=label)
    axes.set_xscale("log")
    axes.set_xlabel("training seconds (log scale; loop or fit only, scoring excluded)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("MNIST softmax regression: test accuracy against training time")
    axes.grid(True, which="both", alpha=0.3)
    figure.legend(loc="outside lower center", ncols=1, fontsize="small")  # outside: no curve is ever hidden; one
    # column, as two of these long labels are wider than the figure
    figure.savefig(path, dpi=120)
    plt.close(figure)


def seconds(value: float) -> str:
    """Return seconds with about three significant figures."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def escape(text: str) -> str:
    """Return text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
