"""Checkpoint pieces: env snapshots, random states, atomic files, model extra state."""

import random

import numpy as np
import pytest
import torch
from conftest import make_agent, needs_envpool

from torchrl_cli.agents.rng import rng_state, set_rng_state
from torchrl_cli.envs import GymEnv
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def _random_actions(env: GymEnv, rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    space = env.vec.action_space
    space.seed(int(rng.integers(1 << 31)))
    return [space.sample() for _ in range(steps)]


@pytest.mark.parametrize(("env_id", "vectorization"), [
    ("CartPole-v1", "sync"), ("CartPole-v1", "async"), ("CartPole-v1", "native"),
    ("Pendulum-v1", "sync"), ("Pendulum-v1", "native"),
    ("HalfCheetah-v5", "sync"),
])
def test_env_snapshot_continues_the_same_episodes(env_id, vectorization):
    """A fresh env given another env's snapshot mid-episode steps exactly as the original."""
    rng = np.random.default_rng(0)
    original = GymEnv(env_id, n_envs=3, vectorization=vectorization)
    copy = GymEnv(env_id, n_envs=3, vectorization=vectorization)
    try:
        assert original.restorable
        original.reset(seed=1)
        copy.reset(seed=2)
        for action in _random_actions(original, rng, 40):
            original.step(action)
        copy.set_state(original.get_state())
        for action in _random_actions(original, rng, 300):  # through terminations and resets
            a, b = original.step(action), copy.step(action)
            assert np.array_equal(a.obs, b.obs) and np.array_equal(a.reward, b.reward)
            assert np.array_equal(a.terminated | a.truncated, b.terminated | b.truncated)
    finally:
        original.close()
        copy.close()


@pytest.mark.parametrize("env_overrides", [
    ["env=LunarLander-v3"],
    pytest.param(["env=CartPole-v1", "env.vectorization=envpool"], marks=needs_envpool),
], ids=["box2d", "envpool"])
def test_not_restorable_resumes_with_new_episodes(env_overrides):
    """LunarLander's state lives in a Box2D world, EnvPool's in its C++ pool: the batcher
    restarts their episodes instead."""
    if env_overrides[0] == "env=LunarLander-v3":
        pytest.importorskip("Box2D")
    agent, env = make_agent([*env_overrides, "env.n_envs=2", "agent.n_steps=8",
                             "agent.num_mini_batches=2"])
    try:
        assert not env.restorable
        agent.step()
        state = agent.state_dict()
        assert agent.load_state_dict(state, seed=0) is False
        assert agent.num_steps == state["batcher"]["num_steps"]
        assert agent.collector.episode_lengths.tolist() == [0, 0]
    finally:
        env.close()


def test_random_states_round_trip_through_a_checkpoint(tmp_path):
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    save_checkpoint(tmp_path / "c.pt", {"format": 1, "rng": state})
    set_rng_state(read_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_damaged_files_are_reported_as_corrupted(tmp_path):
    """Random bytes, and a real checkpoint cut or flipped at seeded places: always ConfigError."""
    rng = random.Random(0)
    save_checkpoint(tmp_path / "good.pt", {"format": 1, "w": torch.zeros(100)})
    good = (tmp_path / "good.pt").read_bytes()
    for i in range(60):
        damaged = bytearray(good)
        if i % 3 == 0:
            damaged = bytearray(rng.randbytes(rng.randrange(1, 4096)))
        elif i % 3 == 1:
            damaged = damaged[: rng.randrange(len(good))]
        else:
            for _ in range(8):
                damaged[rng.randrange(len(good))] = rng.randrange(256)
        (tmp_path / "bad.pt").write_bytes(bytes(damaged))
        try:
            load_checkpoint(tmp_path / "bad.pt")
        except ConfigError as err:
            assert "bad.pt" in str(err)


def test_atomic_write_leaves_no_temporary_file_and_refuses_foreign_files(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"format": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="is not a torchrl-cli checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_ppo_adaptive_beta_travels_in_the_state_dict():
    """beta (kl_penalty) changes in training; a restored model goes on from its value."""
    agent, env = make_agent(["agent=ppo_adaptive", "env.n_envs=2", "agent.n_steps=16"])
    other, other_env = make_agent(["agent=ppo_adaptive", "env.n_envs=2", "agent.n_steps=16"])
    try:
        agent.policy_model.kl_penalty = 0.125
        other.policy_model.load_state_dict(agent.policy_model.state_dict())
        assert other.policy_model.kl_penalty == 0.125
    finally:
        env.close()
        other_env.close()

