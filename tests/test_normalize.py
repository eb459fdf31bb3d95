"""Running statistics, observation normalization, reward scaling, advantage normalization."""

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent
from torch.testing import assert_close

from torchrl_cli.envs import RewardScaler, RunningMeanStd, StateNormalizer
from torchrl_cli.envs.factory import build_env
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.rollout.update import normalize

PRIOR = 1e-4  # RunningMeanStd's default pseudo-count (a prior of mean 0, variance 1)


def batches(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(5.0, 3.0, size=(n, 3)) for n in (7, 1, 12, 4)]


# ---------------------------------------------------------------- RunningMeanStd


def test_running_mean_std_matches_numpy_on_concatenation():
    """Without a prior, batched updates give numpy's mean and var of the concatenation."""
    rms = RunningMeanStd((3,), eps=1e-12)
    data = batches()
    for batch in data:
        rms.update(torch.as_tensor(batch, dtype=torch.float32))
    everything = np.concatenate(data).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(0), rtol=1e-9)
    assert rms.count.item() == pytest.approx(24.0)


def test_running_mean_std_default_prior_by_hand():
    """Default prior (count 1e-4, mean 0, var 1) pooled with one batch [1, 3], by hand."""
    rms = RunningMeanStd(())
    rms.update(torch.tensor([1.0, 3.0]))
    total = PRIOR + 2
    mean = 2 * 2.0 / total
    var = (PRIOR * 1.0 + 2 * 1.0 + 2.0**2 * PRIOR * 2 / total) / total
    assert rms.mean.item() == pytest.approx(mean, rel=1e-12)
    assert rms.var.item() == pytest.approx(var, rel=1e-12)
    assert rms.count.item() == pytest.approx(total, rel=1e-12)


def test_running_mean_std_default_prior_is_negligible():
    """With the default prior the statistics are numpy's up to the tiny prior weight."""
    rms = RunningMeanStd((3,))
    data = batches(1)
    for batch in data:
        rms.update(torch.as_tensor(batch))
    everything = np.concatenate(data)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(0), rtol=1e-4)


def test_running_mean_std_flattens_leading_dims():
    """A scalar-shaped RunningMeanStd counts every element of a [T, N] batch as one sample."""
    rms = RunningMeanStd((), eps=1e-12)
    data = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    rms.update(data)
    assert rms.count.item() == pytest.approx(4.0)
    assert rms.mean.item() == pytest.approx(3.0)
    assert rms.var.item() == pytest.approx(3.5)  # (4 + 1 + 0 + 9) / 4


# ---------------------------------------------------------------- StateNormalizer

BOUNDED = SpaceInfo(SpaceKind.CONTINUOUS, (2,), low=np.array([-2.0, -np.inf], dtype=np.float32),
                    high=np.array([6.0, np.inf], dtype=np.float32))
UNBOUNDED = SpaceInfo(SpaceKind.CONTINUOUS, (3,), low=np.full(3, -np.inf, dtype=np.float32),
                      high=np.full(3, np.inf, dtype=np.float32))


def test_fixed_normalization_maps_box_bounds_to_minus_one_one():
    """fixed: finite bounds [-2, 6] map linearly onto [-1, 1]; an infinite dimension passes."""
    norm = StateNormalizer(BOUNDED, running=False, fixed=True, clip=10.0)
    obs = torch.tensor([[-2.0, 5.0], [6.0, -7.0], [2.0, 0.0], [4.0, 100.0]])
    expected = torch.tensor([[-1.0, 5.0], [1.0, -7.0], [0.0, 0.0], [0.5, 100.0]])
    assert_close(norm(obs), expected)
    assert norm.rms.count.item() == pytest.approx(PRIOR)  # running is off: no statistics


def test_running_normalization_updates_only_in_train_mode():
    """forward updates the statistics in train() mode only; normalize never does."""
    norm = StateNormalizer(UNBOUNDED, running=True, fixed=False, clip=10.0)
    first, second = (torch.as_tensor(b, dtype=torch.float32) for b in batches(2)[:2])
    norm.train()
    norm(first)
    assert norm.rms.count.item() == pytest.approx(PRIOR + 7)
    stats = (norm.rms.mean.clone(), norm.rms.var.clone())
    norm.normalize(second)
    norm.eval()
    norm(second)
    assert norm.rms.count.item() == pytest.approx(PRIOR + 7)
    assert torch.equal(norm.rms.mean, stats[0]) and torch.equal(norm.rms.var, stats[1])
    norm.train()
    norm(second)
    assert norm.rms.count.item() == pytest.approx(PRIOR + 8)


def test_running_normalization_output_matches_numpy():
    """Output = (obs - mean) / sqrt(var + 1e-8) with numpy's statistics of the data seen."""
    norm = StateNormalizer(UNBOUNDED, running=True, fixed=False, clip=10.0)
    rng = np.random.default_rng(3)
    data = rng.normal([1.0, -4.0, 10.0], [0.5, 2.0, 3.0], size=(500, 3)).astype(np.float32)
    out = norm(torch.as_tensor(data))
    expected = (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-8)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-3, atol=1e-3)
    assert abs(out.mean(0)).max().item() < 1e-3
    assert_close(out.std(0, unbiased=False), torch.ones(3), rtol=1e-3, atol=1e-3)


def test_running_normalization_clips():
    """Normalized values are clipped to [-clip, clip]; values within the range are not."""
    norm = StateNormalizer(UNBOUNDED, running=True, fixed=False, clip=5.0)
    norm(torch.tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]] * 50))  # mean 0, var ~1 (dim 1: ~0)
    norm.eval()
    out = norm(torch.tensor([[100.0, 3.0, -2.0], [-100.0, -3.0, 0.5]]))
    assert out[0, 0].item() == 5.0 and out[1, 0].item() == -5.0
    assert out[0, 1].item() == 5.0 and out[1, 1].item() == -5.0  # tiny var: huge, clipped
    assert out[0, 2].item() == pytest.approx(-2.0, rel=1e-4)
    assert out[1, 2].item() == pytest.approx(0.5, rel=1e-4)


def test_fixed_then_running_statistics_are_of_rescaled_obs():
    """With both on, the running statistics are those of the [-1, 1]-rescaled observations."""
    norm = StateNormalizer(BOUNDED, running=True, fixed=True, clip=10.0)
    norm(torch.tensor([[-2.0, 1.0], [6.0, 3.0]]))  # dim 0 rescales to -1, 1
    assert norm.rms.mean[0].item() == pytest.approx(0.0, abs=1e-6)
    assert norm.rms.var[0].item() == pytest.approx(1.0, rel=1e-4)
    assert norm.rms.mean[1].item() == pytest.approx(2.0, rel=1e-4)


# ---------------------------------------------------------------- RewardScaler


def scaled_by_hand(rewards, dones, gamma):
    """OpenAI baselines' VecNormalize reward scaling in numpy (no prior)."""
    ret = np.zeros(rewards.shape[1])
    seen, out = [], []
    for reward, done in zip(rewards, dones, strict=True):
        ret = ret * gamma + reward
        seen.extend(ret)
        out.append(reward / np.sqrt(np.var(seen) + 1e-8))
        ret[done] = 0.0
    return np.array(out)


def test_reward_scaler_first_step_by_hand():
    """Step 1: returns [1, 2] have std 0.5, so rewards [1, 2] become [2, 4]."""
    scaler = RewardScaler(2, gamma=0.9, enabled=True, clip=10.0)
    out = scaler(np.array([1.0, 2.0], np.float32), np.array([False, False]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [2.0, 4.0], rtol=1e-3, atol=0)


def test_reward_scaler_divides_by_std_of_discounted_return_and_resets_on_done():
    """Rewards / running std of the discounted return; done resets only that env's return."""
    gamma = 0.9
    rewards = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [1.0, 3.0], [-2.0, 1.0]])
    dones = np.array([[False, False], [True, False], [False, False], [False, True],
                      [False, False]])
    scaler = RewardScaler(2, gamma=gamma, enabled=True, clip=10.0)
    got = []
    for reward, done in zip(rewards, dones, strict=True):
        got.append(scaler(reward.astype(np.float32), done))
        if done[0]:
            # env 0's return was 0.9 * 1 + 0.5 = 1.4 before the reset; env 1's goes on
            assert scaler.returns.tolist() == pytest.approx([0.0, 0.9 * 2.0 - 1.0])
    np.testing.assert_allclose(np.array(got), scaled_by_hand(rewards, dones, gamma), rtol=1e-3)
    # after step 5: env 0 restarted at step 3 (2, 1, -2), env 1 at step 5 (1)
    assert scaler.returns.tolist() == pytest.approx([(2.0 * gamma + 1.0) * gamma - 2.0, 1.0])


def test_reward_scaler_statistics_count_only_the_rows_that_hold_an_agent():
    """gamma 0.5, row 1 absent (reward 0) from step 2 on: the returns counted are row 0's
    1, 2.5, 2.25 and row 1's 2 of step 1, never row 1's decaying 1.0 and 0.5."""
    scaler = RewardScaler(2, gamma=0.5, enabled=True, clip=10.0)
    rewards = np.array([[1.0, 2.0], [2.0, 0.0], [1.0, 0.0]], np.float32)
    counted = np.array([[True, True], [True, False], [True, False]])
    scaler.scale_rollout(rewards, np.zeros((3, 2), dtype=bool), counted)
    samples = [1.0, 2.0, 2.5, 2.25]
    n, m, v = 4, np.mean(samples), np.var(samples)  # 1.9375, 0.32421875
    # merged with the prior (mean 0, variance 1, count PRIOR), as RunningMeanStd starts
    total = n + PRIOR
    assert scaler.rms.count.item() == pytest.approx(total, rel=1e-12)
    assert scaler.rms.mean.item() == pytest.approx(n * m / total, rel=1e-9)
    assert scaler.rms.var.item() == pytest.approx(
        (PRIOR * 1.0 + n * v + m * m * PRIOR * n / total) / total, rel=1e-9
    )
    assert scaler.returns.tolist() == pytest.approx([2.25, 0.5])  # each row's return goes on


def test_reward_scaler_clips_and_can_be_disabled():
    """Scaled rewards are clipped to [-clip, clip]; enabled=False returns the rewards as given."""
    scaler = RewardScaler(2, gamma=0.99, enabled=True, clip=3.0)
    for _ in range(20):
        scaler(np.array([0.01, -0.01], np.float32), np.array([False, False]))
    out = scaler(np.array([50.0, -50.0], np.float32), np.array([False, False]))
    assert out.tolist() == [3.0, -3.0]
    off = RewardScaler(2, gamma=0.99, enabled=False, clip=3.0)
    reward = np.array([50.0, -0.25], np.float32)
    assert np.array_equal(off(reward, np.array([True, False])), reward)
    assert off.rms.count.item() == pytest.approx(PRIOR)


# ---------------------------------------------------------------- advantage normalization


def test_normalize_by_hand():
    """normalize([1, 2, 3, 4]) = ([1, 2, 3, 4] - 2.5) / sqrt(5/3) (unbiased std)."""
    out = normalize(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    std = (5.0 / 3.0) ** 0.5
    assert_close(out, torch.tensor([-1.5, -0.5, 0.5, 1.5]) / std)
    assert out.mean().item() == pytest.approx(0.0, abs=1e-7)
    assert out.std().item() == pytest.approx(1.0, rel=1e-6)


def test_normalize_constant_input_gives_zeros():
    """A constant array has std 0: the eps keeps the result finite (all zeros)."""
    assert torch.equal(normalize(torch.full((5,), 3.0)), torch.zeros(5))


def test_normalize_is_the_same_in_numpy():
    """The numpy update's minibatches are normalized by the same function (unbiased std)."""
    values = np.array([1.0, 2.0, 3.0, 10.0], dtype=np.float32)
    np.testing.assert_allclose(normalize(values), normalize(torch.from_numpy(values)).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_agent_state_statistics_count_training_observations_only(backend):
    """Real run: obs statistics count collected observations only, none from evaluation."""
    cfg = compose_config([*TINY, "env=Pendulum-v1", "env.running_normalize_states=true",
                          f"agent.backend={backend}"])
    agent, train_env = make_agent(cfg)
    eval_env = build_env(cfg.env, 2)
    try:
        counts = [agent.normalizer.rms.count.item()]
        agent.step()
        counts.append(agent.normalizer.rms.count.item())
        agent.evaluate(eval_env, 2, seed=123)
        counts.append(agent.normalizer.rms.count.item())
    finally:
        train_env.close()
        eval_env.close()
    n_envs, n_steps = 2, 32
    assert counts[0] == pytest.approx(PRIOR + n_envs)
    assert counts[1] == pytest.approx(PRIOR + n_envs * (1 + n_steps))
    assert counts[2] == pytest.approx(counts[1])
