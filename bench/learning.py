"""`make bench-learning`: every agent on CartPole-v1 and Pendulum-v1, and PPO-clip on
HalfCheetah-v5, Hopper-v5 and Walker2d-v5 at 1M steps, 5 seeds each, through the real
`torchrl train` command with each pair's tuned config. Writes docs/benchmarks.md (final returns
as IQM with 95 % bootstrap intervals, mean ± std and per seed, env steps to the target, next to
published references; torchrl_cli.analysis.stats) and learning-curve PNGs made by
torchrl_cli.analysis.plot.

Runs land in runs/bench-learning/<agent>_<env>_<seed>/; a run whose metrics.json exists is
reused, so an interrupted benchmark resumes where it stopped. The curves each figure shows are
kept beside it (docs/img/learning_<env>.json), and every figure is drawn from that file:
`python bench/learning.py --plot-only` redraws the figures from those files alone, in seconds,
without training and without rewriting the page.
"""

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from importlib.metadata import version
from pathlib import Path

import numpy as np

from torchrl_cli.analysis.plot import plot_learning_curves
from torchrl_cli.analysis.stats import BOOTSTRAP_SEED, RESAMPLES, SeedSummary, summarize_seeds

AGENTS = ("vanilla_pg", "a2c", "surrogate_pg", "ppo_clip", "ppo_adaptive")
PAIRS = [(a, e) for e in ("CartPole-v1", "Pendulum-v1") for a in AGENTS]
MUJOCO = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
          "InvertedDoublePendulum-v5")  # 1M steps each: the long runs
PAIRS += [("ppo_clip", e) for e in MUJOCO]
TARGETS = {"CartPole-v1": 475.0, "Pendulum-v1": -250.0} | dict.fromkeys(MUJOCO)
# Published results (../shared/BENCHMARKS.md); other tools' numbers, for context only.
REFERENCES = {
    ("ppo_clip", "CartPole-v1"): "rl-zoo3 PPO 500 ± 0 at 100k; CleanRL PPO 490 ± 6 at 500k",
    ("a2c", "CartPole-v1"): "rl-zoo3 A2C 500 ± 0 at 500k",
    ("ppo_clip", "Pendulum-v1"): "rl-zoo3 PPO −172 ± 104 at 100k (gSDE)",
    ("a2c", "Pendulum-v1"): "rl-zoo3 A2C −163 ± 103 at 1M (gSDE)",
    ("ppo_clip", "HalfCheetah-v5"): "rl-zoo3 PPO 5819 ± 664 at 1M (v3); "
    "CleanRL PPO 2906 ± 1129 at 1M (v4)",
    ("ppo_clip", "Hopper-v5"): "PPO paper Fig. 3: A2C ~900 at 1M (read off the plot)",
    ("ppo_clip", "Walker2d-v5"): "PPO paper Fig. 3: A2C ~850 at 1M (read off the plot)",
    ("ppo_clip", "Ant-v5"): "Tianshou PPO 3258 ± 1079 at 1M (observation without contact forces)",
    ("ppo_clip", "Humanoid-v5"): "Tianshou PPO 787 ± 193 at 1M; CleanRL PPO 716 at 1M",
    ("ppo_clip", "InvertedDoublePendulum-v5"): "Tianshou PPO 9231 ± 270 at 1M",
}


def train_in_process(overrides: list[str], folder: Path, label: str) -> float | None:
    """``torchrl train <overrides>`` into ``folder`` as its own process, quiet; the wall seconds
    (process start to exit), or None after a FAILED line naming ``label``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    command = [str(Path(sys.executable).parent / "torchrl"), "train", *overrides,
               "logger.progress=false", f"hydra.run.dir={folder}"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"FAILED {label}: {proc.stderr.strip()[-300:]}", flush=True)
        return None
    return time.perf_counter() - start


def reused_or_trained(overrides: list[str], folder: Path, label: str) -> dict:
    """The metrics.json of the run in ``folder``, trained first (`torchrl train <overrides>`,
    a wall-time line naming ``label``) unless it is there; {} when training failed."""
    metrics = folder / "metrics.json"
    if not metrics.exists():
        wall = train_in_process([*overrides, "logger.log_freq=1000000"], folder, label)
        if wall is None:
            return {}
        print(f"{label}: {wall:6.0f} s", flush=True)
    return json.loads(metrics.read_text())


def run_one(agent: str, env: str, seed: int, runs: Path) -> dict:
    return reused_or_trained([f"agent={agent}", f"env={env}", f"seed={seed}"],
                             runs / f"{agent}_{env}_{seed}", f"{agent:>13} {env:<15} seed {seed}")


def curve(run: dict) -> list[tuple[int, float]]:
    """A run's evaluations ``(env_steps, mean_return)``, the final one last."""
    points = [(e["env_steps"], e["mean_return"]) for e in run["evaluations"]]
    return points + [(run["env_steps"], run["mean_return"])]


def steps_cell(summary: SeedSummary) -> str:
    """Median env steps to the target [95 % CI] (seeds that got there); '—' without one."""
    if summary.steps is None:
        return "—"
    reached = sum(math.isfinite(s) for s in summary.steps)
    if not reached:
        return f"not reached (0/{len(summary.steps)})"
    m = summary.steps_median

    def show(x: float) -> str:
        return f"{x / 1000:.0f}k" if math.isfinite(x) else "not reached"

    return f"{show(m.value)} [{show(m.low)}, {show(m.high)}] ({reached}/{len(summary.steps)})"


def produced_by(command: str) -> str:
    """A report's first words: the command, the day, the machine and the versions."""
    return (
        f"Produced by `{command}` on {date.today()} ({platform.machine()}, "
        f"{platform.processor() or 'CPU'}, Python {platform.python_version()}, torch "
        f"{version('torch')}, gymnasium {version('gymnasium')})."
    )


def write_report(results: dict, out: Path, seeds: list[int], command: str) -> None:
    lines = [
        "# Learning benchmarks",
        "",
        f"{produced_by(command)} Each run: `torchrl train "
        "agent=<agent> env=<env> seed=<seed>` with the pair's tuned config "
        "(conf/tuned/<agent>/<env>.yaml) and the full budget (no early stop), "
        f"seeds {', '.join(map(str, seeds))}.",
        "",
        "Evaluation protocol: a run's score is its final evaluation, the mean return of 20 "
        "deterministic episodes (the policy's mean or most likely action) on a separate "
        "evaluation env seeded from the run's seed, after the last update; the evaluations "
        "every `eval_freq` env steps during training (same protocol) give the env steps to "
        "the target: the first evaluation whose mean reaches it.",
        "",
        "Statistics across seeds (torchrl_cli/analysis/stats.py, rliable's definitions): the "
        "interquartile mean (IQM: the mean of the middle scores once a quarter of the seeds is "
        "cut at each end; 5 seeds: the middle three) with its 95 % percentile bootstrap "
        f"interval ({RESAMPLES} resamples of the seeds, bootstrap seed {BOOTSTRAP_SEED}); mean ± "
        "std (numpy's, ddof 0); the median env steps to the target with its bootstrap interval "
        "(a seed that never reaches it counts as infinitely late). Train s: seconds in the "
        "training loop (evaluations excluded); wall s: the whole run; both means per seed.",
        "",
        "| agent | env | budget (env steps) | seeds | final IQM [95 % CI] | final mean ± std | "
        "per seed | env steps to target: median [95 % CI] (seeds) | train s | wall s | "
        "published reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (agent, env), runs in results.items():
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {agent} | {env} | | 0 | failed | | | | | | |")
            continue
        target = TARGETS[env]
        summary = summarize_seeds(
            [r["mean_return"] for r in runs], [curve(r) for r in runs], target
        )
        target_note = f" (≥ {target:g})" if target is not None else ""
        lines.append(
            f"| {agent} | {env} | {runs[0]['env_steps']} | {len(runs)} | "
            f"{summary.iqm.value:.1f} [{summary.iqm.low:.1f}, {summary.iqm.high:.1f}] | "
            f"{summary.mean:.1f} ± {summary.std:.1f} | "
            f"{', '.join(f'{f:.0f}' for f in summary.finals)} | "
            f"{steps_cell(summary)}{target_note} | "
            f"{np.mean([r['train_seconds'] for r in runs]):.0f} | "
            f"{np.mean([r['wall_seconds'] for r in runs]):.0f} | "
            f"{REFERENCES.get((agent, env), '')} |"
        )
    lines += [
        "",
        "Learning curves (mean and min–max band over seeds, evaluation return vs env steps), "
        f"drawn by `{command}` from the runs' evaluations, which it keeps beside each figure "
        "(docs/img/learning_<env>.json); `python bench/learning.py --plot-only` redraws every "
        "figure from those files alone, in seconds:",
        "",
    ]
    for env in dict.fromkeys(e for _, e in results):
        lines.append(f"![{env}](img/learning_{env}.png)")
    (out / "benchmarks.md").write_text("\n".join(lines) + "\n")


def curves_file(out: Path, env: str) -> Path:
    """The file that keeps ``env``'s figure's curves: per agent, per seed, ``[steps, return]``
    points."""
    return out / "img" / f"learning_{env}.json"


def draw(out: Path, env: str) -> Path:
    """``env``'s figure (docs/img/learning_<env>.png), drawn from its curves file alone."""
    data = json.loads(curves_file(out, env).read_text())
    curves = {agent: [[tuple(p) for p in seed] for seed in seeds]
              for agent, seeds in data["curves"].items()}
    return plot_learning_curves(
        curves, out / "img" / f"learning_{env}.png",
        title=f"{env}: evaluation return, {data['seeds']} seeds", target=TARGETS.get(env),
    )  # fmt: skip


def plot_only(out: Path, envs: list[str] | None) -> int:
    """``--plot-only``: every figure (or ``envs``') redrawn from its curves file; 1 when an
    env has none."""
    envs = envs or list(dict.fromkeys(e for _, e in PAIRS))
    missing = [e for e in envs if not curves_file(out, e).is_file()]
    for env in envs:
        if env not in missing:
            print(f"wrote {draw(out, env)}")
    if missing:
        print(f"no curves kept for {', '.join(missing)} ({curves_file(out, missing[0])}...): "
              "only a run of this benchmark writes them (make bench-learning)", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--only", nargs="*", default=None, help="envs to run (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figures from their curves files (docs/img/"
                        "learning_<env>.json): no training, the page left as it is")
    args = parser.parse_args()
    if args.plot_only:
        sys.exit(plot_only(args.out, args.only))
    pairs = [p for p in PAIRS if args.only is None or p[1] in args.only]
    jobs = [(a, e, s) for a, e in pairs for s in args.seeds]
    # the long runs first, so that the short ones fill the other worker meanwhile
    jobs.sort(key=lambda j: j[1] not in MUJOCO)
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run_one(*j, args.runs), jobs), strict=True))
    results = {p: [done[(*p, s)] for s in args.seeds] for p in pairs}
    for env in dict.fromkeys(e for _, e in pairs):
        curves = {
            a: [curve(r) for r in runs if r] for (a, e2), runs in results.items() if e2 == env
        }
        curves_file(args.out, env).parent.mkdir(parents=True, exist_ok=True)
        curves_file(args.out, env).write_text(
            json.dumps({"seeds": len(args.seeds), "curves": curves}) + "\n")
        draw(args.out, env)
    command = (
        "make bench-learning"
        if args.only is None
        else f"python bench/learning.py --only {' '.join(args.only)}"
    )
    write_report(results, args.out, args.seeds, command)
    print(f"wrote {args.out / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
