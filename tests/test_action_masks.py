"""Action masks (PettingZoo's ``action_mask`` observation entry, sb3-contrib's and Gymnasium's
``info["action_mask"]``): the env's legal actions reach acting, the rollout, the update, the
evaluation, load_policy and the export; unmasked envs are untouched."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_no_traceback, compose_config, make_agent, torchrl
from gymnasium import spaces

import torchrl_cli
from torchrl_cli.envs import EnvError, GymEnv
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.policy import export_policy
from torchrl_cli.run.train import train

ENVMODS = Path(__file__).resolve().parent / "envmods"
sys.path.insert(0, str(ENVMODS))

DICT_ENV = "torchrl_test_envs:MaskedChoice"
INFO_ENV = "torchrl_test_envs:InfoMaskedChoice"
RUN = ["max_steps=8192", "agent.n_steps=64", "env.n_envs=8", "eval_freq=0", "eval_episodes=20",
       "logger.progress=false", "logger.log_freq=100000", "seed=0", "agent.lr=3e-3"]
STRICT = "+env.kwargs.strict=true"  # the env raises on an illegal action: never played
NO_MASK = "env.wrappers=[{_target_:gymnasium.wrappers.FilterObservation,filter_keys:[observation]}]"


@pytest.mark.parametrize(("env_id", "source"), [(DICT_ENV, "obs"), (INFO_ENV, "info")])
def test_the_env_gives_its_legal_actions_after_reset_and_step(env_id, source):
    env = GymEnv(env_id, n_envs=3, vectorization="sync", strict=True)
    try:
        assert env.get_action_info().mask == source
        assert env.get_state_info().shape == (2,)  # the mask is not encoded into the obs
        env.reset(seed=0)
        assert env.action_mask.shape == (3, 8) and (env.action_mask.sum(1) == 3).all()
        for _ in range(20):  # past episode ends: the mask is the new episode's
            step = env.step(np.array([np.flatnonzero(m)[0] for m in env.action_mask]))
            assert step.action_mask is env.action_mask and (step.action_mask.sum(1) == 3).all()
        assert step.reward.tolist() == [1.0, 1.0, 1.0]
    finally:
        env.close()


def test_unmasked_envs_are_unchanged_and_taxi_is_masked():
    cartpole = GymEnv("CartPole-v1", n_envs=2, vectorization="sync")
    taxi = GymEnv("Taxi-v4", n_envs=2, vectorization="sync")
    try:
        info = '{"kind": "discrete", "shape": [], "dtype": "int64", "n": 2}'
        assert cartpole.get_action_info().to_json() == info  # as checkpoints hold it
        cartpole.reset(seed=0)
        assert cartpole.action_mask is None and cartpole.step(np.zeros(2, int)).action_mask is None
        assert taxi.get_action_info().mask == "info"
    finally:
        cartpole.close()
        taxi.close()


def test_masks_on_other_actions_or_of_the_wrong_size_are_one_line_errors():
    with pytest.raises(ConfigError, match="of 8 flags for 5 actions"):
        GymEnv(DICT_ENV, n_envs=1, vectorization="sync", n=8, wrappers=[_five_actions])
    with pytest.raises(EnvError, match="no legal action"):
        env = GymEnv(DICT_ENV, n_envs=1, vectorization="sync", legal=0)
        env.reset(seed=0)


def _five_actions(env):
    env.action_space = spaces.Discrete(5)
    return env


def test_the_rollout_keeps_the_masks_and_the_update_scores_under_them():
    """Acting samples legal actions only; the rollout stores each step's mask, and the update's
    log-probs under it equal the acting ones (ratio 1 before any step); unmasked they differ."""
    agent, env = make_agent([f"env={DICT_ENV}", STRICT, "env.n_envs=4", "agent.n_steps=16"])
    try:
        assert agent.backend.acting == "torch" and "action_mask" in agent.backend.describe()
        rollout = agent.collector.collect(
                                        agent.values)
        masks, actions = rollout.masks.flatten(0, 1), rollout.actions.flatten()
        assert masks.shape == (64, 8) and masks[torch.arange(64), actions].all()
        with torch.no_grad():
            params = agent.policy_model(rollout.obs.flatten(0, 1))
            masked = agent.policy_model.create_dist(params, masks).log_prob(actions)
            plain = agent.policy_model.create_dist(params).log_prob(actions)
        torch.testing.assert_close(masked, rollout.log_probs.flatten())
        assert not torch.allclose(plain, rollout.log_probs.flatten())
        state = agent.collector.state_dict()
        assert torch.equal(state["mask"], agent.collector.mask)
    finally:
        env.close()


def test_numpy_backend_is_refused_for_a_masked_env():
    with pytest.raises(ConfigError, match="masks its actions"):
        make_agent([f"env={DICT_ENV}", "agent.backend=numpy"])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [DICT_ENV, INFO_ENV])
def test_masked_ppo_solves_the_masked_env(env_id):
    """Seeded PPO-clip gets the best return (8) in 8192 steps, never playing an illegal
    action (the strict env would raise) in training or the final evaluation."""
    metrics = train(compose_config([f"env={env_id}", STRICT, *RUN]), None)
    assert metrics["mean_return"] == 8.0


@pytest.mark.slow
def test_without_the_mask_the_same_run_loses():
    """The control: the mask filtered out of the observation, the run plays illegal actions."""
    metrics = train(compose_config([f"env={DICT_ENV}", NO_MASK, *RUN]), None)
    assert metrics["mean_return"] < 2.0


@pytest.mark.slow
def test_load_policy_and_export_take_the_mask(tmp_path):
    """The observation dict's mask (Dict env) or the action_mask argument (info env) picks
    among the legal actions, in load_policy and in the exported program alike."""
    for env_id in (DICT_ENV, INFO_ENV):
        run = tmp_path / env_id.split(":")[1]
        run.mkdir()
        assert train(compose_config([f"env={env_id}", STRICT, *RUN]), run)["mean_return"] == 8.0
        policy = torchrl_cli.load_policy(run)
        env = policy.make_env()
        obs, info = env.reset(seed=3)
        total = 0.0
        for _ in range(8):
            mask = obs["action_mask"] if env_id == DICT_ENV else info["action_mask"]
            action = policy(obs) if env_id == DICT_ENV else policy(obs, action_mask=mask)
            assert mask[action] == 1
            obs, reward, terminated, _, info = env.step(action)
            total += reward
        assert terminated and total == 8.0
        program = torch.export.load(export_policy(policy, run / "p.pt2")).module()
        masks = torch.tensor([[0, 1, 1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 1, 1]], dtype=torch.int8)
        raw = torch.tensor([[0.0, 1.0], [0.5, 1.0]])
        if env_id == DICT_ENV:
            out = program({"observation": raw, "action_mask": masks})
            expected = policy({"observation": raw.numpy(), "action_mask": masks.numpy()})
        else:
            out = program(raw, masks)
            expected = policy(raw.numpy(), action_mask=masks.numpy())
            with pytest.raises(ValueError, match="action_mask=info"):
                policy(raw.numpy())
        assert out.tolist() == expected.tolist() == [1, 4]


@pytest.mark.slow
def test_a_masked_run_trains_evaluates_and_exports_from_the_command_line(torchrl_bin, cli_env,
                                                                      tmp_path):
    """``torchrl eval`` feeds the env's masks to the loaded policy (the strict env raises on an
    illegal action, so a policy acting unmasked fails the command)."""
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ENVMODS), env.get("PYTHONPATH")) if p)
    args = [f"env={DICT_ENV}", STRICT, *RUN, "max_steps=4096", "eval_episodes=4"]
    proc = torchrl(torchrl_bin, ["train", *args], tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (tmp_path / "runs").glob("*/*")
    for command in (["eval", str(run)], ["export", str(run)]):
        proc = torchrl(torchrl_bin, command, tmp_path, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_no_traceback(proc)
    assert "mean" in torchrl(torchrl_bin, ["eval", str(run)], tmp_path, env).stdout
