"""What a user reads speaks to users: no Markdown page, `--help` text, notebook text or Makefile default points
to a path outside the repository (`../…` that leaves it, the authors' `/work` or `shared/` folders) or talks
about the authors' machine or process ("this machine", "the issue", "the article" left unnamed …).

Each text is checked with its line breaks and Markdown emphasis folded into single spaces, so a phrase
wrapped over two lines is still found.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from app.cli import build_parser

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Phrases about the authors' setting rather than the user's; case-insensitive, matched on folded text.
INSIDE_TALK = {
    "this machine": r"\bthis (?:machine|computer|box|server)\b",
    "our machine": r"\bour (?:own )?(?:machine|computer|box|server|cpus?|cores)\b",
    "the machine": r"\bthe machine\b(?! learning)",
    "measured here": r"\b(?:measured|have|had|made|ran|run|tried|trained|downloaded) here\b",
    "the issue": r"\bthe issue(?:'s)?\b",
    "the team": r"\b(?:the|our) team(?:'s)?\b",
    "an unnamed article": r"(?<!source )\bthe article(?:'s)?\b",
    "the authors' data folder": r"\bshared/",
}
# Paths that point at the authors' disk, not at the repository a user cloned.
AUTHORS_PATH = re.compile(r"(?<![\w.-])/work\b|" + re.escape(str(PROJECT_ROOT.parent)) + r"/")
PARENT_PATH = re.compile(r"(?<![\w.-])((?:\.\./)+)")


def fold(text: str) -> str:
    """Single spaces for line breaks and runs of blanks; Markdown emphasis and `>` quote marks dropped."""
    return " ".join(re.sub(r"[*_`>]+(?=\w)|(?<=\w)[*_`]+", "", text).split())


def problems(text: str, base: Path) -> list[str]:
    """What in `text` talks about the authors' setting or points outside the repository; relative `../` paths
    are resolved from the folder `base`."""
    found = [name for name, pattern in INSIDE_TALK.items() if re.search(pattern, fold(text), re.IGNORECASE)]
    found += [match.group(0)] if (match := AUTHORS_PATH.search(text)) else []
    for match in PARENT_PATH.finditer(text):
        levels = match.group(1).count("../")
        target = base.resolve().joinpath(*[".."] * levels).resolve()
        if not target.is_relative_to(PROJECT_ROOT):
            found.append(text[match.start() : match.start() + 40].split()[0])
    return found


def user_documents() -> list[Path]:
    """The Markdown pages a user reads, and the text files of binder/ (what mybinder.org reads, commented)."""
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "models").glob("*.md"))]
    pages += [PROJECT_ROOT / "benchmarks" / "README.md"]
    pages += sorted(path for path in (PROJECT_ROOT / "binder").iterdir() if path.is_file())
    return pages


def help_texts() -> dict[str, str]:
    """{command: its --help text} for `python -m app` and every subcommand below it, from the parser itself."""
    texts: dict[str, str] = {}

    def visit(parser: argparse.ArgumentParser) -> None:
        texts[parser.prog] = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    visit(command)

    visit(build_parser())
    return texts


def makefile_defaults() -> dict[str, str]:
    """{variable: default value} of the Makefile's `NAME ?= …`, `NAME := …` and `NAME = …` lines."""
    assignments = re.findall(
        r"^([A-Z][A-Z0-9_]*)\s*(?:\?=|:=|=)\s*(.*)$", (PROJECT_ROOT / "Makefile").read_text(), re.M
    )
    return dict(assignments)


@pytest.mark.parametrize("page", user_documents(), ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_user_pages_speak_to_users(page):
    assert problems(page.read_text(), page.parent) == []


def test_help_texts_speak_to_users():
    texts = help_texts()
    assert {"python -m app", "python -m app train", "python -m app data download"} <= set(texts)
    found = {command: problems(text, PROJECT_ROOT) for command, text in texts.items()}
    assert {command: issues for command, issues in found.items() if issues} == {}


def test_makefile_defaults_stay_in_the_repository():
    defaults = makefile_defaults()
    assert "DATA" in defaults and "PORT" in defaults
    found = {name: problems(value, PROJECT_ROOT) for name, value in defaults.items()}
    assert {name: issues for name, issues in found.items() if issues} == {}
    assert problems((PROJECT_ROOT / "Makefile").read_text(), PROJECT_ROOT) == []


def test_the_dashboard_page_says_what_it_is():
    notebook = json.loads((PROJECT_ROOT / "notebooks" / "app.ipynb").read_text())
    assert notebook["metadata"].get("title") == "OnePipe"  # the page title Voila's template shows (else "app")
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            assert problems("".join(cell["source"]), PROJECT_ROOT / "notebooks") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The machine is small (2 cores) and often shared", ["the machine"]),
        ("what this\nmachine cannot download", ["this machine"]),
        ("against the issue's targets", ["the issue"]),
        ("the article's CNN unchanged", ["an unnamed article"]),
        ("the source article's recipe, on a 2-core x86 CPU", []),
        ("python benchmarks/features.py ../shared/data/mnist", ["the authors' data folder", "../shared/data/mnist"]),
        ("DATA ?= /work/shared/data", ["the authors' data folder", "/work"]),
        ("machine learning in the repository's data/ folder", []),
    ],
)
def test_the_checks_find_what_they_look_for(text, expected):
    assert problems(text, PROJECT_ROOT) == expected


def test_the_readme_layout_names_every_module():
    """A newcomer finds the file of any behaviour from the README's Layout section: every module is listed."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    modules = sorted(
        path.relative_to(PROJECT_ROOT / "app").as_posix()
        for path in (PROJECT_ROOT / "app").rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )
    missing = [module for module in modules if Path(module).name not in layout]
    assert not missing, f"README's Layout section does not name: {', '.join(missing)}"
