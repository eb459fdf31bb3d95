"""Faults and attacks on run folders: configs that would run code, symlinks, a full disk, an
env that raises, a forged checkpoint, signals outside the training loop, failure records."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    RUN,
    assert_no_traceback,
    assert_one_line_error,
    compose_config,
    torchrl,
)
from fixtures.faulty_envs import register
from omegaconf import OmegaConf

from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import (
    CHECKPOINT_DIR,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    step_checkpoints,
)
from torchrl_cli.run.train import train
from torchrl_cli.run.trust import check_targets

FIXTURES = Path(__file__).resolve().parent  # holds fixtures/, importable by subprocesses


def env_with_fixtures(cli_env: dict) -> dict:
    path = os.pathsep.join(p for p in (cli_env.get("PYTHONPATH"), str(FIXTURES)) if p)
    return {**cli_env, "PYTHONPATH": path}


def test_a_config_that_would_run_code_is_refused(run_copy, torchrl_bin, cli_env, tmp_path):
    """A numpy.savetxt node under env.wrappers: eval and resume refuse it, the file never
    appears; nothing else in the folder changes."""
    target = tmp_path / "written_by_the_config.txt"
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["env"]["wrappers"] = [{"_target_": "numpy.savetxt", "fname": str(target),
                                  "X": [[1.0]]}]
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    for args in (["eval", str(run_copy)], ["train", f"resume={run_copy}", "max_steps=1024"]):
        proc = torchrl(torchrl_bin, args, tmp_path, cli_env)
        assert_one_line_error(proc, "env.wrappers[0]._target_=numpy.savetxt",
                              "which a run folder may not name", "trust=numpy")
    assert not target.exists()


def test_trust_lets_a_named_module_through():
    cfg = OmegaConf.create({"env": {"wrappers": [{"_target_": "my_pkg.wrappers.Clip"}]},
                            "net": {"body": [{"_target_": "torch.nn.Linear"}]}})
    with pytest.raises(ConfigError, match="my_pkg.wrappers.Clip"):
        check_targets(cfg, "config.yaml")
    check_targets(cfg, "config.yaml", trust=["my_pkg.wrappers"])
    for name in ("torch.save", "builtins.open", "shutil.copyfile", "pathlib.Path.touch",
                 "torchrl_cli.run.checkpoint.write_atomically", "gymnasium.wrappers.RecordVideo"):
        with pytest.raises(ConfigError):
            check_targets(OmegaConf.create({"x": {"_target_": name}}), "config.yaml")


def test_a_symlinked_lock_is_refused_and_its_target_untouched(run_copy, torchrl_bin, cli_env,
                                                               tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_copy / ".lock").unlink()
    (run_copy / ".lock").symlink_to(victim)
    proc = torchrl(torchrl_bin, ["train", f"resume={run_copy}", "max_steps=1024"], tmp_path,
                   cli_env)
    assert_one_line_error(proc, ".lock is a symlink")
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", [".config.yaml.tmp", ".metrics.json.tmp", ".model.pt.tmp"])
def test_symlinked_temporaries_are_not_written_through(run_copy, torchrl_bin, cli_env, tmp_path,
                                                       name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_copy / name).symlink_to(victim)
    proc = torchrl(torchrl_bin, ["train", f"resume={run_copy}", "max_steps=1024"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert victim.read_text() == "precious\n"
    assert not (run_copy / name).exists()


def test_a_forged_checkpoint_env_is_one_line(run_copy, torchrl_bin, cli_env, tmp_path):
    """config.yaml and the checkpoint both say Acrobot-v1 (re-signed): the spaces of the
    checkpoint (CartPole's 4 observations) are compared with the env's before loading."""
    config = (run_copy / "config.yaml").read_text().replace("CartPole-v1", "Acrobot-v1")
    (run_copy / "config.yaml").write_text(config)
    path = step_checkpoints(run_copy / CHECKPOINT_DIR)[-1]
    state = read_checkpoint(path)
    state["env_id"] = "Acrobot-v1"
    save_checkpoint(path, state)
    proc = torchrl(torchrl_bin, ["eval", str(run_copy)], tmp_path, cli_env)
    assert_one_line_error(proc, "was trained on observations continuous of shape (4,)",
                          "(6,)")


def test_an_env_that_raises_is_one_line_with_the_resume_command(torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *RUN, "env=fixtures.faulty_envs:FaultyEnv",
                                 "+env.kwargs.fault=raise", "+env.kwargs.start=150",
                                 "hydra.run.dir=run"], tmp_path, env_with_fixtures(cli_env))
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "env fixtures.faulty_envs:FaultyEnv raised RuntimeError: simulator exploded" in lines[0]
    assert "at env step 300" in lines[0] and "torchrl train resume=run" in lines[0]
    assert step_checkpoints(tmp_path / "run" / CHECKPOINT_DIR)  # written before the fault


def test_a_run_that_died_before_its_first_checkpoint_starts_again_in_place(
        torchrl_bin, cli_env, tmp_path):
    env = env_with_fixtures(cli_env)
    args = ["train", *RUN, "env=fixtures.faulty_envs:FaultyEnv", "+env.kwargs.fault=raise",
            "+env.kwargs.start=10", "hydra.run.dir=run"]
    proc = torchrl(torchrl_bin, args, tmp_path, env)
    assert proc.returncode == 1 and "start it again in place with" in proc.stderr
    (tmp_path / "run" / "error.txt").write_text("RuntimeError: from the first attempt\n")
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    config["env"]["kwargs"]["start"] = 10**9  # the cause fixed
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    again = torchrl(torchrl_bin, ["train", "resume=run"], tmp_path, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no checkpoint yet: starting it again" in again.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not (tmp_path / "run" / "error.txt").exists()
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 1


def test_sigint_in_the_final_evaluation_stops_cleanly(tmp_path):
    """The final evaluation (slow env copies) is interrupted like training is: metrics.json
    says so, the last checkpoint is whole, and the run can be resumed."""
    env_id = register("Faults-slow-eval", fault="slow", start=0, stop=60)
    cfg = compose_config([*RUN, f"env={env_id}", "max_steps=256", "eval_episodes=2"])
    final = tmp_path / "run" / CHECKPOINT_DIR / "step_000000256.pt"

    def interrupt_when_training_ends():
        deadline = time.monotonic() + 120
        while not final.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_training_ends, daemon=True).start()
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert metrics["interrupted"] == "SIGINT" and metrics["mean_return"] is None
    assert load_checkpoint(final).env_steps == 256


def test_a_full_disk_is_one_line_and_leaves_no_temporary(torchrl_bin, cli_env, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        proc = torchrl(torchrl_bin, ["train", *RUN, f"hydra.run.dir={disk}/run"], tmp_path,
                       cli_env)
        assert_no_traceback(proc)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot write" in lines[0] and "MB free there" in lines[0]
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
