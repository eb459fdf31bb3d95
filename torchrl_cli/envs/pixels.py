"""The pixel preset for image observations of non-ALE envs (CarRacing-v3, ...): grayscale,
resize and frame stack, as ``env.atari`` does for ALE games; each part switchable
(``env.pixels`` in the config, values in the schema)."""

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation, GrayscaleObservation, ResizeObservation

from torchrl_cli.envs.spaces import image_layout, is_pixels
from torchrl_cli.errors import ConfigError


def pixel_frames(space: gym.Space) -> bool:
    """Whether an observation space is one uint8 frame of pixels (RGB or gray, at least 36x36
    either way up): what the preset applies to. Smaller images (grids) and stacks are left."""
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8:
        return False
    layout = image_layout(space)
    if layout == "hw":
        return is_pixels(space.shape)
    height, width, channels = space.shape if layout == "hwc" else (0, 0, 0)
    return channels in (1, 3, 4) and is_pixels((channels, height, width))


def wrap_pixels(
    env: gym.Env, *, grayscale: bool, resize: int | None, frame_stack: int
) -> gym.Env:
    """Apply the preset to one env whose observations are pixel frames (else return it as it
    is). uint8 frames out: ``(frame_stack, H, W)`` in grayscale, ``(frame_stack, H, W, 3)``
    in color (the encoder moves channels first), oldest frame first."""
    if not pixel_frames(env.observation_space):
        return env
    shape = env.observation_space.shape
    if len(shape) == 3 and image_layout(env.observation_space) == "hwc" and shape[2] == 1:
        env = gym.wrappers.ReshapeObservation(env, shape[:2])  # gray already: (H, W)
    elif grayscale and len(shape) == 3:
        env = GrayscaleObservation(env, keep_dim=False)
    if resize is not None and tuple(env.observation_space.shape[:2]) != (resize, resize):
        try:
            env = ResizeObservation(env, (resize, resize))
        except gym.error.DependencyNotInstalled:
            raise ConfigError(
                "env.pixels.resize needs opencv: pip install opencv-python-headless, or keep "
                "the size with env.pixels.resize=null"
            ) from None
    if frame_stack > 1:
        env = FrameStackObservation(env, frame_stack)
    return env


def check_pixels(pixels) -> None:
    """ConfigError for ``env.pixels`` values out of range."""
    if pixels is None:
        return
    if pixels["resize"] is not None and pixels["resize"] < 1:
        raise ConfigError(f"env.pixels.resize={pixels['resize']} must be at least 1, or null")
    if pixels["frame_stack"] < 1:
        raise ConfigError(f"env.pixels.frame_stack={pixels['frame_stack']} must be at least 1")
