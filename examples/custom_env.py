"""An environment of your own, trained with no change to torchrl-cli.

Importing this module registers ``Corridor-v0``; torchrl-cli imports it for you when the env
is named ``<module>:<id>`` and the module is importable (on PYTHONPATH):

    PYTHONPATH=examples torchrl train env=custom_env:Corridor-v0 max_steps=20000
    PYTHONPATH=examples torchrl train env=custom_env:Corridor-v0 +env.kwargs.length=12
    python examples/custom_env.py --max-steps 20000      # the same, from Python

``env=custom_env:CorridorEnv`` (the class's name) works too, without the registration.
"""

import argparse

import gymnasium as gym
import numpy as np


class CorridorEnv(gym.Env):
    """Walk right along a corridor of ``length`` cells: -0.01 per step, +1 at the far end.

    Observation: the position as a one-hot Box vector. Actions: 0 left, 1 right.
    """

    def __init__(self, length: int = 8):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, np.float32)
        obs[self.position] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = int(self.np_random.integers(0, self.length // 2))
        return self._obs(), {}

    def step(self, action):
        self.position = min(max(self.position + (1 if action == 1 else -1), 0), self.length - 1)
        terminated = self.position == self.length - 1
        return self._obs(), 1.0 if terminated else -0.01, terminated, False, {}


if "Corridor-v0" not in gym.registry:  # run as a script, this module is imported twice
    gym.register("Corridor-v0", entry_point=CorridorEnv, max_episode_steps=100)


def main() -> None:
    import tempfile
    from pathlib import Path

    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=20_000)
    args = parser.parse_args()
    cfg = compose_config(["env=custom_env:Corridor-v0", f"max_steps={args.max_steps}",
                          "logger.console=quiet", "logger.progress=false"])
    run = Path(tempfile.mkdtemp(prefix="torchrl_example_")) / "corridor"
    metrics = train(cfg, run)
    print(f"Corridor-v0: mean return {metrics['mean_return']:.2f} after "
          f"{metrics['env_steps']} env steps; run folder {run}")


if __name__ == "__main__":
    main()
