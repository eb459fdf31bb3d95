"""The numpy PPO-clip update against the torch path it replaces: gradients against autograd,
Adam against torch.optim.Adam, whole updates against PGAgent.fit."""

import copy
from collections import defaultdict

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent

from torchrl_cli.models.batch import Batch
from torchrl_cli.backends.numpy_update import STEPS, flat_model, numpy_fit

CASES = {
    "discrete": ["env=CartPole-v1"],
    "discrete-entropy-value-clip": [
        "env=CartPole-v1", "agent.policy.entropy_coef=0.05", "agent.value.clip_range=0.05"
    ],
    "continuous": ["env=Pendulum-v1"],
    "continuous-entropy-value-clip": [
        "env=Pendulum-v1", "agent.policy.entropy_coef=0.05", "agent.value.clip_range=0.05"
    ],
}


def batch_and_agent(overrides: list[str]):
    """An agent after one rollout, its weights moved off the rollout's (ratios away from 1,
    some clipped), and a Batch with random advantages."""
    agent, env = make_agent([*overrides, "env.n_envs=4", "agent.n_steps=64"])
    rollout = agent.batcher.collect(agent.policy_model, agent.values)
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
    return {key: getattr(batch, key).numpy() for key in batch.__dataclass_fields__}


@pytest.mark.parametrize("case", CASES)
def test_gradients_and_diagnostics_match_autograd(case):
    agent, env, batch = batch_and_agent(CASES[case])
    try:
        for model in agent.models.values():
            flat = flat_model(model)
            assert flat is not None
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
        diagnostics = defaultdict(list)
        assert numpy_fit(models, batch, 5, num_mini_batches, True, diagnostics)
        torch.manual_seed(1)  # the same minibatch order
        agent.models = reference
        agent.fit(list(reference.values()), batch, 5, num_mini_batches)
        for name, model in models.items():
            for got, want in zip(model.parameters(), reference[name].parameters(), strict=True):
                torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
        assert len(diagnostics["grad_norm_policy"]) == 5 * num_mini_batches
        for key, values in diagnostics.items():
            want = torch.stack(agent.diagnostics[key]).double().mean()
            np.testing.assert_allclose(np.mean(values), float(want), rtol=1e-3, atol=1e-6)
    finally:
        env.close()


def test_models_numpy_cannot_train_keep_the_torch_path():
    for overrides in (["agent=ppo_adaptive"], ["agent=a2c"]):
        agent, env = make_agent([*overrides, "env=CartPole-v1", "env.n_envs=2"])
        env.close()
        assert flat_model(agent.policy_model) is None
    agent, env = make_agent(["env=CartPole-v1", "env.n_envs=2",
                             "agent.policy.optimizer._target_=torch.optim.SGD",
                             "~agent.policy.optimizer.eps"])
    env.close()
    assert flat_model(agent.policy_model) is None
    assert flat_model(agent.value_model) is not None


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
