"""`make bench-atari`: what Atari costs on this machine's CPU, with Gymnasium's vector envs and
with EnvPool (``env.vectorization=envpool``), for the PPO paper's Atari settings on Pong.

Two measurements per vectorization, one at a time: the env alone (``GymEnv.step`` with random
actions, 8 copies, preprocessing included) and the whole pipeline (``torchrl train
env=ALE/Pong-v5`` for ``--steps`` env steps: acting with the Nature CNN, the rollout, 3 epochs
of 4 minibatches; its training seconds exclude the one final evaluation). Writes
docs/atari.md; ``python -m bench.atari [--steps 8192] [--out docs/atari.md]``.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

ENV_ID = "ALE/Pong-v5"
MODES = ("sync", "async", "envpool")
N_ENVS = 8  # the PPO paper's Atari setting (the env file's)


def env_only(vectorization: str, seconds: float = 3.0) -> float:
    """Env steps per second of ``GymEnv.step`` alone, random actions (bench.perf's stepper)."""
    from bench.perf.collector import rate, raw_stepper
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.envs.factory import build_env

    cfg = compose_config([f"env={ENV_ID}", f"env.vectorization={vectorization}"])
    env = build_env(cfg.env, n_envs=N_ENVS)
    steps_per_second = rate(raw_stepper(env), seconds)
    env.close()
    return steps_per_second


def pipeline(vectorization: str, steps: int) -> dict:
    """A real ``torchrl train`` run: env steps per training second, and its wall time."""
    with tempfile.TemporaryDirectory() as cwd:
        run = Path(cwd) / "run"
        command = [str(Path(sys.executable).parent / "torchrl"), "train", f"env={ENV_ID}",
                   f"env.vectorization={vectorization}", f"max_steps={steps}", "eval_freq=0",
                   "eval_episodes=1", "logger.progress=false", "logger.console=quiet",
                   f"hydra.run.dir={run}"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        metrics = json.loads((run / "metrics.json").read_text())
    return {"env_steps": metrics["env_steps"], "train_seconds": metrics["train_seconds"],
            "wall_seconds": wall}  # fmt: skip


def write_report(rows: dict, steps: int, out: Path) -> None:
    lines = [
        "# Atari on this machine's CPU",
        "",
        f"Written by `make bench-atari` (bench/atari.py) on {date.today()}: "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {version('torch')}, ale-py {version('ale-py')}, envpool {version('envpool')}, "
        "one measurement at a time, nothing else running.",
        "",
        f"{ENV_ID}, {N_ENVS} copies with the Atari preset (no-op reset, frame skip 4 with "
        "max-pooling, 84x84 grayscale, FIRE reset, 4 stacked frames, episodic life, clipped "
        "rewards; sticky actions 0.25). Env alone: `GymEnv.step` with random actions. Whole "
        f"pipeline: `torchrl train env={ENV_ID} env.vectorization=<mode> max_steps={steps}`, "
        "PPO-clip with the PPO paper's Atari settings (8 x 128 steps, 3 epochs of 4 "
        "minibatches, Nature CNN), on the CPU.",
        "",
        "| vectorization | env alone (env steps/s) | whole pipeline (env steps per training s) "
        "| 10M steps at that rate |",
        "|---|---:|---:|---:|",
    ]
    for mode, row in rows.items():
        rate = row["pipeline"]["env_steps"] / row["pipeline"]["train_seconds"]
        lines.append(f"| {mode} | {row['env']:,.0f} | {rate:,.0f} | {1e7 / rate / 3600:,.1f} h |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path("docs/atari.md"))
    args = parser.parse_args()
    rows = {}
    for mode in MODES:
        rows[mode] = {"env": env_only(mode), "pipeline": pipeline(mode, args.steps)}
        print(mode, rows[mode], flush=True)
    write_report(rows, args.steps, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
