"""Run an exported policy with onnxruntime alone: no torch, no torchrl-cli.

    torchrl export runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1 format=onnx out=cartpole.onnx
    python examples/onnx_inference.py cartpole.onnx --env CartPole-v1
    python examples/onnx_inference.py --train-steps 4096   # train and export a small run first

The model takes the env's raw observations (one input per entry of a Dict space, named as the
entries) and returns the action as the env takes it; normalization and clipping are inside.
"""

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime

# ONNX tensor types -> numpy dtypes, for the observations fed to the model
DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
          "tensor(int8)": np.int8}


def feed(session: onnxruntime.InferenceSession, obs) -> dict[str, np.ndarray]:
    """One observation as the model's inputs: a batch of one, in each input's dtype."""
    inputs = session.get_inputs()
    if isinstance(obs, dict):
        return {i.name: np.asarray(obs[i.name], dtype=DTYPES[i.type])[None] for i in inputs}
    return {inputs[0].name: np.asarray(obs, dtype=DTYPES[inputs[0].type])[None]}


def play(model: Path, env_id: str, episodes: int) -> list[float]:
    session = onnxruntime.InferenceSession(str(model))
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        total, steps, done = 0.0, 0, False
        while not done:
            action = session.run(["action"], feed(session, obs))[0][0]  # the batch's one row
            obs, reward, terminated, truncated, _ = env.step(action)
            total, steps, done = total + float(reward), steps + 1, terminated or truncated
        print(f"episode {episode}: return {total:.1f} in {steps} steps")
        returns.append(total)
    env.close()
    return returns


def small_export(steps: int) -> tuple[Path, str]:
    """Train a small CartPole run and export its policy: the only part that needs torchrl-cli."""
    from torchrl_cli.cli import main
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    run = Path(tempfile.mkdtemp(prefix="torchrl_example_")) / "cartpole"
    train(compose_config([f"max_steps={steps}", "logger.console=quiet"]), run)
    model = run / "cartpole.onnx"
    if main(["export", str(run), "format=onnx", f"out={model}"]) != 0:
        raise SystemExit("the export failed (pip install 'torchrl-cli[onnx]')")
    return model, "CartPole-v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="an ONNX file of torchrl export")
    parser.add_argument("--env", default="CartPole-v1", help="the Gymnasium id the run trained on")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=4096,
                        help="without a model: train and export a run this long first")
    args = parser.parse_args()
    model, env_id = (args.model, args.env) if args.model else small_export(args.train_steps)
    returns = play(model, env_id, args.episodes)
    print(f"{model.name} on {env_id}: mean return {np.mean(returns):.1f}")


if __name__ == "__main__":
    main()
