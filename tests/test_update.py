"""The update a PGAgent runs after each rollout, on each backend: the ratio starts at 1,
advantages are normalized per minibatch, PPO-adaptive's beta moves once per batch, the KL
limit (PPO-adaptive's and the surrogate's) stops the epochs early, and a seed fixes the whole
update."""

import pytest
from conftest import TINY, make_agent

BACKENDS = ["torch", "numpy"]
# float32: (exp(x) - 1) - x at x ~ 1e-7 rounds to ~6e-8 per sample, so a rollout's own policy
# shows an approx KL within 1e-6 of 0; a moved one (lr 1e-2) is far above it
KL_OF_THE_SAME_POLICY = 1e-6


def _one_update(backend: str, env: str, *overrides: str) -> dict[str, list[float]]:
    agent, train_env = make_agent([*TINY, f"env={env}", f"agent.backend={backend}",
                                   "agent.num_epochs=2", *overrides])
    try:
        agent.step()
    finally:
        train_env.close()
    return agent.diagnostics


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ratio_is_one_on_the_first_minibatch_only(backend, env):
    """2 epochs x 2 minibatches: the first minibatch sees the rollout's own policy (KL ~0,
    nothing clipped), the later ones a policy that has moved."""
    diagnostics = _one_update(backend, env, "agent.lr=1e-2")
    kl, clipped = diagnostics["approx_kl"], diagnostics["clip_fraction"]
    assert len(kl) == 4
    assert abs(kl[0]) < KL_OF_THE_SAME_POLICY and clipped[0] == 0.0
    assert all(v > 10 * KL_OF_THE_SAME_POLICY for v in kl[1:]), kl


@pytest.mark.parametrize("backend", BACKENDS)
def test_advantages_are_normalized_per_minibatch(backend):
    """At ratio 1 the clipped objective is -mean(A) over the minibatch: 0 when the minibatch's
    own advantages are normalized (not the whole batch's), the raw mean when they are not."""
    on = _one_update(backend, "CartPole-v1", "agent.normalize_advantages=true")
    assert abs(on["policy_loss"][0]) < 1e-6
    off = _one_update(backend, "CartPole-v1", "agent.normalize_advantages=false")
    assert abs(off["policy_loss"][0]) > 0.1  # CartPole's raw advantages are mostly positive


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_seed_gives_the_same_update(backend):
    first = _one_update(backend, "Pendulum-v1")
    second = _one_update(backend, "Pendulum-v1")
    assert first == second


def test_beta_updates_once_per_batch_not_per_minibatch():
    """A real update of 4 epochs x 4 minibatches changes beta by one factor of 2 at most, and
    the minibatch losses all used the beta from before the update."""
    agent, env = make_agent([*TINY, "agent=ppo_adaptive", "agent.num_epochs=4",
                             "agent.num_mini_batches=4"], n_envs=2, seed=None)
    try:
        for _ in range(3):
            before = agent.policy_model.kl_penalty
            agent.step()
            assert agent.policy_model.kl_penalty / before in (0.5, 1.0, 2.0)
            assert all(b == before for b in agent.diagnostics["kl_beta"])
            assert len(agent.diagnostics["kl_beta"]) == 16
            assert len(agent.diagnostics["batch_kl"]) == 1
            agent.diagnostics.clear()
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_ppo_clip_kl_early_stop_takes_the_same_steps_on_each_backend(backend):
    """PPO-clip with a KL early stop (keys it inherits from the surrogate objective) stops its
    policy after the same minibatch step on both backends, the value model going on; the numpy
    update once ran all 40 (the drift the update driver, written once, removed)."""
    agent, env = make_agent(["agent=ppo_clip", "env=CartPole-v1", "env.n_envs=4",
                             "agent.n_steps=64", "agent.num_epochs=10",
                             "agent.num_mini_batches=4", "+agent.policy.kl_target=0.0001",
                             "+agent.policy.kl_early_stop=1.0", f"agent.backend={backend}"],
                            n_envs=4)
    try:
        assert agent.backend.updates == {"policy": backend, "value": backend}
        agent.step()
    finally:
        env.close()
    # the first minibatch has ratio 1 (KL 0), the second is past 1e-4
    assert len(agent.diagnostics["approx_kl"]) == 2
    assert len(agent.diagnostics["grad_norm_policy"]) == 2
    assert len(agent.diagnostics["grad_norm_value"]) == 10 * 4


@pytest.mark.parametrize("agent_name", ["ppo_adaptive", "surrogate_pg"])
@pytest.mark.parametrize(("early_stop", "minibatches"), [("1e-6", 2), ("null", 10 * 2)])
def test_kl_early_stop_skips_remaining_epochs(agent_name, early_stop, minibatches):
    """With kl_early_stop tiny, the first minibatch whose KL exceeds it ends the batch; null
    (the schema's default) runs all 10 epochs of 2 minibatches."""
    agent, env = make_agent([*TINY, f"agent={agent_name}", "agent.num_epochs=10",
                             "agent.policy.num_epochs=10",
                             f"agent.policy.kl_early_stop={early_stop}", "agent.lr=1e-2"],
                            n_envs=2, seed=None)
    try:
        agent.step()
    finally:
        env.close()
    # the first minibatch has ratio exactly 1 (KL 0); the second one is past 1e-6 x 0.01
    assert len(agent.diagnostics["approx_kl"]) == minibatches
