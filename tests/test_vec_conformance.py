"""One conformance test that every registered vectorization passes (``envs.vector``), as
GymEnv drives it: reset and step shapes and dtypes, seeding, the same-step autoreset with the
final observation, a time-limit truncation with its final observation, snapshot and restore for
exact resume where restorable, legal-action masks where the copies give them, close."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from torchrl_cli.envs import BaseEnv, GymEnv
from torchrl_cli.envs.vector import VECTORIZATIONS

sys.path.insert(0, str(Path(__file__).resolve().parent / "envmods"))
N = 4
LIMIT = 12  # a time limit short enough that every copy hits it


def make(name: str, **kwargs) -> GymEnv:
    if name == "envpool" and importlib.util.find_spec("envpool") is None:
        pytest.skip("envpool is not installed")
    return GymEnv("CartPole-v1", n_envs=N, vectorization=name, **kwargs)


def pushes(steps: int) -> list[np.ndarray]:
    """A fixed action sequence that keeps the pole up for a while: left, right, left, ..."""
    return [np.full(N, t % 2, dtype=np.int64) for t in range(steps)]


@pytest.fixture(params=sorted(VECTORIZATIONS))
def name(request) -> str:
    return request.param


def test_every_vectorization_is_a_complete_base_env(name):
    env = make(name)
    try:
        assert isinstance(env, BaseEnv)
        assert env.vectorization == name and env.n_envs == N
        assert env.get_state_info().shape == (4,) and env.get_action_info().n == 2
        assert env.simulator == "classic_control"
        assert isinstance(env.state_holder, str) and isinstance(env.restorable, bool)
        assert env.action_mask is None  # CartPole gives no legal actions
    finally:
        env.close()


def test_reset_and_step_shapes_dtypes_and_seeding(name):
    first, again, other = make(name), make(name), make(name)
    try:
        obs = first.reset(seed=3)
        assert obs.shape == (N, 4) and obs.dtype == np.float32
        assert len({tuple(row) for row in obs}) == N  # each copy its own stream
        np.testing.assert_array_equal(again.reset(seed=3), obs)
        assert not np.array_equal(other.reset(seed=4), obs)
        step = first.step(np.ones(N, dtype=np.int64))
        assert step.obs.shape == (N, 4) and step.obs.dtype == np.float32
        assert step.reward.shape == (N,)
        assert step.terminated.shape == step.truncated.shape == (N,)
        assert step.terminated.dtype == step.truncated.dtype == np.bool_
        assert step.final_obs is None or step.final_obs.shape == (N, 4)
        assert step.action_mask is None
    finally:
        for env in (first, again, other):
            env.close()


def test_a_finished_copy_restarts_on_the_same_step_with_its_final_observation(name):
    env = make(name)
    try:
        obs = env.reset(seed=0)
        for _ in range(200):
            step = env.step(np.ones(N, dtype=np.int64))  # always right: the pole falls
            done = step.terminated | step.truncated
            if done.any():
                break
            obs = step.obs
        else:
            pytest.fail("no copy terminated in 200 steps of pushing right")
        assert step.terminated[done].all() and not step.truncated.any()
        assert step.final_obs is not None
        # the finished copies: the last observation of the old episode, past a bound
        final = step.final_obs[done]
        assert (np.abs(final[:, 2]) > 0.2).all() or (np.abs(final[:, 0]) > 2.4).all()
        # ... and the new episode's first observation, near the centre (CartPole's start)
        assert (np.abs(step.obs[done]) <= 0.05).all()
        # the others go on: their final_obs rows equal their observations
        np.testing.assert_array_equal(step.final_obs[~done], step.obs[~done])
        assert not np.array_equal(obs[done], step.obs[done])
    finally:
        env.close()


def test_a_time_limit_truncates_with_the_final_observation(name):
    env = make(name, max_episode_steps=LIMIT)
    try:
        env.reset(seed=1)
        for t, action in enumerate(pushes(LIMIT), start=1):
            step = env.step(action)
            if t < LIMIT:
                assert not (step.terminated | step.truncated).any()
        assert step.truncated.all() and not step.terminated.any()
        assert step.final_obs is not None
        assert not np.array_equal(step.final_obs, step.obs)
        assert (np.abs(step.obs) <= 0.05).all()  # every copy restarted
    finally:
        env.close()


def test_a_snapshot_restores_the_episodes_in_progress_where_restorable(name):
    env = make(name)
    try:
        env.reset(seed=2)
        for action in pushes(5):
            env.step(action)
        state = env.get_state()
        assert isinstance(state, list) and all(isinstance(s, str) for s in state)
        before = [env.step(a).obs.copy() for a in pushes(30)]
        env.set_state(state)
        after = [env.step(a).obs.copy() for a in pushes(30)]
        if env.restorable:
            for want, got in zip(before, after, strict=True):
                np.testing.assert_array_equal(got, want)
        with pytest.raises(ValueError, match="snapshots given"):
            env.set_state([*state, *state])
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["torchrl_test_envs:MaskedChoice",
                                    "torchrl_test_envs:InfoMaskedChoice"])
def test_copies_that_give_legal_actions_have_them_after_reset_and_step(name, env_id):
    if VECTORIZATIONS[name].per_copy is False:
        pytest.skip(f"{name} steps a whole batch of one simulator: no masked env of its own")
    env = GymEnv(env_id, n_envs=N, vectorization=name)
    try:
        env.reset(seed=0)
        assert env.action_mask.shape == (N, 8) and env.action_mask.dtype == np.bool_
        step = env.step(np.array([np.flatnonzero(m)[0] for m in env.action_mask]))
        assert step.action_mask is env.action_mask and step.action_mask.any(axis=1).all()
    finally:
        env.close()


def test_close_releases_the_copies(name):
    env = make(name)
    env.reset(seed=0)
    env.close()
    if name == "async":  # the worker processes are gone
        assert all(not p.is_alive() for p in env.vec.processes)


def test_every_vectorization_logs_episode_statistics(name):
    """Episode statistics never vanish silently (issue 27, item 14): a rollout on each
    vectorization ends episodes, and the log holds their mean return and length (CartPole pays
    1 a step: the two are equal)."""
    from conftest import TINY, make_agent

    if name == "envpool" and importlib.util.find_spec("envpool") is None:
        pytest.skip("envpool is not installed")
    agent, env = make_agent([*TINY, f"env.vectorization={name}", f"env.n_envs={N}",
                             "agent.n_steps=64"])
    logged = []
    log = agent.logger.log
    agent.logger.log = lambda step, **kwargs: logged.append(log(step, **kwargs)) or logged[-1]
    try:
        agent.step()
        agent.write_logs()
    finally:
        env.close()
    assert agent.num_episodes > 0
    means = logged[-1]
    assert means["charts/episode_return"] > 0
    assert means["charts/episode_return"] == means["charts/episode_length"]
