"""Atari through ale-py: the preprocessing pipeline, its config nodes, and a real CLI run."""

import json
import subprocess

import ale_py
import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, make_agent

from torchrl_cli.config.validate import validate
from torchrl_cli.envs.atari import EpisodicLife, FireReset, wrap_atari
from torchrl_cli.envs.factory import build_env
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn import PixelScale

gym.register_envs(ale_py)
ATARI = {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "frame_stack": 4,
         "episodic_life": True, "clip_reward": True}
# Short games keep the tests fast: ALE truncates an episode after this many emulator frames.
SHORT = ["+env.kwargs.max_num_frames_per_episode=400"]


def make_atari(game: str, training: bool, **changes) -> gym.Env:
    """One preprocessed ALE env as build_env makes each copy (deterministic: no sticky actions)."""
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    return wrap_atari(env, **{**ATARI, **changes}, training=training)


def chain(env: gym.Env) -> list[type]:
    """The wrapper classes from the outside in."""
    kinds = []
    while isinstance(env, gym.Wrapper):
        kinds.append(type(env))
        env = env.env
    return kinds


def frame_number(env: gym.Env) -> int:
    return env.unwrapped.ale.getEpisodeFrameNumber()


def test_vector_env_gives_uint8_frame_stacks():
    """env=ALE/Pong-v5: (4, 84, 84) uint8 observations, 6 actions, the ale_py simulator."""
    env = build_env(compose_config(["env=ALE/Pong-v5"]).env, n_envs=2)
    try:
        info = env.get_state_info()
        assert info.shape == (4, 84, 84) and info.dtype == "uint8"
        assert env.get_action_info().n == 6
        assert env.simulator == "ale_py"
        obs = env.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert obs.max() > 0
    finally:
        env.close()


def test_frame_stack_is_oldest_first():
    """After a step the stack shifts by one frame: the newest frame is the last channel."""
    env = make_atari("Pong", training=True)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        new, *_ = env.step(2)
        np.testing.assert_array_equal(new[:-1], obs[1:])
        obs = new
    assert not np.array_equal(obs[0], obs[-1])  # 20 steps in, the paddles and ball moved
    env.close()


def test_noop_reset_plays_a_random_number_of_noops():
    """Reset plays 1..noop_max no-op frames (seeded), then one FIRE step of frame_skip frames."""
    env = make_atari("Pong", training=True)
    starts = set()
    for seed in range(8):
        env.reset(seed=seed)
        starts.add(frame_number(env))
    assert len(starts) > 1
    assert all(4 + 1 <= n <= 4 + 30 for n in starts)
    env.close()
    env = make_atari("Pong", training=True, noop_max=0)
    env.reset(seed=0)
    assert frame_number(env) == 4  # only the FIRE step
    env.close()


class RecordActions(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(int(action))
        return self.env.step(action)


def test_fire_reset_presses_fire_only_where_needed():
    """Breakout waits for FIRE: it is pressed after every reset. Freeway has no FIRE: no wrapper."""
    base = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    recorder = RecordActions(base)
    env = FireReset(recorder)
    env.reset(seed=0)
    fire = base.unwrapped.get_action_meanings().index("FIRE")
    assert recorder.actions == [fire]
    env.close()
    assert FireReset in chain(make_atari("Breakout", training=True))
    assert FireReset not in chain(make_atari("Freeway", training=True))


def play_until_done(env: gym.Env, seed: int, max_steps: int = 5000) -> tuple[int, list[float]]:
    """Random actions until the first terminated step: (lives left then, rewards seen)."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rewards = []
    for _ in range(max_steps):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return env.unwrapped.ale.lives(), rewards


def test_episodic_life_for_training_only():
    """Training: losing a life ends the episode (lives left) and reset goes on with the same
    game. Evaluation: the episode ends at game over only."""
    train_env = make_atari("Breakout", training=True)
    lives, _ = play_until_done(train_env, seed=0)
    assert lives > 0 and EpisodicLife in chain(train_env)
    frames = frame_number(train_env)
    train_env.reset()
    assert frame_number(train_env) > frames  # the same game goes on
    assert train_env.unwrapped.ale.lives() == lives
    train_env.close()
    eval_env = make_atari("Breakout", training=False)
    lives, _ = play_until_done(eval_env, seed=0)
    assert lives == 0 and EpisodicLife not in chain(eval_env)
    eval_env.close()


def test_rewards_clipped_for_training_only():
    """SpaceInvaders scores 5 to 30 per invader: clipped to 1 in training, real in evaluation."""
    _, train_rewards = play_until_done(make_atari("SpaceInvaders", training=True), 0, 300)
    _, eval_rewards = play_until_done(make_atari("SpaceInvaders", training=False), 0, 300)
    assert max(train_rewards) == 1.0 and set(train_rewards) <= {-1.0, 0.0, 1.0}
    assert max(eval_rewards) >= 5.0


def test_build_env_evaluation_flag_drops_training_wrappers():
    """train.py builds the eval env with evaluation=True: no episodic life, no reward clipping."""
    cfg = compose_config(["env=ALE/Breakout-v5"])
    for evaluation, expected in ((False, True), (True, False)):
        env = build_env(cfg.env, n_envs=1, evaluation=evaluation)
        kinds = chain(env.vec.envs[0])
        assert (EpisodicLife in kinds) is expected
        assert (gym.wrappers.ClipReward in kinds) is expected
        env.close()


def test_frames_stay_uint8_in_the_rollout():
    """The rollout stores uint8 frames; the nets scale them (PixelScale) on the device."""
    agent, env = make_agent(["env=ALE/Pong-v5", *TINY, *SHORT], seed=0)
    try:
        rollout = agent.collector.collect(agent.values)
        assert rollout.obs.dtype == torch.uint8 and rollout.obs.shape == (32, 2, 4, 84, 84)
        assert any(isinstance(m, PixelScale) for m in agent.policy_model.net.modules())
        with torch.no_grad():
            scaled = agent.value_model(rollout.obs[0])
            torch.testing.assert_close(scaled, agent.value_model(rollout.obs[0].float() / 255))
    finally:
        env.close()


def test_every_ale_id_gets_the_atari_preset():
    """A file (ALE/Pong-v5) or a generated node (ALE/Seaquest-v5): preprocessing, Nature CNN,
    and the PPO paper's Atari values; a command-line net still wins."""
    for env_id in ("ALE/Pong-v5", "ALE/Breakout-v5", "ALE/Seaquest-v5"):
        cfg = compose_config([f"env={env_id}"])
        assert cfg.env.atari.frame_stack == 4 and cfg.net.name == "nature_cnn"
        assert (cfg.agent.n_steps, cfg.agent.lr, cfg.agent.policy.ppo_clip_range) == (
            128, 2.5e-4, 0.1)
        assert cfg.agent.policy.entropy_coef == 0.01 and cfg.agent.value.loss_coef == 1.0
    assert compose_config(["env=ALE/Pong-v5", "net=mlp"]).net.name == "mlp"
    assert compose_config(["env=CartPole-v1"]).env.atari is None


@pytest.mark.parametrize(("overrides", "message"), [
    (["env.atari.frame_stack=0"], "env.atari.frame_stack=0 must be at least 1"),
    (["env.atari.noop_max=-1"], "env.atari.noop_max=-1 must be >= 0"),
    (["env.id=CartPole-v1"], "env.atari is set but 'CartPole-v1' is not an ALE game"),
])
def test_bad_atari_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(["env=ALE/Pong-v5", *overrides]))


@pytest.mark.parametrize("override", ["env.atari.noop_max=5", "env.atari={noop_max: 5}"])
def test_atari_settings_on_a_non_ale_env_are_refused(override):
    """Setting env.atari on CartPole names the problem instead of Hydra's internal error."""
    from torchrl_cli.config.compose import compose_config as compose_cli

    with pytest.raises(ConfigError, match=r"env.atari applies to ALE games only"):
        compose_cli([override])


def test_pong_trains_through_the_cli(tmp_path, torchrl_bin, cli_env):
    """`torchrl train env=ALE/Pong-v5` for a few hundred steps: a real game score at the end."""
    proc = subprocess.run(
        [torchrl_bin, "train", "env=ALE/Pong-v5", *TINY, *SHORT, "eval_episodes=1",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ale_py" in proc.stdout and "nature_cnn" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["env_steps"] == 256
    assert -21 <= metrics["mean_return"] <= 21


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "ALE/Seaquest-v5"])
def test_missing_ale_py_names_the_extra(env_id, tmp_path, torchrl_bin, cli_env):
    """Without ale-py (an import that fails), one line naming the fix, exit code 2."""
    stub = tmp_path / "stub" / "ale_py"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ale_py'\", name='ale_py')\n")
    proc = subprocess.run([torchrl_bin, "train", f"env={env_id}"], cwd=tmp_path,
                          env={**cli_env, "PYTHONPATH": str(tmp_path / "stub")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"torchrl: error: env '{env_id}': Atari envs need ale-py, which is not installed; "
        "pip install 'torchrl-cli[atari]'"]
    assert not (tmp_path / "runs").exists()
