"""The rest of the family: vanilla PG, A2C, PPO-adaptive, returns, multi-action spaces."""

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent
from torch.distributions import Bernoulli, Categorical

from torchrl_cli.models.batch import Batch
from torchrl_cli.agents.estimators import DiscountedReturns
from torchrl_cli.models import A2CModel, PPOAdaptiveModel, VanillaPGModel
from torchrl_cli.models.distributions import greedy_action, make_dist
from torchrl_cli.models.ppo_adaptive import update_kl_penalty
from torchrl_cli.nn import nn_from_config

NET = {"body": [{"_target_": "torch.nn.Linear", "out_features": 8},
                {"_target_": "torch.nn.Tanh"}], "head": []}
STATE = {"shape": (3,)}
DISCRETE = {"kind": "discrete", "shape": (), "n": 2}
COMMON = dict(log_std_init=0.0, num_epochs=1, num_mini_batches=1, clip_grad_norm=0.5,
              lr_schedule="constant", loss_coef=1.0,
              optimizer=functools.partial(torch.optim.Adam, lr=1e-3))


def _batch(n=5):
    torch.manual_seed(0)
    return Batch(obs=torch.randn(n, 3), actions=torch.tensor([0, 1, 1, 0, 1][:n]),
                 log_probs=torch.log(torch.full((n,), 0.5)), values=torch.zeros(n),
                 advantages=torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0][:n]), returns=torch.zeros(n))


@pytest.mark.parametrize("cls", [VanillaPGModel, A2CModel])
def test_pg_loss_is_minus_mean_logprob_times_advantage(cls):
    """L^PG = -mean(log pi(a|s) * A); the entropy term is -entropy_coef * mean H."""
    torch.manual_seed(0)
    model = cls(nn_from_config(NET, STATE, DISCRETE), action_info=DISCRETE, entropy_coef=0.1,
                **COMMON)
    batch = _batch()
    terms = model.register_losses(batch)
    logits = model(batch.obs)
    log_probs = torch.log_softmax(logits, -1).gather(1, batch.actions[:, None]).squeeze(1)
    torch.testing.assert_close(terms["loss_policy"], -(log_probs * batch.advantages).mean())
    entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(terms["loss_entropy"], -0.1 * entropy)


def _adaptive(beta=1.0, early=None):
    torch.manual_seed(0)
    return PPOAdaptiveModel(nn_from_config(NET, STATE, DISCRETE), action_info=DISCRETE,
                            entropy_coef=0.0, kl_target=0.01, kl_penalty=beta,
                            kl_early_stop=early, **COMMON)


def test_adaptive_loss_is_surrogate_plus_beta_kl():
    """L = -mean(r A) + beta * mean((r - 1) - log r), with r from the stored log-probs."""
    model = _adaptive(beta=2.0)
    batch = _batch()
    terms = model.register_losses(batch)
    new = torch.log_softmax(model(batch.obs), -1).gather(1, batch.actions[:, None]).squeeze(1)
    ratio = (new - batch.log_probs).exp()
    torch.testing.assert_close(terms["loss_policy"], -(ratio * batch.advantages).mean())
    kl = ((ratio - 1) - (new - batch.log_probs)).mean()
    torch.testing.assert_close(terms["loss_kl_penalty"], 2.0 * kl)
    assert float(terms["kl_beta"]) == 2.0


@pytest.mark.parametrize(("kl", "expected"), [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0),
                                              (0.01, 1.0), (0.015, 1.0), (0.0151, 2.0)])
def test_beta_update_rule(kl, expected):
    """beta halves when d < d_targ/1.5, doubles when d > 1.5 d_targ, else stays."""
    assert update_kl_penalty(1.0, kl, 0.01) == expected


def test_beta_updates_once_per_batch_not_per_minibatch():
    """A real update of 4 epochs x 4 minibatches changes beta by one factor of 2 at most, and
    the minibatch losses all used the beta from before the update."""
    agent, env = make_agent([*TINY, "agent=ppo_adaptive", "agent.policy.num_epochs=4",
                             "agent.policy.num_mini_batches=4", "agent.value.num_epochs=4",
                             "agent.value.num_mini_batches=4"], n_envs=2, seed=None)
    for _ in range(3):
        before = agent.policy_model.kl_penalty
        agent.step()
        assert agent.policy_model.kl_penalty / before in (0.5, 1.0, 2.0)
        assert all(float(b) == before for b in agent.diagnostics["kl_beta"])
        assert len(agent.diagnostics["kl_beta"]) == 16
        assert len(agent.diagnostics["batch_kl"]) == 1
        agent.diagnostics.clear()
    env.close()


def test_kl_early_stop_skips_remaining_epochs():
    """With kl_early_stop tiny, the first minibatch whose KL exceeds it ends the batch."""
    agent, env = make_agent([*TINY, "agent=ppo_adaptive", "agent.policy.num_epochs=10",
                             "agent.value.num_epochs=10", "agent.policy.kl_early_stop=1e-6",
                             "agent.lr=1e-2"], n_envs=2, seed=None)
    agent.step()
    # the first minibatch has ratio exactly 1 (KL 0); the second one is past the threshold
    assert len(agent.diagnostics["approx_kl"]) == 2
    env.close()


def test_discounted_returns_hand_computed():
    """G = r + gamma G', cut at a termination, bootstrapped from V at the rollout's end."""
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.zeros_like(terminated)
    values = torch.zeros(4, 1)
    returns = DiscountedReturns(0.5)(rewards, values, terminated, truncated,
                                     torch.zeros(4, 1), torch.tensor([10.0]))
    expected = [[1 + 0.5 * 2], [2.0], [3 + 0.5 * (4 + 0.5 * 10)], [4 + 0.5 * 10]]
    torch.testing.assert_close(returns, torch.tensor(expected))


def test_multi_discrete_distribution_matches_torch():
    """MultiDiscrete([3, 2]): log-prob and entropy are sums of per-dimension categoricals."""
    info = {"kind": "multi_discrete", "shape": (2,), "nvec": [3, 2]}
    params = torch.randn(4, 5)
    dist = make_dist(params, info, None)
    actions = torch.tensor([[0, 1], [2, 0], [1, 1], [2, 1]])
    first, second = Categorical(logits=params[:, :3]), Categorical(logits=params[:, 3:])
    torch.testing.assert_close(dist.log_prob(actions),
                               first.log_prob(actions[:, 0]) + second.log_prob(actions[:, 1]))
    torch.testing.assert_close(dist.entropy(), first.entropy() + second.entropy())
    torch.testing.assert_close(greedy_action(params, info), torch.stack([params[:, :3].argmax(-1),
                                                        params[:, 3:].argmax(-1)], -1))
    assert dist.sample().shape == (4, 2)


def test_multi_binary_distribution_matches_torch():
    """MultiBinary(3): independent Bernoullis over logits; the mode is logits > 0."""
    info = {"kind": "multi_binary", "shape": (3,), "n": 3}
    params = torch.randn(4, 3)
    dist = make_dist(params, info, None)
    actions = torch.tensor([[0, 1, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(dist.log_prob(actions),
                               Bernoulli(logits=params).log_prob(actions).sum(-1))
    torch.testing.assert_close(dist.entropy(), Bernoulli(logits=params).entropy().sum(-1))
    torch.testing.assert_close(greedy_action(params, info), (params > 0).float())


class _MultiActionEnv(gym.Env):
    """Reward 1 when the action matches a fixed target pattern; 10-step episodes."""

    def __init__(self, space: str = "multi_discrete"):
        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        if space == "multi_discrete":
            self.action_space = gym.spaces.MultiDiscrete([3, 2])
            self.target = np.array([2, 0])
        else:
            self.action_space = gym.spaces.MultiBinary(3)
            self.target = np.array([1, 0, 1], dtype=np.int8)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action))
        self.t += 1
        reward = float(np.all(np.asarray(action) == self.target))
        return np.zeros(2, np.float32), reward, False, self.t >= 10, {}


@pytest.mark.parametrize("space", ["multi_discrete", "multi_binary"])
def test_multi_action_spaces_train_end_to_end(tmp_path, space):
    """PPO-clip learns to output the target pattern of a MultiDiscrete / MultiBinary env."""
    env_id = f"test/MultiAction-{space}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=_MultiActionEnv, kwargs={"space": space})
    from torchrl_cli.run.train import train

    cfg = compose_config([*TINY, f"env={env_id}", "max_steps=4096", "agent.lr=3e-3",
                          "agent.policy.num_epochs=4", "agent.value.num_epochs=4"])
    assert train(cfg, run_dir=tmp_path)["mean_return"] == 10.0
