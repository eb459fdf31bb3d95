"""Read a sweep's results: the summary.csv that ``torchrl train -m`` writes into the sweep
folder, ranked, and each job's metrics.json for its seeds.

    torchrl train -m agent.lr=3e-4,1e-3 seed=0,1
    python examples/sweep_summary.py runs/2026-11-23/10-00-00_multirun

summary.csv holds a row per configuration (the overrides without the seed): seeds,
mean_return, std_return, ci_low and ci_high (a 95 % bootstrap interval of the mean across
seeds), env_steps and wall_seconds. With pandas the ranking is
``pandas.read_csv(sweep / "summary.csv").sort_values("mean_return", ascending=False)``.
"""

import argparse
import csv
import json
from pathlib import Path

NUMBERS = ("seeds", "mean_return", "std_return", "ci_low", "ci_high", "env_steps",
           "wall_seconds")


def read_summary(sweep: Path) -> list[dict]:
    """summary.csv's rows with their numbers as numbers, best mean return first."""
    with (sweep / "summary.csv").open(newline="") as f:
        rows = [{k: (float(v) if k in NUMBERS else v) for k, v in row.items()}
                for row in csv.DictReader(f)]
    return sorted(rows, key=lambda row: row["mean_return"], reverse=True)


def finals_by_config(sweep: Path) -> dict[str, list[float]]:
    """Each configuration's final returns, one per job (seed), from the jobs' metrics.json. A
    configuration is named as summary.csv names it: the overrides Hydra saved in the job
    folder whose values differ between the jobs (so not the seed's, nor the shared ones)."""
    import yaml  # Hydra's dependency: installed with torchrl-cli

    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    overrides = []
    for job in jobs:
        saved = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        kept = (o for o in saved if not o.startswith(("seed=", "seeds=", "hydra.", "hydra/")))
        overrides.append(dict(o.split("=", 1) for o in kept))
    keys = set().union(*overrides)
    varying = {k for k in keys if len({o.get(k) for o in overrides}) > 1}
    finals: dict[str, list[float]] = {}
    for job, values in zip(jobs, overrides, strict=True):
        config = " ".join(sorted(f"{k}={v}" for k, v in values.items() if k in varying))
        metrics = json.loads((job / "metrics.json").read_text())
        if metrics.get("mean_return") is not None:
            finals.setdefault(config or "(defaults)", []).append(metrics["mean_return"])
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (it holds summary.csv)")
    args = parser.parse_args()
    rows = read_summary(args.sweep)
    finals = finals_by_config(args.sweep)
    print(f"{'rank':>4}  {'mean return':>12}  {'95 % CI':>18}  seeds  configuration")
    for rank, row in enumerate(rows, 1):
        ci = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        print(f"{rank:>4}  {row['mean_return']:>12.1f}  {ci:>18}  {int(row['seeds']):>5}  "
              f"{row['config']}")
        seeds = ", ".join(f"{r:.1f}" for r in finals.get(row["config"], []))
        print(f"{'':>4}  each seed's final return: {seeds}")
    print(f"best: {rows[0]['config']} (the overrides that differ between the jobs; the ones they "
          "share are in each job's .hydra/overrides.yaml)")


if __name__ == "__main__":
    main()
