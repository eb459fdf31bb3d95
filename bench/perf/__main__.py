"""`make bench` / `make bench-smoke`: run every benchmark, both tools interleaved, print the
ratios and write docs/performance.md."""

import argparse
import sys
import time
from pathlib import Path

from bench.perf import collector, ours, report, sb3, whole
from bench.perf.settings import FULL, SMOKE, Budgets, Solve

VECTORIZATIONS = ("sync", "async", "native")


def solve_task(task: Solve, budgets: Budgets) -> dict:
    """Seed by seed, torchrl-cli then Stable-Baselines3 (alternating who goes first)."""
    runs = {"ours": [], "sb3": []}
    for i, seed in enumerate(budgets.seeds):
        order = (("ours", ours), ("sb3", sb3)) if i % 2 == 0 else (("sb3", sb3), ("ours", ours))
        for name, tool in order:
            run = tool.time_to_solve(task, seed)
            runs[name].append(run)
            at = f"{run.solved_steps} steps, {run.solved_seconds:.2f} s" if run.solved else "no"
            print(f"  {task.env_id} seed {seed} {name:>4}: solved {at}", flush=True)
    return runs


def throughput(budgets: Budgets) -> dict:
    """Two runs each, in the order ours, SB3, SB3, ours, so that drift cancels."""
    runs = {"ours": [], "sb3": []}
    for name, tool in (("ours", ours), ("sb3", sb3), ("sb3", sb3), ("ours", ours)):
        run = tool.throughput(budgets.throughput_steps, seed=0)
        runs[name].append(run)
        print(f"  throughput {name:>4}: {run.steps_per_second:,.0f} env steps/s "
              f"({run.seconds:.1f} s, final eval {run.final_return:.0f})", flush=True)
    return runs


def collectors(budgets: Budgets) -> dict:
    out = {}
    for n in budgets.collector_envs:
        out[n] = collector.measure(n, "auto", budgets.collector_seconds, budgets.repeats)
        print(f"  collector {n:>3} envs ({out[n]['vectorization']}): "
              f"{out[n]['collector']:,.0f} vs raw {out[n]['raw']:,.0f} steps/s", flush=True)
    return out


def scaling(budgets: Budgets) -> dict:
    out = {}
    for mode in VECTORIZATIONS:
        for n in budgets.scaling_envs:
            out[mode, n] = collector.measure(n, mode, budgets.collector_seconds / 2, 1)
            print(f"  scaling {mode:>6} {n:>3} envs: raw {out[mode, n]['raw']:,.0f}, "
                  f"collector {out[mode, n]['collector']:,.0f} steps/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny budgets, same code path")
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    args = parser.parse_args(argv)
    budgets = SMOKE if args.smoke else FULL
    command = "make bench-smoke" if args.smoke else "make bench"
    start = time.perf_counter()
    results = {}
    print("1. CartPole-v1 time-to-solve", flush=True)
    results["cartpole"] = solve_task(budgets.cartpole, budgets)
    print("2. same-hyperparameter throughput", flush=True)
    results["throughput"] = throughput(budgets)
    print("3. Pendulum-v1 time-to-solve", flush=True)
    results["pendulum"] = solve_task(budgets.pendulum, budgets)
    print("4. collector vs raw stepping", flush=True)
    results["collector"] = collectors(budgets)
    print("5. scaling", flush=True)
    results["scaling"] = scaling(budgets)
    results["whole"] = whole.measure(budgets, args.smoke)
    minutes = (time.perf_counter() - start) / 60
    report.write(args.out, results, budgets, minutes, command)
    print("\n".join(report.summary_table(results) + report.whole_table(results["whole"])))
    print(f"wrote {args.out} ({minutes:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
