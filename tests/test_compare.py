"""``torchrl compare``: a table per configuration and compare.png from real TensorBoard logs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

TORCHRL = str(Path(sys.executable).parent / "torchrl")
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", "PYTHONUNBUFFERED": "1", "TERM": "dumb"}
ROW = re.compile(r"^│ (agent\.lr=\S+)\s+│\s+(\d+) │", re.MULTILINE)


def torchrl(*args, cwd):
    return subprocess.run(
        [TORCHRL, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2 x 2 sweep (seed=0,1 x agent.lr=1e-3,3e-4) with two evaluations per run."""
    root = tmp_path_factory.mktemp("compare")
    proc = torchrl(
        "train", "-m", "seed=0,1", "agent.lr=1e-3,3e-4", *TINY, "eval_freq=128", cwd=root
    )
    assert proc.returncode == 0, proc.stderr
    return next(root.glob("runs/*/*_multirun"))


def check_png(path: Path) -> None:
    """A valid PNG of about 880 x 550 pixels that is not a blank canvas."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(path)
    assert 800 <= image.width <= 1000 and 500 <= image.height <= 600
    assert np.asarray(image.convert("L")).std() > 10


def test_compare_sweep_prints_one_row_per_configuration(sweep, tmp_path):
    """One row per lr over 2 seeds; compare.png goes into the sweep folder; a second compare
    writes compare_2.png beside it and the first is left as it was; --format and --dpi."""
    proc = torchrl("compare", sweep, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ROW.findall(proc.stdout) == [("agent.lr=0.001", "2"), ("agent.lr=0.0003", "2")]
    first = sweep / "compare.png"
    check_png(first)
    assert f"wrote {first}" in proc.stdout and list(tmp_path.iterdir()) == []
    before = first.read_bytes()
    proc = torchrl("compare", sweep, "--dpi", "55", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert first.read_bytes() == before
    assert Image.open(sweep / "compare_2.png").width == Image.open(first).width // 2
    proc = torchrl("compare", sweep, "--format", "svg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "compare.svg").read_text().lstrip().startswith("<?xml")
    proc = torchrl("compare", sweep, "--format", "gif", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_compare_run_folders_and_a_parent_folder(sweep, tmp_path):
    """Two run folders (jobs 0 and 1: seed 0, each lr); a parent folder searched recursively,
    with --out and --metric train."""
    proc = torchrl(
        "compare",
        sweep / "0_ppo_clip_CartPole-v1",
        sweep / "1_ppo_clip_CartPole-v1",
        "--out",
        "a",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert ROW.findall(proc.stdout) == [("agent.lr=0.001", "1"), ("agent.lr=0.0003", "1")]
    check_png(tmp_path / "a" / "compare.png")
    proc = torchrl("compare", sweep.parent.parent, "--out", "b", "--metric", "train", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ROW.findall(proc.stdout) == [("agent.lr=0.001", "2"), ("agent.lr=0.0003", "2")]
    check_png(tmp_path / "b" / "compare.png")
    proc = torchrl("compare", sweep / "0_ppo_clip_CartPole-v1", sweep / "2_ppo_clip_CartPole-v1",
                   cwd=tmp_path)  # several folders, no --out: the current folder
    assert proc.returncode == 0, proc.stderr
    check_png(tmp_path / "compare.png")


@pytest.mark.parametrize("case", ["missing", "empty", "no_runs", "no_scalar"])
def test_bad_input_is_one_error_line(case, tmp_path):
    """A missing path, an empty folder, files but no run, a run without TensorBoard scalars:
    one 'torchrl: error:' line naming the folder, exit code 2, no traceback, no plot."""
    folder = tmp_path / case
    if case != "missing":
        folder.mkdir()
    if case == "no_runs":
        (folder / "notes.txt").write_text("not a run\n")
    if case == "no_scalar":
        (folder / "0_run" / ".hydra").mkdir(parents=True)
    proc = torchrl("compare", folder, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchrl: error:") and str(folder) in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob("compare*"))


def test_the_title_names_every_env_compared(tmp_path):
    """One agent on two envs: both in the title (it used to name the first alone)."""
    from torchrl_cli.cli.compare import describe, env_targets

    runs = []
    for i, (env, target) in enumerate([("CartPole-v1", 475), ("Pendulum-v1", None)]):
        (tmp_path / str(i) / ".hydra").mkdir(parents=True)
        (tmp_path / str(i) / ".hydra" / "config.yaml").write_text(
            f"agent: {{name: ppo_clip}}\nenv: {{id: {env}}}\ntarget_return: {target or 'null'}\n")
        runs.append(tmp_path / str(i))
    assert describe(runs) == ("ppo_clip on CartPole-v1, Pendulum-v1", None)
    assert env_targets(runs) == {"CartPole-v1": 475}
