"""The user's config folder (--config-dir DIR, -cd DIR, TORCHRL_CONFIG_DIR=DIR): its files take
the place of the shipped files of the same name and add options, for every command that
composes a config; run folders stay readable without it."""

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import TINY, assert_no_traceback, assert_one_line_error, compose_config, torchrl

from torchrl_cli.config import config_dir
from torchrl_cli.config.user_dir import ENV_VAR, take_config_dir

TUNED_LR = 1.234e-3  # in no shipped file


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A config folder: a ppo_clip + CartPole-v1 tuned file (one value), an env file for an id
    the package ships no file for, a tuned pair it does not ship, an a2c agent file and a net."""
    root = tmp_path / "myconf"
    write(root, "tuned/ppo_clip/CartPole-v1.yaml",
          f"# @package _global_\nagent:\n  lr: {TUNED_LR}\n")
    write(root, "env/FrozenLake-v1.yaml",
          "id: FrozenLake-v1\nn_envs: 3\nkwargs:\n  is_slippery: false\n")
    write(root, "tuned/a2c/FrozenLake-v1.yaml", "# @package _global_\nagent:\n  gamma: 0.5\n")
    write(root, "agent/a2c.yaml", "defaults:\n  - a2c_schema\n  - advantage: gae\n  - _self_\n"
          "lr: 7.5e-4\n")
    write(root, "net/tiny.yaml", "name: tiny\nbody:\n  - _target_: torch.nn.Linear\n"
          "    out_features: 7\n  - _target_: torchrl_cli.nn.Tanh\nhead: []\n")
    return root


def cfg_job(torchrl_bin, cli_env, cwd, args, env_dir=None) -> dict:
    env = {**cli_env, ENV_VAR: str(env_dir)} if env_dir else cli_env
    proc = torchrl(torchrl_bin, ["train", *args, "--cfg", "job"], cwd, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    return yaml.safe_load(proc.stdout)


def test_a_user_tuned_file_wins_over_the_shipped_memory_file(torchrl_bin, cli_env, tmp_path):
    """conf/tuned_memory/ppo_clip/CartPoleNoVel-v1/lstm.yaml comes before the pair's tuned file:
    a tuned file of the user's (as `torchrl tune` writes one) sets the lr, and the memory file's
    other values (the entropy bonus) stay."""
    root = tmp_path / "myconf"
    write(root, "tuned/ppo_clip/CartPoleNoVel-v1.yaml",
          f"# @package _global_\nagent:\n  lr: {TUNED_LR}\n")
    cfg = cfg_job(torchrl_bin, cli_env, tmp_path,
                  ["env=CartPoleNoVel-v1", "memory=lstm", "--config-dir", "myconf"])
    assert cfg["agent"]["lr"] == TUNED_LR
    assert cfg["agent"]["policy"]["entropy_coef"] == 0.01
    assert cfg["agent"]["n_steps"] == 128  # the shipped pair file no longer applies


def test_a_tuned_file_from_torchrl_tune_rebuilds_its_trial_under_every_memory(
        torchrl_bin, cli_env, tmp_path):
    """`torchrl tune` writes a trial's values against the pair with no tuned file (memory=none's
    tuned_memory file applied): copied into a config folder, the file composes to the trial's
    config whichever memory option the command line chooses, since it sets every key where
    the trial differs from that base."""
    from omegaconf import OmegaConf

    from torchrl_cli.tune.results import NOT_TUNED, tuned_config

    class Trial:
        user_attrs = {"overrides": [
            "agent=ppo_clip", "env=CartPoleNoVel-v1", "memory=lstm", "memory.kind=gru",
            "agent.lr=0.0015", "agent.policy.entropy_coef=0.005"]}

    trial = compose_config(Trial.user_attrs["overrides"])
    tuned = tuned_config(Trial, trial, ["memory.kind", "agent.lr", "agent.policy.entropy_coef"])
    write(tmp_path / "myconf", "tuned/ppo_clip/CartPoleNoVel-v1.yaml",
          "# @package _global_\n" + OmegaConf.to_yaml(tuned))
    want = {k: v for k, v in OmegaConf.to_container(trial).items() if k not in NOT_TUNED}
    for memory in ("none", "lstm", "gru"):
        got = cfg_job(torchrl_bin, cli_env, tmp_path,
                      ["env=CartPoleNoVel-v1", f"memory={memory}", "--config-dir", "myconf"])
        assert {k: v for k, v in got.items() if k not in NOT_TUNED} == want, memory


@pytest.mark.parametrize("how", ["--config-dir", ENV_VAR])
def test_a_user_tuned_file_replaces_the_shipped_one(torchrl_bin, cli_env, tmp_path, user_dir,
                                                    how):
    """The optional `tuned: ${agent}/${env}` default loads the user's file: its lr applies, and
    the shipped file's values (16 envs, 32 steps) no longer do: the schema's 8 and 128 are back.
    The flag takes a folder relative to the working directory."""
    if how == ENV_VAR:
        cfg = cfg_job(torchrl_bin, cli_env, tmp_path, [], env_dir=user_dir)
    else:
        cfg = cfg_job(torchrl_bin, cli_env, tmp_path, [how, "myconf"])
    assert cfg["agent"]["lr"] == pytest.approx(TUNED_LR, rel=1e-6)
    assert cfg["env"]["n_envs"] == 8 and cfg["agent"]["n_steps"] == 128
    assert cfg["max_steps"] == 100_000  # CartPole's env file sets no budget; the schema's
    assert list(tmp_path.iterdir()) == [user_dir]  # --cfg job creates no run folder


@pytest.mark.parametrize("args", [["--config-dir", "myconf"], ["--config-dir=myconf"],
                                  ["-cd", "myconf"], ["-cd=myconf"]])
def test_every_spelling_of_the_flag_sets_the_folder(tmp_path, user_dir, monkeypatch, args):
    """The flag leaves the command line (Hydra would put its folder after conf/) and becomes
    TORCHRL_CONFIG_DIR, absolute, for this process and its sweep workers."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, "")  # unset (empty) now; restored after the test
    assert take_config_dir(["env=Pendulum-v1", *args, "--cfg", "job"]) == [
        "env=Pendulum-v1", "--cfg", "job"]
    assert os.environ[ENV_VAR] == str(user_dir)


def test_without_the_folder_the_shipped_files_apply(tmp_path, user_dir, monkeypatch):
    """The same composition in-process: the folder on or off (it is looked up per call)."""
    monkeypatch.setenv(ENV_VAR, str(user_dir))
    assert compose_config([]).agent.lr == pytest.approx(TUNED_LR, rel=1e-6)
    monkeypatch.delenv(ENV_VAR)
    cfg = compose_config([])
    assert cfg.agent.lr == pytest.approx(8e-3) and cfg.env.n_envs == 16


def test_new_env_file_new_tuned_pair_and_agent_override(torchrl_bin, cli_env, tmp_path,
                                                        user_dir):
    """env=FrozenLake-v1 takes the user's env file (no shipped one), with a2c the user's new
    tuned pair applies on top, and agent=a2c is the user's a2c file (GAE, lr 7.5e-4) in place
    of the shipped one (Monte Carlo returns, lr 7e-4, 5 steps), none of which applies then."""
    cfg = cfg_job(torchrl_bin, cli_env, tmp_path, ["-cd", str(user_dir), "env=FrozenLake-v1",
                                                   "agent=a2c"])
    assert cfg["env"]["id"] == "FrozenLake-v1" and cfg["env"]["n_envs"] == 3
    assert cfg["env"]["kwargs"] == {"is_slippery": False}
    assert cfg["agent"]["name"] == "a2c" and cfg["agent"]["gamma"] == 0.5
    assert cfg["agent"]["lr"] == pytest.approx(7.5e-4)
    assert cfg["agent"]["advantage"]["_target_"].endswith("GAE")
    assert cfg["agent"]["n_steps"] == 128  # the shipped a2c.yaml's 5 is gone with it
    shipped = cfg_job(torchrl_bin, cli_env, tmp_path, ["agent=a2c"])
    assert shipped["agent"]["n_steps"] == 5 and shipped["agent"]["lr"] == pytest.approx(7e-4)


def test_configs_marks_the_user_options_and_names_each_values_file(torchrl_bin, cli_env,
                                                                   tmp_path, user_dir):
    proc = torchrl(torchrl_bin, ["configs", "--config-dir", str(user_dir)], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert f"user config folder: {user_dir}" in proc.stdout
    # the table's options column, its wrapped lines joined
    out = " ".join(m.group(1) for m in re.finditer(r"^│ \S*\s+│ (.*?)\s*│$", proc.stdout, re.M))
    assert "a2c (user)" in out and "ppo_clip (user)" not in out
    assert "FrozenLake-v1 (user)" in out and "tiny (user)" in out
    assert "ppo_clip + CartPole-v1 (user)" in out and "a2c + FrozenLake-v1 (user)" in out
    assert "ppo_clip + Pendulum-v1 (user)" not in out and "ppo_clip + Pendulum-v1" in out

    env = {**cli_env, ENV_VAR: str(user_dir), "COLUMNS": "300"}  # the long paths on one line
    proc = torchrl(torchrl_bin, ["configs", "ppo_clip", "CartPole-v1"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    user_file = user_dir / "tuned" / "ppo_clip" / "CartPole-v1.yaml"
    assert f"{user_file} replaces the shipped conf/tuned/ppo_clip/CartPole-v1.yaml" in proc.stdout
    rows = dict(re.findall(r"^│ (\S+)\s+│ \S+\s+│ (\S+)\s+│$", proc.stdout, re.M))
    # the user's tuned file sets no budget: the env file's applies (the shipped tuned one is out)
    env_file = "conf/env/CartPole-v1.yaml"
    assert rows == {"env.id": env_file, "max_steps": env_file, "eval_freq": env_file,
                    "agent.lr": str(user_file)}
    proc = torchrl(torchrl_bin, ["configs", "ppo_clip", "Pendulum-v1"], tmp_path, env)
    rows = dict(re.findall(r"^│ (\S+)\s+│ \S+\s+│ (\S+)\s+│$", proc.stdout, re.M))
    assert rows["agent.lr"] == "conf/tuned/ppo_clip/Pendulum-v1.yaml"
    assert rows["env.id"] == "conf/env/Pendulum-v1.yaml"
    assert rows["env.n_envs"] == "conf/tuned/ppo_clip/Pendulum-v1.yaml"  # over the env file's


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_missing_folder_is_one_error_line(torchrl_bin, cli_env, tmp_path, how):
    missing = tmp_path / "nope"
    commands = [["train"], ["train", "-m", "seed=0,1"], ["train", "--cfg", "job"], ["configs"]]
    for command in commands if how == "flag" else commands[2:]:
        if how == "flag":
            proc = torchrl(torchrl_bin, [*command, "--config-dir", str(missing)], tmp_path,
                           cli_env)
            assert_one_line_error(proc, f"--config-dir {missing} does not exist")
        else:
            proc = torchrl(torchrl_bin, command, tmp_path, {**cli_env, ENV_VAR: str(missing)})
            assert_one_line_error(proc, f"{ENV_VAR}={missing} does not exist")
    assert list(tmp_path.iterdir()) == []  # no run folder


def test_a_root_config_in_the_folder_is_refused(torchrl_bin, cli_env, tmp_path):
    """config.yaml would replace the root config (its callbacks, its defaults list)."""
    write(tmp_path / "myconf", "config.yaml", "seed: 3\n")
    proc = torchrl(torchrl_bin, ["train", "-cd", "myconf"], tmp_path, cli_env)
    assert_one_line_error(proc, "holds config.yaml")
    proc = torchrl(torchrl_bin, ["train", "-cd"], tmp_path, cli_env)
    assert_one_line_error(proc, "-cd needs a folder")


def test_a_sweep_and_its_runs_use_the_folder_and_need_it_no_more(torchrl_bin, cli_env,
                                                                 tmp_path, user_dir):
    """A joblib sweep (its workers compose each job) over the user's env file and net; eval
    read the run's config.yaml, so it works without the folder."""
    proc = torchrl(torchrl_bin, ["train", "-m", "-cd", str(user_dir), "hydra/launcher=joblib",
                                 "hydra.launcher.n_jobs=2", "env=CartPole-v1,FrozenLake-v1",
                                 "net=tiny", *TINY], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = next(tmp_path.glob("runs/*/*_multirun"))
    jobs = {p.name: yaml.safe_load((p / "config.yaml").read_text())
            for p in sweep.iterdir() if (p / "config.yaml").is_file()}
    assert set(jobs) == {"0_ppo_clip_CartPole-v1", "1_ppo_clip_FrozenLake-v1"}
    cartpole, frozen = jobs["0_ppo_clip_CartPole-v1"], jobs["1_ppo_clip_FrozenLake-v1"]
    assert cartpole["agent"]["lr"] == pytest.approx(TUNED_LR, rel=1e-6)
    assert frozen["env"]["kwargs"] == {"is_slippery": False}
    assert cartpole["net"]["body"][0]["out_features"] == 7
    assert (sweep / "summary.csv").is_file()
    job = sweep / "1_ppo_clip_FrozenLake-v1"
    proc = torchrl(torchrl_bin, ["eval", str(job), "episodes=2"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FrozenLake-v1" in proc.stdout
    assert not (config_dir() / "env" / "FrozenLake-v1.yaml").exists()
