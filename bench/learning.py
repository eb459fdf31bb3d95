"""`make bench-learning`: every agent on CartPole-v1 and Pendulum-v1, and PPO-clip on
HalfCheetah-v5, Hopper-v5 and Walker2d-v5 at 1M steps, 3 seeds each, through the real
`torchrl train` command with each pair's tuned config. Writes docs/benchmarks.md (final returns
next to published references) and learning-curve PNGs made by torchrl_cli.analysis.plot.

Runs land in runs/bench-learning/<agent>_<env>_<seed>/; a run whose metrics.json exists is
reused, so an interrupted benchmark resumes where it stopped.
"""

import argparse
import json
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

AGENTS = ("vanilla_pg", "a2c", "surrogate_pg", "ppo_clip", "ppo_adaptive")
PAIRS = [(a, e) for e in ("CartPole-v1", "Pendulum-v1") for a in AGENTS]
MUJOCO = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")  # 1M steps each: the long runs
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
}


def run_one(agent: str, env: str, seed: int, runs: Path) -> dict:
    folder = runs / f"{agent}_{env}_{seed}"
    metrics = folder / "metrics.json"
    if not metrics.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "torchrl"),
                "train",
                f"agent={agent}",
                f"env={env}",
                f"seed={seed}",
                "logger.progress=false",
                "logger.log_freq=1000000",
                f"hydra.run.dir={folder}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"FAILED {agent} {env} seed {seed}: {proc.stderr.strip()[-300:]}", flush=True)
            return {}
        print(
            f"{agent:>13} {env:<15} seed {seed}: {time.perf_counter() - start:6.0f} s", flush=True
        )
    return json.loads(metrics.read_text())


def write_report(results: dict, out: Path, seeds: list[int], command: str) -> None:
    lines = [
        "# Learning benchmarks",
        "",
        f"Produced by `{command}` on {date.today()} ({platform.machine()}, "
        f"{platform.processor() or 'CPU'}, Python {platform.python_version()}, torch "
        f"{version('torch')}, gymnasium {version('gymnasium')}). Each run: `torchrl train "
        "agent=<agent> env=<env> seed=<seed>` with the pair's tuned config "
        "(conf/tuned/<agent>/<env>.yaml), the full budget (no early stop); the final return is "
        "the 20-episode deterministic evaluation at the end. Mean ± std across seeds.",
        "",
        "| agent | env | budget (env steps) | seeds | final mean return | per seed | first eval "
        "≥ target (median env steps) | published reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (agent, env), runs in results.items():
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {agent} | {env} | | 0 | failed | | | |")
            continue
        finals = [r["mean_return"] for r in runs]
        target = TARGETS[env]
        reached = (
            [
                next((e["env_steps"] for e in r["evaluations"] if e["mean_return"] >= target), None)
                for r in runs
            ]
            if target is not None
            else []
        )
        solved = [s for s in reached if s is not None]
        when = (
            f"{int(np.median(solved))} ({len(solved)}/{len(runs)} seeds)"
            if solved
            else ("not reached" if target is not None else "—")
        )
        lines.append(
            f"| {agent} | {env} | {runs[0]['env_steps']} | {len(runs)} | "
            f"{np.mean(finals):.1f} ± {np.std(finals):.1f} | "
            f"{', '.join(f'{f:.0f}' for f in finals)} | {when} | "
            f"{REFERENCES.get((agent, env), '')} |"
        )
    lines += [
        "",
        "Learning curves (mean and min–max band over seeds, evaluation return vs env steps):",
        "",
    ]
    for env in dict.fromkeys(e for _, e in results):
        lines.append(f"![{env}](img/learning_{env}.png)")
    (out / "benchmarks.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--only", nargs="*", default=None, help="envs to run (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    pairs = [p for p in PAIRS if args.only is None or p[1] in args.only]
    jobs = [(a, e, s) for a, e in pairs for s in args.seeds]
    # the long runs first, so that the short ones fill the other worker meanwhile
    jobs.sort(key=lambda j: j[1] not in MUJOCO)
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run_one(*j, args.runs), jobs), strict=True))
    results = {p: [done[(*p, s)] for s in args.seeds] for p in pairs}
    for env in dict.fromkeys(e for _, e in pairs):
        curves = {
            a: [
                [(e["env_steps"], e["mean_return"]) for e in r["evaluations"]]
                + [(r["env_steps"], r["mean_return"])]
                for r in runs
                if r
            ]
            for (a, e2), runs in results.items()
            if e2 == env
        }
        plot_learning_curves(
            curves,
            args.out / "img" / f"learning_{env}.png",
            title=f"{env}: evaluation return, {len(args.seeds)} seeds",
            target=TARGETS[env],
        )
    command = (
        "make bench-learning"
        if args.only is None
        else f"python bench/learning.py --only {' '.join(args.only)}"
    )
    write_report(results, args.out, args.seeds, command)
    print(f"wrote {args.out / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
