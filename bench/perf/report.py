"""docs/performance.md: the ratios, per-seed details, machine, versions and exact commands."""

import math
import os
import platform
import statistics
import subprocess
from datetime import date
from importlib.metadata import version
from pathlib import Path

from bench.perf import whole
from bench.perf.ours import QUIET, solve_overrides, zoo_overrides
from bench.perf.records import SolveRun, Throughput
from bench.perf.settings import (
    EVAL_EPISODES,
    TARGETS,
    WHOLE_TARGETS,
    ZOO_CARTPOLE,
    ZOO_PENDULUM,
    Budgets,
    Solve,
)

NOTES = Path(__file__).with_name("notes.md")


def median_time(runs: list[SolveRun]) -> float:
    """Median training seconds to solve; an unsolved seed counts as never (infinite)."""
    return statistics.median(r.solved_seconds if r.solved else math.inf for r in runs)


def median_steps(runs: list[SolveRun]) -> float:
    return statistics.median(r.solved_steps if r.solved else math.inf for r in runs)


def worst_time(runs: list[SolveRun]) -> float:
    return max(r.solved_seconds if r.solved else math.inf for r in runs)


def ratios(results: dict) -> dict[str, float]:
    """ours / SB3 for every headline figure (times: lower is better; speeds: higher)."""
    out = {}
    for key, task in (("cartpole_time", "cartpole"), ("pendulum_time", "pendulum")):
        ours, sb3 = median_time(results[task]["ours"]), median_time(results[task]["sb3"])
        out[key] = ours / sb3 if math.isfinite(sb3) else math.nan
    out["throughput"] = statistics.median(
        o.steps_per_second for o in results["throughput"]["ours"]
    ) / statistics.median(s.steps_per_second for s in results["throughput"]["sb3"])
    eight = results["collector"].get(8)
    out["collector_8"] = eight["collector"] / eight["raw"] if eight else math.nan
    return out


def met(key: str, value: float, results: dict) -> bool:
    if key in ("cartpole_time", "pendulum_time"):
        task = key.removesuffix("_time")
        all_solved = all(r.solved for r in results[task]["ours"])
        return all_solved and value <= TARGETS[key]
    return value >= TARGETS[key]


def summary_table(results: dict) -> list[str]:
    r = ratios(results)
    ours_sps = statistics.median(o.steps_per_second for o in results["throughput"]["ours"])
    sb3_sps = statistics.median(s.steps_per_second for s in results["throughput"]["sb3"])
    eight = results["collector"].get(8, {"collector": math.nan, "raw": math.nan})
    rows = [
        ("CartPole-v1 time-to-solve (median s)", "cartpole_time",
         _solve_cell(results["cartpole"]["ours"]), _solve_cell(results["cartpole"]["sb3"]), "≤"),
        ("same-hyperparameter throughput (env steps/s)", "throughput",
         f"{ours_sps:,.0f}", f"{sb3_sps:,.0f}", "≥"),
        ("Pendulum-v1 time-to-solve (median s)", "pendulum_time",
         _solve_cell(results["pendulum"]["ours"]), _solve_cell(results["pendulum"]["sb3"]), "≤"),
        ("collector vs raw stepping, 8 envs (steps/s)", "collector_8",
         f"{eight['collector']:,.0f}", f"raw {eight['raw']:,.0f}", "≥"),
    ]
    lines = [
        "| benchmark | torchrl-cli | Stable-Baselines3 | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, key, ours, sb3, sign in rows:
        lines.append(
            f"| {name} | {ours} | {sb3} | {r[key]:.3f} | {sign} {TARGETS[key]} | "
            f"{'yes' if met(key, r[key], results) else 'no'} |"
        )
    return lines


def _solve_cell(runs: list[SolveRun]) -> str:
    solved = sum(r.solved for r in runs)
    return f"{median_time(runs):.2f} ({solved}/{len(runs)} solved)"


def solve_details(runs: dict[str, list[SolveRun]]) -> list[str]:
    lines = [
        "| tool | seed | solved at (env steps) | training seconds | evaluations |",
        "|---|---|---|---|---|",
    ]
    for tool, name in (("ours", "torchrl-cli"), ("sb3", "Stable-Baselines3")):
        for r in runs[tool]:
            at = f"{r.solved_steps}" if r.solved else "not solved"
            secs = f"{r.solved_seconds:.2f}" if r.solved else "—"
            lines.append(f"| {name} | {r.seed} | {at} | {secs} | {len(r.evaluations)} |")
        ok = [r for r in runs[tool] if r.solved]
        lines.append(
            f"| {name} | median / worst | {median_steps(runs[tool]):.0f} | "
            f"{median_time(runs[tool]):.2f} / {worst_time(runs[tool]):.2f} | "
            f"{len(ok)}/{len(runs[tool])} solved |"
        )
    return lines


def throughput_details(runs: dict[str, list[Throughput]]) -> list[str]:
    lines = [
        "| tool | env steps | training seconds | env steps/s | final eval (20 episodes) |",
        "|---|---|---|---|---|",
    ]
    for tool, name in (("ours", "torchrl-cli"), ("sb3", "Stable-Baselines3")):
        for t in runs[tool]:
            lines.append(
                f"| {name} | {t.env_steps} | {t.seconds:.2f} | {t.steps_per_second:,.0f} | "
                f"{t.final_return:.1f} |"
            )
    return lines


def collector_details(collector: dict[int, dict]) -> list[str]:
    lines = [
        "| n_envs | vectorization (auto) | raw stepping (steps/s) | collector (steps/s) | "
        "collector / raw |",
        "|---|---|---|---|---|",
    ]
    for n, m in collector.items():
        lines.append(
            f"| {n} | {m['vectorization']} | {m['raw']:,.0f} | {m['collector']:,.0f} | "
            f"{m['collector'] / m['raw']:.2f} |"
        )
    return lines


def scaling_details(scaling: dict[tuple[str, int], dict]) -> list[str]:
    modes = list(dict.fromkeys(mode for mode, _ in scaling))
    sizes = list(dict.fromkeys(n for _, n in scaling))
    lines = [
        "| n_envs | " + " | ".join(f"{m} raw | {m} collector" for m in modes) + " |",
        "|---|" + "---|---|" * len(modes),
    ]
    for n in sizes:
        cells = []
        for m in modes:
            r = scaling.get((m, n))
            cells += [f"{r['raw']:,.0f}", f"{r['collector']:,.0f}"] if r else ["—", "—"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def whole_table(results: dict) -> list[str]:
    """The whole-process headline figures against their targets."""
    f = whole.figures(results)
    t = WHOLE_TARGETS
    rows = []
    for task, env_id in (("cartpole", "CartPole-v1"), ("pendulum", "Pendulum-v1")):
        ours, ratio = f"{f[task + '_ours']:.2f}", f[task + "_ratio"]
        rows += [
            (f"{env_id} whole-process time-to-solve (median s)", ours, f"{f[task + '_sb3']:.2f}",
             f"{ratio:.3f}", f"≤ {t[task + '_ratio']}", ratio <= t[task + "_ratio"]),
            ("the same, SB3 evaluating vectorized as torchrl-cli does", ours,
             f"{f[task + '_sb3_vectorized']:.2f}", f"{f[task + '_ratio_vectorized']:.3f}", "—",
             None),
        ]  # fmt: skip
    over = f["ready"] - f["floor"]
    rows += [
        (
            "start-up to the first env step (median s)",
            f"{f['ready']:.2f}",
            f"import floor {f['floor']:.2f}",
            f"floor {'+' if over >= 0 else '−'} {abs(over):.2f} s",
            f"≤ floor + {t['ready_over_floor']} s",
            over <= t["ready_over_floor"],
        ),
        (
            "`torchrl train --help` (median s)",
            f"{f['help']:.2f}",
            f"import floor {f['floor']:.2f}",
            f"{f['help'] / f['floor']:.2f}× floor",
            f"≤ {t['help_over_floor']}× floor",
            f["help"] / f["floor"] <= t["help_over_floor"],
        ),
        (
            "last line to exit (worst run, s)",
            f"{f['exit']:.2f}",
            "",
            "",
            f"≤ {t['exit']} s",
            f["exit"] <= t["exit"],
        ),
        (
            "evaluation's share of a default `torchrl train` (median)",
            f"{f['eval_share']:.1%}",
            "",
            "",
            f"≤ {t['eval_share']:.0%}",
            f["eval_share"] <= t["eval_share"],
        ),
    ]
    lines = [
        "| figure | torchrl-cli | Stable-Baselines3 / reference | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, ours, ref, ratio, target, ok in rows:
        met = "—" if ok is None else ("yes" if ok else "no")
        lines.append(f"| {name} | {ours} | {ref} | {ratio} | {target} | {met} |")
    return lines


def whole_details(results: dict) -> list[str]:
    lines = [
        "| task | tool | seed | whole process (s) | start-up to first env step (s) | "
        "last line to exit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for task, env_id in (("cartpole", "CartPole-v1"), ("pendulum", "Pendulum-v1")):
        for tool, name in (("ours", "torchrl-cli"), ("sb3", "Stable-Baselines3, EvalCallback"),
                           ("sb3_vectorized", "Stable-Baselines3, vectorized evaluation")):
            for seed, p in enumerate(results[task][tool]):
                ready = f"{p.ready:.2f}" if p.ready is not None else "—"
                lines.append(
                    f"| {env_id} | {name} | {seed} | {p.wall:.2f} | {ready} | {p.exit:.2f} |"
                )
    s = results["startup"]
    lines += ["", "| command | runs (s, whole process) |", "|---|---|"]
    for key, name in (
        ("floor", "import floor"),
        ("train", "`torchrl train max_steps=512`"),
        ("help", "`torchrl train --help`"),
    ):
        lines.append(f"| {name} | {' '.join(f'{p.wall:.2f}' for p in s[key])} |")
    lines += [
        "",
        "| default run | whole process (s) | evaluating (s) | share |",
        "|---|---|---|---|",
    ]
    for i, p in enumerate(results["default"]):
        e = p.metrics["eval_seconds"]
        lines.append(f"| {i} | {p.wall:.2f} | {e:.2f} | {e / p.wall:.1%} |")
    return lines


def machine() -> str:
    cpu = platform.processor() or "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{platform.machine()}, {cpu}, {os.cpu_count()} cores, {platform.system()}"


def versions() -> str:
    pkgs = ("torch", "gymnasium", "numpy", "stable-baselines3", "torchrl-cli")
    return ", ".join(f"{p} {version(p)}" for p in pkgs) + f", Python {platform.python_version()}"


def commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def commands(budgets: Budgets) -> list[str]:
    cp, pd = budgets.cartpole, budgets.pendulum
    ours_cp = " ".join(solve_overrides(cp, 0) + QUIET)
    ours_pd = " ".join(solve_overrides(pd, 0) + QUIET)
    ours_tp = " ".join(zoo_overrides(budgets.throughput_steps) + QUIET)
    return [
        "torchrl-cli (in-process `torchrl_cli.run.train.train(cfg)`, the config these `torchrl "
        "train` command lines compose; seed 0 shown):",
        "",
        "```",
        f"torchrl train experiment={cp.experiment} {ours_cp}",
        f"torchrl train experiment={pd.experiment} {ours_pd}",
        f"torchrl train {ours_tp}",
        "```",
        "",
        "Stable-Baselines3 (bench/perf/sb3.py): `PPO(\"MlpPolicy\", make_vec_env(env_id, n_envs, "
        "seed=seed), seed=seed, device=\"cpu\", **hyperparameters)` with "
        "`torch.set_num_threads(1)`, `learn(100_000)` (rl-zoo3's n_timesteps, which sets the "
        "linear schedules; a callback stops it at the first solving evaluation) with rl-zoo3's "
        "tuned hyperparameters:",
        "",
        f"- CartPole-v1: `{ZOO_CARTPOLE}` (learning rate and clip range annealed linearly)",
        f"- Pendulum-v1: `{ZOO_PENDULUM}`",
    ]


def _budget(task: Solve) -> str:
    if task.budget is not None:
        return f"{task.budget} env steps for both"
    return "ours: the tuned file's max_steps; Stable-Baselines3: rl-zoo3's 100 000 steps"


def write(path: Path, results: dict, budgets: Budgets, minutes: float, command: str) -> None:
    cp, pd = budgets.cartpole, budgets.pendulum
    lines = [
        "# Performance: torchrl-cli beside Stable-Baselines3",
        "",
        f"Written by `{command}` on {date.today()} from commit {commit()}, in {minutes:.1f} "
        f"minutes. Machine: {machine()}. Versions: {versions()}. Every figure comes from this "
        "one run, both tools interleaved (seed by seed, run by run), one process, one torch "
        "thread each; the machine is shared, so only the ratios mean much.",
        "",
        "## Summary (ours / Stable-Baselines3, measured side by side)",
        "",
        *summary_table(results),
        "",
        "Whole processes, as the user waits for them (section 6):",
        "",
        *whole_table(results["whole"]),
        "",
        f"## 1. {cp.env_id} time-to-solve",
        "",
        f"Each tool's tuned default, {len(budgets.seeds)} seeds. Every {cp.eval_every} env steps "
        f"the training clock pauses for {EVAL_EPISODES} deterministic episodes on a separate env "
        f"(fixed seeds); solved at the first mean return ≥ {cp.threshold:g}. Training seconds "
        "exclude evaluation and start-up. A seed that has not solved within the tool's budget "
        f"({_budget(cp)}) counts as unsolved (infinite time in the median).",
        "",
        *solve_details(results["cartpole"]),
        "",
        "## 2. Same-hyperparameter throughput",
        "",
        f"rl-zoo3's tuned CartPole-v1 PPO for both ({budgets.throughput_steps} env steps, "
        "64×64 tanh policy and value nets, one thread). Each tool steps CartPole its own way: "
        "torchrl-cli with `env.vectorization=auto` (native at 8 copies), Stable-Baselines3 with "
        "its DummyVecEnv.",
        "",
        *throughput_details(results["throughput"]),
        "",
        f"## 3. {pd.env_id} time-to-solve",
        "",
        f"As in 1, evaluating every {pd.eval_every} env steps, threshold {pd.threshold:g}, "
        f"budget {_budget(pd)}. Stable-Baselines3 uses gSDE, as rl-zoo3 tunes it.",
        "",
        *solve_details(results["pendulum"]),
        "",
        "## 4. Collector overhead (CartPole-v1)",
        "",
        "torchrl-cli's rollout collector (policy acting, rollout tensors, episode bookkeeping, "
        "values at the rollout's end) against raw stepping of the same vector env with random "
        f"actions; median of {budgets.repeats} interleaved measurements of "
        f"{budgets.collector_seconds:g} s.",
        "",
        *collector_details(results["collector"]),
        "",
        "## 5. Scaling with n_envs (CartPole-v1, env steps/s)",
        "",
        "Raw stepping and the collector for each vectorization mode.",
        "",
        *scaling_details(results["scaling"]),
        "",
        "## 6. Whole process",
        "",
        "From the process's start to its exit, as a user waits for it: `torchrl train "
        f"experiment={cp.experiment} seed=S` and `experiment={pd.experiment}` (the tool's tuned "
        "defaults, stopping at the target, console and run folder as usual) against "
        "`python -m bench.perf.sb3_process <env> S callback` (a Stable-Baselines3 script: SB3 "
        "imported, rl-zoo3's tuned PPO trained until solved under the same protocol, 20 "
        "deterministic episodes every cadence, evaluated by SB3's own `EvalCallback` on one eval "
        "env with `StopTrainingOnRewardThreshold`, as rl-zoo3 evaluates by default), and the "
        "same with the vectorized 20-copy evaluation of sections 1 and 3 (`vectorized`: "
        "torchrl-cli's way, which SB3 users do not get by default; the targets are judged "
        "against the script), seed by seed, each going first in turn. Start-up: process start "
        "to the line torchrl prints just before its first env step; the import floor is "
        '`python -c "import torch, gymnasium, hydra, omegaconf, rich, tensorboard"`. '
        "Evaluation share: metrics.json's `eval_seconds` over the whole process of a plain "
        "`torchrl train`.",
        "",
        *whole_details(results["whole"]),
        "",
        "## Commands",
        "",
        *commands(budgets),
        "",
    ]
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
