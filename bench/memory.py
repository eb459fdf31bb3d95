"""`make bench-memory`: frame stack, LSTM and GRU on the four partially observed envs, 5 seeds
each, through the real `torchrl train env=<id> memory=<kind> seed=<seed>` command with no other
flag: each env's own files (its env file, its tuned file and the pair's
`conf/tuned_memory/ppo_clip/<id>/<kind>.yaml`) decide the budget, the settings and, without a
memory, the stacked frames. Writes runs/bench-memory/memory.md: per row the final 20-episode
evaluations per seed, the IQM with its 95 % bootstrap interval (torchrl_cli.analysis.stats), the
seeds at the env's target, the issue's target and rl-zoo3's RecurrentPPO reference.

Runs land in runs/bench-memory/<env>_<kind>_<seed>/; a run whose metrics.json exists is reused,
so an interrupted benchmark resumes where it stopped. Two runs at a time; the long ones
(LunarLanderNoVel-v3, 5M steps, 8-19 minutes each here) first. About 3 hours on 2 cores.

    python -m bench.memory [--seeds 0 1 2 3 4] [--jobs 2] [--only <env id> ...]
                           [--memories none lstm gru] [--runs runs/bench-memory]
"""

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.learning import curve, produced_by, reused_or_trained
from torchrl_cli.analysis.stats import summarize_seeds


@dataclass(frozen=True)
class Goal:
    """An env's target: every seed's final return at least ``value`` (``every``), or the IQM
    of the finals at least ``value``; ``reference``: rl-zoo3's published RecurrentPPO run."""

    value: float
    every: bool
    reference: str

    def describe(self) -> str:
        return f"{self.value:g} on every seed" if self.every else f"IQM >= {self.value:g}"

    def met(self, finals: list[float], iqm: float) -> bool:
        return min(finals) >= self.value if self.every else iqm >= self.value


GOALS = {
    "CartPoleNoVel-v1": Goal(500.0, True, "500 +- 0 at 100k (one run)"),
    "PendulumNoVel-v1": Goal(-200.0, False, "-217.9 +- 140.1 at 100k (one run)"),
    "MountainCarContinuousNoVel-v0": Goal(91.5, False, "91.47 +- 1.78 at 300k (one run)"),
    "LunarLanderNoVel-v3": Goal(200.0, False, "none published"),
}
# (env, memory) in the table's order; LunarLanderNoVel-v3 with a memory runs for over an hour
# per seed here: not run
ROWS = [
    ("CartPoleNoVel-v1", "lstm"), ("CartPoleNoVel-v1", "gru"), ("CartPoleNoVel-v1", "none"),
    ("PendulumNoVel-v1", "lstm"), ("PendulumNoVel-v1", "gru"), ("PendulumNoVel-v1", "none"),
    ("MountainCarContinuousNoVel-v0", "none"), ("MountainCarContinuousNoVel-v0", "lstm"),
    ("MountainCarContinuousNoVel-v0", "gru"),
    ("LunarLanderNoVel-v3", "none"),
]  # fmt: skip
LONG = {"LunarLanderNoVel-v3"}


def run_one(env: str, memory: str, seed: int, runs: Path) -> dict:
    """One run's metrics.json (trained unless it exists), with its policy's description; {}
    when it failed."""
    folder = runs / f"{env}_{memory}_{seed}"
    run = reused_or_trained([f"env={env}", f"memory={memory}", f"seed={seed}"], folder,
                            f"{env:<30} {memory:<4} seed {seed}")
    return run and run | {"policy": describe_policy(folder / "config.yaml")}


def describe_policy(config: Path) -> str:
    """``LSTM 128``, ``GRU 64`` or ``frame stack 4`` (``MLP`` for one frame), from the run's
    resolved config."""
    cfg = yaml.safe_load(config.read_text())
    memory = cfg["memory"]
    if memory["kind"] != "none":
        shared = ", one for both" if memory.get("shared") else ""
        return f"{memory['kind'].upper()} {memory['hidden_size']}{shared}"
    stack = cfg["env"]["frame_stack"]
    return f"frame stack {stack}" if stack > 1 else "MLP, one frame"


def table_rows(results: dict[tuple[str, str], list[dict]], seeds: list[int]) -> list[str]:
    """The report's table: one line per (env, memory) that ran."""
    lines = [
        "| env | policy | budget | " + " | ".join(f"seed {s}" for s in seeds)
        + " | IQM [95 % CI] | seeds at the target | issue's target | met | train s (mean) "
        "| rl-zoo3 RecurrentPPO |",
        "|---|---|---:|" + "---:|" * len(seeds) + "---|---|---|---|---:|---|",
    ]
    for (env, memory), runs in results.items():
        done = [r for r in runs if r]
        if not done:
            failed = " | ".join(["failed"] * len(seeds))
            lines.append(f"| {env} | `memory={memory}` | | {failed} | | 0 | | no | | |")
            continue
        goal = GOALS[env]
        finals = [r["mean_return"] for r in done]
        summary = summarize_seeds(finals, [curve(r) for r in done])
        at_target = sum(f >= goal.value for f in finals)
        cells = [f"{r['mean_return']:.1f}" if r else "failed" for r in runs]
        lines.append(
            f"| {env} | {done[0]['policy']} (`memory={memory}`) | {done[0]['env_steps']} | "
            + " | ".join(cells)
            + f" | {summary.iqm.value:.1f} [{summary.iqm.low:.1f}, {summary.iqm.high:.1f}] | "
            f"{at_target} of {len(done)} | {goal.describe()} | "
            f"{'yes' if goal.met(finals, summary.iqm.value) else 'no'} | "
            f"{sum(r['train_seconds'] for r in done) / len(done):.0f} | {goal.reference} |"
        )
    return lines


def write_report(results: dict, out: Path, seeds: list[int], command: str) -> None:
    lines = [
        "# Memory: frame stack, LSTM and GRU on the partially observed envs",
        "",
        f"{produced_by(command)} Each run: `torchrl train "
        "env=<id> memory=<kind> seed=<seed>` with no other flag (the env's files and the "
        "pair's `conf/tuned_memory/ppo_clip/<id>/<kind>.yaml`). A cell is the run's final "
        "evaluation: the mean return of 20 deterministic episodes after the last update. IQM: "
        "the mean of the middle scores once a quarter of the seeds is cut at each end, with "
        "its 95 % percentile bootstrap interval.",
        "",
        *table_rows(results, seeds),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--only", nargs="+", default=None, metavar="ENV",
                        help=f"envs to run (default: all four: {', '.join(GOALS)})")
    parser.add_argument("--memories", nargs="+", default=None, choices=("none", "lstm", "gru"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-memory"))
    args = parser.parse_args()
    unknown = sorted(set(args.only or ()) - set(GOALS))
    if unknown:
        sys.exit(f"bench.memory: unknown env {unknown[0]}: choose from {', '.join(GOALS)}")
    rows = [(e, m) for e, m in ROWS
            if (args.only is None or e in args.only)
            and (args.memories is None or m in args.memories)]  # fmt: skip
    jobs = [(e, m, s) for e, m in rows for s in args.seeds]
    jobs.sort(key=lambda j: j[0] not in LONG)  # the long runs first: the short fill the gaps
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run_one(*j, args.runs), jobs), strict=True))
    results = {r: [done[(*r, s)] for s in args.seeds] for r in rows}
    flags = " ".join(sys.argv[1:])
    command = f"python -m bench.memory {flags}" if flags else "make bench-memory"
    out = args.runs / "memory.md"
    write_report(results, out, args.seeds, command)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
