"""`make bench-pixels`: image observations, torchrl-cli beside Stable-Baselines3 on this CPU, with
the time of each phase of the training loop.

Per env (ALE/Pong-v5 with the standard Atari preprocessing, CarRacing-v3 with the pixel preset,
MiniGrid-Empty-8x8-v0's 7x7 view) and per thread count, the two tools train alternately (ours,
Stable-Baselines3, ours, ...) for the same env steps with the same PPO hyperparameters: ours
as composed for the env, given to Stable-Baselines3 (its CnnPolicy, one CNN shared by policy and
value; a small grid CNN like ours for MiniGrid). Each run is a fresh process; phases are timed
by wrapping the loops' own methods (so the figures include nothing but the wrapped calls):
env (the vector env's step, preprocessing included), collect (the rollout: acting + env),
values (ours: the value pass over the rollout), update (advantages + epochs), evaluation and
logging. ``--tree`` runs ours from another checkout (a before/after pair from one bench run).

    python -m bench.pixels [--steps 16384] [--threads 1 2] [--repeats 2] [--envs pong ...]
                           [--tree PATH] [--out docs/pixels-bench.md] [--smoke]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Task:
    key: str
    env_id: str
    steps: int  # env steps of a full bench run
    overrides: tuple[str, ...] = ()  # ours, on top of the env's files


TASKS = {
    # the PPO paper's Atari settings, 4 epochs (PIXELS.md's protocol); the tuned file has 3
    "pong": Task("pong", "ALE/Pong-v5", 16_384, ("agent.num_epochs=4",)),
    "carracing": Task("carracing", "CarRacing-v3", 4_096),
    "minigrid": Task("minigrid", "MiniGrid-Empty-8x8-v0", 16_384),
}


# ---------------------------------------------------------------- the worker (one process, one run)


class Phases:
    """Seconds per phase: ``wrap(cls, name, phase)`` times every call of ``cls.name``; a call
    inside another timed call of the same phase is not counted twice."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)

    def wrap(self, cls, name: str, phase: str) -> None:
        inner = getattr(cls, name)

        def timed(*args, **kwargs):
            if self.depth[phase]:
                return inner(*args, **kwargs)
            self.depth[phase] += 1
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.depth[phase] -= 1

        setattr(cls, name, timed)


def ours_worker(task: Task, threads: int, steps: int, evaluation: bool) -> dict:
    from torchrl_cli.agents.base import BaseAgent
    from torchrl_cli.agents.pg import PGAgent
    from torchrl_cli.cli import main
    from torchrl_cli.rollout.collector import Collector

    phases = Phases()
    phases.wrap(Collector, "env_step", "env")
    phases.wrap(Collector, "steps", "collect")
    phases.wrap(Collector, "estimate_values", "values")
    phases.wrap(PGAgent, "learn", "update")
    phases.wrap(BaseAgent, "evaluate", "evaluation")
    phases.wrap(BaseAgent, "write_logs", "logging")
    run = Path(os.environ["PIXELS_RUN_DIR"])
    argv = ["train", f"env={task.env_id}", *task.overrides, f"max_steps={steps}",
            f"torch_threads={threads}", "logger.progress=false", "logger.console=quiet",
            f"hydra.run.dir={run}"]  # fmt: skip
    if not evaluation:
        argv += ["eval_freq=0", "eval_episodes=1"]
    start = time.perf_counter()
    if main(argv):
        raise SystemExit(f"torchrl {' '.join(argv)} failed")
    wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    return {"wall": wall, "train": metrics["train_seconds"], "steps": metrics["env_steps"],
            **phases.seconds}  # fmt: skip


def ours_hyperparameters(task: Task) -> dict:
    """The PPO settings ours composes for ``task`` (given to Stable-Baselines3 as they are)."""
    from torchrl_cli.config.compose import compose_config

    cfg = compose_config([f"env={task.env_id}", *task.overrides])
    agent = cfg.agent
    n_envs = cfg.env.n_envs
    return {
        "n_envs": n_envs,
        "n_steps": agent.n_steps,
        "batch_size": agent.n_steps * n_envs // agent.num_mini_batches,
        "n_epochs": agent.num_epochs,
        "learning_rate": agent.lr,
        "gamma": agent.gamma,
        "gae_lambda": agent.advantage.gae_lambda,
        "clip_range": agent.policy.ppo_clip_range,
        "ent_coef": agent.policy.entropy_coef,
        "vf_coef": agent.value.loss_coef,
        "max_grad_norm": agent.clip_grad_norm,
        "normalize_advantage": agent.normalize_advantages,
        "frame_stack": cfg.env.atari.frame_stack if cfg.env.get("atari") else 4,
    }


def sb3_env(task: Task, n_envs: int, frame_stack: int, seed: int):
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

    if task.key == "pong":
        import ale_py

        gym.register_envs(ale_py)
        # frameskip=1: AtariWrapper skips 4 frames itself, as ours passes frameskip=1 to v5
        env = make_atari_env(task.env_id, n_envs=n_envs, seed=seed,
                             env_kwargs={"frameskip": 1})  # fmt: skip
        return VecTransposeImage(VecFrameStack(env, frame_stack))
    if task.key == "carracing":

        def pixels(env):
            env = gym.wrappers.GrayscaleObservation(env, keep_dim=True)
            return gym.wrappers.ResizeObservation(env, (84, 84))

        env = make_vec_env(task.env_id, n_envs=n_envs, seed=seed, wrapper_class=pixels)
        return VecTransposeImage(VecFrameStack(env, frame_stack))
    import minigrid
    from minigrid.wrappers import ImgObsWrapper

    del minigrid
    return make_vec_env(task.env_id, n_envs=n_envs, seed=seed, wrapper_class=ImgObsWrapper)


def grid_extractor():
    """ours' grid_cnn for Stable-Baselines3 (its NatureCNN needs 36x36 images or more)."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class GridCNN(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 64):
            super().__init__(observation_space, features_dim)
            channels = observation_space.shape[0]
            self.cnn = nn.Sequential(
                nn.Conv2d(channels, 16, 2), nn.ReLU(), nn.Conv2d(16, 32, 2), nn.ReLU(),
                nn.Conv2d(32, 64, 2), nn.ReLU(), nn.Flatten(),
            )  # fmt: skip
            with torch.no_grad():
                n = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
            self.linear = nn.Sequential(nn.Linear(n, features_dim), nn.Tanh())

        def forward(self, obs):
            return self.linear(self.cnn(obs.float()))

    return GridCNN


def sb3_worker(task: Task, threads: int, steps: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv
    from threadpoolctl import threadpool_limits

    from bench.perf.sb3 import unlogged

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")
    hp = ours_hyperparameters(task)
    env = sb3_env(task, hp.pop("n_envs"), hp.pop("frame_stack"), seed=0)
    phases = Phases()
    phases.wrap(DummyVecEnv, "step_wait", "env")
    phases.wrap(PPO, "collect_rollouts", "collect")
    phases.wrap(PPO, "train", "update")
    kwargs = {}
    if task.key == "minigrid":
        kwargs["policy_kwargs"] = {"features_extractor_class": grid_extractor(),
                                   "normalize_images": False}  # fmt: skip
    start = time.perf_counter()
    model = unlogged(PPO("CnnPolicy", env, seed=0, device="cpu", verbose=0, **hp, **kwargs))
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    return {"wall": wall, "train": wall, "steps": model.num_timesteps, **phases.seconds}


def worker(args: argparse.Namespace) -> None:
    task = TASKS[args.env]
    if args.worker == "ours":
        result = ours_worker(task, args.threads, args.steps, args.evaluation)
    else:
        result = sb3_worker(task, args.threads, args.steps)
    print("PIXELS " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the driver


def one_run(tool: str, task: Task, threads: int, steps: int, tree: Path, evaluation: bool,
            scratch: Path) -> dict:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}",
           "PIXELS_RUN_DIR": str(scratch / f"{tool}-{task.key}-{time.time_ns()}")}  # fmt: skip
    command = [sys.executable, "-m", "bench.pixels", "--worker", tool, "--env", task.key,
               "--threads", str(threads), "--steps", str(steps)]  # fmt: skip
    if evaluation:
        command.append("--evaluation")
    start = time.perf_counter()
    out = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True)
    process = time.perf_counter() - start
    line = next((x for x in out.stdout.splitlines() if x.startswith("PIXELS ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"{tool} {task.key} failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    return {**json.loads(line[len("PIXELS ") :]), "process": process}


def rate(run: dict) -> float:
    return run["steps"] / run["train"]


def table(rows: list[tuple[str, list[dict]]]) -> list[str]:
    phases = ("env", "collect", "values", "update", "evaluation", "logging")
    lines = ["| run | threads | env steps/s | process s | train s | "
             + " | ".join(f"{p} s" for p in phases) + " |",
             "|---|---|---|---|---|" + "---|" * len(phases)]  # fmt: skip
    for name, runs in rows:
        for run in runs:
            cells = [f"{run.get(p, 0.0):.1f}" if p in run else "—" for p in phases]
            lines.append(f"| {name} | {run['threads']} | {rate(run):.0f} | "
                         f"{run['process']:.1f} | {run['train']:.1f} | " + " | ".join(cells)
                         + " |")  # fmt: skip
    return lines


def evaluation_shares(keys: list[str], summary: list, tree: Path, scratch: Path) -> list[str]:
    """The evaluation's share of a default run (``torchrl train env=<id>``, its env file's
    ``max_steps``, ``eval_freq`` and ``eval_episodes``): one evaluation timed in a short run
    with the defaults (an untrained policy: Pong's games are short then, 21-0), training at
    the rate the side-by-side measured at one thread."""
    from torchrl_cli.config.compose import compose_config

    lines = ["## The evaluation's share of a default run", "",
             "| env | max_steps | evaluations | episodes each | s per evaluation | "
             "training env steps/s | evaluation share |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for key in keys:
        task = TASKS[key]
        cfg = compose_config([f"env={task.env_id}"])
        runs = [r for env, threads, _, rs in summary if env == task.env_id and threads == 1
                for r in rs["ours"]]  # fmt: skip
        if not runs:
            continue
        train_rate = median(rate(r) for r in runs)
        timed = one_run("ours", task, 1, 1024, tree, True, scratch)
        per_evaluation = timed["evaluation"]  # the final evaluation (eval_freq > 1024)
        count = max(cfg.max_steps // cfg.eval_freq, 0) + (cfg.max_steps % cfg.eval_freq != 0)
        evaluating = count * per_evaluation
        share = evaluating / (evaluating + cfg.max_steps / train_rate)
        lines.append(f"| {task.env_id} | {cfg.max_steps} | {count} | {cfg.eval_episodes} | "
                     f"{per_evaluation:.1f} | {train_rate:.0f} | {share:.1%} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="env steps (default: per env)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="ours from this checkout")
    parser.add_argument("--before", type=Path, default=None,
                        help="also ours from this older checkout, in the same rotation")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-pixels/pixels.md")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (a check that it runs)")
    parser.add_argument("--evaluation", action="store_true",
                        help="ours with its default evaluations (its share in the table)")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--env", choices=list(TASKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        return worker(args)
    scratch = ROOT / "runs/bench-pixels/scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    trees = {"ours": args.tree} | ({"ours before": args.before} if args.before else {})
    lines = [f"# Pixels side by side: torchrl-cli and Stable-Baselines3 on {platform.node()}", "",
             f"Written by `make bench-pixels` (bench/pixels.py) on {date.today()}, "
             f"{os.cpu_count()} CPUs, load average at start "
             f"{os.getloadavg()[0]:.1f}. Runs alternate; every figure is one fresh process.",
             ""]  # fmt: skip
    summary = []
    for key in args.envs:
        task = TASKS[key]
        steps = args.steps or (2048 if args.smoke else task.steps)
        for threads in args.threads:
            runs: dict[str, list[dict]] = defaultdict(list)
            for _ in range(args.repeats):
                for name, tree in [*trees.items(), ("Stable-Baselines3", None)]:
                    tool = "sb3" if tree is None else "ours"
                    run = one_run(tool, task, threads, steps, tree or ROOT, args.evaluation,
                                  scratch)  # fmt: skip
                    run["threads"] = threads
                    runs[name].append(run)
                    print(f"{key} {name} threads={threads}: {rate(run):.0f} env steps/s "
                          f"({run['train']:.1f} s)", flush=True)  # fmt: skip
            ratio = median(rate(r) for r in runs["ours"]) / median(
                rate(r) for r in runs["Stable-Baselines3"]
            )
            summary.append((task.env_id, threads, ratio, runs))
            lines += [f"## {task.env_id}, {threads} thread(s), {steps} env steps", "",
                      *table(list(runs.items())), "",
                      f"ours / Stable-Baselines3 (medians): **{ratio:.2f}**", ""]  # fmt: skip
    lines += ["## Summary", "", "| env | threads | ours / Stable-Baselines3 |", "|---|---|---|"]
    lines += [f"| {env} | {threads} | {ratio:.2f} |" for env, threads, ratio, _ in summary]
    lines += ["", *evaluation_shares(args.envs, summary, args.tree, scratch)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
