"""Every figure in the docs exists, is shown, and has a caption that names a command that
exists (a Makefile target, a script or module of the repository, or `torchrl ...`); the
learning benchmark's figures redraw from the curves kept beside them."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WRITTEN = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".pdf")


def figures() -> list[tuple[Path, int, Path]]:
    """(page, line index, image file) for every image a page shows."""
    found = []
    for page in WRITTEN:
        for i, line in enumerate(page.read_text().splitlines()):
            for target in IMAGE.findall(line):
                found.append((page, i, (page.parent / target).resolve()))
    return found


def caption(lines: list[str], i: int) -> str:
    """The figure's caption: the paragraph just above its run of image lines (one blank line
    between them at most) and the paragraph just below."""
    def paragraph(start: int, step: int) -> list[str]:
        j = start
        if 0 <= j < len(lines) and not lines[j].strip():
            j += step
        block = []
        while 0 <= j < len(lines) and lines[j].strip() and not IMAGE.search(lines[j]):
            block.append(lines[j])
            j += step
        return block[::step]

    top = i
    while top > 0 and IMAGE.search(lines[top - 1]):
        top -= 1
    bottom = i
    while bottom + 1 < len(lines) and IMAGE.search(lines[bottom + 1]):
        bottom += 1
    return " ".join(paragraph(top - 1, -1) + paragraph(bottom + 1, 1))


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def commands_exist(text: str) -> list[str]:
    """The commands in backticks in ``text`` that exist here: a Makefile target, a script or
    module of the repository (python path.py / python -m package.module), ``torchrl <command>``.
    """
    from torchrl_cli.cli import COMMANDS

    found = []
    for span in re.findall(r"`([^`]+)`", text):
        words = span.split()
        if words[:1] == ["make"] and len(words) > 1 and words[1] in make_targets():
            found.append(span)
        elif words[:2] == ["python", "-m"] and len(words) > 2:
            module = ROOT / words[2].replace(".", "/")
            if module.with_suffix(".py").is_file() or (module / "__main__.py").is_file():
                found.append(span)
        elif words[:1] == ["python"] and len(words) > 1 and (ROOT / words[1]).is_file():
            found.append(span)
        elif words[:1] == ["torchrl"] and len(words) > 1 and words[1] in COMMANDS:
            found.append(span)
    return found


def test_every_figure_exists_and_is_shown():
    shown = {image for _, _, image in figures()}
    missing = [f"{page.relative_to(ROOT)}:{i + 1}: {image}" for page, i, image in figures()
               if not image.is_file()]
    assert not missing, missing
    files = {p.resolve() for p in DOCS.rglob("*") if p.suffix.lower() in FIGURE_SUFFIXES}
    assert files, "no figures found: the glob is wrong"
    assert not sorted(files - shown), "figures no page shows"


@pytest.mark.parametrize("page, i, image", figures(),
                         ids=lambda x: x.name if isinstance(x, Path) else str(x))
def test_every_figure_caption_names_the_command_that_draws_it(page, i, image):
    text = caption(page.read_text().splitlines(), i)
    assert commands_exist(text), (
        f"{page.relative_to(ROOT)}:{i + 1}: the caption of {image.name} names no command that "
        f"exists: {text[:300]!r}")


def test_a_caption_without_a_command_fails():
    """The check itself: a caption naming a target or script that is not there finds none."""
    assert not commands_exist("drawn by `make bench-nothing` or `python bench/nothing.py`")
    assert commands_exist("drawn by `make bench-learning` (`python bench/learning.py --plot-only`)")
    lines = ["Drawn by `make bench-learning`:", "", "![a](img/a.png)", "![b](img/b.png)", "",
             "Another paragraph, `make test`."]
    assert caption(lines, 3) == "Drawn by `make bench-learning`: Another paragraph, `make test`."


def test_learning_figures_redraw_from_their_curves_alone(tmp_path):
    """`python bench/learning.py --plot-only` draws a figure from docs/img/learning_<env>.json
    (no run folders, no training) and leaves the page alone; an env without the file is named
    and the exit code is 1."""
    (tmp_path / "img").mkdir()
    curves = {"ppo_clip": [[[0, 20.0], [1000, 200.0], [2000, 500.0]],
                           [[0, 25.0], [1000, 150.0], [2000, 480.0]]],
              "a2c": [[[0, 15.0], [1000, 90.0], [2000, 300.0]]]}
    (tmp_path / "img" / "learning_CartPole-v1.json").write_text(
        json.dumps({"seeds": 2, "curves": curves}))
    command = [sys.executable, "bench/learning.py", "--plot-only", "--out", str(tmp_path),
               "--runs", str(tmp_path / "no-runs")]
    done = subprocess.run([*command, "--only", "CartPole-v1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    png = tmp_path / "img" / "learning_CartPole-v1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "benchmarks.md").exists() and not (tmp_path / "no-runs").exists()
    done = subprocess.run([*command, "--only", "CartPole-v1", "Pendulum-v1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Pendulum-v1" in done.stderr and "make bench-learning" in done.stderr
