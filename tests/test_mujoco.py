"""MuJoCo locomotion through the mujoco extra: the continuous-control preset and real CLI runs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY, compose_config, make_agent
from gymnasium.vector import AsyncVectorEnv
from omegaconf import OmegaConf

from torchrl_cli.config import config_dir
from torchrl_cli.config.schema import EnvConfig

MUJOCO = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
          "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Swimmer-v5"]
SHORT = ["+env.kwargs.max_episode_steps=50"]  # short episodes: a quick final evaluation


@pytest.mark.parametrize("env_id", MUJOCO)
def test_continuous_control_preset(env_id):
    """Normalized and clipped observations, scaled and clipped rewards, vectorization chosen
    for the machine, and the PPO paper's MuJoCo settings (2048 samples per update in 64-sample
    minibatches); HalfCheetah's tuned file (its Optuna study's best) takes 4096 samples per
    update in 128-sample minibatches, Humanoid's the schema's rollout (1024 samples in four
    minibatches of 256)."""
    cfg = compose_config([f"env={env_id}"])
    env = cfg.env
    assert env.vectorization == "auto"
    assert env.running_normalize_states and env.scale_reward
    assert (env.clip_states, env.clip_reward) == (EnvConfig.clip_states, EnvConfig.clip_reward)
    per_update, minibatch = {"HalfCheetah-v5": (4096, 128), "Humanoid-v5": (1024, 256)}.get(
        env_id, (2048, 64))
    assert cfg.agent.n_steps * env.n_envs == per_update
    assert cfg.agent.n_steps * env.n_envs // cfg.agent.policy.num_mini_batches == minibatch
    budget = OmegaConf.load(config_dir() / "env" / f"{env_id}.yaml").max_steps  # the env file's
    assert cfg.max_steps == budget >= 300_000


def test_preset_clips_observations_rewards_and_actions():
    """Hopper with tight clips: the rollout's observations and rewards stay inside them, the
    statistics move, the env gets actions clipped to its bounds (copies in subprocesses)."""
    agent, env = make_agent(["env=Hopper-v5", *TINY, *SHORT, "env.vectorization=async",
                             "env.clip_states=0.5",
                             "env.clip_reward=0.1"], seed=0)
    try:
        assert isinstance(env.vec, AsyncVectorEnv) and env.simulator == "mujoco"
        with torch.no_grad():
            agent.policy_model.log_std.fill_(1.0)  # samples often leave [-1, 1]
        rollout = agent.collector.collect(agent.values)
        assert rollout.obs.abs().max() == pytest.approx(0.5)
        assert rollout.rewards.abs().max() <= 0.1 + 1e-6
        assert agent.normalizer.rms.count > 32 * 2
        assert agent.collector.reward_scaler.rms.var != 1.0
        assert rollout.actions.abs().max() > 1.0
        assert abs(agent.collector.to_env_action(rollout.actions[0])).max() <= 1.0
    finally:
        env.close()


def test_every_mujoco_id_trains_through_the_cli(tmp_path, torchrl_bin, cli_env):
    """`torchrl train -m env=<every MuJoCo id>` for a few hundred steps each: one job each,
    each with a final evaluation."""
    proc = subprocess.run(
        [torchrl_bin, "train", "-m", f"env={','.join(MUJOCO)}", *TINY, *SHORT, "eval_episodes=1",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("(mujoco, 2 envs") == len(MUJOCO)
    metrics = {m["env"]: m for m in (json.loads(p.read_text())
                                     for p in (tmp_path / "sweep").glob("*/metrics.json"))}
    assert sorted(metrics) == sorted(MUJOCO)
    for m in metrics.values():
        assert m["env_steps"] == 256 and m["episodes"] == 1
        assert m["mean_return"] is not None


def test_missing_mujoco_names_the_extra(tmp_path, torchrl_bin, cli_env):
    """Without mujoco (an import that fails), one line naming the extra, exit code 2."""
    stub = tmp_path / "stub" / "mujoco"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mujoco'\", name='mujoco')\n")
    proc = subprocess.run([torchrl_bin, "train", "env=Hopper-v5"], cwd=tmp_path,
                          env={**cli_env, "PYTHONPATH": str(tmp_path / "stub")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("torchrl: error: env 'Hopper-v5' needs a package")
    assert lines[0].endswith("pip install 'torchrl-cli[mujoco]'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("cores", "expected"), [(2, "sync"), (8, "sync"), (9, "async")])
def test_auto_vectorization_gives_each_copy_a_core_or_steps_in_process(monkeypatch, cores,
                                                                       expected):
    """MuJoCo with 8 copies: async only where every copy gets a core beside the learner's (on
    2 cores async trained 1.7x slower); one copy and classic control stay in process whatever
    the cores."""
    from torchrl_cli.envs import gym_env

    monkeypatch.setattr(gym_env, "usable_cores", lambda: cores)
    assert gym_env.auto_process_vectorization("HalfCheetah-v5", 8) == expected
    assert gym_env.auto_process_vectorization("HalfCheetah-v5", 1) == "sync"
    assert gym_env.auto_process_vectorization("Acrobot-v1", 2) == "sync"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_usable_cores_are_the_processs_cpu_set_not_the_machines():
    """A SLURM job (or taskset) confines the process to some cores: auto counts only those."""
    from torchrl_cli.envs.gym_env import usable_cores

    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert usable_cores() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert usable_cores() == len(before)


def test_each_mujoco_warning_is_printed_once_per_process():
    """MuJoCo warns each time it compiles a model with a deprecated attribute (Gymnasium's v5
    XML): plain Gymnasium prints it once per copy; a run prints each distinct one once."""
    plain = "import gymnasium as gym\nfor _ in range(3): gym.make('HalfCheetah-v5')\n"
    ours = ("from torchrl_cli.envs.gym_env import GymEnv\n"
            "for n in (3, 2): GymEnv('HalfCheetah-v5', n_envs=n, vectorization='sync').close()\n")

    def warnings(code: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]

    baseline = warnings(plain)
    if not baseline:
        pytest.skip("this MuJoCo warns about nothing in HalfCheetah-v5's model")
    assert len(baseline) == 3
    assert warnings(ours) == baseline[:1]
