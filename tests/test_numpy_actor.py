"""The collector's numpy acting path against the torch models and distributions it stands for."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import make_agent

from torchrl_cli.envs import StateNormalizer
from torchrl_cli.models.distributions import DiagGaussian, LogitsCategorical
from torchrl_cli.backends.numpy_actor import sample_categorical, sample_gaussian


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Acrobot-v1"])
def test_log_probs_match_the_torch_policy_and_follow_its_weights(env_id):
    agent, env = make_agent([f"env={env_id}", "env.n_envs=4"])
    try:
        model = agent.policy_model
        act = model.numpy_actor(np.random.default_rng(0))
        obs = np.random.default_rng(1).normal(size=(64, *env.get_state_info()["shape"]))
        obs = obs.astype(np.float32)
        for _ in range(2):
            actions, log_probs = act(obs)
            dist = model.create_dist(model(torch.from_numpy(obs)))
            want = dist.log_prob(torch.from_numpy(actions)).detach().numpy()
            np.testing.assert_allclose(log_probs, want, rtol=1e-5, atol=1e-5)
            with torch.no_grad():  # an optimizer step changes the weights in place
                for param in model.parameters():
                    param.add_(0.3 * torch.randn_like(param))
    finally:
        env.close()


def test_categorical_frequencies_and_log_probs():
    probs = np.array([0.1, 0.3, 0.0, 0.6], dtype=np.float32)
    rng = np.random.default_rng(0)
    with np.errstate(divide="ignore"):
        logits = np.log(probs) + rng.normal(size=(200_000, 1)).astype(np.float32)  # any shift
    actions, log_probs = sample_categorical(logits, rng)
    freq = np.bincount(actions, minlength=4) / len(actions)
    np.testing.assert_allclose(freq, probs, atol=0.004)  # ~4 standard errors
    assert freq[2] == 0  # a zero-probability action is never drawn
    np.testing.assert_allclose(log_probs, np.log(probs[actions]), rtol=1e-5)
    want = LogitsCategorical(torch.from_numpy(logits)).log_prob(torch.from_numpy(actions))
    np.testing.assert_allclose(log_probs, want.numpy(), rtol=1e-5, atol=1e-6)


def test_categorical_extreme_logits_stay_in_range():
    logits = np.array([[0.0, -1e30], [-1e30, 0.0], [50.0, -50.0]], dtype=np.float32)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        actions, log_probs = sample_categorical(logits, rng)
        assert actions.tolist() == [0, 1, 0] and np.all(np.isfinite(log_probs))


def test_gaussian_moments_and_log_probs():
    rng = np.random.default_rng(0)
    mean = np.tile(np.array([[1.0, -2.0]], dtype=np.float32), (100_000, 1))
    log_std = np.log(np.array([0.5, 2.0], dtype=np.float32))
    actions, log_probs = sample_gaussian(mean, log_std, rng)
    np.testing.assert_allclose(actions.mean(0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(actions.std(0), [0.5, 2.0], rtol=0.01)
    want = DiagGaussian(torch.from_numpy(mean), torch.from_numpy(log_std), 1).log_prob(
        torch.from_numpy(actions)
    )
    np.testing.assert_allclose(log_probs, want.numpy(), rtol=1e-5, atol=1e-5)


def test_a_layer_numpy_does_not_know_keeps_the_torch_path():
    agent, env = make_agent(["env=CartPole-v1", "env.n_envs=2", "agent.n_steps=8"])
    try:
        agent.policy_model.layers.insert(1, torch.nn.ELU())  # as a net.body entry would
        assert agent.policy_model.numpy_actor(np.random.default_rng(0)) is None
        rollout = agent.batcher.collect(agent.policy_model, agent.values)
        assert torch.isfinite(rollout.log_probs).all()
    finally:
        env.close()


def test_a_conv_net_keeps_the_torch_path():
    pytest.importorskip("ale_py")
    agent, env = make_agent(["env=ALE/Pong-v5", "net=nature_cnn", "env.n_envs=1"])
    try:
        assert agent.policy_model.numpy_actor(np.random.default_rng(0)) is None
    finally:
        env.close()


@pytest.mark.parametrize(("running", "fixed"), [(True, False), (False, True), (True, True)])
def test_numpy_normalizer_matches_the_torch_one(running, fixed):
    info = {"shape": (3,), "low": np.array([-1.0, -5.0, -np.inf]), "high": [1.0, 5.0, np.inf]}
    in_torch, in_numpy = (
        StateNormalizer(info, running=running, fixed=fixed, clip=3.0) for _ in range(2)
    )
    forward, normalize = in_numpy.numpy_forward(True), in_numpy.numpy_forward(False)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = (rng.normal(size=(8, 3)) * [0.5, 3.0, 40.0] + [0.2, 1.0, -7.0]).astype(np.float32)
        np.testing.assert_allclose(forward(obs), in_torch(torch.from_numpy(obs)), atol=1e-5)
        np.testing.assert_allclose(
            normalize(obs), in_torch.normalize(torch.from_numpy(obs)), atol=1e-5
        )
    for key, value in in_torch.state_dict().items():
        torch.testing.assert_close(in_numpy.state_dict()[key], value, rtol=1e-9, atol=1e-9)


class _ScalarBoxEnv(gym.Env):
    """A Box action space of shape (): the policy's Gaussian has no event dims."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), -float(np.square(action)), False, False, {}


def test_a_scalar_box_acts_in_torch_with_per_env_log_probs():
    if "test/ScalarBox-v0" not in gym.registry:
        gym.register("test/ScalarBox-v0", entry_point=_ScalarBoxEnv, max_episode_steps=5)
    agent, env = make_agent(["env=test/ScalarBox-v0", "env.n_envs=4", "agent.n_steps=8"])
    try:
        assert agent.policy_model.numpy_actor(np.random.default_rng(0)) is None
        rollout = agent.batcher.collect(agent.policy_model, agent.values)
        assert rollout.actions.shape == rollout.log_probs.shape == (8, 4)
        # one log-prob per env: the Gaussian's density of that env's own action
        mean = agent.policy_model(rollout.obs[0]).reshape(4)
        std = agent.policy_model.log_std.exp()
        want = torch.distributions.Normal(mean, std).log_prob(rollout.actions[0])
        torch.testing.assert_close(rollout.log_probs[0], want)
    finally:
        env.close()
