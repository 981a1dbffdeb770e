"""The documents: the README is a front page whose commands exist, every link leads somewhere, the command reference
is what docs/make_reference.py writes today, and the tutorial notebook runs."""

import json
import re
import runpy
import shlex
from pathlib import Path

import click
import pytest

from softmax_cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
WRITTEN_BY_OTHERS = {DOCS / "kernel.md"}  # the kernel's page, written with the kernel; linked before it lands


def command_lines(text: str) -> list[str]:
    """Return every `softmax ...` command in a page: the lines of its code blocks and its inline code spans."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()] + spans
    return [line.removeprefix("$ ") for line in lines if re.match(r"(\$ )?softmax( |$)", line.strip())]


def options_of(name: str) -> set[str]:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"no command softmax {name}"
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_softmax_command_and_option_a_page_names_exists(page):
    commands = command_lines(page.read_text(encoding="utf-8"))
    for line in commands:
        words = shlex.split(line.replace("'", '"'))[1:]
        if not words or words[0].startswith("-"):
            continue
        known = options_of(words[0])
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{page.name}: `{line}`: softmax {words[0]} has no {word}"


def test_the_readme_names_real_options():
    assert len(command_lines((ROOT / "README.md").read_text())) >= 10


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert text.startswith("# softmax-cli\n\n```\nmake train ")
    assert "card's" not in text
    assert text.count("| method | test accuracy |") == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_local_link_leads_to_a_file(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target):
            continue
        path = (page.parent / target).resolve()
        assert path.exists() or path in WRITTEN_BY_OTHERS, f"{page.name} links to {target}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_tells_the_history_of_changes(page):
    text = page.read_text(encoding="utf-8")
    for phrase in ("before a fix", "it used to", "the card's command", "earlier run"):
        assert phrase not in text.lower(), f"{page.name}: {phrase!r}"


def test_the_command_reference_is_generated_from_the_code():
    reference = runpy.run_path(str(DOCS / "make_reference.py"))["reference"]
    assert (DOCS / "reference.md").read_text(encoding="utf-8") == reference(), \
        "docs/reference.md is out of date: run python docs/make_reference.py"


def test_the_command_reference_lists_every_setting_and_command():
    from softmax_cli.config import SETTINGS

    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    for setting in SETTINGS.values():
        assert f"| `{setting.name}` | `--{setting.name.replace('_', '-')}` | " in text
    for name in cli.list_commands(click.Context(cli)):
        assert f"## `softmax {name}`" in text


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")


@pytest.mark.slow
def test_the_tutorial_notebook_runs(mnist_path, tmp_path, monkeypatch):
    """Every code cell of docs/tutorial.ipynb, in order, in one namespace, as a reader running it top to bottom."""
    monkeypatch.setenv("SOFTMAX_DATA", str(mnist_path))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__tutorial__"}
    exec(compile(notebook_code(DOCS / "tutorial.ipynb"), "tutorial.ipynb", "exec"), namespace)
    # What the notebook shows the reader, checked: the gradient agrees, and the two mistakes cost what it says.
    assert namespace["relative_error"] < 1e-6
    assert namespace["wrong_axis_accuracy"] < namespace["right_axis_accuracy"] - 0.1
    assert namespace["full_batch_accuracy"] < namespace["mini_batch_accuracy"] - 0.03


def results_table(text: str) -> list[str]:
    """Return the lines of the first methods table in a page."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| method | test accuracy |")))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def test_the_benchmarks_page_is_bench_reports_and_the_readme_quotes_its_table():
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from report import BENCHMARKS_PAGE_INTRO
    finally:
        sys.path.remove(str(ROOT / "bench"))
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert page.startswith(BENCHMARKS_PAGE_INTRO)
    assert results_table((ROOT / "README.md").read_text(encoding="utf-8")) == results_table(page), \
        "the README's results table is not the one in docs/benchmarks.md (the last make bench)"


def test_bench_report_writes_the_benchmarks_page_with_date_machine_and_load():
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from report import Row, Target, benchmarks_page, markdown
    finally:
        sys.path.remove(str(ROOT / "bench"))
    row = Row("softmax", "`softmax train` (defaults)", 0.9276, 0.12, 0.35, 146.0, runs=3, ratio=1.0)
    context = "measured 2026-12-04 on AMD EPYC, 2 cores; load average 0.0 at the start and 1.9 at the end."
    page = benchmarks_page(markdown([row], [Target("accuracy", ">= 92.5 %", "92.76 %", True)], context))
    assert context in page and "| `softmax train` (defaults) | 92.76% | 0.12 | 0.35 | 146 | 1.0× |" in page
    assert results_table(page)[2].startswith("| `softmax train` (defaults)")
