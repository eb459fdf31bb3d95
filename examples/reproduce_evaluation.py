"""Reproduce a run's final evaluation (metrics.json's ``returns``) with Gymnasium and
``load_policy`` alone, outside torchrl-cli's evaluation code.

    python examples/reproduce_evaluation.py runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1

How the evaluation seeds its episodes (torchrl_cli/agents/evaluation.py, envs/gym_env.py):
- the evaluation env has ``eval_episodes`` copies and seed ``seed + 1_000_000``;
- copy ``i`` is reset with ``SeedSequence(seed + 1_000_000).generate_state(n)[i]`` and plays
  one episode with the deterministic policy; episode ``i`` of metrics.json is copy ``i``'s;
- except where the copies ran in Gymnasium's own vector env (CartPole with
  ``env.vectorization`` auto or native and 8 copies or more): it draws every copy's start from
  one generator, seeded with the first of those seeds.
"""

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf

import torchrl_cli

EVAL_SEED_OFFSET = 1_000_000  # torchrl_cli.agents.evaluation.EVAL_SEED_OFFSET


def gymnasium_native(env_id: str, vectorization: str, n: int) -> bool:
    """Whether the evaluation ran in Gymnasium's own vector env (of those torchrl-cli uses,
    CartPole's; Pendulum's native env is torchrl-cli's own and seeds each copy as above)."""
    if vectorization not in ("auto", "native") or (vectorization == "auto" and n < 8):
        return False
    return "CartPoleVectorEnv" in str(gym.spec(env_id).vector_entry_point)


def replay(run: Path) -> tuple[list[float], list[float]]:
    """metrics.json's returns, and the same episodes replayed here."""
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = OmegaConf.load(run / "config.yaml")
    policy = torchrl_cli.load_policy(run)
    n = metrics["episodes"]
    seeds = [int(s) for s in np.random.SeedSequence(metrics["seed"] + EVAL_SEED_OFFSET)
             .generate_state(n)]
    if gymnasium_native(cfg.env.id, cfg.env.vectorization, n):
        envs = gym.make_vec(cfg.env.id, num_envs=n, vectorization_mode="vector_entry_point")
        obs, _ = envs.reset(seed=seeds[0])
        returns, active = np.zeros(n), np.ones(n, dtype=bool)
        while active.any():  # one episode per copy: later episodes are not counted
            obs, reward, terminated, truncated, _ = envs.step(policy(obs))
            returns += reward * active
            active &= ~(terminated | truncated)
        return metrics["returns"], returns.tolist()
    returns = []
    for seed in seeds:
        env = policy.make_env()  # the run's env with its wrappers, as evaluation built it
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
        env.close()
    return metrics["returns"], returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (its metrics.json)")
    args = parser.parse_args()
    recorded, replayed = replay(args.run)
    for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
        print(f"episode {i:2d}: metrics.json {a:10.2f}  replayed {b:10.2f}")
    same = np.allclose(recorded, replayed, rtol=1e-4, atol=1e-2)
    print("every episode matches" if same else "episodes differ")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
