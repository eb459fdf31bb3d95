"""Time to result as the user lives it: whole processes, from the shell's start to the exit.

- time-to-solve: `torchrl train experiment=<preset> seed=S` (the command a user types) against
  `python -m bench.perf.sb3_process <env> S callback` (a Stable-Baselines3 script: rl-zoo3's
  tuned PPO, the same evaluation protocol through SB3's own EvalCallback) and against the same
  with torchrl-cli's vectorized evaluation (`vectorized`), seed by seed, rotating the order;
- start-up: process start to the line torchrl prints just before its first env step (the
  backend line), against the import floor (`import torch, gymnasium, hydra, omegaconf, rich,
  tensorboard` in a bare interpreter); `torchrl train --help`; the exit (last line to exit);
- evaluation's share of a default run (`torchrl train`, metrics.json's eval_seconds over the
  process's wall time).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.perf.settings import Budgets, Solve

BIN = Path(sys.executable).parent
FLOOR = [sys.executable, "-c", "import torch, gymnasium, hydra, omegaconf, rich, tensorboard"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1")
READY = "backend "  # torchrl's line printed after building everything, before the first step


@dataclass
class Process:
    wall: float  # seconds from start to exit
    ready: float | None  # seconds from start to the first line starting with READY
    exit: float  # seconds from the last line to the exit
    metrics: dict | None  # torchrl's metrics.json, when it wrote one
    lines: int  # lines printed (stdout and stderr)


def timed(cmd: list[str], cwd: Path, run_dir: Path | None = None) -> Process:
    start = time.perf_counter()
    ready, last = None, start
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    tail, lines = [], 0
    for line in proc.stdout:
        last, lines = time.perf_counter(), lines + 1
        tail = (tail + [line])[-5:]
        if ready is None and line.startswith(READY):
            ready = last - start
    code = proc.wait()
    end = time.perf_counter()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}: {''.join(tail)}")
    written = run_dir is not None and (run_dir / "metrics.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text()) if written else None
    return Process(end - start, ready, end - last, metrics, lines)


def ours(task: Solve, seed: int, cwd: Path, smoke: bool) -> Process:
    run_dir = cwd / f"{task.env_id}_{seed}"
    budget = [f"max_steps={task.budget}", f"target_return={task.threshold}"] if smoke else []
    cmd = [
        str(BIN / "torchrl"),
        "train",
        f"experiment={task.experiment}",
        f"seed={seed}",
        *budget,
        f"hydra.run.dir={run_dir}",
    ]
    return timed(cmd, cwd, run_dir)


def sb3(task: Solve, seed: int, evaluation: str, smoke: bool) -> Process:
    cmd = [sys.executable, "-m", "bench.perf.sb3_process", task.env_id, str(seed), evaluation]
    return timed(cmd + (["--smoke"] if smoke else []), Path.cwd())


TOOLS = ("ours", "sb3", "sb3_vectorized")  # sb3: EvalCallback, as an SB3 script evaluates


def solve(task: Solve, budgets: Budgets, cwd: Path, smoke: bool) -> dict[str, list[Process]]:
    runs = {name: [] for name in TOOLS}
    for i, seed in enumerate(budgets.seeds):
        for name in TOOLS[i % 3 :] + TOOLS[: i % 3]:  # each tool goes first in turn
            if name == "ours":
                run = ours(task, seed, cwd, smoke)
            else:
                run = sb3(task, seed, "callback" if name == "sb3" else "vectorized", smoke)
            runs[name].append(run)
            print(
                f"  {task.env_id} seed {seed} {name:>14}: {run.wall:.2f} s whole process",
                flush=True,
            )
    return runs


def startup(budgets: Budgets, cwd: Path) -> dict[str, list[Process]]:
    """Interleaved: the import floor, a tiny training run (start-up to its first env step) and
    `torchrl train --help`, `budgets.repeats` times each."""
    out = {"floor": [], "train": [], "help": []}
    for i in range(budgets.repeats):
        out["floor"].append(timed(FLOOR, cwd))
        run_dir = cwd / f"startup_{i}"
        out["train"].append(
            timed(
                [str(BIN / "torchrl"), "train", "max_steps=512", f"hydra.run.dir={run_dir}"],
                cwd,
                run_dir,
            )
        )
        out["help"].append(timed([str(BIN / "torchrl"), "train", "--help"], cwd))
    floor = statistics.median(p.wall for p in out["floor"])
    ready = statistics.median(p.ready for p in out["train"])
    print(
        f"  import floor {floor:.2f} s, start-up to the first env step {ready:.2f} s, "
        f"train --help {statistics.median(p.wall for p in out['help']):.2f} s",
        flush=True,
    )
    return out


def default_run(budgets: Budgets, cwd: Path, smoke: bool) -> list[Process]:
    """`torchrl train` as `make train` runs it: evaluation's share of the whole process."""
    runs = []
    for i in range(1 if smoke else 3):
        run_dir = cwd / f"default_{i}"
        extra = ["max_steps=4096"] if smoke else []
        runs.append(
            timed([str(BIN / "torchrl"), "train", *extra, f"hydra.run.dir={run_dir}"], cwd, run_dir)
        )
        m = runs[-1].metrics
        print(
            f"  default run {i}: {runs[-1].wall:.2f} s whole process, "
            f"{m['eval_seconds']:.2f} s evaluating",
            flush=True,
        )
    return runs


def measure(budgets: Budgets, smoke: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        print("6. whole process: CartPole-v1 time-to-solve", flush=True)
        cartpole = solve(budgets.cartpole, budgets, cwd, smoke)
        print("7. whole process: Pendulum-v1 time-to-solve", flush=True)
        pendulum = solve(budgets.pendulum, budgets, cwd, smoke)
        print("8. start-up, help, exit, evaluation share", flush=True)
        return {
            "cartpole": cartpole,
            "pendulum": pendulum,
            "startup": startup(budgets, cwd),
            "default": default_run(budgets, cwd, smoke),
        }


def figures(whole: dict) -> dict[str, float]:
    """The headline figures of the whole-process section (seconds or ratios)."""
    med = statistics.median
    out = {}
    for task in ("cartpole", "pendulum"):
        out[f"{task}_ours"] = med(p.wall for p in whole[task]["ours"])
        out[f"{task}_sb3"] = med(p.wall for p in whole[task]["sb3"])
        out[f"{task}_ratio"] = out[f"{task}_ours"] / out[f"{task}_sb3"]
        out[f"{task}_sb3_vectorized"] = med(p.wall for p in whole[task]["sb3_vectorized"])
        out[f"{task}_ratio_vectorized"] = out[f"{task}_ours"] / out[f"{task}_sb3_vectorized"]
    s = whole["startup"]
    out["floor"] = med(p.wall for p in s["floor"])
    out["ready"] = med(p.ready for p in s["train"])
    out["help"] = med(p.wall for p in s["help"])
    ours_runs = whole["cartpole"]["ours"] + whole["pendulum"]["ours"] + s["train"]
    out["exit"] = max(p.exit for p in ours_runs)
    out["eval_share"] = med(p.metrics["eval_seconds"] / p.wall for p in whole["default"])
    return out
