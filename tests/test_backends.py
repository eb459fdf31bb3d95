"""The two backends: the numpy twins against the torch reference (gradients against autograd,
Adam against torch.optim.Adam, whole updates against the torch step's, acting against the torch
policies and distributions), and how ``agent.backend`` is resolved."""

import copy
import subprocess
import sys

import gymnasium as gym
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

from torchrl_cli.backends import resolve_backend
from torchrl_cli.backends.numpy_actor import (
    NumpyActor,
    acting_unfit,
    numpy_normalizer,
    numpy_policy,
    sample_categorical,
    sample_gaussian,
)
from torchrl_cli.backends.numpy_mlp import NumpyMLP
from torchrl_cli.backends.numpy_step import (
    STEPS,
    FlatModel,
    adam_settings,
    update_unfit,
)
from torchrl_cli.backends.torch_step import TorchStepper
from torchrl_cli.envs import StateNormalizer
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.errors import ConfigError
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.distributions import DiagGaussian, LogitsCategorical
from torchrl_cli.rollout.actor import TorchActor


def flat_model(model) -> FlatModel:
    assert update_unfit(model) is None
    return FlatModel(model, adam_settings(model.optimizer), NumpyMLP.of(model.layers))


CASES = {
    "discrete": ["env=CartPole-v1"],
    "discrete-entropy-value-clip": [
        "env=CartPole-v1", "agent.policy.entropy_coef=0.05", "agent.value.clip_range=0.05"
    ],
    # the state-independent Gaussian (Pendulum's tuned files explore with gSDE)
    "continuous": ["env=Pendulum-v1", "agent.policy.sde.enabled=false"],
    "continuous-entropy-value-clip": [
        "env=Pendulum-v1", "agent.policy.sde.enabled=false", "agent.policy.entropy_coef=0.05",
        "agent.value.clip_range=0.05",
    ],
    "gsde": ["env=Pendulum-v1", "agent.policy.sde.enabled=true", "agent.policy.sde.sample_freq=4"],
    "gsde-entropy-relu": [
        "env=Pendulum-v1", "agent.policy.sde.enabled=true", "agent.policy.entropy_coef=0.05",
        "net.activation=relu", "agent.policy.log_std_init=-1",
    ],
}


def batch_and_agent(overrides: list[str]):
    """An agent after one rollout, its weights moved off the rollout's (ratios away from 1,
    some clipped), and a Batch with random advantages."""
    agent, env = make_agent([*overrides, "env.n_envs=4", "agent.n_steps=64"])
    act_in_torch(agent)
    rollout = agent.collector.collect(agent.values)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for model in agent.models.values():
            for param in model.parameters():
                param.add_(0.3 * torch.randn(param.shape, generator=gen))
    n = rollout.obs.shape[0] * rollout.obs.shape[1]
    batch = Batch(
        obs=rollout.obs.flatten(0, 1).clone(),
        actions=rollout.actions.flatten(0, 1).clone(),
        log_probs=rollout.log_probs.flatten().clone(),
        values=rollout.values.flatten().clone(),
        advantages=torch.randn(n, generator=gen),
        returns=rollout.values.flatten() + torch.randn(n, generator=gen),
    )
    return agent, env, batch


def numpy_batch(batch: Batch) -> dict[str, np.ndarray]:
    fields = {key: getattr(batch, key) for key in batch.__dataclass_fields__}
    return {key: value.numpy() for key, value in fields.items() if value is not None}


@pytest.mark.parametrize("case", CASES)
def test_gradients_and_diagnostics_match_autograd(case):
    agent, env, batch = batch_and_agent(CASES[case])
    try:
        for model in agent.models.values():
            flat = flat_model(model)
            got = STEPS[type(model)](flat, numpy_batch(batch))
            model.zero_grad()
            terms = model.register_losses(batch)
            sum(v for k, v in terms.items() if k.startswith("loss_")).backward()
            for param in model.parameters():
                np.testing.assert_allclose(
                    flat.grads[id(param)], param.grad.numpy(), rtol=2e-4, atol=1e-6
                )
            for key, value in got.items():
                np.testing.assert_allclose(value, float(terms[key]), rtol=1e-4, atol=1e-6)
        clip = agent.policy_model.ppo_clip_range
        assert 0 < float(agent.policy_model.register_losses(batch)["clip_fraction"]) < 1, clip
    finally:
        env.close()


def test_adam_steps_and_state_match_torch():
    agent, env, batch = batch_and_agent(CASES["continuous"])
    try:
        model = agent.policy_model
        reference = copy.deepcopy(model)
        flat = flat_model(model)
        for _ in range(3):
            STEPS[type(model)](flat, numpy_batch(batch))
            reference.optimizer.zero_grad()
            reference.register_losses(batch)["loss_policy"].backward()
            norm = reference.optimizer_step()
            np.testing.assert_allclose(flat.optimizer_step(), float(norm), rtol=1e-4)
        flat.write_back()
        for (name, got), want in zip(model.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=name)
            got_state, want_state = model.optimizer.state[got], reference.optimizer.state[want]
            for key in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(got_state[key], want_state[key], rtol=1e-3, atol=1e-8)
    finally:
        env.close()


@pytest.mark.parametrize("num_mini_batches", [1, 4])
def test_a_whole_update_matches_pgagent_fit(num_mini_batches):
    agent, env, batch = batch_and_agent(CASES["discrete-entropy-value-clip"])
    try:
        models = dict(agent.models)
        reference = {name: copy.deepcopy(model) for name, model in models.items()}
        torch.manual_seed(1)
        diagnostics = fit("numpy", models, batch, 5, num_mini_batches, True)
        torch.manual_seed(1)  # the same minibatch order
        expected = fit("torch", reference, batch, 5, num_mini_batches, True)
        for name, model in models.items():
            for got, want in zip(model.parameters(), reference[name].parameters(), strict=True):
                torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
        assert len(diagnostics["grad_norm_policy"]) == 5 * num_mini_batches
        assert diagnostics.keys() == expected.keys()
        for key, values in diagnostics.items():
            np.testing.assert_allclose(np.mean(values), np.mean(expected[key]), rtol=1e-3,
                                       atol=1e-6)
    finally:
        env.close()


def test_training_holds_numpy_blas_to_torch_threads(tmp_path):
    """OpenBLAS starts a thread per core; the numpy paths must keep to ``torch_threads`` like
    torch does (one thread each in the benchmarks, no oversubscription in parallel jobs)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from torchrl_cli.run.train import train

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    threadpool_limits(2, user_api="blas")
    if blas_threads() != {2}:
        pytest.skip("a single-core machine: nothing to hold back")
    train(compose_config([*TINY, "torch_threads=1"]), run_dir=tmp_path)
    assert blas_threads() == {1}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "gSDE"])
def test_log_probs_match_the_torch_policy_and_follow_its_weights(env_id):
    gsde = env_id == "gSDE"
    overrides = {  # Pendulum: the state-independent Gaussian, and gSDE (its tuned files')
        "Pendulum-v1": ["env=Pendulum-v1", "agent.policy.sde.enabled=false"],
        "gSDE": ["env=Pendulum-v1", "agent.policy.sde.enabled=true"],
    }.get(env_id, [f"env={env_id}"])
    agent, env = make_agent([*overrides, "env.n_envs=4"])
    try:
        model = agent.policy_model
        act = numpy_policy(model, np.random.default_rng(0))
        obs = np.random.default_rng(1).normal(size=(64, *env.get_state_info().shape))
        obs = obs.astype(np.float32)
        for _ in range(2):
            if gsde:
                act.resample(len(obs))
            actions, log_probs = act(obs)
            dist = model.policy_dist(torch.from_numpy(obs))
            want = dist.log_prob(torch.from_numpy(actions)).detach().numpy()
            if gsde:  # the action is the mean plus phi^T W, W the matrix drawn for its row
                with torch.no_grad():
                    phi = model.features(torch.from_numpy(obs)).numpy()
                    mean = model(torch.from_numpy(obs)).numpy()
                noise = np.einsum("bi,bij->bj", phi, act.weights)
                np.testing.assert_allclose(actions, mean + noise, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(log_probs, want, rtol=1e-5, atol=1e-5)
            with torch.no_grad():  # an optimizer step changes the weights in place
                for param in model.parameters():
                    param.add_(0.3 * torch.randn_like(param))
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_evaluation_acts_in_numpy_as_the_torch_policy_does(env_id):
    """Greedy actions in numpy (the evaluation's) equal ``act``'s in torch, through the running
    observation normalizer; with agent.backend=torch the evaluation acts with ``act`` itself."""
    agent, env = make_agent([f"env={env_id}", "env.n_envs=4", "env.running_normalize_states=true"])
    try:
        rng = np.random.default_rng(0)
        shape = env.get_state_info().shape
        agent.normalizer(torch.from_numpy(rng.normal(2.0, 3.0, (256, *shape))))
        greedy = agent.greedy_policy()
        assert isinstance(agent.collector.actor, NumpyActor)
        for _ in range(2):
            obs = rng.normal(2.0, 3.0, (64, *shape))
            with torch.inference_mode():  # as evaluations run
                want = agent.act(obs)
            if env_id == "CartPole-v1":
                np.testing.assert_array_equal(greedy(obs), want)
            else:
                np.testing.assert_allclose(greedy(obs), want, rtol=1e-5, atol=1e-5)
            with torch.no_grad():  # an optimizer step changes the weights in place
                for param in agent.policy_model.parameters():
                    param.add_(0.3 * torch.randn_like(param))
    finally:
        env.close()
    agent, env = make_agent([f"env={env_id}", "env.n_envs=4", "agent.backend=torch"])
    env.close()
    assert isinstance(agent.collector.actor, TorchActor)


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


def test_a_layer_numpy_does_not_know_keeps_the_torch_path_and_says_why():
    cfg = compose_config(["env=CartPole-v1", "env.n_envs=2", "agent.n_steps=8", "net=mlp",
                          "net.body.1._target_=torch.nn.ELU"])  # as a user would swap it
    agent, env = make_agent(cfg)
    try:
        assert agent.backend.acting == "torch"
        assert agent.backend.reasons["acting"] == "net layer ELU is not Linear, Tanh or ReLU"
        assert "ELU is not Linear" in agent.backend.describe()
        rollout = agent.collector.collect(agent.values)
        assert torch.isfinite(rollout.log_probs).all()
    finally:
        env.close()


def test_a_conv_net_keeps_the_torch_path():
    pytest.importorskip("ale_py")
    agent, env = make_agent(["env=ALE/Pong-v5", "net=nature_cnn", "env.n_envs=1"])
    try:
        assert acting_unfit(agent.policy_model, agent.normalizer) is not None
    finally:
        env.close()


@pytest.mark.parametrize(("running", "fixed"), [(True, False), (False, True), (True, True)])
def test_numpy_normalizer_matches_the_torch_one(running, fixed):
    info = SpaceInfo(SpaceKind.CONTINUOUS, (3,), low=np.array([-1.0, -5.0, -np.inf]),
                     high=np.array([1.0, 5.0, np.inf]))
    in_torch, in_numpy = (
        StateNormalizer(info, running=running, fixed=fixed, clip=3.0) for _ in range(2)
    )
    forward, normalize = numpy_normalizer(in_numpy, True), numpy_normalizer(in_numpy, False)
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
        assert agent.backend.acting == "torch"
        assert "continuous actions of shape scalar" in agent.backend.reasons["acting"]
        rollout = agent.collector.collect(agent.values)
        assert rollout.actions.shape == rollout.log_probs.shape == (8, 4)
        # one log-prob per env: the Gaussian's density of that env's own action
        mean = agent.policy_model(rollout.obs[0]).reshape(4)
        std = agent.policy_model.log_std.exp()
        want = torch.distributions.Normal(mean, std).log_prob(rollout.actions[0])
        torch.testing.assert_close(rollout.log_probs[0], want)
    finally:
        env.close()


# ---------------------------------------------------------------- choosing the backend


def test_auto_serves_ppo_clip_on_cartpole_in_numpy():
    agent, env = make_agent(["env=CartPole-v1", "env.n_envs=2"])
    env.close()
    assert (agent.backend.acting, agent.backend.updates) == (
        "numpy", {"policy": "numpy", "value": "numpy"})
    assert agent.backend.describe() == "backend auto: acting numpy, update numpy"


@pytest.mark.parametrize(("overrides", "reason"), [
    (["agent=ppo_adaptive"], "PPOAdaptiveModel has no numpy update"),
    (["agent=a2c"], "A2CModel has no numpy update"),
    (["agent.policy.optimizer._target_=torch.optim.SGD", "~agent.policy.optimizer.eps"],
     "optimizer SGD is not torch.optim.Adam"),
    (["+agent.policy.optimizer.weight_decay=0.01"], "Adam with weight_decay=0.01"),
])
def test_auto_keeps_what_numpy_cannot_train_on_torch_and_names_why(overrides, reason):
    agent, env = make_agent([*overrides, "env=CartPole-v1", "env.n_envs=2"])
    env.close()
    assert agent.backend.updates["policy"] == "torch"
    assert agent.backend.reasons["policy"].startswith(reason)
    assert reason in agent.backend.describe()
    with pytest.raises(ConfigError, match=f"agent.backend=numpy cannot serve this run: {reason}"):
        resolve_backend("numpy", agent.policy_model, agent.models,
                        agent.normalizer)


def test_vanilla_pg_trains_its_value_model_in_numpy_and_its_policy_in_torch():
    """Models with their own epochs train in their own pass: each pass on its own backend."""
    agent, env = make_agent(["agent=vanilla_pg", "env=CartPole-v1", "env.n_envs=2"])
    env.close()
    assert agent.backend.updates == {"policy": "torch", "value": "numpy"}
    assert "update numpy for value, torch (VanillaPGModel" in agent.backend.describe()


def test_torch_backend_runs_everything_in_torch():
    agent, env = make_agent(["env=CartPole-v1", "env.n_envs=2", "agent.backend=torch"])
    env.close()
    assert agent.backend.acting == "torch"
    assert set(agent.backend.updates.values()) == {"torch"}
    assert isinstance(agent.collector.actor, TorchActor)
    assert isinstance(agent.backend.stepper(agent.models), TorchStepper)


def test_cli_numpy_backend_on_an_unfit_run_is_one_line_and_leaves_no_run(
        torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *TINY, "agent.backend=numpy",
                                 "agent.policy.optimizer._target_=torch.optim.SGD",
                                 "~agent.policy.optimizer.eps"], tmp_path, cli_env)
    assert_one_line_error(proc, "agent.backend=numpy cannot serve this run",
                          "optimizer SGD is not torch.optim.Adam")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_cli_banner_names_the_backend(torchrl_bin, cli_env, tmp_path, backend):
    proc = torchrl(torchrl_bin, ["train", *TINY, f"agent.backend={backend}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"backend {backend} (acting and update)" in proc.stdout


def test_a_model_sharing_its_pass_with_a_torch_model_is_reported_on_torch():
    """PPO-adaptive's value model could train in numpy alone, but it shares the policy's pass
    (same epochs and minibatches), which trains in torch: the banner says so."""
    agent, env = make_agent(["agent=ppo_adaptive", "env=CartPole-v1", "env.n_envs=2"])
    env.close()
    assert agent.backend.updates == {"policy": "torch", "value": "torch"}
    assert agent.backend.reasons["value"] == "value trains in one pass with policy"
    assert isinstance(agent.backend.stepper(agent.models), TorchStepper)


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "SGD"])
def test_building_and_stepping_an_optimizer_does_not_import_torchdynamo(name):
    """Start-up and training: making, saving, loading, zeroing and stepping an optimizer (Adam
    fused, as made here; RMSprop and SGD on their foreach paths) leaves torch._dynamo
    unimported (it costs as much as importing torch), and each step is torch's own, bit for
    bit: the same parameters and optimizer state after three steps."""
    code = f"""
import copy, functools, sys, torch
from torchrl_cli.models.optim import make_optimizer, step_optimizer
cls = torch.optim.{name}
torch.manual_seed(0)
layer = torch.nn.Linear(3, 2)
twin = copy.deepcopy(layer)
make = functools.partial(cls, lr=0.1, **({{"momentum": 0.9}} if cls is torch.optim.SGD else {{}}))
opt, ref = make_optimizer(make, layer.parameters()), make_optimizer(make, twin.parameters())
opt.load_state_dict(opt.state_dict())
steps = []
for _ in range(3):
    for model, o in ((layer, opt), (twin, ref)):
        o.zero_grad()
        model(torch.ones(4, 3)).square().sum().backward()
    step_optimizer(opt)
    steps.append("torch._dynamo" in sys.modules)
    ref.step()  # torch's own (it imports TorchDynamo: the later checks show ours never did)
assert steps == [False, True, True], steps
for a, b in zip(layer.parameters(), twin.parameters()):
    assert torch.equal(a, b)
    assert all(torch.equal(x, y) for x, y in zip(opt.state[a].values(), ref.state[b].values()))
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]
