"""The README and docs/ say only what is true: every Python block runs, every cited name and test exists.

Each fenced ```python block of README.md and docs/*.md runs as written, as its own script, in an empty
temporary folder, with a timeout. A block that is deliberately not Python to run says so by its fence
(```text, ```bash, ...); a fence without a language fails, so no Python block can be skipped silently.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "py", "python3"}
# fences that are shown, not run: shell commands, program output, other file formats
SHOWN = {"text", "bash", "sh", "shell", "console", "json", "html", "toml", "ini", "yaml", "diff", "markdown"}
# each block gets this long; they are meant to take a few seconds (small models, a few steps, no MNIST download)
TIMEOUT_S = 240
# code spans ending like these are file names (`fantasies.html`), not attributes of a module
FILE_ENDINGS = (".py", ".md", ".png", ".json", ".npz", ".html", ".txt", ".gz", ".csv", ".js", ".ipynb")
# the modules and the packages (data/, fantasies/) of minivae, so `data.read_idx` is checked like `bounds.elbo`
MODULES = ({p.stem for p in (ROOT / "minivae").glob("*.py") if p.stem != "__init__"}
           | {p.parent.name for p in (ROOT / "minivae").glob("*/__init__.py")})


def fenced_blocks(page: Path) -> list[tuple[str, int, str]]:
    r"""Every fenced code block of a Markdown page: ``(language, line number of the fence, text)``."""
    blocks, lines, i = [], page.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, language = opening.groups()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i]):
            # the block's own indentation (a fence inside a list item) is not part of the code
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append((language.lower(), start, "\n".join(body) + "\n"))
        i += 1
    return blocks


def python_blocks() -> list:
    found = []
    for page in PAGES:
        for language, line, text in fenced_blocks(page):
            if language in RUN:
                name = page.relative_to(ROOT).as_posix()
                found.append(pytest.param(page, line, text, id=f"{name}:{line}"))
    return found


BLOCKS = python_blocks()


def test_the_pages_have_python_blocks_to_run() -> None:
    # the README alone shows a gradient check, a hand-written loop and a kept model
    assert len([b for b in BLOCKS if b.values[0].name == "README.md"]) >= 3
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS)
def test_python_block_runs_as_written(page: Path, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    # one BLAS thread: a thread per visible CPU makes small blocks several times slower on a busy machine
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MINIVAE_DATA=str(tmp_path / "mnist"),
               MINIVAE_FASHION_DATA=str(tmp_path / "fashion-mnist"),
               # a mirror that refuses at once: a block may fall back to the offline digits, never download
               MINIVAE_MNIST_MIRRORS="http://127.0.0.1:9/", MINIVAE_FASHION_MNIST_MIRRORS="http://127.0.0.1:9/")
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the Python block at {page.name}:{line} ran longer than {TIMEOUT_S} s; docs blocks must be fast.")
    assert done.returncode == 0, (f"the Python block at {page.name}:{line} failed:\n{code}\n"
                                  f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_fence_names_its_language(page: Path) -> None:
    for language, line, _ in fenced_blocks(page):
        assert language, (f"{page.name}:{line}: a code fence without a language; write ```python for code that "
                          "runs (the tests run it), or ```text / ```bash for what is only shown.")
        assert language in RUN | SHOWN, (f"{page.name}:{line}: fence language {language!r} is neither run "
                                         f"({sorted(RUN)}) nor a known shown-only one ({sorted(SHOWN)}).")


def test_readme_is_the_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    headings = re.findall(r"^##\s+(.+?)\s*$", text, re.M)
    assert "Start here" in headings and "References" in headings
    # the two commands, exactly: the first sets up and runs walkthrough 05, the second the tests (CI runs it)
    assert ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[offline]' && "
            "python walkthroughs/05_mnist_vae.py") in text
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test,offline]' && pytest" in text


def test_the_reading_order_names_every_walkthrough() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.split("## Start here", 1)[1].split("\n## ", 1)[0]
    for script in sorted((ROOT / "walkthroughs").glob("[0-9][0-9]_*.py")):
        assert script.name in start, f"the README's Start here does not name {script.name}"


def test_the_engine_layout_draws_every_module_and_package() -> None:
    # docs/engine.md's layout is "a line per file": a module or package missing from it is a stale drawing
    text = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    layout = text.split("## The layout, a line per file", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    drawn = set(re.findall(r"^ +(\w+)(?:\.py\b|/)", layout, re.M))
    assert drawn, "no file lines found in the layout block of docs/engine.md"
    assert MODULES - drawn == set(), f"docs/engine.md's layout does not draw {sorted(MODULES - drawn)}"
    assert drawn - MODULES == set(), f"docs/engine.md's layout draws files that do not exist: {sorted(drawn - MODULES)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_names_the_projects_own_shared_folder(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "/shared/" not in text


def slug(heading: str) -> str:
    r"""GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"[`*_]", lambda m: "_" if m.group() == "_" else "", heading.strip().lower())
    kept = "".join(c for c in heading if c in "-_ " or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", page.read_text(encoding="utf-8"), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_at_files_and_headings_that_exist(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading in {linked.name}"


def cited_names(text: str) -> set[str]:
    r"""Code spans like `bounds.elbo`, `models.VAE.encode` or `minivae.save_params` that name minivae's API."""
    names = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        found = re.match(r"^(?:minivae\.)?([a-z_]+)\.([A-Za-z_][\w.]*)", span)
        if "/" in span or span.endswith(FILE_ENDINGS) or not found:
            continue
        if found.group(1) in MODULES or span.startswith("minivae."):
            name = found.group(0).rstrip(".")
            names.add(name if name.startswith("minivae.") else "minivae." + name)
    return names


def resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_function_exists(page: Path) -> None:
    missing = sorted(n for n in cited_names(page.read_text(encoding="utf-8")) if not resolves(n))
    assert not missing, f"{page.name} cites names that minivae does not have: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_test_exists(page: Path) -> None:
    missing, current = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        # `test_x.py::test_name`, then `::test_other` for more tests of the same file, in the same paragraph
        # or table row
        if not line.strip() or line.startswith("|"):
            current = None
        for file, test in re.findall(r"`(?:tests/)?(test_\w+\.py)?::(test_\w+)", line):
            current = file or current
            source = ROOT / "tests" / (current or "")
            if current is None or not source.is_file() or f"def {test}(" not in source.read_text(encoding="utf-8"):
                missing.append(f"{current}::{test}")
    assert not missing, f"{page.name} cites tests that do not exist: {missing}"


# the lectures (by author; the AEVB notes by their title) and the papers a docstring may name as its source
LECTURES = {"Shan": "Shan", "Zhu": "Zhu", "Klushyn": "Klushyn", "Barra": "Barra",
            "AEVB notes": "Auto-Encoding Variational Bayes"}
PAPERS = ("Kingma", "Welling", "Burda", "Sohn", "Rezende", "Higgins", "Doersch", "Ba")


def formula_table() -> list[tuple[str, list[str]]]:
    r"""The README's formula table as ``(source column, [function names])``, one entry per row."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| slide formula (lecture) | function | test |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        rows.append((cells[0], sorted(cited_names(cells[1]))))
    return rows


def test_every_formula_table_function_names_its_lecture_or_paper() -> None:
    rows, silent = formula_table(), []
    assert len(rows) >= 20
    for source, names in rows:
        # the lectures the row names in its "(lecture)" column; else any lecture or paper will do
        wanted = [title for lecture, title in LECTURES.items() if lecture in source]
        allowed = wanted or [*LECTURES.values(), *PAPERS]
        for name in names:
            module, _, attr = name.partition(".")[2].partition(".")
            obj = importlib.import_module(f"minivae.{module}")
            for part in attr.split("."):
                obj = getattr(obj, part)
            doc = obj.__doc__ or ""
            if not any(re.search(rf"\b{re.escape(a)}\b", doc) for a in allowed):
                silent.append(f"{name} names none of {allowed}")
    assert not silent, silent
