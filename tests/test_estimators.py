"""GAE and value targets against hand calculations with explicit numbers.

Shapes are ``[T, N]`` (time, env). Unless said otherwise gamma = 0.5 and lambda = 0.5, so the
recursion factor gamma * lambda is 0.25 and every expected number below is exact in binary.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent
from torch.testing import assert_close

from torchrl_cli.envs import env_seeds
from torchrl_cli.models.batch import Rollout
from torchrl_cli.rollout.estimators import GAE, DiscountedReturns, FromAdvantage


def rollout(rewards, values, terminated, truncated, final_values, last_values) -> Rollout:
    """A Rollout holding what the estimators read (no observations or actions)."""
    empty = torch.empty(0)
    return Rollout(empty, empty, empty, values, rewards, terminated, truncated, final_values,
                   last_values)


def col(*values):
    """A ``[T, 1]`` float tensor (one env)."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def flags(t, *indices):
    """A ``[t, 1]`` bool tensor, True at ``indices``."""
    out = torch.zeros(t, 1, dtype=torch.bool)
    out[list(indices), 0] = True
    return out


GAE_HALF = GAE(gamma=0.5, gae_lambda=0.5)


def test_gae_plain_rollout_by_hand():
    """No episode end: deltas bootstrap from the next V and the last step from last_values."""
    adv = GAE_HALF(rollout(
        rewards=col(1.0, 2.0, 3.0),
        values=col(0.5, 1.0, 1.5),
        terminated=flags(3),
        truncated=flags(3),
        final_values=col(0.0, 0.0, 0.0),
        last_values=torch.tensor([2.0]),
    ))
    # delta2 = 3 + 0.5 * 2.0 - 1.5 = 2.5      A2 = 2.5
    # delta1 = 2 + 0.5 * 1.5 - 1.0 = 1.75     A1 = 1.75 + 0.25 * 2.5 = 2.375
    # delta0 = 1 + 0.5 * 1.0 - 0.5 = 1.0      A0 = 1.0 + 0.25 * 2.375 = 1.59375
    assert_close(adv, col(1.59375, 2.375, 2.5))


def test_gae_termination_mid_rollout_by_hand():
    """Terminated at t=1: no bootstrap from V(s_2) and A1 does not see A2."""
    adv = GAE_HALF(rollout(
        rewards=col(1.0, 1.0, 1.0, 1.0),
        values=col(1.0, 2.0, 3.0, 4.0),
        terminated=flags(4, 1),
        truncated=flags(4),
        final_values=col(0.0, 0.0, 0.0, 0.0),
        last_values=torch.tensor([5.0]),
    ))
    # delta3 = 1 + 0.5 * 5 - 4 = -0.5        A3 = -0.5
    # delta2 = 1 + 0.5 * 4 - 3 = 0           A2 = 0 + 0.25 * -0.5 = -0.125
    # delta1 = 1 + 0       - 2 = -1          A1 = -1            (recursion stops)
    # delta0 = 1 + 0.5 * 2 - 1 = 1           A0 = 1 + 0.25 * -1 = 0.75
    assert_close(adv, col(0.75, -1.0, -0.125, -0.5))


def test_gae_truncation_mid_rollout_bootstraps_from_final_value():
    """Truncated at t=1: bootstrap from final_values[1], not V(s_2); the recursion stops."""
    adv = GAE_HALF(rollout(
        rewards=col(1.0, 1.0, 1.0, 1.0),
        values=col(1.0, 2.0, 3.0, 4.0),
        terminated=flags(4),
        truncated=flags(4, 1),
        final_values=col(0.0, 10.0, 0.0, 0.0),
        last_values=torch.tensor([5.0]),
    ))
    # A3 = -0.5, A2 = -0.125 as without any episode end
    # delta1 = 1 + 0.5 * 10 - 2 = 4          A1 = 4             (recursion stops)
    # delta0 = 1 + 0.5 * 2 - 1 = 1           A0 = 1 + 0.25 * 4 = 2
    assert_close(adv, col(2.0, 4.0, -0.125, -0.5))


def test_gae_truncation_at_last_step_uses_final_value_not_last_value():
    """Truncated on the last step: bootstrap from V(final obs); last_values is ignored."""
    adv = GAE_HALF(rollout(
        rewards=col(0.0, 0.0, 1.0),
        values=col(0.0, 0.0, 2.0),
        terminated=flags(3),
        truncated=flags(3, 2),
        final_values=col(0.0, 0.0, 6.0),
        last_values=torch.tensor([100.0]),
    ))
    # delta2 = 1 + 0.5 * 6 - 2 = 2           A2 = 2
    # delta1 = 0 + 0.5 * 2 - 0 = 1           A1 = 1 + 0.25 * 2 = 1.5
    # delta0 = 0 + 0.5 * 0 - 0 = 0           A0 = 0 + 0.25 * 1.5 = 0.375
    assert_close(adv, col(0.375, 1.5, 2.0))


def test_gae_terminated_and_truncated_together_counts_as_terminal():
    """A step both terminated and truncated is terminal: its future is worth 0, not V(final)."""
    adv = GAE_HALF(rollout(
        rewards=col(1.0, 1.0),
        values=col(1.0, 2.0),
        terminated=flags(2, 1),
        truncated=flags(2, 1),
        final_values=col(0.0, 10.0),
        last_values=torch.tensor([5.0]),
    ))
    # delta1 = 1 - 2 = -1                    A1 = -1
    # delta0 = 1 + 0.5 * 2 - 1 = 1           A0 = 1 + 0.25 * -1 = 0.75
    assert_close(adv, col(0.75, -1.0))


def test_gae_bootstraps_each_env_from_its_own_last_value():
    """Two envs: each bootstraps from its own last_values, discounted by gamma*lambda per step."""
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    no = torch.zeros(3, 2, dtype=torch.bool)
    adv = GAE_HALF(rollout(rewards, values, no, no, torch.zeros(3, 2), torch.tensor([2.0, 4.0])))
    # env 0 is the plain case above; env 1: delta2 = 0.5 * 4 = 2, delta1 = delta0 = 0
    # A2 = 2, A1 = 0.25 * 2 = 0.5, A0 = 0.25 * 0.5 = 0.125
    expected = torch.tensor([[1.59375, 0.125], [2.375, 0.5], [2.5, 2.0]])
    assert_close(adv, expected)


def test_gae_envs_are_independent():
    """An episode end in env 0 leaves env 1's advantages as if env 0 were not there."""
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    values = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    terminated = torch.zeros(4, 2, dtype=torch.bool)
    terminated[1, 0] = True
    no = torch.zeros(4, 2, dtype=torch.bool)
    adv = GAE_HALF(rollout(rewards, values, terminated, no, torch.zeros(4, 2),
                           torch.tensor([5.0, 5.0])))
    # env 0: the termination case above; env 1: A3 = -0.5, A2 = -0.125,
    # delta1 = 1 + 1.5 - 2 = 0.5, A1 = 0.5 + 0.25 * -0.125 = 0.46875
    # delta0 = 1 + 1 - 1 = 1,      A0 = 1 + 0.25 * 0.46875 = 1.1171875
    assert_close(adv[:, 0], torch.tensor([0.75, -1.0, -0.125, -0.5]))
    assert_close(adv[:, 1], torch.tensor([1.1171875, 0.46875, -0.125, -0.5]))


def _random_rollout(seed, t=6, n=3):
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(t, n, generator=gen)
    values = torch.randn(t, n, generator=gen)
    last_values = torch.randn(n, generator=gen)
    terminated = torch.zeros(t, n, dtype=torch.bool)
    truncated = torch.zeros(t, n, dtype=torch.bool)
    final_values = torch.zeros(t, n)
    terminated[2, 0] = True
    truncated[3, 1] = True
    final_values[3, 1] = 1.75
    return rewards, values, terminated, truncated, final_values, last_values


def _discounted_returns(rewards, terminated, truncated, final_values, last_values, gamma):
    """Monte-Carlo returns, written as a plain backward loop over numpy arrays."""
    r, term, trunc = rewards.numpy(), terminated.numpy(), truncated.numpy()
    fin, last = final_values.numpy(), last_values.numpy()
    t_len, n = r.shape
    out = np.zeros((t_len, n))
    for env in range(n):
        future = float(last[env])
        for t in reversed(range(t_len)):
            if term[t, env]:
                future = 0.0
            elif trunc[t, env]:
                future = float(fin[t, env])
            future = r[t, env] + gamma * future
            out[t, env] = future
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_gae_lambda_one_is_discounted_return_minus_value(gamma):
    """GAE(gamma, 1) = Monte-Carlo discounted return (bootstrapped at cuts) minus V(s_t)."""
    rewards, values, terminated, truncated, final_values, last_values = _random_rollout(0)
    adv = GAE(gamma=gamma, gae_lambda=1.0)(rollout(rewards, values, terminated, truncated,
                                           final_values, last_values))
    returns = _discounted_returns(rewards, terminated, truncated, final_values, last_values, gamma)
    assert_close(adv, returns - values, rtol=1e-5, atol=1e-5)


def test_gae_lambda_zero_is_one_step_td_error():
    """GAE(gamma, 0) = r + gamma * V(next) - V, with V(next) = 0 / V(final) / last_values."""
    gamma = 0.9
    rewards, values, terminated, truncated, final_values, last_values = _random_rollout(1)
    adv = GAE(gamma=gamma, gae_lambda=0.0)(rollout(rewards, values, terminated, truncated,
                                           final_values, last_values))
    expected = torch.empty_like(rewards)
    t_len, n = rewards.shape
    for t in range(t_len):
        for env in range(n):
            if terminated[t, env]:
                nxt = 0.0
            elif truncated[t, env]:
                nxt = final_values[t, env]
            elif t == t_len - 1:
                nxt = last_values[env]
            else:
                nxt = values[t + 1, env]
            expected[t, env] = rewards[t, env] + gamma * nxt - values[t, env]
    assert_close(adv, expected)
    assert_close(adv[2, 0], rewards[2, 0] - values[2, 0])  # the terminal step: no bootstrap
    assert_close(adv[3, 1], rewards[3, 1] + gamma * 1.75 - values[3, 1])  # the truncated step


def test_gae_does_not_modify_inputs_or_track_gradients():
    """The estimator leaves its inputs untouched and returns a tensor outside the graph."""
    rewards, values, terminated, truncated, final_values, last_values = _random_rollout(2)
    values.requires_grad_(True)
    before = [x.clone() for x in (rewards, values, final_values, last_values)]
    adv = GAE(0.99, 0.95)(rollout(rewards, values, terminated, truncated, final_values,
                                  last_values))
    assert not adv.requires_grad
    for x, y in zip(before, (rewards, values, final_values, last_values), strict=True):
        assert torch.equal(x, y.detach())


def test_from_advantage_adds_values():
    """FromAdvantage: the value target is advantage + V, element by element."""
    adv = torch.tensor([[1.5, -2.0], [0.25, 0.0]])
    values = torch.tensor([[0.5, 3.0], [-1.25, 2.0]])
    assert_close(FromAdvantage()(adv, values), torch.tensor([[2.0, 1.0], [-1.0, 2.0]]))


def test_from_advantage_with_gae_lambda_one_gives_discounted_return():
    """Targets from GAE(gamma, 1) are the discounted returns themselves (V cancels)."""
    gamma = 0.9
    rewards, values, terminated, truncated, final_values, last_values = _random_rollout(3)
    adv = GAE(gamma, 1.0)(rollout(rewards, values, terminated, truncated, final_values,
                                  last_values))
    returns = _discounted_returns(rewards, terminated, truncated, final_values, last_values, gamma)
    assert_close(FromAdvantage()(adv, values), returns, rtol=1e-5, atol=1e-5)


def test_rollout_final_values_are_values_of_the_true_final_observations():
    """Real rollout, 5-step limit: final_values = V(true final obs) (replayed), 0 elsewhere."""
    cfg = compose_config([*TINY, "+env.kwargs.max_episode_steps=5", "seed=7"])
    agent, train_env = make_agent(cfg)
    try:
        rollout = agent.collector.collect(agent.values)
    finally:
        train_env.close()
    n_steps, n_envs = rollout.rewards.shape
    cuts = [t for t in range(n_steps) if (t + 1) % 5 == 0]
    assert rollout.truncated.nonzero()[:, 0].unique().tolist() == cuts
    assert not rollout.terminated.any()
    assert (rollout.final_values[~rollout.truncated] == 0).all()
    for i in range(n_envs):
        env = gym.make(cfg.env.id, max_episode_steps=5)
        obs, _ = env.reset(seed=env_seeds(cfg.seed, cfg.env.n_envs)[i])
        for t in range(n_steps):
            assert_close(torch.as_tensor(obs), rollout.obs[t, i])  # the replay is faithful
            obs, _, _, truncated, _ = env.step(int(rollout.actions[t, i]))
            if truncated:
                with torch.no_grad():
                    final_value = agent.value_model(torch.as_tensor(obs).unsqueeze(0))[0]
                assert_close(rollout.final_values[t, i], final_value)
                assert final_value != 0
                obs, _ = env.reset()
        env.close()


def test_discounted_returns_hand_computed():
    """G = r + gamma G', cut at a termination, bootstrapped from V at the rollout's end."""
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.zeros_like(terminated)
    values = torch.zeros(4, 1)
    returns = DiscountedReturns(0.5)(rollout(rewards, values, terminated, truncated,
                                             torch.zeros(4, 1), torch.tensor([10.0])))
    expected = [[1 + 0.5 * 2], [2.0], [3 + 0.5 * (4 + 0.5 * 10)], [4 + 0.5 * 10]]
    torch.testing.assert_close(returns, torch.tensor(expected))
