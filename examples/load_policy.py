"""Use a trained policy in your own loop: ``load_policy`` needs the run folder only.

    python examples/load_policy.py runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1
    python examples/load_policy.py --train-steps 4096   # train a small run first, then use it

The policy takes observations as ``policy.make_env()`` gives them (the run's env with its
wrappers) and returns the deterministic action, normalization and clipping included.
"""

import argparse
import tempfile
from pathlib import Path

import torchrl_cli


def small_run(steps: int) -> Path:
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    run = Path(tempfile.mkdtemp(prefix="torchrl_example_")) / "cartpole"
    train(compose_config([f"max_steps={steps}", "logger.console=quiet"]), run)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run folder")
    parser.add_argument("--checkpoint", default="last", help="last, best or a file")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=4096,
                        help="without a run folder: train one this long first")
    args = parser.parse_args()
    run = args.run or small_run(args.train_steps)

    policy = torchrl_cli.load_policy(run, checkpoint=args.checkpoint)
    env = policy.make_env()
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, steps, done = total + float(reward), steps + 1, terminated or truncated
        print(f"episode {episode}: return {total:.1f} in {steps} steps")
    env.close()


if __name__ == "__main__":
    main()
