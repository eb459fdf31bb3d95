"""The standard partially observed benchmarks: classic-control and Box2D envs with their
velocity entries zeroed (rl-zoo3's ``*NoVel`` ids, same indices), so that a policy must infer
the velocities from the observations it has seen: ``memory=lstm|gru`` or ``env.frame_stack``.
Registered with Gymnasium when this package resolves env ids (``envs.registry``)."""

import gymnasium as gym
import numpy as np

#: the partially observed id -> (the full env's id, the observation entries zeroed)
NO_VELOCITY = {
    "CartPoleNoVel-v1": ("CartPole-v1", (1, 3)),  # cart velocity, pole angular velocity
    "PendulumNoVel-v1": ("Pendulum-v1", (2,)),  # angular velocity
    "MountainCarContinuousNoVel-v0": ("MountainCarContinuous-v0", (1,)),  # velocity
    "LunarLanderNoVel-v3": ("LunarLander-v3", (2, 3, 5)),  # x, y and angular velocities
}


class MaskVelocity(gym.ObservationWrapper):
    """Zeroes the observation entries at ``indices`` (the space is left as it is)."""

    def __init__(self, env: gym.Env, indices: tuple[int, ...]):
        super().__init__(env)
        self.keep = np.ones(env.observation_space.shape, dtype=env.observation_space.dtype)
        self.keep[list(indices)] = 0

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * self.keep


def make_no_velocity(full_id: str, indices: tuple[int, ...], **kwargs) -> gym.Env:
    """The bare env ``full_id`` (made with ``kwargs``; ``gymnasium.make`` of the partial id
    adds the time limit and checks around it) with its velocity entries zeroed."""
    return MaskVelocity(gym.make(full_id, **kwargs).unwrapped, indices)


def register_partial_envs() -> None:
    """Register every ``NO_VELOCITY`` id (once), with the full env's episode limit and
    reward threshold."""
    for env_id, (full_id, indices) in NO_VELOCITY.items():
        if env_id in gym.registry:
            continue
        full = gym.spec(full_id)
        gym.register(
            id=env_id,
            entry_point="torchrl_cli.envs.partial:make_no_velocity",
            kwargs={"full_id": full_id, "indices": indices},
            max_episode_steps=full.max_episode_steps,
            reward_threshold=full.reward_threshold,
        )
