"""Native vector envs behind GymEnv (Gymnasium's CartPole, our Pendulum): same-step autoreset,
Pendulum's exactness against Gymnasium's, the auto choice, seeding and the refusals."""

import io

import gymnasium as gym
import numpy as np
import pytest
from conftest import THETA_LIMIT, X_LIMIT, balance, compose_config, needs_envpool
from rich.console import Console

from torchrl_cli.envs import GymEnv
from torchrl_cli.envs.pendulum import PendulumVectorEnv
from torchrl_cli.errors import ConfigError


def test_auto_picks_native_from_eight_copies_without_wrappers_or_rendering():
    assert GymEnv("CartPole-v1", n_envs=8, vectorization="auto").vectorization == "native"
    assert GymEnv("CartPole-v1", n_envs=4, vectorization="auto").vectorization == "sync"
    assert GymEnv("Pendulum-v1", n_envs=8, vectorization="auto").vectorization == "native"
    assert GymEnv("Pendulum-v1", n_envs=4, vectorization="auto").vectorization == "sync"
    wrapped = GymEnv("CartPole-v1", n_envs=8, vectorization="auto", wrappers=[lambda e: e])
    assert wrapped.vectorization == "sync"
    rendered = GymEnv("Pendulum-v1", n_envs=8, vectorization="auto", render_mode="rgb_array")
    assert rendered.vectorization == "sync"


def test_native_is_refused_where_it_cannot_serve():
    with pytest.raises(ConfigError, match="no native vector env"):
        GymEnv("Acrobot-v1", n_envs=2, vectorization="native")
    with pytest.raises(ConfigError, match="takes no env.wrappers"):
        GymEnv("CartPole-v1", n_envs=2, vectorization="native", wrappers=[lambda e: e])
    with pytest.raises(ConfigError, match="use vectorization=sync"):
        GymEnv("Pendulum-v1", n_envs=2, vectorization="native", render_mode="rgb_array")


def test_terminated_copies_reset_in_the_same_step():
    """A copy that falls returns its terminal observation in final_obs and a fresh start state
    (every component within +-0.05) in obs, in that same step; the others are untouched."""
    env = GymEnv("CartPole-v1", n_envs=16, vectorization="native")
    env.reset(seed=0)
    ends = 0
    for _ in range(200):
        step = env.step(np.zeros(16, dtype=np.int64))  # always push left: falls within ~10 steps
        done = step.terminated | step.truncated
        if not done.any():
            assert step.final_obs is None
            continue
        ends += done.sum()
        final = step.final_obs[step.terminated]
        assert np.all((np.abs(final[:, 0]) > X_LIMIT) | (np.abs(final[:, 2]) > THETA_LIMIT))
        assert np.all(np.abs(step.obs[done]) <= 0.05)
        np.testing.assert_array_equal(step.final_obs[~done], step.obs[~done])
    assert ends > 100


@pytest.mark.parametrize("vectorization", ["native", pytest.param("envpool", marks=needs_envpool)])
def test_time_limit_truncates_at_500_and_restarts_the_copy(vectorization):
    env = GymEnv("CartPole-v1", n_envs=8, vectorization=vectorization)
    obs, lengths, ended = env.reset(seed=1), np.zeros(8, dtype=int), []
    for _ in range(1100):
        step = env.step(balance(obs))
        lengths += 1
        assert not step.terminated.any()
        for i in np.flatnonzero(step.truncated):
            ended.append(lengths[i])
            lengths[i] = 0
            assert np.all(np.abs(step.obs[i]) <= 0.05)
        obs = step.obs
    assert ended == [500] * 16
    env.close()


@pytest.mark.parametrize(("env_id", "actions"), [
    ("CartPole-v1", np.ones(8, dtype=np.int64)),
    ("Pendulum-v1", np.ones((8, 1), dtype=np.float32)),
])
def test_native_reset_is_seeded(env_id, actions):
    """Same seed, same trajectory (through Pendulum's time-limit restarts); another seed differs."""
    a, b = (GymEnv(env_id, n_envs=8, vectorization="native") for _ in range(2))
    np.testing.assert_array_equal(a.reset(seed=3), b.reset(seed=3))
    for _ in range(250):
        np.testing.assert_array_equal(a.step(actions).obs, b.step(actions).obs)
    assert not np.array_equal(a.reset(seed=3), a.reset(seed=4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_pendulum_steps_bit_for_bit_as_gymnasium(dtype):
    """From the start states of 16 ``gym.make("Pendulum-v1")`` envs and under the same random
    torques (a third of them out of bounds, so clipped), our native env gives identical
    observations and rewards; every copy is truncated at step 200 with its last observation in
    final_obs and a new start state in obs, from which both step on alike."""
    rng = np.random.default_rng(0)
    singles = [gym.make("Pendulum-v1") for _ in range(16)]
    env = GymEnv("Pendulum-v1", n_envs=16, vectorization="native")
    env.reset(seed=0)
    vec = env.vec.unwrapped
    for i, single in enumerate(singles):
        single.reset(seed=i)
    vec.theta, vec.theta_dot = np.array([s.unwrapped.state for s in singles]).T.copy()
    for t in range(1, 261):
        actions = rng.uniform(-3.0, 3.0, size=(16, 1)).astype(dtype)
        expected = [single.step(a) for single, a in zip(singles, actions, strict=True)]
        step = env.step(actions)
        obs = np.stack([e[0] for e in expected])
        assert np.array_equal(step.reward, np.array([e[1] for e in expected]))
        assert step.reward.dtype == np.float64 and step.obs.dtype == np.float32
        assert not step.terminated.any()
        assert step.truncated.all() == (t == 200) and step.truncated.any() == (t == 200)
        if t != 200:
            assert step.final_obs is None and np.array_equal(step.obs, obs)
            continue
        assert np.array_equal(step.final_obs, obs)
        assert np.all(np.abs(vec.theta) <= np.pi) and np.all(np.abs(vec.theta_dot) <= 1.0)
        start_obs = np.c_[np.cos(vec.theta), np.sin(vec.theta), vec.theta_dot]
        assert np.array_equal(step.obs, start_obs.astype(np.float32))
        for single, start in zip(singles, np.c_[vec.theta, vec.theta_dot], strict=True):
            single.reset()  # restarts the time limit; the start state is ours
            single.unwrapped.state = start.copy()


def test_pendulum_alone_restarts_on_the_next_step():
    """Without ``reset_copies``, a truncated copy restarts on the step after (NEXT_STEP, as
    Gymnasium's own native vector envs), with a zero reward on that step."""
    env = PendulumVectorEnv(num_envs=4, max_episode_steps=3)
    env.reset(seed=0)
    actions = np.zeros((4, 1), dtype=np.float32)
    assert [env.step(actions)[3].all() for _ in range(3)] == [False, False, True]
    obs, reward, terminated, truncated, _ = env.step(actions)
    assert not (terminated.any() or truncated.any()) and np.all(reward == 0.0)
    assert np.all(env.steps == 0) and np.all(np.abs(obs[:, 2]) <= 1.0)


def test_native_pendulum_is_the_sync_env_exactly_resets_included():
    """Each native copy draws its start states from the stream its sync twin would: seeded
    alike, both step identically through two time-limit restarts."""
    native = GymEnv("Pendulum-v1", n_envs=8, vectorization="native")
    sync = GymEnv("Pendulum-v1", n_envs=8, vectorization="sync")
    try:
        assert np.array_equal(native.reset(seed=5), sync.reset(seed=5))
        rng = np.random.default_rng(1)
        for _ in range(450):
            actions = rng.uniform(-2.5, 2.5, size=(8, 1)).astype(np.float32)
            a, b = native.step(actions), sync.step(actions)
            assert np.array_equal(a.obs, b.obs) and np.array_equal(a.reward, b.reward)
            assert np.array_equal(a.truncated, b.truncated)
            assert (a.final_obs is None) == (b.final_obs is None)
            if a.final_obs is not None:
                assert np.array_equal(a.final_obs, b.final_obs)
    finally:
        native.close()
        sync.close()


def test_a_seeded_pendulum_run_is_the_same_native_or_sync():
    from torchrl_cli.run.train import train

    def run(vectorization: str) -> dict:
        cfg = compose_config(["env=Pendulum-v1", "env.n_envs=8", "agent.n_steps=64",
                              f"env.vectorization={vectorization}", "max_steps=4096",
                              "eval_freq=2048", "eval_episodes=8", "seed=3"])
        return train(cfg, run_dir=None, console=Console(file=io.StringIO()))

    native, sync = run("native"), run("sync")
    assert native["returns"] == sync["returns"]
    assert [e["mean_return"] for e in native["evaluations"]] == \
        [e["mean_return"] for e in sync["evaluations"]]
