"""`make bench-budgets`: each env file's budget, checked. For every env file outside ALE, 3 seeds
of `torchrl train env=<id> seed=<s>` exactly as a user types it (the default agent, the env file's
budget and the pair's tuned file); writes docs/budgets.md (the budget table of the docs site).

One run at a time by default (the 2-core machine's wall times stay comparable). Runs land in
runs/bench-budgets/<env>_<seed>/; a finished run (metrics.json and wall.json) is reused, so an
interrupted benchmark resumes where it stopped.
"""

import argparse
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from bench.learning import train_in_process

ENVS = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "LunarLander-v3", "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Swimmer-v5",
    "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5",
)  # fmt: skip
# Published figures for context (../shared/ANCHORS.md, the projects' own benchmark tables);
# their protocols differ (seeds, final or best point), stated with each. rl-zoo3's: one trained
# agent, its ± over evaluation episodes, not seeds (rl-baselines3-zoo benchmark.md).
REFERENCES = {
    "CartPole-v1": "rl-zoo3 PPO 500 ± 0 at 100k",
    "Pendulum-v1": "rl-zoo3 PPO −172 ± 104 at 100k (gSDE)",
    "Acrobot-v1": "rl-zoo3 PPO −73.5 ± 18.2 at 1M",
    "MountainCar-v0": "rl-zoo3 PPO −110.4 ± 19.5 at 1M",
    "MountainCarContinuous-v0": "rl-zoo3 PPO 88.3 ± 2.6 at 20k",
    "LunarLander-v3": "rl-zoo3 PPO 242.1 ± 31.8 at 1M (v2)",
    "InvertedPendulum-v5": "Tianshou PPO 1000 ± 0 at 1M (best of mean curve); CleanRL 963 ± 22",
    "InvertedDoublePendulum-v5": "Tianshou PPO 9231 ± 270 at 1M (best of mean curve)",
    "Hopper-v5": "Tianshou PPO 2609 ± 701; rl-zoo3 2410 ± 10 (1 run)",
    "Walker2d-v5": "Tianshou PPO 3589 ± 757; rl-zoo3 3479 ± 822 (1 run)",
    "HalfCheetah-v5": "rl-zoo3 PPO 5819 ± 664 (1 run); Tianshou 5784 ± 1244",
    "Ant-v5": "Tianshou PPO 3258 ± 1079; rl-zoo3 1327 ± 452 (untuned)",
    "Humanoid-v5": "Tianshou PPO 787 ± 193; CleanRL 716",
}


def run_one(env: str, seed: int, runs: Path) -> dict:
    folder = runs / f"{env}_{seed}"
    wall_file = folder / "wall.json"
    if not wall_file.exists():
        if folder.exists():  # an interrupted attempt: start it again
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        wall = train_in_process([f"env={env}", f"seed={seed}"], folder, f"{env} seed {seed}")
        if wall is None:
            return {}
        wall_file.write_text(json.dumps({"wall_seconds": wall}) + "\n")
        print(f"{env:<26} seed {seed}: {wall:6.0f} s", flush=True)
    metrics = json.loads((folder / "metrics.json").read_text())
    config = OmegaConf.load(folder / "config.yaml")
    return metrics | json.loads(wall_file.read_text()) | {"max_steps": config.max_steps}


def table(results: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| env | budget (env steps) | final return, 3 seeds (mean ± std) | per seed | "
        "wall time per run (median) | published reference |",
        "|---|---|---|---|---|---|",
    ]
    for env, runs in results.items():
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {env} | | failed | | | |")
            continue
        finals = [r["mean_return"] for r in runs]
        wall = np.median([r["wall_seconds"] for r in runs])
        lines.append(
            f"| {env} | {runs[0]['max_steps']:,} | {np.mean(finals):.1f} ± {np.std(finals):.1f} | "
            f"{', '.join(f'{f:.0f}' for f in finals)} | {wall:.0f} s | {REFERENCES.get(env, '')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--only", nargs="*", default=None, help="envs to run (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-budgets"))
    parser.add_argument("--out", type=Path, default=Path("docs/budgets.md"))
    parser.add_argument("--note", default="", help="a paragraph for the report (provenance)")
    args = parser.parse_args()
    envs = [e for e in ENVS if args.only is None or e in args.only]
    jobs = [(e, s) for e in envs for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run_one(*j, args.runs), jobs), strict=True))
    results = {e: [done[(e, s)] for s in args.seeds] for e in envs}
    lines = [
        "# Budgets per env",
        "",
        f"Produced by `python bench/budgets.py` on {date.today()}: `torchrl train env=<id> "
        "seed=<s>` with no other flag (the default agent PPO-clip, the env file's budget, the "
        "pair's tuned file), seeds "
        f"{', '.join(map(str, args.seeds))}, one run at a time on this 2-core machine. Final "
        "return: the 20-episode deterministic evaluation at the end of the budget. Wall time: "
        "process start to exit.",
        "",
        *([args.note, ""] if args.note else []),
        *table(results),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
