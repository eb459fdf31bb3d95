"""Atari preprocessing: the wrappers of Mnih et al. (2015) around an ALE env.

Gymnasium's AtariPreprocessing (no-op reset, frame skip with max-pooling, 84x84 grayscale),
ClipReward and FrameStackObservation do most of it; the two wrappers below are the ones Gymnasium
lacks. The env must emulate every frame (``frameskip=1``) since the preprocessing skips frames.
"""

from collections.abc import Mapping

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation

from torchrl_cli.errors import ConfigError

NOOP = 0  # ALE's action 0 is NOOP in every game's action set


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode for the learner (``terminated``) but not the game: the reset
    right after it plays one no-op step and goes on from there; every other reset (a game over,
    a time limit, a first reset) restarts the game. For training only: evaluation must see whole
    games."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.lost_life = False

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        self.lost_life = 0 < lives < self.lives and not (terminated or truncated)
        self.lives = lives
        return obs, reward, terminated or self.lost_life, truncated, info

    def reset(self, **kwargs):
        obs, info = self._continue() if self.lost_life else (None, {})
        if obs is None:
            obs, info = self.env.reset(**kwargs)
        self.lost_life = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def _continue(self):
        """One no-op step after a lost life; no observation if that step ended the game."""
        obs, _, terminated, truncated, info = self.env.step(NOOP)
        return (None, {}) if terminated or truncated else (obs, info)


class FireReset(gym.Wrapper):
    """Press FIRE after every reset, for games that wait for it to start (Breakout, ...)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.fire = env.unwrapped.get_action_meanings().index("FIRE")

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def needs_fire(env: gym.Env) -> bool:
    return "FIRE" in env.unwrapped.get_action_meanings()


def wrap_atari(
    env: gym.Env,
    *,
    noop_max: int,
    frame_skip: int,
    screen_size: int,
    frame_stack: int,
    episodic_life: bool,
    clip_reward: bool,
    training: bool,
) -> gym.Env:
    """Apply the preprocessing to one ALE env (``env.atari`` in the config holds the values).

    Returns uint8 observations ``(frame_stack, screen_size, screen_size)``, oldest frame first.
    Episodic life and reward clipping apply only when ``training``.
    """
    env = AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        terminal_on_life_loss=False,  # it would restart the game: EpisodicLife keeps it going
        grayscale_obs=True,
        scale_obs=False,  # frames stay uint8 up to the net, which scales them on the device
    )
    if training and episodic_life:
        env = EpisodicLife(env)
    if needs_fire(env):
        env = FireReset(env)
    if training and clip_reward:
        env = ClipReward(env, -1.0, 1.0)
    return FrameStackObservation(env, frame_stack)


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an ALE game (registered by ale-py)."""
    return "ale_py" in str(gym.spec(env_id).entry_point)


def check_atari(env_id: str, atari: Mapping | None) -> None:
    """ConfigError for an ``env.atari`` node that is set on a non-ALE env or out of range."""
    if atari is None:
        return
    if not is_atari(env_id):
        raise ConfigError(f"env.atari is set but '{env_id}' is not an ALE game; use env.atari=null")
    for key in ("frame_skip", "screen_size", "frame_stack"):
        if atari[key] < 1:
            raise ConfigError(f"env.atari.{key}={atari[key]} must be at least 1")
    if atari["noop_max"] < 0:
        raise ConfigError(f"env.atari.noop_max={atari['noop_max']} must be >= 0")
