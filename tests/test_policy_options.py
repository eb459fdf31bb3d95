"""The learning options of issue 16: hidden widths and activations per net, log_std_init and
the init scheme, recomputed advantages (both backends), gSDE (math against hand computations,
its resampling schedule, seeding), and their composition on the command line."""

import copy
import math
import re

import numpy as np
import pytest
import torch
from conftest import (
    TINY,
    act_in_torch,
    assert_one_line_error,
    compose_config,
    fit,
    make_agent,
    torchrl,
)
from omegaconf import OmegaConf
from torch import nn

from torchrl_cli.backends.numpy_actor import NumpySDEPolicy
from torchrl_cli.config.migrate import upgrade
from torchrl_cli.config.validate import validate
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.errors import ConfigError
from torchrl_cli.models.sde import VARIANCE_EPS, StateDependentNoise
from torchrl_cli.nn import Tanh, with_hidden
from torchrl_cli.run.build import build_model

# the state-independent Gaussian unless a test turns gSDE on (Pendulum's tuned files use it)
PENDULUM = ["env=Pendulum-v1", "env.n_envs=2", "agent.n_steps=8", "agent.num_mini_batches=4",
            "agent.policy.sde.enabled=false"]
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def linears(model) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.layers if isinstance(m, nn.Linear)]


def activations(model) -> list[type]:
    return [type(m) for m in model.layers if not isinstance(m, nn.Linear)]


# ---------------------------------------------------------------- hidden widths, activations


def test_defaults_leave_the_net_as_listed():
    cfg = compose_config(["net=mlp"])
    assert with_hidden(cfg.net, cfg.agent.policy.net) is cfg.net


def test_policy_and_value_nets_take_their_own_widths_and_the_shared_activation():
    agent, env = make_agent([*PENDULUM, "net.activation=relu", "agent.policy.net.hidden=[32]",
                             "agent.value.net.hidden=[256,256]"])
    env.close()
    policy, value = agent.policy_model, agent.value_model
    assert linears(policy) == [(3, 32), (32, 1)]
    assert linears(value) == [(3, 256), (256, 256), (256, 1)]
    assert activations(policy) == [nn.ReLU] and activations(value) == [nn.ReLU, nn.ReLU]
    # ReLU MLPs are still numpy's to run
    assert agent.backend.describe() == "backend auto: acting numpy, update numpy"


def test_a_models_activation_beats_the_shared_one_and_widths_stay_as_listed():
    agent, env = make_agent([*PENDULUM, "net=mlp_large", "net.activation=gelu",
                             "agent.value.net.activation=tanh"])
    env.close()
    assert linears(agent.policy_model) == [(3, 256), (256, 256), (256, 1)]
    assert activations(agent.policy_model) == [nn.GELU, nn.GELU]
    assert activations(agent.value_model) == [Tanh, Tanh]
    assert "GELU" in agent.backend.describe()  # numpy runs no GELU: torch, and says why


def test_no_hidden_layer_is_a_linear_policy_on_the_observations():
    agent, env = make_agent([*PENDULUM, "agent.policy.net.hidden=[]"])
    env.close()
    assert linears(agent.policy_model) == [(3, 1)] and activations(agent.policy_model) == []
    assert linears(agent.value_model) == [(3, 64), (64, 64), (64, 1)]


def test_hidden_keeps_what_comes_before_the_fully_connected_layers():
    """multi_input: its encoder stays; only the 64x64 tanh pairs after it are rewritten."""
    net = OmegaConf.load("conf/net/multi_input.yaml")
    made = with_hidden(net, {"hidden": [128], "activation": "relu"})
    assert made.body[0]._target_ == "torchrl_cli.nn.MultiInputEncoder"
    assert OmegaConf.to_container(made.body)[1:] == [
        {"_target_": "torch.nn.Linear", "out_features": 128}, {"_target_": "torch.nn.ReLU"}]
    assert net.body[1].out_features == 64  # the given config is left alone


def test_hidden_on_a_body_without_fully_connected_pairs_needs_an_activation():
    net = OmegaConf.load("conf/net/nature_cnn.yaml")  # ends in FlattenLinear + ReLU
    with pytest.raises(ConfigError, match="set net.activation too"):
        with_hidden(net, {"hidden": [64]})
    assert with_hidden(net, {"hidden": [64], "activation": "relu"}).body[-2].out_features == 64


@pytest.mark.parametrize(("overrides", "message"), [
    (["net.hidden=[64,0]"], "net.hidden=[64, 0] must hold widths of at least 1"),
    (["agent.value.net.activation=swish"], "agent.value.net.activation=swish is not an"),
    (["agent=vanilla_pg", "agent.value=null", "agent.recompute_advantages=true"],
     "agent.recompute_advantages=true re-evaluates the value model, but agent.value is null"),
    (["agent.policy.sde.enabled=true"],  # CartPole: Discrete actions
     "agent.policy.sde.enabled=true needs Box actions, but env 'CartPole-v1' has discrete"),
    (["env=Pendulum-v1", "agent.policy.sde.enabled=true", "agent.policy.sde.sample_freq=0"],
     "agent.policy.sde.sample_freq=0 must be at least 1, or -1"),
])
def test_validate_names_the_bad_option(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(overrides))


def test_a_run_folder_config_from_before_these_keys_still_builds():
    """config.yaml of an older run has no agent.<model>.net, net.hidden or policy.sde: read as a
    resume reads it (``config.migrate.upgrade``), they take the schema's defaults."""
    cfg = OmegaConf.to_container(compose_config(PENDULUM), resolve=True)
    for model in ("policy", "value"):
        del cfg["agent"][model]["net"]
    del cfg["agent"]["policy"]["sde"], cfg["net"]["hidden"], cfg["net"]["activation"]
    del cfg["config_version"]
    cfg = upgrade(OmegaConf.create(cfg), "config.yaml")
    validate(cfg)
    state, action = SpaceInfo(SpaceKind.CONTINUOUS, (3,)), SpaceInfo(SpaceKind.CONTINUOUS, (1,))
    model = build_model(cfg.agent.policy, cfg.net, state, action)
    assert linears(model) == [(3, 64), (64, 64), (64, 1)] and model.sde is None


# ---------------------------------------------------------------- log_std_init, init scheme


def test_log_std_init_sets_the_initial_std():
    agent, env = make_agent([*PENDULUM, "agent.policy.log_std_init=-1.5"])
    env.close()
    policy = agent.policy_model
    torch.testing.assert_close(policy.log_std.detach(), torch.full((1,), -1.5))
    dist = policy.policy_dist(torch.zeros(4, 3))
    torch.testing.assert_close(dist.log_std.exp(), torch.full((4, 1), math.exp(-1.5)))


def test_orthogonal_init_against_the_framework_default():
    """orthogonal: W W^T = gain^2 I (sqrt 2 hidden, 0.01 policy output), zero biases;
    default: torch's own (Kaiming-uniform weights within 1/sqrt(fan_in), non-zero biases)."""
    agent, env = make_agent([*PENDULUM, "net.init=orthogonal"])
    env.close()
    hidden, out = agent.policy_model.net.layers[0].layers[2], agent.policy_model.out
    torch.testing.assert_close(hidden.weight @ hidden.weight.T, 2.0 * torch.eye(64),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.weight @ out.weight.T, torch.full((1, 1), 1e-4),
                               rtol=1e-5, atol=1e-8)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in agent.policy_model.layers
               if isinstance(m, nn.Linear))
    agent, env = make_agent([*PENDULUM, "net.init=default"])
    env.close()
    for layer in (m for m in agent.policy_model.layers if isinstance(m, nn.Linear)):
        bound = 1 / math.sqrt(layer.in_features)
        weight, bias = layer.weight.detach(), layer.bias.detach()
        assert float(weight.abs().max()) <= bound and float(bias.abs().max()) > 0
    hidden = agent.policy_model.net.layers[0].layers[2]
    assert not torch.allclose(hidden.weight @ hidden.weight.T, 2.0 * torch.eye(64), atol=0.1)


# ---------------------------------------------------------------- recomputed advantages


def hand_gae(rewards, values, last_values, gamma, lam):
    """GAE on a rollout without episode ends, in float64 loops."""
    steps, envs = rewards.shape
    adv = np.zeros((steps, envs))
    for n in range(envs):
        running = 0.0
        for t in reversed(range(steps)):
            next_v = last_values[n] if t == steps - 1 else values[t + 1, n]
            delta = rewards[t, n] + gamma * next_v - values[t, n]
            running = delta + gamma * lam * running
            adv[t, n] = running
    return adv


RECOMPUTE = [*PENDULUM, "agent.num_epochs=2", "agent.num_mini_batches=1",
             "agent.normalize_advantages=false", "agent.value.optimizer.lr=0.05"]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_the_second_epoch_trains_on_advantages_from_the_value_net_after_the_first(backend):
    """One whole-batch epoch has no randomness: a copy of the agent trained for that one epoch
    gives V_1, and the batch of epoch 2 must be GAE over V_1 (by hand), returns A + V_1."""
    agent, env = make_agent([*RECOMPUTE, f"agent.backend={backend}",
                             "agent.recompute_advantages=true"])
    try:
        rollout = agent.collector.collect(agent.values)
        one_epoch = copy.deepcopy(agent.models)
        seen = []
        batch_of = agent.batch_of
        agent.batch_of = lambda r: seen.append(batch_of(r)) or seen[-1]
        agent.learn(rollout)
        assert len(seen) == 2  # the rollout's batch, then epoch 2's
        for model in one_epoch.values():  # the same update, one epoch, on the rollout's batch
            model.num_epochs = 1
        fit(backend, one_epoch, seen[0], 1, 1, False)
        obs = rollout.obs.flatten(0, 1)
        with torch.no_grad():
            v1 = one_epoch["value"](obs).view(8, 2).double().numpy()
            last = one_epoch["value"](agent.collector.obs).double().numpy()
        gae = agent.advantage
        adv = hand_gae(rollout.rewards.double().numpy(), v1, last, gae.gamma, gae.gae_lambda)
        np.testing.assert_allclose(seen[1].values.view(8, 2).numpy(), v1, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(seen[1].advantages.view(8, 2).numpy(), adv, rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(seen[1].returns.view(8, 2).numpy(), adv + v1, rtol=1e-4,
                                   atol=1e-5)
        assert float((seen[1].advantages - seen[0].advantages).abs().max()) > 1e-3
        torch.testing.assert_close(seen[1].log_probs, seen[0].log_probs)  # pi_old stays
    finally:
        env.close()


def epoch_advantages(overrides) -> list[torch.Tensor]:
    """The advantages the policy's loss reads in each epoch of one update (torch backend)."""
    agent, env = make_agent([*RECOMPUTE, "agent.num_epochs=3", "agent.backend=torch",
                             *overrides])
    try:
        act_in_torch(agent)
        rollout = agent.collector.collect(agent.values)
        seen, register = [], agent.policy_model.register_losses
        agent.policy_model.register_losses = lambda b: seen.append(b.advantages) or register(b)
        agent.learn(rollout)
        return seen
    finally:
        env.close()


def test_without_recompute_every_epoch_reads_the_rollouts_advantages():
    first, *rest = epoch_advantages([])
    assert len(rest) == 2 and all(torch.equal(first, other) for other in rest)
    first, second, third = epoch_advantages(["agent.recompute_advantages=true"])
    assert not torch.allclose(first, second) and not torch.allclose(second, third)


def test_recompute_on_numpy_matches_torch_with_shuffled_minibatches():
    params = {}
    for backend in ("torch", "numpy"):
        agent, env = make_agent([*RECOMPUTE, "agent.num_epochs=3", "agent.num_mini_batches=4",
                                 "agent.normalize_advantages=true",
                                 "agent.recompute_advantages=true", f"agent.backend={backend}"])
        try:
            act_in_torch(agent)
            rollout = agent.collector.collect(agent.values)
            torch.manual_seed(1)
            agent.learn(rollout)
            params[backend] = [p.detach().clone() for p in agent.value_model.parameters()]
            params[backend] += [p.detach().clone() for p in agent.policy_model.parameters()]
        finally:
            env.close()
    for got, want in zip(params["numpy"], params["torch"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- gSDE: the math by hand

PHI = np.array([[1.0, 2.0, -0.5], [0.5, -1.0, 0.0]])  # [B=2, latent=3]
LOG_SIGMA = np.array([[-1.0, 0.0], [0.5, -0.5], [0.2, 0.3]])  # [latent=3, actions=2]
MEAN = np.array([[0.1, -0.2], [0.3, 0.0]])
ACTIONS = np.array([[0.5, 0.4], [-0.2, 0.1]])


def noise_module(log_sigma=LOG_SIGMA, sample_freq=-1, learn_features=False):
    sde = StateDependentNoise(log_sigma.shape[0], (log_sigma.shape[1],), log_std_init=0.0,
                              sample_freq=sample_freq, learn_features=learn_features)
    with torch.no_grad():
        sde.log_std.copy_(torch.as_tensor(log_sigma, dtype=torch.float32))
    return sde


def hand_std() -> np.ndarray:
    std = np.zeros((2, 2))
    for b in range(2):
        for j in range(2):
            variance = sum(PHI[b, i] ** 2 * math.exp(LOG_SIGMA[i, j]) ** 2 for i in range(3))
            std[b, j] = math.sqrt(variance + VARIANCE_EPS)
    return std


def test_gsde_std_log_prob_and_entropy_by_hand():
    sde = noise_module()
    phi, mean = torch.tensor(PHI, dtype=torch.float32), torch.tensor(MEAN, dtype=torch.float32)
    with torch.no_grad():
        dist = sde.dist(mean, phi)
        got = dist.log_prob(torch.tensor(ACTIONS, dtype=torch.float32))
    std = hand_std()
    np.testing.assert_allclose(dist.log_std.exp().numpy(), std, rtol=1e-5)
    z = (ACTIONS - MEAN) / std
    log_prob = (-0.5 * z**2 - np.log(std) - HALF_LOG_2PI).sum(axis=1)
    entropy = (0.5 + HALF_LOG_2PI + np.log(std)).sum(axis=1)
    np.testing.assert_allclose(got.numpy(), log_prob, rtol=1e-5)
    np.testing.assert_allclose(dist.entropy().numpy(), entropy, rtol=1e-5)
    # the first row's first action by hand: var = 1 e^-2 + 4 e^1 + 0.25 e^0.4
    assert math.isclose(std[0, 0] ** 2, math.exp(-2) + 4 * math.e + 0.25 * math.exp(0.4) + 1e-6)


def test_gsde_noise_is_phi_times_the_drawn_matrix_and_has_the_formula_std():
    sde = noise_module()
    phi = torch.tensor(PHI, dtype=torch.float32)
    torch.manual_seed(0)
    sde.resample(2)
    w = sde.weights.double().numpy()
    noise = np.stack([PHI[b] @ w[b] for b in range(2)])
    np.testing.assert_allclose(sde.noise(phi).numpy(), noise, rtol=1e-5, atol=1e-6)
    draws = []
    for _ in range(4000):  # the noise's spread over matrices: the Gaussian's std
        sde.resample(2)
        draws.append(sde.noise(phi).numpy())
    np.testing.assert_allclose(np.std(draws, axis=0), hand_std(), rtol=0.05)
    np.testing.assert_allclose(np.mean(draws, axis=0), 0.0, atol=0.1 * hand_std().max())


@pytest.mark.parametrize("learn_features", [False, True])
def test_gsde_learn_features_decides_whether_the_std_trains_the_features(learn_features):
    sde = noise_module(learn_features=learn_features)
    phi = torch.tensor(PHI, dtype=torch.float32, requires_grad=True)
    sde.dist(torch.zeros(2, 2), phi).entropy().sum().backward()  # the std's only
    assert sde.log_std.grad is not None and float(sde.log_std.grad.abs().sum()) > 0
    assert (phi.grad is not None and float(phi.grad.abs().sum()) > 0) == learn_features


def gsde_agent(sample_freq: int, seed: int = 0, steps: int = 8, backend: str = "auto"):
    return make_agent(["env=Pendulum-v1", "env.n_envs=2", f"agent.n_steps={steps}",
                       "agent.num_mini_batches=4", "agent.policy.sde.enabled=true",
                       f"agent.policy.sde.sample_freq={sample_freq}",
                       "agent.policy.log_std_init=-1", f"agent.backend={backend}"], seed=seed)


def matrices_per_step(agent, monkeypatch, rollouts: int = 2) -> list[np.ndarray]:
    """The noise matrices each acting step of ``rollouts`` rollouts used."""
    policy, used = agent.policy_model, []
    if agent.backend.acting == "torch":
        select = policy.select_action
        monkeypatch.setattr(policy, "select_action", lambda *a, **k: used.append(
            policy.sde.weights.numpy()) or select(*a, **k))
    else:
        act = NumpySDEPolicy.__call__
        monkeypatch.setattr(NumpySDEPolicy, "__call__",
                            lambda self, obs: used.append(self.weights) or act(self, obs))
    for _ in range(rollouts):
        agent.collector.collect(agent.values)
    return used


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize(("sample_freq", "new_at"), [
    (3, [0, 3, 6, 8, 11, 14]),  # rollouts of 8 steps: t = 0, 3, 6 of each
    (1, list(range(16))),
    (-1, [0, 8]),  # rollout starts only
])
def test_gsde_draws_new_matrices_every_sample_freq_steps_and_at_rollout_start(
        sample_freq, new_at, backend, monkeypatch):
    agent, env = gsde_agent(sample_freq, backend=backend)
    env.close()
    assert agent.backend.acting == backend
    used = matrices_per_step(agent, monkeypatch)
    assert used[0].shape == (2, 64, 1)  # one 64x1 matrix per env
    changed = [0] + [t for t in range(1, len(used)) if not np.array_equal(used[t], used[t - 1])]
    assert changed == new_at


def test_gsde_actions_are_the_mean_plus_phi_w_and_evaluation_takes_the_mean():
    agent, env = gsde_agent(-1)
    try:
        policy = agent.policy_model
        policy.sde.resample(2)
        obs = agent.collector.obs
        actions, log_probs = policy.select_action(obs)
        with torch.no_grad():
            phi, mean = policy.features(obs), policy(obs)
        expected = mean + torch.bmm(phi.unsqueeze(1), policy.sde.weights).squeeze(1)
        torch.testing.assert_close(actions, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(log_probs, policy.policy_dist(obs).log_prob(actions))
        greedy, _ = policy.select_action(obs, deterministic=True)
        torch.testing.assert_close(greedy, mean)
        raw = env.reset(seed=3)
        with torch.no_grad():  # as evaluation runs it
            state = agent.normalizer.normalize(torch.as_tensor(raw))
            np.testing.assert_allclose(agent.act(raw), np.clip(policy(state).numpy(), -2, 2),
                                       rtol=1e-5)
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_gsde_is_deterministic_under_a_seed(backend):
    def actions(seed):
        agent, env = gsde_agent(4, seed=seed, backend=backend)
        try:
            return agent.collector.collect(agent.values).actions.clone()
        finally:
            env.close()

    first = actions(0)
    assert torch.equal(first, actions(0)) and not torch.allclose(first, actions(1))


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_gsde_trains_its_sigma(backend):
    agent, env = gsde_agent(4, steps=32, backend=backend)
    try:
        assert set(agent.backend.updates.values()) == {backend}
        before = agent.policy_model.sde.log_std.detach().clone()
        agent.step()
        assert not torch.equal(agent.policy_model.sde.log_std, before)
        assert agent.policy_model.log_std is None
    finally:
        env.close()


# ---------------------------------------------------------------- the command line

OPTIONS = ["env=Pendulum-v1", "net.activation=relu", "agent.policy.net.hidden=[32]",
           "agent.value.net.hidden=[128,128]", "agent.policy.log_std_init=-0.5",
           "net.init=default", "agent.recompute_advantages=true",
           "agent.policy.sde.enabled=true", "agent.policy.sde.sample_freq=4"]


def test_cli_trains_evaluates_and_records_the_options(torchrl_bin, cli_env, tmp_path):
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", *TINY, *OPTIONS, f"hydra.run.dir={run}"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backend auto: acting numpy, update numpy" in proc.stdout  # gSDE included
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.agent.policy.net.hidden == [32] and cfg.agent.value.net.hidden == [128, 128]
    assert cfg.net.activation == "relu" and cfg.net.init == "default"
    assert cfg.agent.recompute_advantages and cfg.agent.policy.sde.sample_freq == 4
    weights = torch.load(run / "model.pt", weights_only=True)
    policy, value = weights["policy"], weights["value"]
    assert policy["sde.log_std"].shape == (32, 1) and "log_std" not in policy
    assert [v.shape[0] for k, v in value.items() if k.endswith("bias")] == [128, 128, 1]
    proc = torchrl(torchrl_bin, ["eval", str(run), "episodes=1"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_gsde_learning_features_on_the_numpy_backend_is_one_line(torchrl_bin, cli_env,
                                                                     tmp_path):
    proc = torchrl(torchrl_bin, ["train", *TINY, "env=Pendulum-v1", "agent.backend=numpy",
                                 "agent.policy.sde.enabled=true",
                                 "agent.policy.sde.learn_features=true"], tmp_path, cli_env)
    assert_one_line_error(proc, "agent.backend=numpy cannot serve this run",
                          "gSDE with agent.policy.sde.learn_features=true has no numpy update")
    assert not (tmp_path / "runs").exists()
