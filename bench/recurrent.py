"""`make bench-recurrent`: recurrent PPO on CartPoleNoVel-v1, torchrl-cli beside sb3-contrib's
RecurrentPPO on this CPU, with rl-zoo3's recipe for both (hyperparams/ppo_lstm.yml: 8 envs x 32
steps, one minibatch of 256, 20 epochs, gamma 0.98, lambda 0.8, lr 1e-3 and clip 0.2 both
annealed, observations and rewards normalized, ReLU, a 64-unit LSTM, a 64-unit layer).

Two figures, each from runs in fresh processes that alternate (ours, sb3-contrib, ours, ...) so
that both tools see the same load, one torch thread each:

- throughput: env steps per second of training over ``--steps`` steps, no evaluation;
- time to solve: training seconds (evaluations excluded) to the first 20-episode deterministic
  evaluation at or above 475, evaluating every 10240 steps, within 100k steps.

The two models differ where the tools differ: sb3-contrib runs the LSTM on the observations
and its 64-unit layers after it (policy and value each their own LSTM, ``enable_critic_lstm``);
torchrl-cli runs its 64-unit layer first and the LSTM after it (``memory=lstm``, the policy and
the value each their own). Both have one 64-unit hidden layer and a 64-unit LSTM per model.

    python -m bench.recurrent [--pairs 3] [--steps 20480] [--solve-seeds 0 1 2]
                              [--out runs/bench-recurrent/recurrent.md] [--smoke]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from statistics import median

from bench.perf.settings import ZOO_CARTPOLE

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "CartPoleNoVel-v1"
EVAL_EPISODES = 20
EVAL_EVERY = 10_240
THRESHOLD = 475.0
BUDGET = 100_000  # rl-zoo3's n_timesteps: it also sets the length of the linear schedules
EVAL_SEED_OFFSET = 1_000_000  # as torchrl-cli: evaluation never reuses training seeds

# rl-zoo3 hyperparams/ppo_lstm.yml, CartPoleNoVel-v1: its PPO settings are ppo.yml's for
# CartPole-v1 (bench/perf's same-hyperparameter recipe), plus the memory and the layer widths
ZOO = {**ZOO_CARTPOLE, "ent_coef": 0.0, "lstm_hidden_size": 64, "hidden": 64}


def ours_overrides(seed: int) -> list[str]:
    """The recipe as `torchrl train` overrides (the tuned file's other values overridden)."""
    minibatches = ZOO["n_envs"] * ZOO["n_steps"] // ZOO["batch_size"]
    return [
        f"env={ENV_ID}",
        "agent=ppo_clip",
        "memory=lstm",
        f"memory.hidden_size={ZOO['lstm_hidden_size']}",
        f"net.hidden=[{ZOO['hidden']}]",
        "net.activation=relu",
        f"env.n_envs={ZOO['n_envs']}",
        f"agent.n_steps={ZOO['n_steps']}",
        f"agent.num_mini_batches={minibatches}",
        f"agent.num_epochs={ZOO['n_epochs']}",
        f"agent.gamma={ZOO['gamma']}",
        f"agent.advantage.gae_lambda={ZOO['gae_lambda']}",
        f"agent.lr={ZOO['learning_rate']}",
        "agent.lr_schedule=linear",
        f"agent.policy.ppo_clip_range={ZOO['clip_range']}",
        "agent.policy.clip_schedule=linear",
        f"agent.policy.entropy_coef={ZOO['ent_coef']}",
        "env.running_normalize_states=true",
        "env.scale_reward=true",
        f"eval_episodes={EVAL_EPISODES}",
        "torch_threads=1",
        "device=cpu",
        f"seed={seed}",
        "logger.progress=false",
        "logger.log_freq=1000000",
        "save_model=false",
        "checkpoint_freq=0",
    ]


# ---------------------------------------------------------------- the worker (one process, one run)


def ours(mode: str, seed: int, steps: int) -> dict:
    import io

    from rich.console import Console

    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    overrides = ours_overrides(seed)
    if mode == "throughput":
        # both tools anneal lr and clip over the run's own steps
        overrides += [f"max_steps={steps}", "eval_freq=0"]
    else:
        overrides += [f"max_steps={BUDGET}", f"eval_freq={EVAL_EVERY}",
                      f"target_return={THRESHOLD}"]
    cfg = compose_config(overrides)
    metrics = train(cfg, run_dir=None, console=Console(file=io.StringIO()))
    solved = metrics["solved"]
    return {
        "env_steps": metrics["env_steps"],
        "train_seconds": metrics["train_seconds"],
        "final": metrics["mean_return"],
        "solved_steps": solved and solved["env_steps"],
        "solved_seconds": solved and solved["train_seconds"],
    }


def sb3_model(seed: int):
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from threadpoolctl import threadpool_limits

    from bench.perf.sb3 import linear, unlogged
    from torchrl_cli.envs.partial import register_partial_envs

    register_partial_envs()
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=ZOO["n_envs"], seed=seed), gamma=ZOO["gamma"])

    return unlogged(RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=ZOO["n_steps"],
        batch_size=ZOO["batch_size"],
        n_epochs=ZOO["n_epochs"],
        gamma=ZOO["gamma"],
        gae_lambda=ZOO["gae_lambda"],
        learning_rate=linear(ZOO["learning_rate"]),
        clip_range=linear(ZOO["clip_range"]),
        ent_coef=ZOO["ent_coef"],
        policy_kwargs={
            "ortho_init": False,
            "activation_fn": torch.nn.ReLU,
            "lstm_hidden_size": ZOO["lstm_hidden_size"],
            "enable_critic_lstm": True,
            "net_arch": {"pi": [ZOO["hidden"]], "vf": [ZOO["hidden"]]},
        },
        seed=seed,
        device="cpu",
        verbose=0,
    ))


def recurrent_evaluation(model, seed: int) -> float:
    """20 deterministic episodes, one per copy of a separate vector env (torchrl-cli's
    protocol), the LSTM state carried per copy and reset at its episode start."""
    import gymnasium as gym
    import numpy as np

    env = gym.make_vec(ENV_ID, num_envs=EVAL_EPISODES, vectorization_mode="sync")
    obs, _ = env.reset(seed=[seed + EVAL_SEED_OFFSET + i for i in range(EVAL_EPISODES)])
    returns = np.zeros(EVAL_EPISODES)
    active = np.ones(EVAL_EPISODES, dtype=bool)
    state, starts = None, np.ones(EVAL_EPISODES, dtype=bool)
    while active.any():
        actions, state = model.predict(
            model.env.normalize_obs(obs), state=state, episode_start=starts, deterministic=True
        )
        obs, reward, terminated, truncated, _ = env.step(actions)
        returns += reward * active
        starts = terminated | truncated
        active &= ~starts
    env.close()
    return float(returns.mean())


def sb3(mode: str, seed: int, steps: int) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    model = sb3_model(seed)
    if mode == "throughput":
        start = time.perf_counter()
        model.learn(steps)
        seconds = time.perf_counter() - start
        final = recurrent_evaluation(model, seed)
        return {"env_steps": model.num_timesteps, "train_seconds": seconds, "final": final,
                "solved_steps": None, "solved_seconds": None}

    class Clock(BaseCallback):
        """Evaluates at the start of the first rollout after every EVAL_EVERY steps (where
        torchrl-cli evaluates, after an update), the training clock paused meanwhile."""

        def _on_training_start(self) -> None:
            self.start, self.paused, self.next = time.perf_counter(), 0.0, EVAL_EVERY
            self.solved, self.last = None, None

        def _on_rollout_start(self) -> None:
            if self.num_timesteps < self.next or self.solved:
                return
            self.next += EVAL_EVERY
            now = time.perf_counter()
            self.last = recurrent_evaluation(self.model, seed)
            if self.last >= THRESHOLD:
                self.solved = (self.num_timesteps, now - self.start - self.paused)
            self.paused += time.perf_counter() - now

        def _on_step(self) -> bool:
            return self.solved is None

    clock = Clock()
    start = time.perf_counter()
    model.learn(BUDGET, callback=clock)
    seconds = time.perf_counter() - start - clock.paused
    final = recurrent_evaluation(model, seed)
    solved = clock.solved or (None, None)
    return {"env_steps": model.num_timesteps, "train_seconds": seconds, "final": final,
            "solved_steps": solved[0], "solved_seconds": solved[1]}


# ---------------------------------------------------------------- the driver


def run_worker(tool: str, mode: str, seed: int, steps: int) -> dict:
    """One run in a fresh process (its own torch, one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.recurrent", "--worker", tool, mode, str(seed), str(steps)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {mode} seed {seed} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {tool:5} {mode:10} seed {seed}: {json.dumps(result)}", flush=True)
    return result


def ratio_table(pairs: list[tuple[dict, dict]]) -> list[str]:
    """Throughput: each pair's steps/s and the ratio ours / sb3-contrib, then medians."""
    lines = ["| pair | torchrl-cli (steps/s) | sb3-contrib (steps/s) | ratio |",
             "|---|---|---|---|"]
    rates = []
    for i, (a, b) in enumerate(pairs):
        ra, rb = a["env_steps"] / a["train_seconds"], b["env_steps"] / b["train_seconds"]
        rates.append((ra, rb))
        lines.append(f"| {i + 1} | {ra:.0f} | {rb:.0f} | {ra / rb:.2f} |")
    ours_med, sb3_med = median(r[0] for r in rates), median(r[1] for r in rates)
    lines.append(f"| median | {ours_med:.0f} | {sb3_med:.0f} | **{ours_med / sb3_med:.2f}** |")
    return lines


def solve_table(runs: dict[str, list[dict]], seeds: list[int]) -> list[str]:
    lines = ["| seed | torchrl-cli: solved at (steps, s) | final | sb3-contrib: solved at "
             "(steps, s) | final |", "|---|---|---|---|---|"]

    def cell(r: dict) -> str:
        if r["solved_steps"] is None:
            return "not within 100k"
        return f"{r['solved_steps']}, {r['solved_seconds']:.1f} s"

    for i, seed in enumerate(seeds):
        a, b = runs["ours"][i], runs["sb3"][i]
        lines.append(f"| {seed} | {cell(a)} | {a['final']:.1f} | {cell(b)} | {b['final']:.1f} |")
    both = [(a, b) for a, b in zip(runs["ours"], runs["sb3"], strict=True)
            if a["solved_seconds"] and b["solved_seconds"]]
    if both:
        ratio = median(b["solved_seconds"] for _, b in both) / median(
            a["solved_seconds"] for a, _ in both)
        lines.append("")
        lines.append(f"Median time to solve over the {len(both)} seeds both solved: "
                     f"sb3-contrib / torchrl-cli = **{ratio:.2f}**.")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recurrent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=4, metavar=("TOOL", "MODE", "SEED", "STEPS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20_480)
    parser.add_argument("--solve-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-recurrent/recurrent.md")
    parser.add_argument("--smoke", action="store_true", help="1 pair of 512 steps, no solving")
    args = parser.parse_args(argv)
    if args.worker:
        tool, mode, seed, steps = args.worker
        result = (ours if tool == "ours" else sb3)(mode, int(seed), int(steps))
        print(json.dumps(result))
        return
    if args.smoke:
        args.pairs, args.steps, args.solve_seeds = 1, 512, []
    start = time.perf_counter()
    print(f"throughput: {args.pairs} pairs of {args.steps} env steps", flush=True)
    pairs = [(run_worker("ours", "throughput", i, args.steps),
              run_worker("sb3", "throughput", i, args.steps)) for i in range(args.pairs)]
    runs: dict[str, list[dict]] = {"ours": [], "sb3": []}
    for seed in args.solve_seeds:
        print(f"time to solve: seed {seed}", flush=True)
        for tool in ("ours", "sb3"):
            runs[tool].append(run_worker(tool, "solve", seed, BUDGET))
    minutes = (time.perf_counter() - start) / 60
    lines = [
        f"# Recurrent PPO on {ENV_ID}: torchrl-cli beside sb3-contrib",
        "",
        f"`python -m bench.recurrent{''.join(' ' + a for a in argv or sys.argv[1:])}` on "
        f"{date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch "
        f"thread per run, runs alternating; {minutes:.1f} min in all.",
        "",
        f"## Throughput: {args.steps} env steps of training, same hyperparameters",
        "",
        *ratio_table(pairs),
    ]
    if args.solve_seeds:
        lines += ["", f"## Time to solve: the first evaluation >= {THRESHOLD:g} within {BUDGET}",
                  "", *solve_table(runs, args.solve_seeds)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
