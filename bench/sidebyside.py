"""`make bench-sidebyside`: torchrl-cli and Stable-Baselines3 (rl-zoo3's tuned PPO, the bench
extra) on HalfCheetah-v5 at the same time, one process each (one core each on this 2-core
machine), same protocol: 20 deterministic episodes every 50 000 env steps (--eval-every) on a
separate env, stopping at the first mean >= 5000 or at 1M env steps. Each trains with its own
tuned recipe: SB3 rl-zoo3's, ours the shipped conf/tuned/ppo_clip/HalfCheetah-v5.yaml. Reports
env steps and training seconds (evaluations excluded on both sides) to the threshold, and each
process's wall time; writes docs/sidebyside.md. (Pendulum-v1's side-by-side time-to-solve is
`make bench`.)

``python -m bench.sidebyside [--seeds 0 1 2] [--threshold 5000] [--budget 1000000]``; one side
alone: ``python -m bench.sidebyside --sb3-only SEED`` (what the SB3 process runs).
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

from bench.perf.settings import EVAL_EPISODES

ENV_ID = "HalfCheetah-v5"
# rl-zoo3's tuned PPO for HalfCheetah (hyperparams/ppo.yml), normalize: true
ZOO_HALFCHEETAH = {
    "n_steps": 512,
    "batch_size": 64,
    "n_epochs": 20,
    "gamma": 0.98,
    "gae_lambda": 0.92,
    "learning_rate": 2.0633e-05,
    "ent_coef": 0.000401762,
    "clip_range": 0.1,
    "max_grad_norm": 0.8,
    "vf_coef": 0.58096,
}


def sb3_run(seed: int, threshold: float, budget: int, every: int) -> dict:
    """One SB3 run in this process: rl-zoo3's recipe (VecNormalize with the run's gamma, one
    thread), evaluated by the protocol with the training clock paused."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    from bench.perf import sb3
    from bench.perf.evaluate import Evaluator

    sb3.single_threaded()
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=seed), gamma=ZOO_HALFCHEETAH["gamma"])
    policy_kwargs = {"log_std_init": -2, "ortho_init": False, "activation_fn": nn.ReLU,
                     "net_arch": {"pi": [256, 256], "vf": [256, 256]}}  # fmt: skip
    model = sb3.unlogged(PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                             policy_kwargs=policy_kwargs, **ZOO_HALFCHEETAH))  # fmt: skip
    evaluator = Evaluator(ENV_ID, EVAL_EPISODES, seed + sb3.EVAL_SEED_OFFSET)
    clock = sb3.SolveClock(evaluator, every, threshold, prepare=env.normalize_obs)
    model.learn(budget, callback=clock)
    evaluator.close()
    env.close()
    steps, seconds = clock.solved or (None, None)
    evaluations = [{"env_steps": s, "train_seconds": t, "mean_return": m}
                   for s, t, m in clock.evaluations]  # fmt: skip
    return {"solved_steps": steps, "solved_seconds": seconds, "evaluations": evaluations}


def ours_command(seed: int, threshold: float, budget: int, every: int, folder: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "torchrl"), "train", f"env={ENV_ID}",
            f"seed={seed}", f"target_return={threshold}", f"max_steps={budget}",
            f"eval_freq={every}", "logger.progress=false", "logger.console=quiet",
            f"hydra.run.dir={folder}"]  # fmt: skip


def side_by_side(seed: int, threshold: float, budget: int, every: int, runs: Path) -> dict:
    """Both processes started together; each one's result and wall seconds."""
    folder = runs / f"ours_{seed}"
    sb3_out = runs / f"sb3_{seed}.json"
    if (folder / "metrics.json").exists() and sb3_out.exists():  # resumes an interrupted bench
        return json.loads((runs / f"pair_{seed}.json").read_text())
    runs.mkdir(parents=True, exist_ok=True)
    sb3_cmd = [sys.executable, "-m", "bench.sidebyside", "--sb3-only", str(seed),
               "--threshold", str(threshold), "--budget", str(budget), "--eval-every", str(every),
               "--out", str(sb3_out)]
    logs = {name: runs / f"{name}_{seed}.stderr" for name in ("ours", "sb3")}
    start = time.perf_counter()
    with logs["ours"].open("wb") as ours_err, logs["sb3"].open("wb") as sb3_err:
        procs = {"ours": subprocess.Popen(ours_command(seed, threshold, budget, every, folder),
                                          stdout=subprocess.DEVNULL, stderr=ours_err),
                 "sb3": subprocess.Popen(sb3_cmd, stderr=sb3_err)}  # fmt: skip
        wall = {}
        while len(wall) < len(procs):  # each side's own exit time, whichever ends first
            for name, proc in procs.items():
                if name not in wall and proc.poll() is not None:
                    wall[name] = time.perf_counter() - start
            time.sleep(0.05)
    for name, proc in procs.items():
        if proc.returncode != 0:
            raise SystemExit(f"{name} seed {seed} failed: {logs[name].read_text()[-400:]}")
    metrics = json.loads((folder / "metrics.json").read_text())
    solved = metrics.get("solved")
    ours = {"solved_steps": solved["env_steps"] if solved else None,
            "solved_seconds": solved["train_seconds"] if solved else None,
            "evaluations": metrics["evaluations"], "wall_seconds": wall["ours"]}  # fmt: skip
    theirs = json.loads(sb3_out.read_text()) | {"wall_seconds": wall["sb3"]}
    pair = {"seed": seed, "ours": ours, "sb3": theirs}
    (runs / f"pair_{seed}.json").write_text(json.dumps(pair, indent=1))
    return pair


def cell(steps: int | None, seconds: float | None) -> str:
    return "not reached" if steps is None else f"{steps:,} steps, {seconds:.0f} s"


def write_report(pairs: list[dict], threshold: float, budget: int, every: int, out: Path) -> None:
    lines = [
        f"# HalfCheetah-v5 side by side: torchrl-cli and Stable-Baselines3 to {threshold:g}",
        "",
        f"Written by `make bench-sidebyside` (bench/sidebyside.py, seeds "
        f"{' and '.join(str(p['seed']) for p in pairs)}) on {date.today()}: "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {version('torch')}, stable-baselines3 {version('stable-baselines3')}, "
        f"gymnasium {version('gymnasium')}, mujoco {version('mujoco')}.",
        "",
        "Each tool trains with its own tuned HalfCheetah PPO, at the same time, one process "
        "each with one thread: torchrl-cli with its shipped tuned file (`torchrl train "
        "env=HalfCheetah-v5`; conf/tuned/ppo_clip/HalfCheetah-v5.yaml says what it holds and "
        "where it comes from), Stable-Baselines3 with rl-zoo3's (one env x 512 steps, 20 "
        "epochs of 64, lr 2.06e-5, gamma 0.98, lambda 0.92, clip 0.1, 256x256 ReLU nets, "
        "log-std -2, normalized observations and rewards). Protocol: "
        f"{EVAL_EPISODES} deterministic episodes every {every:,} env "
        f"steps on a separate env; stop at the first mean >= {threshold:g} or at "
        f"{budget:,} env steps. Training seconds exclude the evaluations on both sides; wall "
        "is process start to exit, evaluations included.",
        "",
        "| seed | torchrl-cli to threshold | SB3 to threshold | training-time ratio | "
        "wall ours | wall SB3 | wall ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        ours, theirs = pair["ours"], pair["sb3"]
        ratio = "—"
        if ours["solved_seconds"] is not None and theirs["solved_seconds"] is not None:
            ratio = f"{ours['solved_seconds'] / theirs['solved_seconds']:.3f}"
        lines.append(
            f"| {pair['seed']} | {cell(ours['solved_steps'], ours['solved_seconds'])} | "
            f"{cell(theirs['solved_steps'], theirs['solved_seconds'])} | {ratio} | "
            f"{ours['wall_seconds']:.0f} s | {theirs['wall_seconds']:.0f} s | "
            f"{ours['wall_seconds'] / theirs['wall_seconds']:.3f} |"
        )
    ours_wall = sum(p["ours"]["wall_seconds"] for p in pairs)
    sb3_wall = sum(p["sb3"]["wall_seconds"] for p in pairs)
    per_seed = statistics.median(p["ours"]["wall_seconds"] / p["sb3"]["wall_seconds"]
                                 for p in pairs)  # fmt: skip
    lines += ["", f"Over the {len(pairs)} seeds: torchrl-cli {ours_wall:.0f} s of wall time "
              f"against Stable-Baselines3's {sb3_wall:.0f} s, {ours_wall / sb3_wall:.3f}x "
              f"(median of the per-seed wall ratios {per_seed:.3f}x)."]  # fmt: skip
    lines += ["", "Evaluations (env steps: mean return), per seed:", ""]
    for pair in pairs:
        for name in ("ours", "sb3"):
            points = ", ".join(f"{e['env_steps'] // 1000}k: {e['mean_return']:.0f}"
                               for e in pair[name]["evaluations"])  # fmt: skip
            lines.append(f"- seed {pair['seed']}, {'torchrl-cli' if name == 'ours' else 'SB3'}:"
                         f" {points}")  # fmt: skip
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threshold", type=float, default=5000.0)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=50_000)
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-sidebyside"))
    parser.add_argument("--out", type=Path, default=Path("docs/sidebyside.md"))
    parser.add_argument("--sb3-only", type=int, default=None, metavar="SEED")
    args = parser.parse_args()
    if args.sb3_only is not None:
        result = sb3_run(args.sb3_only, args.threshold, args.budget, args.eval_every)
        args.out.write_text(json.dumps(result, indent=1))
        return
    pairs = [side_by_side(s, args.threshold, args.budget, args.eval_every, args.runs)
             for s in args.seeds]
    write_report(pairs, args.threshold, args.budget, args.eval_every, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
