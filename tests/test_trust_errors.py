"""Trust, round two (issue 27, item 10): each of these is one line naming the problem and the
fix, a non-zero exit, no traceback, and no run folder left behind."""

import os
from pathlib import Path

import pytest
from conftest import TINY, assert_one_line_error, compose_config, torchrl

from torchrl_cli.config.validate import validate
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import (
    CHECKPOINT_DIR,
    read_checkpoint,
    save_checkpoint,
    step_checkpoints,
)
from torchrl_cli.run.train import train

TESTS = Path(__file__).resolve().parent
RUN = [*TINY, "checkpoint_freq=128", "max_steps=512"]


def with_tests(cli_env: dict) -> dict:
    path = os.pathsep.join(p for p in (cli_env.get("PYTHONPATH"), str(TESTS)) if p)
    return {**cli_env, "PYTHONPATH": path}


@pytest.fixture
def run(tmp_path) -> Path:
    folder = tmp_path / "run"
    train(compose_config(RUN), run_dir=folder)
    return folder


@pytest.mark.parametrize(("args", "needles"), [
    (["env=test_trust_envs:Asserting"], ["cannot make env", "AssertionError"]),
    (["env.wrappers=[{_target_:no.such.Wrapper}]"],
     ["env.wrappers[0]._target_=no.such.Wrapper cannot be imported"]),
    (["seed=-1"], ["seed -1 is out of range"]),
    ([f"seed={10**40}"], ["is out of range"]),
    (["agent.lr=1e999"], ["agent.lr=inf must be > 0 and finite"]),
])
def test_bad_settings_are_one_line_before_any_folder(torchrl_bin, cli_env, tmp_path, args,
                                                     needles):
    proc = torchrl(torchrl_bin, ["train", *TINY, *args], tmp_path, with_tests(cli_env))
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_thousands_of_wrappers_are_one_line():
    cfg = compose_config(TINY)
    cfg.env.wrappers = [{"_target_": "gymnasium.wrappers.ClipAction"}] * 2000
    with pytest.raises(ConfigError, match="lists 2000 wrappers; at most 100"):
        validate(cfg)


def test_a_forged_checkpoint_without_a_key_is_one_line(run, torchrl_bin, cli_env, tmp_path):
    path = step_checkpoints(run / CHECKPOINT_DIR)[-1]
    state = read_checkpoint(path)
    del state["agent"]["rng"]  # re-signed: the checksum is valid
    save_checkpoint(path, state)
    for args in (["eval", str(run)], ["train", f"resume={run}", "max_steps=1024"]):
        proc = torchrl(torchrl_bin, args, tmp_path, cli_env)
        assert_one_line_error(proc, "lacks agent.rng", "the newest intact checkpoint is")


@pytest.mark.parametrize("out", ["/proc/self/nope.pt2", "x" * 300 + ".pt2"])
def test_an_export_path_that_cannot_be_written_is_one_line(run, torchrl_bin, cli_env, tmp_path,
                                                           out):
    proc = torchrl(torchrl_bin, ["export", str(run), f"out={out}"], tmp_path, cli_env)
    assert_one_line_error(proc, "cannot be written")


def test_resume_takes_the_checkpoint_its_own_advice_names(run, torchrl_bin, cli_env, tmp_path):
    newest = step_checkpoints(run / CHECKPOINT_DIR)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn file
    proc = torchrl(torchrl_bin, ["train", f"resume={run}", "max_steps=1024"], tmp_path, cli_env)
    line = assert_one_line_error(proc, "is truncated or corrupted", "use checkpoint=")
    advised = line.rsplit("use checkpoint=", 1)[1].strip()
    proc = torchrl(torchrl_bin, ["train", f"resume={run}", "max_steps=1024",
                                 f"checkpoint={advised}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resumed from" in proc.stdout
