"""Rollout collection: shapes, truncation bootstrap values, episode tracking, normalization."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent

from torchrl_cli.envs import GymEnv


def test_rollout_shapes_and_values_from_the_value_model():
    """[T, N] tensors; stored values equal the value model on the stored (normalized) obs."""
    agent, env = make_agent([*TINY, "agent.n_steps=16", "env.running_normalize_states=true"],
                            n_envs=2, seed=None)
    rollout = agent.collector.collect(agent.values)
    assert rollout.obs.shape == (16, 2, 4) and rollout.actions.shape == (16, 2)
    assert rollout.actions.dtype == torch.long
    with torch.no_grad():
        torch.testing.assert_close(rollout.values, agent.value_model(rollout.obs))
    assert agent.collector.num_steps == 32
    env.close()


def test_truncated_steps_get_final_values_and_only_they():
    """With a 5-step time limit, final_values is V(final obs) exactly where truncated."""
    agent, env = make_agent([*TINY, "agent.n_steps=12", "+env.kwargs.max_episode_steps=5"],
                            n_envs=2, seed=None)
    rollout = agent.collector.collect(agent.values)
    truncated = rollout.truncated
    assert truncated.sum() > 0
    assert (rollout.final_values[~truncated] == 0).all()
    assert (rollout.final_values[truncated] != 0).all()
    episodes = agent.collector.pop_episodes()
    assert episodes and all(e.length <= 5 for e in episodes)
    assert agent.collector.num_episodes == len(episodes)
    env.close()


class RecordActions(gym.ActionWrapper):
    """Keeps every action the env copy receives."""

    received: list[np.ndarray] = []

    def action(self, action):
        RecordActions.received.append(np.array(action))
        return action


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_box_actions_are_stored_unclipped_and_clipped_for_the_env(backend):
    """Gaussian samples beyond [-2, 2] stay in the rollout; what the env receives is each
    stored action clipped to the bounds."""
    cfg = compose_config([*TINY, "env=Pendulum-v1", "agent.n_steps=64",
                          "agent.policy.sde.enabled=false", f"agent.backend={backend}"])
    RecordActions.received = []
    env = GymEnv("Pendulum-v1", n_envs=2, vectorization="sync", wrappers=[RecordActions])
    agent, _ = make_agent(cfg, env=env, seed=0)
    try:
        with torch.no_grad():
            agent.policy_model.log_std.fill_(1.5)  # wide enough to leave the bounds often
        rollout = agent.collector.collect(agent.values)
    finally:
        env.close()
    received = np.stack(RecordActions.received).reshape(64, 2, 1)  # copies step in order
    assert rollout.actions.abs().max() > 2.0
    np.testing.assert_array_equal(received, np.clip(rollout.actions.numpy(), -2.0, 2.0))
